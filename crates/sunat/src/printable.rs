//! The printable receipt: a PDF with company, customer, items, totals, digest value and a QR code;
//! a credit note prints the same way, with the document it modifies and its reason.
//!
//! The PDF is one page of an 80 mm thermal ticket (the paper of a shop's POS printer), as long
//! as its content needs. Text is real text in the PDF's built-in Helvetica fonts with
//! WinAnsiEncoding, so accented Spanish letters (Ó, ñ) print and extract correctly and no font
//! file is embedded; characters outside Windows-1252 print as `?`.
//!
//! The receipt number prints as [`Receipt::id`] (`B001-123`, the XML's `cbc:ID`), amounts with two
//! decimals and no thousands separator (`S/ 1180.00`), exactly as the XML and the QR code carry
//! them, and the issue date as `dd/mm/yyyy`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bigdecimal::{BigDecimal, RoundingMode, Zero};
use chrono::{NaiveDate, NaiveTime};
use encoding_rs::WINDOWS_1252;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use qrcode::types::QrError;
use qrcode::{Color, EcLevel, QrCode};

use crate::credit_note::CreditNote;
use crate::document::{
    Company, Customer, CustomerDocType, DocumentError, DocumentType, Line, Receipt,
};
use crate::taxation::{
    self, amount_in_words, Discount, DocumentTotals, LineAmounts, TaxBase, TaxScheme, UnitCode,
};
use crate::ubl::decimal;

/// Why a receipt could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("cannot print receipt {id}: {source}; fix the receipt before printing it")]
    InvalidReceipt {
        id: String,
        #[source]
        source: DocumentError,
    },
    #[error(
        "cannot encode {len} bytes of QR content at error correction level Q: {source}; \
         the QR content is too long"
    )]
    Qr {
        len: usize,
        #[source]
        source: QrError,
    },
    #[error("cannot encode the QR code as PNG: {0}")]
    Png(#[from] image::ImageError),
    #[error(
        "receipt {id} is too long for one ticket page ({height_mm:.0} mm, the PDF limit is \
         {max_mm:.0} mm); split the sale into several receipts"
    )]
    TooLong {
        id: String,
        height_mm: f32,
        max_mm: f32,
    },
    #[error("cannot write {}: {source}; check that the directory exists or can be created, is writable and the disk is not full", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The files written by [`write_files`].
#[derive(Debug, Clone)]
pub struct PrintedFiles {
    /// `<dir>/<file_stem>.pdf`.
    pub pdf_path: PathBuf,
    /// `<dir>/<file_stem>.png`, the QR code alone.
    pub qr_path: PathBuf,
    /// The PDF's bytes, as written.
    pub pdf_bytes: Vec<u8>,
    /// The QR PNG's bytes, as written.
    pub qr_png_bytes: Vec<u8>,
}

/// Width of the ticket paper.
pub const PAGE_WIDTH_MM: f32 = 80.0;

/// Points per millimetre.
const MM: f32 = 72.0 / 25.4;
/// The margin on every side (thermal printers print about 72 mm of the 80).
const MARGIN: f32 = 4.0 * MM;
/// Pixels per QR module in the PNG.
const QR_PX_PER_MODULE: u32 = 8;
/// The quiet zone around the QR code, in modules (the standard asks for 4).
const QR_QUIET_ZONE: usize = 4;
/// Printed size of the QR code with its quiet zone (SUNAT asks for at least 2 cm).
const QR_PRINT_SIZE: f32 = 34.0 * MM;
/// The largest page side PDF readers accept (PDF 1.7, annex C), in points.
const MAX_PAGE_SIDE: f32 = 14_400.0;

const FONT_REGULAR: Name<'static> = Name(b"F1");
const FONT_BOLD: Name<'static> = Name(b"F2");
const QR_IMAGE: Name<'static> = Name(b"Im1");

/// The QR code of `content` at error correction level Q, as PNG bytes: black modules on white,
/// 8 pixels per module, with a 4-module quiet zone.
pub fn qr_png(content: &str) -> Result<Vec<u8>, PrintError> {
    let qr = QrMatrix::new(content)?;
    // At most 185 modules (version 40 with its quiet zone) times 8 pixels: fits a u32.
    let side_px = (qr.side as u32) * QR_PX_PER_MODULE;
    let px = QR_PX_PER_MODULE as usize;
    let mut pixels = Vec::with_capacity((side_px * side_px) as usize);
    for row in qr.samples.chunks(qr.side) {
        let mut line = Vec::with_capacity(side_px as usize);
        for &sample in row {
            line.extend(std::iter::repeat_n(sample, px));
        }
        for _ in 0..px {
            pixels.extend_from_slice(&line);
        }
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(&pixels, side_px, side_px, ExtendedColorType::L8)?;
    Ok(png)
}

/// The QR code of a receipt ([`Receipt::qr_content`]) as PNG bytes ([`qr_png`]).
pub fn receipt_qr_png(receipt: &Receipt, digest_value: &str) -> Result<Vec<u8>, PrintError> {
    let content =
        receipt
            .qr_content(digest_value)
            .map_err(|source| PrintError::InvalidReceipt {
                id: receipt.id(),
                source,
            })?;
    qr_png(&content)
}

/// The printed receipt as a one-page PDF (80 mm ticket): title, company, number, date, customer,
/// items, totals, observations (e.g. SUNAT's notes on an accepted receipt; may be empty), the
/// digest value ("valor resumen") and the QR code of [`Receipt::qr_content`].
pub fn receipt_pdf(
    receipt: &Receipt,
    digest_value: &str,
    observations: &[String],
) -> Result<Vec<u8>, PrintError> {
    let invalid = |source| PrintError::InvalidReceipt {
        id: receipt.id(),
        source,
    };
    receipt.validate().map_err(invalid)?;
    let amounts = receipt.amounts().map_err(invalid)?;
    let qr = QrMatrix::new(&receipt.qr_content(digest_value).map_err(invalid)?)?;
    let doc = Printed {
        company: &receipt.company,
        title: title(receipt.doc_type),
        id: receipt.id(),
        issue_date: receipt.issue_date,
        issue_time: receipt.issue_time,
        customer: &receipt.customer,
        currency: &receipt.currency,
        igv_rate: receipt.igv_rate(),
        lines: &receipt.lines,
        reference: None,
    };
    page(&doc, &amounts, digest_value, observations, &qr)
}

/// The printed credit note ("NOTA DE CRÉDITO ELECTRÓNICA") as a one-page PDF like a receipt's,
/// with the document it modifies, the reason (catálogo 09) and its description, the credited
/// lines with their credited quantities and amounts, and the QR code of
/// [`CreditNote::qr_content`].
pub fn credit_note_pdf(
    note: &CreditNote,
    digest_value: &str,
    observations: &[String],
) -> Result<Vec<u8>, PrintError> {
    let invalid = |source| PrintError::InvalidReceipt {
        id: note.id(),
        source,
    };
    note.validate().map_err(invalid)?;
    let amounts = note.amounts().map_err(invalid)?;
    let qr = QrMatrix::new(&note.qr_content(digest_value).map_err(invalid)?)?;
    let lines = note.printed_lines();
    let original_title = title(note.original.doc_type);
    let doc = Printed {
        company: &note.company,
        title: CREDIT_NOTE_TITLE,
        id: note.id(),
        issue_date: note.issue_date,
        issue_time: note.issue_time,
        customer: &note.customer,
        currency: &note.currency,
        igv_rate: note.igv_rate(),
        lines: &lines,
        reference: Some(Reference {
            document: format!("{original_title} {}", note.original.id()),
            issue_date: note.original.issue_date,
            reason: format!("{} {}", note.reason.code(), note.reason.label()),
            description: &note.description,
        }),
    };
    page(&doc, &amounts, digest_value, observations, &qr)
}

/// The QR code of a credit note ([`CreditNote::qr_content`]) as PNG bytes ([`qr_png`]).
pub fn credit_note_qr_png(note: &CreditNote, digest_value: &str) -> Result<Vec<u8>, PrintError> {
    let content = note
        .qr_content(digest_value)
        .map_err(|source| PrintError::InvalidReceipt {
            id: note.id(),
            source,
        })?;
    qr_png(&content)
}

/// The title of a printed credit note.
pub const CREDIT_NOTE_TITLE: &str = "NOTA DE CRÉDITO ELECTRÓNICA";

/// Lays out and renders one document, refusing one taller than a PDF page.
fn page(
    doc: &Printed<'_>,
    amounts: &[LineAmounts],
    digest_value: &str,
    observations: &[String],
    qr: &QrMatrix,
) -> Result<Vec<u8>, PrintError> {
    let layout = lay_out(doc, amounts, digest_value, observations);
    let height = layout.y + MARGIN;
    if height > MAX_PAGE_SIDE {
        return Err(PrintError::TooLong {
            id: doc.id.clone(),
            height_mm: height / MM,
            max_mm: MAX_PAGE_SIDE / MM,
        });
    }
    Ok(render(&layout, qr, height, &doc.id))
}

/// Writes `<file_stem>.pdf` (the receipt) and `<file_stem>.png` (its QR code) into `dir`,
/// creating it. Each file is written to a temporary file in `dir`, synced, then renamed, so a
/// reader never sees a half-written file.
pub fn write_files(
    dir: impl AsRef<Path>,
    receipt: &Receipt,
    digest_value: &str,
    observations: &[String],
) -> Result<PrintedFiles, PrintError> {
    let dir = dir.as_ref();
    let pdf_bytes = receipt_pdf(receipt, digest_value, observations)?;
    let qr_png_bytes = receipt_qr_png(receipt, digest_value)?;
    fs::create_dir_all(dir).map_err(|source| PrintError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let stem = receipt.file_stem();
    let pdf_path = dir.join(format!("{stem}.pdf"));
    let qr_path = dir.join(format!("{stem}.png"));
    write_atomic(dir, &pdf_path, &pdf_bytes)?;
    write_atomic(dir, &qr_path, &qr_png_bytes)?;
    sync_dir(dir);
    Ok(PrintedFiles {
        pdf_path,
        qr_path,
        pdf_bytes,
        qr_png_bytes,
    })
}

fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), PrintError> {
    let io_err = |source| PrintError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".faena-print-")
        .tempfile_in(dir)
        .map_err(io_err)?;
    tmp.write_all(bytes).map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

/// Makes the renames durable. Best effort: not every platform can open a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The QR modules with the quiet zone, one gray sample per module (0 dark, 255 light).
struct QrMatrix {
    side: usize,
    samples: Vec<u8>,
}

impl QrMatrix {
    fn new(content: &str) -> Result<Self, PrintError> {
        let code = QrCode::with_error_correction_level(content, EcLevel::Q).map_err(|source| {
            PrintError::Qr {
                len: content.len(),
                source,
            }
        })?;
        let width = code.width();
        let side = width + 2 * QR_QUIET_ZONE;
        let mut samples = vec![255u8; side * side];
        for (i, color) in code.to_colors().into_iter().enumerate() {
            if color == Color::Dark {
                let (row, col) = (i / width + QR_QUIET_ZONE, i % width + QR_QUIET_ZONE);
                samples[row * side + col] = 0;
            }
        }
        Ok(Self { side, samples })
    }
}

// ---- Layout -------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
}

/// Helvetica's advance widths for ASCII 32..=126, in 1/1000 em (Adobe's core-14 AFM metrics).
#[rustfmt::skip]
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0..?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P.._
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // `..o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,      // p..~
];

/// Helvetica-Bold's advance widths for ASCII 32..=126, in 1/1000 em.
#[rustfmt::skip]
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0..?
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // P.._
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // `..o
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,      // p..~
];

impl Font {
    fn resource(self) -> Name<'static> {
        match self {
            Self::Regular => FONT_REGULAR,
            Self::Bold => FONT_BOLD,
        }
    }

    /// Advance width of `c` in 1/1000 em. Accented letters have their base letter's width
    /// (dotless i's for í); other non-ASCII characters are over-estimated so text never
    /// overflows its column.
    fn advance(self, c: char) -> f32 {
        let table = match self {
            Self::Regular => &HELVETICA,
            Self::Bold => &HELVETICA_BOLD,
        };
        let base = match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => return 278.0,
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            'ç' => 'c',
            'ý' | 'ÿ' => 'y',
            'Á' | 'À' | 'Â' | 'Ä' | 'Ã' | 'Å' => 'A',
            'É' | 'È' | 'Ê' | 'Ë' => 'E',
            'Í' | 'Ì' | 'Î' | 'Ï' => 'I',
            'Ó' | 'Ò' | 'Ô' | 'Ö' | 'Õ' => 'O',
            'Ú' | 'Ù' | 'Û' | 'Ü' => 'U',
            'Ñ' => 'N',
            'Ç' => 'C',
            'Ý' => 'Y',
            '¡' => return 333.0,
            '¿' => return 611.0,
            '°' => return 400.0,
            other => other,
        };
        match u8::try_from(base) {
            Ok(b @ 32..=126) => f32::from(table[usize::from(b - 32)]),
            _ => 1000.0,
        }
    }

    fn width(self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.advance(c)).sum::<f32>() * size / 1000.0
    }
}

/// Replaces what the built-in fonts cannot show: control characters by spaces, characters
/// outside Windows-1252 by `?`.
fn printable_text(s: &str) -> String {
    let mut buf = [0u8; 4];
    s.chars()
        .map(|c| {
            if c.is_control() {
                ' '
            } else if WINDOWS_1252.encode(c.encode_utf8(&mut buf)).2 {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// `text` (already [`printable_text`]) in Windows-1252, the font's WinAnsiEncoding.
fn win_ansi(text: &str) -> Vec<u8> {
    WINDOWS_1252.encode(text).0.into_owned()
}

/// Greedy word wrap; a word wider than the line is cut between characters.
fn wrap(text: &str, font: Font, size: f32, max_width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let candidate = if current.is_empty() {
            word.to_owned()
        } else {
            format!("{current} {word}")
        };
        if font.width(&candidate, size) <= max_width {
            current = candidate;
            continue;
        }
        if !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        for c in word.chars() {
            current.push(c);
            if font.width(&current, size) > max_width && current.chars().count() > 1 {
                current.pop();
                lines.push(std::mem::replace(&mut current, c.to_string()));
            }
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

enum Op {
    /// Text with its left end at `x` and its baseline `y` below the top of the page.
    Text {
        x: f32,
        y: f32,
        font: Font,
        size: f32,
        text: String,
    },
    /// A dashed rule across the ticket, `y` below the top.
    Rule { y: f32 },
    /// The QR image, its top-left corner at (`x`, `y` below the top).
    Qr { x: f32, y: f32, size: f32 },
}

#[derive(Clone, Copy)]
enum Align {
    Left(f32),
    Right(f32),
    Center,
}

/// Draw operations in top-down coordinates; `y` is how far down the page is filled.
struct Layout {
    ops: Vec<Op>,
    y: f32,
}

const LEADING: f32 = 1.3;
const BODY: f32 = 7.5;
const SMALL: f32 = 6.5;

fn content_width() -> f32 {
    PAGE_WIDTH_MM * MM - 2.0 * MARGIN
}

fn right_edge() -> f32 {
    PAGE_WIDTH_MM * MM - MARGIN
}

impl Layout {
    fn new() -> Self {
        Self {
            ops: Vec::new(),
            y: MARGIN,
        }
    }

    /// Places one line of text at the baseline `y`.
    fn put(&mut self, y: f32, align: Align, font: Font, size: f32, text: &str) {
        let width = font.width(text, size);
        let x = match align {
            Align::Left(x) => x,
            Align::Right(x) => x - width,
            Align::Center => MARGIN + (content_width() - width) / 2.0,
        };
        self.ops.push(Op::Text {
            x,
            y,
            font,
            size,
            text: text.to_owned(),
        });
    }

    /// Starts a new line of the given size and returns its baseline.
    fn next_line(&mut self, size: f32) -> f32 {
        let baseline = self.y + size;
        self.y += size * LEADING;
        baseline
    }

    /// A paragraph across the ticket, wrapped.
    fn paragraph(&mut self, align: Align, font: Font, size: f32, text: &str) {
        let text = printable_text(text);
        let width = match align {
            Align::Left(x) => right_edge() - x,
            Align::Right(_) | Align::Center => content_width(),
        };
        for line in wrap(&text, font, size, width) {
            let y = self.next_line(size);
            self.put(y, align, font, size, &line);
        }
    }

    /// A label on the left and a value on the right, on one line.
    fn label_value(&mut self, font: Font, size: f32, label: &str, value: &str) {
        let y = self.next_line(size);
        self.put(y, Align::Left(MARGIN), font, size, &printable_text(label));
        self.put(
            y,
            Align::Right(right_edge()),
            font,
            size,
            &printable_text(value),
        );
    }

    fn rule(&mut self) {
        self.y += 3.0;
        self.ops.push(Op::Rule { y: self.y });
        self.y += 4.0;
    }

    fn gap(&mut self, points: f32) {
        self.y += points;
    }
}

fn money(v: &BigDecimal) -> String {
    v.with_scale_round(2, RoundingMode::HalfUp)
        .to_plain_string()
}

fn is_whole(q: &BigDecimal) -> bool {
    q.with_scale(0) == *q
}

/// A quantity as printed: whole (`2`), or with its 3 decimals (`1.250`), as a scale shows it.
fn printed_quantity(q: &BigDecimal) -> String {
    if is_whole(q) {
        decimal(q, 0, 0)
    } else {
        q.with_scale_round(taxation::QUANTITY_DECIMALS, RoundingMode::HalfUp)
            .to_plain_string()
    }
}

fn currency_symbol(code: &str) -> &str {
    if code.eq_ignore_ascii_case("PEN") {
        "S/"
    } else {
        code
    }
}

fn title(doc: DocumentType) -> &'static str {
    match doc {
        DocumentType::Boleta => "BOLETA DE VENTA ELECTRÓNICA",
        DocumentType::Factura => "FACTURA ELECTRÓNICA",
    }
}

fn customer_doc_label(doc: CustomerDocType) -> &'static str {
    match doc {
        CustomerDocType::None => "Doc. identidad",
        CustomerDocType::Dni => "DNI",
        CustomerDocType::Ruc => "RUC",
        CustomerDocType::Ce => "Carné de extranjería",
        CustomerDocType::Passport => "Pasaporte",
    }
}

/// What a printed document shows, whether a receipt or a credit note.
struct Printed<'a> {
    company: &'a Company,
    title: &'static str,
    id: String,
    issue_date: NaiveDate,
    issue_time: NaiveTime,
    customer: &'a Customer,
    currency: &'a str,
    igv_rate: BigDecimal,
    /// The lines as printed (a credit note's with their credited quantities).
    lines: &'a [Line],
    /// The document a note modifies, and why.
    reference: Option<Reference<'a>>,
}

/// The document a credit note modifies and its reason, as printed.
struct Reference<'a> {
    /// "BOLETA DE VENTA ELECTRÓNICA B001-7".
    document: String,
    issue_date: NaiveDate,
    /// "07 Devolución por ítem".
    reason: String,
    description: &'a str,
}

fn lay_out(
    receipt: &Printed<'_>,
    amounts: &[LineAmounts],
    digest_value: &str,
    observations: &[String],
) -> Layout {
    let mut l = Layout::new();
    let sym = currency_symbol(receipt.currency);

    // The issuer.
    l.paragraph(Align::Center, Font::Bold, 9.0, &receipt.company.legal_name);
    l.paragraph(
        Align::Center,
        Font::Regular,
        BODY,
        &format!("RUC {}", receipt.company.ruc),
    );
    l.paragraph(Align::Center, Font::Regular, BODY, &receipt.company.address);
    l.rule();

    // The document.
    l.paragraph(Align::Center, Font::Bold, 9.0, receipt.title);
    l.paragraph(Align::Center, Font::Bold, 10.0, &receipt.id);
    l.rule();
    l.label_value(
        Font::Regular,
        BODY,
        "Fecha de emisión:",
        &receipt.issue_date.format("%d/%m/%Y").to_string(),
    );
    l.label_value(
        Font::Regular,
        BODY,
        "Hora de emisión:",
        &receipt.issue_time.format("%H:%M:%S").to_string(),
    );
    l.label_value(
        Font::Regular,
        BODY,
        &format!("{}:", customer_doc_label(receipt.customer.doc_type)),
        &receipt.customer.doc_number,
    );
    l.paragraph(
        Align::Left(MARGIN),
        Font::Regular,
        BODY,
        &format!("Cliente: {}", receipt.customer.name),
    );
    l.label_value(
        Font::Regular,
        BODY,
        "Moneda:",
        if receipt.currency.eq_ignore_ascii_case("PEN") {
            "SOLES"
        } else {
            receipt.currency
        },
    );
    l.rule();

    // A note's original document and reason.
    if let Some(r) = &receipt.reference {
        l.paragraph(
            Align::Left(MARGIN),
            Font::Bold,
            BODY,
            "Documento que modifica:",
        );
        l.paragraph(Align::Left(MARGIN), Font::Regular, BODY, &r.document);
        l.label_value(
            Font::Regular,
            BODY,
            "Fecha de emisión del documento:",
            &r.issue_date.format("%d/%m/%Y").to_string(),
        );
        l.paragraph(
            Align::Left(MARGIN),
            Font::Regular,
            BODY,
            &format!("Motivo: {}", r.reason),
        );
        l.paragraph(
            Align::Left(MARGIN),
            Font::Regular,
            BODY,
            &format!("Sustento: {}", r.description),
        );
        l.rule();
    }

    // The items: quantity | description | unit price | amount.
    let size = 7.0;
    let qty_right = MARGIN + Font::Bold.width("CANT.", size);
    let desc_left = qty_right + 4.0;
    let amount_right = right_edge();
    let price_right = amount_right - 44.0;
    let desc_width = price_right - 40.0 - desc_left;
    let y = l.next_line(size);
    l.put(y, Align::Right(qty_right), Font::Bold, size, "CANT.");
    l.put(y, Align::Left(desc_left), Font::Bold, size, "DESCRIPCIÓN");
    l.put(y, Align::Right(price_right), Font::Bold, size, "P. UNIT.");
    l.put(y, Align::Right(amount_right), Font::Bold, size, "IMPORTE");
    l.gap(2.0);
    for (line, a) in receipt.lines.iter().zip(amounts) {
        let description = printable_text(&line.description);
        let wrapped = wrap(&description, Font::Regular, size, desc_width);
        let y = l.next_line(size);
        let quantity = printed_quantity(&line.quantity);
        l.put(y, Align::Right(qty_right), Font::Regular, size, &quantity);
        l.put(
            y,
            Align::Right(price_right),
            Font::Regular,
            size,
            &money(&line.unit_price),
        );
        let charged = if a.is_free() {
            BigDecimal::from(0)
        } else {
            a.gross.clone()
        };
        l.put(
            y,
            Align::Right(amount_right),
            Font::Regular,
            size,
            &money(&charged),
        );
        for (i, text) in wrapped.iter().enumerate() {
            let y = if i == 0 { y } else { l.next_line(size) };
            l.put(y, Align::Left(desc_left), Font::Regular, size, text);
        }
        // What sets the line apart: its quantity with its unit when not whole units (NIU), its
        // affectation when not gravado, a free line, its discount, its ICBPER.
        let mut notes: Vec<(String, Option<BigDecimal>)> = Vec::new();
        if line.unit_code != UnitCode::NIU || !is_whole(&line.quantity) {
            notes.push((
                format!(
                    "{quantity} {} ({}) x {}",
                    line.unit_code,
                    line.unit_code.name(),
                    money(&line.unit_price)
                ),
                None,
            ));
        }
        if a.is_free() {
            notes.push((
                format!(
                    "GRATUITO, {} (valor referencial {})",
                    a.affectation.base().label(),
                    money(&a.gross)
                ),
                None,
            ));
        } else if a.affectation.base() != TaxBase::Gravado {
            notes.push((a.affectation.base().label().to_uppercase(), None));
        }
        if !a.discount.is_zero() {
            let what = match &line.discount {
                Some(Discount::Percent(p)) => format!("Descuento {}%", p.normalized()),
                _ => "Descuento".to_owned(),
            };
            notes.push((what, Some(-a.discount.clone())));
        }
        if let Some(rate) = &a.icbper_rate {
            notes.push((
                format!("ICBPER {} x {}", decimal(&line.quantity, 0, 0), money(rate)),
                Some(a.icbper.clone()),
            ));
        }
        for (text, amount) in notes {
            let y = l.next_line(SMALL);
            l.put(y, Align::Left(desc_left), Font::Regular, SMALL, &text);
            if let Some(v) = amount {
                l.put(
                    y,
                    Align::Right(amount_right),
                    Font::Regular,
                    SMALL,
                    &money(&v),
                );
            }
        }
    }
    l.rule();

    // Totals: each base the receipt uses, the discounts, the IGV, the ICBPER, the total and the
    // amount in words.
    let totals = DocumentTotals::of(amounts);
    let used = |s: TaxScheme| amounts.iter().any(|a| a.scheme == s);
    let mut rows: Vec<(String, &BigDecimal)> = Vec::new();
    if used(TaxScheme::Igv) || amounts.iter().all(|a| a.is_free()) {
        rows.push(("OP. GRAVADA".into(), &totals.gravada));
    }
    if used(TaxScheme::Exo) {
        rows.push(("OP. EXONERADA".into(), &totals.exonerada));
    }
    if used(TaxScheme::Ina) {
        rows.push(("OP. INAFECTA".into(), &totals.inafecta));
    }
    if used(TaxScheme::Gra) {
        rows.push(("OP. GRATUITA".into(), &totals.gratuita));
    }
    if !totals.discounts.is_zero() {
        rows.push(("DESCUENTOS".into(), &totals.discounts));
    }
    let rate = &receipt.igv_rate * BigDecimal::from(100);
    rows.push((format!("IGV {}%", rate.normalized()), &totals.igv));
    if amounts.iter().any(|a| a.icbper_rate.is_some()) {
        rows.push(("ICBPER".into(), &totals.icbper));
    }
    for (label, value) in rows {
        l.label_value(
            Font::Regular,
            BODY,
            &label,
            &format!("{sym} {}", money(value)),
        );
    }
    l.label_value(
        Font::Bold,
        8.5,
        "IMPORTE TOTAL",
        &format!("{sym} {}", money(&totals.total)),
    );
    l.paragraph(
        Align::Left(MARGIN),
        Font::Regular,
        BODY,
        &amount_in_words(&totals.total, receipt.currency),
    );
    l.rule();

    if !observations.is_empty() {
        l.paragraph(Align::Left(MARGIN), Font::Bold, SMALL, "Observaciones:");
        for o in observations {
            l.paragraph(Align::Left(MARGIN), Font::Regular, SMALL, o);
        }
        l.rule();
    }

    // Digest value, QR code, legend.
    l.paragraph(Align::Center, Font::Regular, SMALL, "Valor resumen:");
    l.paragraph(Align::Center, Font::Regular, SMALL, digest_value);
    l.gap(3.0);
    l.ops.push(Op::Qr {
        x: MARGIN + (content_width() - QR_PRINT_SIZE) / 2.0,
        y: l.y,
        size: QR_PRINT_SIZE,
    });
    l.y += QR_PRINT_SIZE + 3.0;
    l.paragraph(
        Align::Center,
        Font::Regular,
        SMALL,
        &format!(
            "Representación impresa de la {}",
            receipt.title.to_lowercase()
        ),
    );
    l
}

// ---- PDF ----------------------------------------------------------------------------------

fn render(layout: &Layout, qr: &QrMatrix, height: f32, id: &str) -> Vec<u8> {
    let width = PAGE_WIDTH_MM * MM;
    let catalog_id = Ref::new(1);
    let pages_id = Ref::new(2);
    let page_id = Ref::new(3);
    let regular_id = Ref::new(4);
    let bold_id = Ref::new(5);
    let image_id = Ref::new(6);
    let content_id = Ref::new(7);
    let info_id = Ref::new(8);

    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id).pages(pages_id);
    pdf.pages(pages_id).kids([page_id]).count(1);
    let mut page = pdf.page(page_id);
    page.media_box(Rect::new(0.0, 0.0, width, height));
    page.parent(pages_id);
    page.contents(content_id);
    let mut resources = page.resources();
    resources
        .fonts()
        .pair(FONT_REGULAR, regular_id)
        .pair(FONT_BOLD, bold_id);
    resources.x_objects().pair(QR_IMAGE, image_id);
    resources.finish();
    page.finish();

    for (id, base) in [(regular_id, "Helvetica"), (bold_id, "Helvetica-Bold")] {
        pdf.type1_font(id)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }

    let side = i32::try_from(qr.side).unwrap_or(i32::MAX);
    let mut image = pdf.image_xobject(image_id, &qr.samples);
    image.width(side);
    image.height(side);
    image.color_space().device_gray();
    image.bits_per_component(8);
    image.interpolate(false);
    image.finish();

    let mut content = Content::new();
    for op in &layout.ops {
        match op {
            Op::Text {
                x,
                y,
                font,
                size,
                text,
            } => {
                content
                    .begin_text()
                    .set_font(font.resource(), *size)
                    .next_line(*x, height - y)
                    .show(Str(&win_ansi(text)))
                    .end_text();
            }
            Op::Rule { y } => {
                content
                    .save_state()
                    .set_line_width(0.5)
                    .set_dash_pattern([2.0, 1.5], 0.0)
                    .move_to(MARGIN, height - y)
                    .line_to(right_edge(), height - y)
                    .stroke()
                    .restore_state();
            }
            Op::Qr { x, y, size } => {
                content
                    .save_state()
                    .transform([*size, 0.0, 0.0, *size, *x, height - y - size])
                    .x_object(QR_IMAGE)
                    .restore_state();
            }
        }
    }
    pdf.stream(content_id, &content.finish());

    pdf.document_info(info_id)
        .title(TextStr(id))
        .producer(TextStr("Faena"));
    pdf.finish()
}
