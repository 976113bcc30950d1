//! The printable receipt: the PDF renders with poppler and carries its text, and the QR code
//! (alone as PNG, and embedded in the PDF) decodes to the receipt's QR content.
//!
//! Needs `pdftoppm` and `pdftotext` (Debian package poppler-utils, see scripts/test-deps.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

use bigdecimal::BigDecimal;
use chrono::{NaiveDate, NaiveTime};
use faena_sunat::printable::{qr_png, receipt_pdf, write_files, PrintError, PAGE_WIDTH_MM};
use faena_sunat::{Company, Customer, CustomerDocType, DocumentType, Line, Receipt, Ruc, Series};

const DIGEST: &str = "qRz8vYb3hW1t+ZkKj0pXbA2cD4E=";

fn price(s: &str) -> BigDecimal {
    s.parse().expect("test price")
}

fn line(code: &str, description: &str, quantity: i64, unit_price: &str) -> Line {
    Line::new(code, description, quantity, price(unit_price))
}

fn company() -> Company {
    Company {
        ruc: Ruc::parse("20100066603").expect("test RUC"),
        legal_name: "BODEGA DOÑA ÁNGELA S.A.C.".into(),
        address: "Av. José Gálvez 1234, Miraflores, Lima".into(),
        establishment_code: "0000".into(),
    }
}

/// A boleta whose total is S/ 118.00 (100.00 + 18.00 IGV).
fn boleta() -> Receipt {
    Receipt {
        company: company(),
        doc_type: DocumentType::Boleta,
        series: Series::parse("B001").expect("test series"),
        correlative: 123,
        issue_date: NaiveDate::from_ymd_opt(2025, 3, 14).expect("test date"),
        issue_time: NaiveTime::from_hms_opt(10, 30, 5).expect("test time"),
        customer: Customer::new(CustomerDocType::Dni, "12345678", "María Ñañez Quispe")
            .expect("test customer"),
        currency: "PEN".into(),
        lines: vec![
            line("A-001", "Arroz Costeño extra 5 kg", 2, "25.00"),
            line("A-002", "Aceite vegetal 1 L", 1, "10.50"),
            line(
                "A-003",
                "Galletas de soda paquete familiar con una descripción larga que debe partirse",
                3,
                "1.50",
            ),
            line("A-004", "Leche evaporada six pack", 1, "53.00"),
        ],
    }
}

fn factura() -> Receipt {
    Receipt {
        doc_type: DocumentType::Factura,
        series: Series::parse("F001").expect("test series"),
        correlative: 7,
        customer: Customer::new(CustomerDocType::Ruc, "20100066603", "CLIENTE EMPRESA S.A.")
            .expect("test customer"),
        ..boleta()
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e}; install poppler-utils (scripts/test-deps.sh)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Renders the PDF's only page with pdftoppm and returns the PNG's path.
fn render(pdf: &Path, dpi: u32) -> PathBuf {
    let prefix = pdf.with_extension(format!("page-{dpi}"));
    run(Command::new("pdftoppm")
        .args(["-png", "-singlefile", "-r", &dpi.to_string()])
        .arg(pdf)
        .arg(&prefix));
    let png = prefix.with_extension(format!("page-{dpi}.png"));
    assert!(png.is_file(), "pdftoppm wrote no {}", png.display());
    png
}

fn pdf_text(pdf: &Path) -> String {
    let out = run(Command::new("pdftotext").arg(pdf).arg("-"));
    String::from_utf8(out.stdout).expect("pdftotext writes UTF-8")
}

fn decode_qr(png: &Path) -> Vec<String> {
    let img = image::open(png)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", png.display()))
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    prepared
        .detect_grids()
        .iter()
        .map(|g| g.decode().expect("a detected QR grid decodes").1)
        .collect()
}

#[test]
fn boleta_pdf_renders_with_its_text_and_a_readable_qr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let receipt = boleta();
    let observations = vec!["4287 - El precio unitario de la operación no coincide".to_owned()];
    let files = write_files(dir.path(), &receipt, DIGEST, &observations).expect("printed");

    // The page renders, on an 80 mm wide ticket, with ink on it.
    let page = render(&files.pdf_path, 100);
    let img = image::open(&page).expect("page PNG loads").to_luma8();
    let expected_width = (PAGE_WIDTH_MM / 25.4 * 100.0).round() as u32;
    assert!(
        img.width().abs_diff(expected_width) <= 1,
        "page is {} px wide at 100 dpi, expected {expected_width}",
        img.width()
    );
    assert!(img.height() > img.width(), "a ticket is taller than wide");
    let dark = img.pixels().filter(|p| p.0[0] < 128).count();
    let share = dark as f64 / f64::from(img.width() * img.height());
    assert!(
        (0.02..0.5).contains(&share),
        "{:.1}% of the page is dark: expected text and a QR code on white",
        share * 100.0
    );

    // A copy for people to look at (the 200 dpi render, below).
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/receipt-sample.png");
    std::fs::create_dir_all(sample.parent().expect("has a parent")).expect("target dir");

    // The text is real, extractable text, accents included.
    let text = pdf_text(&files.pdf_path);
    for expected in [
        "BOLETA DE VENTA ELECTRÓNICA",
        "BODEGA DOÑA ÁNGELA S.A.C.",
        "RUC 20100066603",
        "Av. José Gálvez 1234, Miraflores, Lima",
        "B001-123",
        "14/03/2025",
        "12345678",
        "María Ñañez Quispe",
        "Arroz Costeño extra 5 kg",
        "50.00",
        "OP. GRAVADA",
        "S/ 100.00",
        "IGV 18%",
        "S/ 18.00",
        "IMPORTE TOTAL",
        "S/ 118.00",
        "4287 - El precio unitario",
        "Valor resumen",
        DIGEST,
        "Representación impresa de la boleta de venta electrónica",
    ] {
        assert!(
            text.contains(expected),
            "PDF text lacks {expected:?}; pdftotext gave:\n{text}"
        );
    }

    // The QR code embedded in the page decodes to the receipt's QR content.
    let sharp = render(&files.pdf_path, 200);
    assert_eq!(
        decode_qr(&sharp),
        vec![receipt.qr_content(DIGEST).expect("valid receipt")]
    );
    std::fs::copy(&sharp, &sample).expect("copy the sample page");
}

#[test]
fn qr_png_decodes_to_the_receipt_qr_content() {
    let receipt = boleta();
    let content = receipt.qr_content(DIGEST).expect("valid receipt");
    assert_eq!(
        content,
        format!("20100066603|03|B001|123|18.00|118.00|2025-03-14|1|12345678|{DIGEST}|")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("qr.png");
    std::fs::write(&path, qr_png(&content).expect("QR PNG")).expect("write PNG");
    assert_eq!(decode_qr(&path), vec![content]);
}

#[test]
fn factura_prints_its_own_title_and_buyer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let receipt = factura();
    let files = write_files(dir.path(), &receipt, DIGEST, &[]).expect("printed");
    let text = pdf_text(&files.pdf_path);
    for expected in [
        "FACTURA ELECTRÓNICA",
        "F001-7",
        "CLIENTE EMPRESA S.A.",
        "Representación impresa de la factura electrónica",
        "S/ 118.00",
    ] {
        assert!(
            text.contains(expected),
            "PDF text lacks {expected:?}:\n{text}"
        );
    }
    assert!(!text.contains("BOLETA"), "a factura is no boleta:\n{text}");
    assert!(
        !text.contains("Observaciones"),
        "no observations given:\n{text}"
    );
    let png = dir.path().join(format!("{}.png", receipt.file_stem()));
    assert_eq!(
        decode_qr(&png),
        vec![receipt.qr_content(DIGEST).expect("valid receipt")]
    );
}

#[test]
fn write_files_replaces_whole_files_named_after_the_receipt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("nested/printed");
    let receipt = boleta();
    let first = write_files(&out, &receipt, DIGEST, &[]).expect("printed");
    assert_eq!(first.pdf_path, out.join("20100066603-03-B001-123.pdf"));
    assert_eq!(first.qr_path, out.join("20100066603-03-B001-123.png"));
    assert!(first.pdf_bytes.starts_with(b"%PDF-"));

    let second = write_files(&out, &receipt, "OtherDigestValue0000000000=", &[]).expect("again");
    assert_eq!(
        std::fs::read(&second.pdf_path).expect("pdf"),
        second.pdf_bytes
    );
    assert_eq!(
        std::fs::read(&second.qr_path).expect("png"),
        second.qr_png_bytes
    );
    assert_ne!(first.pdf_bytes, second.pdf_bytes);

    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["20100066603-03-B001-123.pdf", "20100066603-03-B001-123.png"],
        "no temporary files are left behind"
    );
}

#[test]
fn printing_refuses_what_it_cannot_print() {
    let mut invalid = boleta();
    invalid.lines.clear();
    let err = receipt_pdf(&invalid, DIGEST, &[]).expect_err("no lines");
    assert!(matches!(err, PrintError::InvalidReceipt { .. }), "{err:?}");
    assert!(err.to_string().contains("B001-123"), "{err}");

    let err = qr_png(&"9".repeat(8000)).expect_err("too long for a QR code");
    assert!(matches!(err, PrintError::Qr { len: 8000, .. }), "{err:?}");

    let mut long = boleta();
    long.lines = (0..3000)
        .map(|i| line(&format!("X{i}"), "Caramelo", 1, "0.10"))
        .collect();
    let err = receipt_pdf(&long, DIGEST, &[]).expect_err("too long for a page");
    assert!(matches!(err, PrintError::TooLong { .. }), "{err:?}");
}

#[test]
fn characters_outside_win_ansi_do_not_break_the_pdf() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut receipt = boleta();
    receipt.lines[0].description = "Café ☕ orgánico 250 g\ttostado".into();
    let files = write_files(dir.path(), &receipt, DIGEST, &[]).expect("printed");
    let text = pdf_text(&files.pdf_path);
    assert!(text.contains("Café ? orgánico 250 g tostado"), "{text}");
}
