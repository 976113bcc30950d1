//! The credit note (nota de crédito electrónica, catálogo 01 code 07): what it credits of an
//! accepted boleta or factura, why (catálogo 09, [`CreditReason`]), and its UBL 2.1
//! `CreditNote` XML with the `cac:DiscrepancyResponse` and `cac:BillingReference` of the
//! original (`sunat-lifecycle.md` §3; SUNAT's sheet `NotaCredito2_0`).
//!
//! A credited line is a line of the original as it was sold ([`Line`]), the units credited
//! before and the units this note credits; its amounts are [`taxation::share_amounts`] at the
//! rates in force on the original's issue date, so notes that credit a line in parts add up to
//! the line to the cent. The document's taxes and totals are written by the same functions of
//! [`taxation`] as an invoice's. A `CreditNoteLine` carries no `cac:AllowanceCharge` (SUNAT's
//! credit note sheet has no line discounts): a discounted line is credited at its value after
//! the discount, which is its `cac:Price`.

use std::fmt;

use bigdecimal::{BigDecimal, RoundingMode, Zero};
use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

use crate::document::{
    is_text_of, Company, Customer, CustomerDocType, DocumentError, DocumentType, Line, Series,
};
use crate::taxation::{self, icbper_on, igv_rate_on, DocumentTotals, LineAmounts, TaxError};
use crate::ubl;
use crate::xml::{decimal, Xml};

/// The namespace of the `CreditNote` root.
pub const NS_CREDIT_NOTE: &str = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2";

/// The catálogo 01 code of a credit note.
pub const CREDIT_NOTE_TYPE: &str = "07";

/// Why a credit note is issued: catálogo 09 ("Códigos de tipo de nota de crédito electrónica",
/// SUNAT's sheet `Catalogos`; `sunat-lifecycle.md` §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CreditReason {
    /// 01 anulación de la operación.
    Cancellation,
    /// 02 anulación por error en el RUC.
    WrongRuc,
    /// 03 corrección por error en la descripción.
    DescriptionFix,
    /// 04 descuento global.
    GlobalDiscount,
    /// 05 descuento por ítem.
    ItemDiscount,
    /// 06 devolución total.
    TotalReturn,
    /// 07 devolución por ítem.
    ItemReturn,
    /// 08 bonificación.
    Bonus,
    /// 09 disminución en el valor.
    ValueDecrease,
    /// 10 otros conceptos.
    Other,
    /// 11 ajustes de operaciones de exportación.
    ExportAdjustment,
    /// 12 ajustes afectos al IVAP.
    IvapAdjustment,
    /// 13 corrección del monto neto pendiente de pago y/o fechas de vencimiento.
    InstallmentFix,
}

/// A text that is not a catálogo 09 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a credit note reason of catálogo 09: expected a code from 01 to 13 (01 anulación de la operación, 06 devolución total, 07 devolución por ítem, ...)")]
pub struct UnknownReason(pub String);

impl CreditReason {
    /// Every reason, in catálogo order.
    pub const ALL: [Self; 13] = [
        Self::Cancellation,
        Self::WrongRuc,
        Self::DescriptionFix,
        Self::GlobalDiscount,
        Self::ItemDiscount,
        Self::TotalReturn,
        Self::ItemReturn,
        Self::Bonus,
        Self::ValueDecrease,
        Self::Other,
        Self::ExportAdjustment,
        Self::IvapAdjustment,
        Self::InstallmentFix,
    ];

    /// The catálogo 09 code, `cac:DiscrepancyResponse/cbc:ResponseCode`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Cancellation => "01",
            Self::WrongRuc => "02",
            Self::DescriptionFix => "03",
            Self::GlobalDiscount => "04",
            Self::ItemDiscount => "05",
            Self::TotalReturn => "06",
            Self::ItemReturn => "07",
            Self::Bonus => "08",
            Self::ValueDecrease => "09",
            Self::Other => "10",
            Self::ExportAdjustment => "11",
            Self::IvapAdjustment => "12",
            Self::InstallmentFix => "13",
        }
    }

    /// The catálogo's name, in Spanish, as printed.
    pub fn label(self) -> &'static str {
        match self {
            Self::Cancellation => "Anulación de la operación",
            Self::WrongRuc => "Anulación por error en el RUC",
            Self::DescriptionFix => "Corrección por error en la descripción",
            Self::GlobalDiscount => "Descuento global",
            Self::ItemDiscount => "Descuento por ítem",
            Self::TotalReturn => "Devolución total",
            Self::ItemReturn => "Devolución por ítem",
            Self::Bonus => "Bonificación",
            Self::ValueDecrease => "Disminución en el valor",
            Self::Other => "Otros conceptos",
            Self::ExportAdjustment => "Ajustes de operaciones de exportación",
            Self::IvapAdjustment => "Ajustes afectos al IVAP",
            Self::InstallmentFix => "Corrección del monto neto pendiente de pago",
        }
    }

    /// Parses a code (`"07"`, or `"7"`).
    pub fn parse(s: &str) -> Result<Self, UnknownReason> {
        let t = s.trim();
        let padded = if t.len() == 1 {
            format!("0{t}")
        } else {
            t.to_owned()
        };
        Self::ALL
            .into_iter()
            .find(|r| r.code() == padded)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

impl fmt::Display for CreditReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl TryFrom<String> for CreditReason {
    type Error = UnknownReason;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<CreditReason> for String {
    fn from(r: CreditReason) -> Self {
        r.code().to_owned()
    }
}

/// The longest reason description SUNAT takes (2135: 1 to 500 characters, no whitespace but
/// spaces).
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// Whether `s` is a `cac:DiscrepancyResponse/cbc:Description` SUNAT takes: 1 to 500 characters,
/// no line break, tab or other whitespace but the space (2136 when empty, 2135 otherwise).
pub fn is_note_description(s: &str) -> bool {
    is_text_of(s, 1, MAX_DESCRIPTION_CHARS)
}

/// The document a credit note modifies: a boleta or factura SUNAT accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalDocument {
    pub doc_type: DocumentType,
    pub series: Series,
    pub correlative: i64,
    /// Its issue date: the note's lines are taxed at its rates, and the note cannot be older
    /// (2885).
    pub issue_date: NaiveDate,
}

impl OriginalDocument {
    /// `SERIE-CORRELATIVO` (`B001-7`).
    pub fn id(&self) -> String {
        format!("{}-{}", self.series, self.correlative)
    }
}

/// A line of the original and how much of it the note credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditLine {
    /// The line as sold: its quantity is the quantity sold.
    pub line: Line,
    /// Units of it credited by earlier notes.
    pub credited_before: BigDecimal,
    /// Units this note credits: above 0, at most what is left.
    pub quantity: BigDecimal,
}

impl CreditLine {
    /// What this note credits of the line: [`taxation::share_amounts`] at the IGV rate and
    /// ICBPER amount in force on the original's issue date (`original_issue_date`).
    pub fn amounts(&self, original_issue_date: NaiveDate) -> Result<LineAmounts, TaxError> {
        let icbper = icbper_on(original_issue_date);
        if self.line.icbper && icbper.is_none() {
            return Err(TaxError::IcbperNotInForce(original_issue_date));
        }
        taxation::check_quantity(&self.quantity, true)?;
        taxation::share_amounts(
            self.line.input(),
            self.line.free,
            &igv_rate_on(original_issue_date),
            icbper.as_ref(),
            &self.line.quantity,
            &self.credited_before,
            &self.quantity,
        )
    }
}

/// A credit note to send: everything its XML, PDF and QR need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    pub company: Company,
    /// F... for a note of a factura, B... for one of a boleta (G-NC §4; 2116, 2399).
    pub series: Series,
    /// 1 to 99999999, from the series' own counter.
    pub correlative: i64,
    pub issue_date: NaiveDate,
    pub issue_time: NaiveTime,
    /// The original's buyer.
    pub customer: Customer,
    /// The original's currency (3209, 4368).
    pub currency: String,
    pub reason: CreditReason,
    /// Why, in the shop's words (1 to 500 characters).
    pub description: String,
    pub original: OriginalDocument,
    pub lines: Vec<CreditLine>,
}

impl CreditNote {
    /// Checks what SUNAT checks before it reads the amounts: the series' letter against the
    /// original's type (2116, 2399), the original's series, the dates (2885), the description
    /// (2135, 2136), the buyer's name (2022), the correlative, and each line's quantity.
    pub fn validate(&self) -> Result<(), DocumentError> {
        let letter = self.original.doc_type.series_letter();
        if !self.series.as_str().starts_with(letter) {
            return Err(DocumentError::InvalidNote(format!(
                "the note's series {} must start with {letter} to modify a {} ({}): SUNAT \
                 rejects it with {}",
                self.series,
                self.original.doc_type.name(),
                self.original.id(),
                if letter == 'F' { "2116" } else { "2399" },
            )));
        }
        Series::parse_for(self.original.series.as_str(), self.original.doc_type)?;
        if self.issue_date < self.original.issue_date {
            return Err(DocumentError::InvalidNote(format!(
                "the note's issue date {} is before the original's {} (SUNAT 2885)",
                self.issue_date, self.original.issue_date
            )));
        }
        if !is_note_description(&self.description) {
            return Err(DocumentError::InvalidNote(format!(
                "the reason's description must have 1 to {MAX_DESCRIPTION_CHARS} characters \
                 without line breaks or tabs (SUNAT 2135/2136), not {:?}",
                self.description
            )));
        }
        if !crate::document::is_registration_name(&self.customer.name) {
            return Err(DocumentError::InvalidCustomerName(
                self.customer.name.clone(),
            ));
        }
        if self.original.doc_type == DocumentType::Factura
            && self.customer.doc_type != CustomerDocType::Ruc
        {
            return Err(DocumentError::InvalidCustomer(
                "a note of a factura needs the factura's buyer, with a RUC".into(),
            ));
        }
        if !(1..=99_999_999).contains(&self.correlative) {
            return Err(DocumentError::InvalidNote(format!(
                "correlative {} out of 1..=99999999",
                self.correlative
            )));
        }
        if self.lines.is_empty() {
            return Err(DocumentError::NoLines);
        }
        self.amounts()?;
        Ok(())
    }

    /// `SERIE-CORRELATIVO`, the XML's `cbc:ID` (e.g. `BC01-1`).
    pub fn id(&self) -> String {
        format!("{}-{}", self.series, self.correlative)
    }

    /// `RUC-07-SERIE-CORRELATIVO`, the file name without extension.
    pub fn file_stem(&self) -> String {
        format!("{}-{CREDIT_NOTE_TYPE}-{}", self.company.ruc, self.id())
    }

    /// The IGV rate the original was taxed at.
    pub fn igv_rate(&self) -> BigDecimal {
        igv_rate_on(self.original.issue_date)
    }

    /// Every credited line's amounts ([`CreditLine::amounts`] at the original's rates).
    pub fn amounts(&self) -> Result<Vec<LineAmounts>, DocumentError> {
        self.lines
            .iter()
            .enumerate()
            .map(|(index, c)| {
                c.amounts(self.original.issue_date)
                    .map_err(|source| DocumentError::Tax { index, source })
            })
            .collect()
    }

    /// The note's totals: sums of its lines' rounded amounts.
    pub fn totals(&self) -> Result<DocumentTotals, DocumentError> {
        Ok(DocumentTotals::of(&self.amounts()?))
    }

    /// The credited lines as printed: each original line with the credited quantity.
    pub fn printed_lines(&self) -> Vec<Line> {
        self.lines
            .iter()
            .map(|c| Line {
                quantity: c.quantity.clone(),
                ..c.line.clone()
            })
            .collect()
    }

    /// The QR content, as a receipt's (`sunat.md`) with type 07:
    /// `RUC|07|SERIE|NUMERO|IGV|TOTAL|YYYY-MM-DD|TIPO_DOC_ADQ|NUM_DOC_ADQ|DIGEST_VALUE|`.
    pub fn qr_content(&self, digest_value: &str) -> Result<String, DocumentError> {
        let t = self.totals()?;
        Ok(format!(
            "{}|{CREDIT_NOTE_TYPE}|{}|{}|{}|{}|{}|{}|{}|{}|",
            self.company.ruc,
            self.series,
            self.correlative,
            t.igv,
            t.total,
            self.issue_date.format("%Y-%m-%d"),
            self.customer.doc_type.code(),
            self.customer.doc_number,
            digest_value
        ))
    }
}

/// Builds the unsigned `CreditNote` XML (UTF-8, no BOM) after checking the note, in the element
/// order of `CreditNoteType` (UBL 2.1).
pub fn credit_note_xml(note: &CreditNote) -> Result<String, DocumentError> {
    note.validate()?;
    let mut w = Xml::default();
    let cur = note.currency.as_str();
    let amounts = note.amounts()?;
    let totals = DocumentTotals::of(&amounts);

    ubl::write_opening(
        &mut w,
        "CreditNote",
        NS_CREDIT_NOTE,
        &note.id(),
        note.issue_date,
        note.issue_time,
    );
    ubl::write_legends(&mut w, cur, &totals.total, &amounts);
    w.leaf("cbc:DocumentCurrencyCode", &[], cur);

    // What it modifies and why (2128, 2172, 2136, 2135), then the reference (2524, 2116, 2399).
    let original = note.original.id();
    w.open("cac:DiscrepancyResponse");
    w.leaf("cbc:ReferenceID", &[], &original);
    w.leaf("cbc:ResponseCode", &[], note.reason.code());
    w.leaf("cbc:Description", &[], &note.description);
    w.close("cac:DiscrepancyResponse");
    w.open("cac:BillingReference");
    w.open("cac:InvoiceDocumentReference");
    w.leaf("cbc:ID", &[], &original);
    w.leaf("cbc:DocumentTypeCode", &[], note.original.doc_type.code());
    w.close("cac:InvoiceDocumentReference");
    w.close("cac:BillingReference");

    ubl::signature_reference(&mut w, &note.company);
    ubl::write_supplier(&mut w, &note.company);
    ubl::write_customer(&mut w, &note.customer);
    taxation::write_document_taxes(&mut w, cur, &totals, &amounts);

    for (i, (c, a)) in note.lines.iter().zip(&amounts).enumerate() {
        w.open("cac:CreditNoteLine");
        w.leaf("cbc:ID", &[], &(i + 1).to_string());
        w.leaf(
            "cbc:CreditedQuantity",
            &[("unitCode", c.line.unit_code.as_str())],
            &decimal(&c.quantity, 0, taxation::QUANTITY_DECIMALS),
        );
        taxation::write_line_value(&mut w, cur, a);
        taxation::write_line_tax_total(&mut w, cur, a);
        ubl::write_item(&mut w, &c.line);
        // The value per unit after the line's discount: a note has no line AllowanceCharge.
        let price = if a.is_free() {
            BigDecimal::zero()
        } else {
            (&a.value / &c.quantity).with_scale_round(10, RoundingMode::HalfUp)
        };
        w.open("cac:Price");
        w.leaf(
            "cbc:PriceAmount",
            &[("currencyID", cur)],
            &decimal(&price, 2, 10),
        );
        w.close("cac:Price");
        w.close("cac:CreditNoteLine");
    }
    w.raw("</CreditNote>\n");
    Ok(w.into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_parse_from_their_codes() {
        for r in CreditReason::ALL {
            assert_eq!(CreditReason::parse(r.code()), Ok(r));
        }
        assert_eq!(CreditReason::parse("7"), Ok(CreditReason::ItemReturn));
        assert_eq!(CreditReason::parse(" 06 "), Ok(CreditReason::TotalReturn));
        for bad in ["", "00", "14", "99", "devolución", "007"] {
            assert!(CreditReason::parse(bad).is_err(), "{bad:?}");
        }
        let r: CreditReason = serde_json::from_str("\"01\"").unwrap();
        assert_eq!(r, CreditReason::Cancellation);
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"01\"");
    }

    #[test]
    fn descriptions_follow_rule_2135() {
        assert!(is_note_description("Devolución de 2 unidades"));
        assert!(!is_note_description(""));
        assert!(!is_note_description("dos\nlíneas"));
        assert!(!is_note_description(&"x".repeat(501)));
        assert!(is_note_description(&"x".repeat(500)));
    }
}
