//! SUNAT's two UBL 2.0 summaries, sent with `sendSummary` and answered with a ticket: the
//! Resumen Diario (RC, `SummaryDocuments`: boletas added, or voided with status 3, and credit
//! notes of boletas added with their `cac:BillingReference` to the boleta) and the
//! Comunicación de Baja (RA, `VoidedDocuments`: facturas voided inside their window). Both are
//! signed like a receipt (the same `Signer`, in `prepare.rs`) and zipped as `RUC-RC-YYYYMMDD-N.zip`.

use std::collections::HashSet;
use std::fmt;

use bigdecimal::BigDecimal;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::document::{Company, Customer, DocumentType, Series, Totals};
use crate::taxation::{self, TaxScheme};
use crate::ubl::{self, NS_CAC, NS_CBC, NS_DS, NS_EXT};
use crate::xml::Xml;

pub const NS_SUMMARY: &str = "urn:sunat:names:specification:ubl:peru:schema:xsd:SummaryDocuments-1";
pub const NS_VOIDED: &str = "urn:sunat:names:specification:ubl:peru:schema:xsd:VoidedDocuments-1";
pub const NS_SAC: &str =
    "urn:sunat:names:specification:ubl:peru:schema:xsd:SunatAggregateComponents-1";

/// Most lines Faena puts in one summary (the cap commonly cited from SUNAT's programmer manual;
/// `cbc:LineID` itself allows 5 digits).
pub const MAX_LINES: usize = 500;

/// What is wrong with a summary, with the value and what is expected. `code()` is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    #[error(
        "invalid summary id {0:?}: expected RC-YYYYMMDD-N or RA-YYYYMMDD-N with N from 1 to 99999"
    )]
    InvalidId(String),
    #[error("a summary needs at least one line")]
    NoLines,
    #[error("a summary holds at most {MAX_LINES} lines, this one has {0}")]
    TooManyLines(usize),
    #[error(
        "the reference date {reference} is after the summary's issue date {issue} (SUNAT 2671)"
    )]
    ReferenceAfterIssue {
        reference: NaiveDate,
        issue: NaiveDate,
    },
    #[error("line {index}: a {kind} cannot carry a {doc} ({why})")]
    WrongDocumentType {
        index: usize,
        kind: &'static str,
        doc: &'static str,
        why: &'static str,
    },
    #[error("line {index}: {id} appears twice (SUNAT 2348/3094)")]
    Duplicate { index: usize, id: String },
    #[error("line {index}: correlative {correlative} out of 1..=99999999")]
    Correlative { index: usize, correlative: i64 },
    #[error(
        "line {index}: the void reason must have 3 to 100 characters (SUNAT 2315/4203), got {len}"
    )]
    Reason { index: usize, len: usize },
    #[error("line {index}: the amounts must be >= 0 and total = subtotal + IGV")]
    Amounts { index: usize },
}

impl SummaryError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidId(_) => "summary.invalid_id",
            Self::NoLines => "summary.no_lines",
            Self::TooManyLines(_) => "summary.too_many_lines",
            Self::ReferenceAfterIssue { .. } => "summary.reference_after_issue",
            Self::WrongDocumentType { .. } => "summary.wrong_document_type",
            Self::Duplicate { .. } => "summary.duplicate",
            Self::Correlative { .. } => "summary.correlative",
            Self::Reason { .. } => "summary.reason",
            Self::Amounts { .. } => "summary.amounts",
        }
    }
}

/// RC (Resumen Diario) or RA (Comunicación de Baja).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SummaryKind {
    /// Resumen Diario, `SummaryDocuments`.
    #[serde(rename = "RC")]
    Daily,
    /// Comunicación de Baja, `VoidedDocuments`.
    #[serde(rename = "RA")]
    Voided,
}

impl SummaryKind {
    /// "RC" or "RA", the file type and the prefix of the ID.
    pub fn code(self) -> &'static str {
        match self {
            Self::Daily => "RC",
            Self::Voided => "RA",
        }
    }

    pub fn parse(s: &str) -> Result<Self, SummaryError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "RC" => Ok(Self::Daily),
            "RA" => Ok(Self::Voided),
            _ => Err(SummaryError::InvalidId(s.to_owned())),
        }
    }
}

/// `RC-YYYYMMDD-N` / `RA-YYYYMMDD-N`: the kind, the summary's issue date (the date SUNAT checks
/// against the file name, 2346) and the day's correlative N (1-99999, never reused, 2223/2324).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SummaryId {
    pub kind: SummaryKind,
    pub issue_date: NaiveDate,
    pub number: u32,
}

impl SummaryId {
    pub fn new(
        kind: SummaryKind,
        issue_date: NaiveDate,
        number: u32,
    ) -> Result<Self, SummaryError> {
        let id = Self {
            kind,
            issue_date,
            number,
        };
        if !(1..=99_999).contains(&number) {
            return Err(SummaryError::InvalidId(id.to_string()));
        }
        Ok(id)
    }

    pub fn parse(s: &str) -> Result<Self, SummaryError> {
        let bad = || SummaryError::InvalidId(s.to_owned());
        let mut parts = s.trim().split('-');
        let (Some(kind), Some(date), Some(n), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let kind = SummaryKind::parse(kind).map_err(|_| bad())?;
        if date.len() != 8 || n.is_empty() || n.len() > 5 || n.starts_with('0') {
            return Err(bad());
        }
        let issue_date = NaiveDate::parse_from_str(date, "%Y%m%d").map_err(|_| bad())?;
        let number = n.parse::<u32>().map_err(|_| bad())?;
        Self::new(kind, issue_date, number).map_err(|_| bad())
    }
}

impl fmt::Display for SummaryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.kind.code(),
            self.issue_date.format("%Y%m%d"),
            self.number
        )
    }
}

/// Catálogo 19: what an RC line does with its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineStatus {
    /// 1: inform the document (a boleta that never reached SUNAT, e.g. after 1079).
    Add,
    /// 2: modify a document already informed.
    Modify,
    /// 3: void a document already informed.
    Void,
}

impl LineStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::Add => "1",
            Self::Modify => "2",
            Self::Void => "3",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "1" => Some(Self::Add),
            "2" => Some(Self::Modify),
            "3" => Some(Self::Void),
            _ => None,
        }
    }
}

/// The boleta a credit note of a Resumen Diario modifies (`cac:BillingReference/
/// cac:InvoiceDocumentReference`, V/RD 11: required on a 07 line, refused on a 03 one, 2582).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModifiedDocument {
    /// Always a boleta here: a note of a factura goes by `sendBill` (2513 otherwise).
    pub doc_type: DocumentType,
    pub series: Series,
    pub correlative: i64,
}

impl ModifiedDocument {
    /// `SERIE-CORRELATIVO`.
    pub fn id(&self) -> String {
        format!("{}-{}", self.series, self.correlative)
    }
}

/// One document in a Resumen Diario: a boleta (03), or a credit note (07) of a boleta when
/// `modifies` names that boleta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryLine {
    /// The boleta family the line belongs to: `Boleta` for a boleta and for a note of one (its
    /// series starts with B).
    pub doc_type: DocumentType,
    pub series: Series,
    pub correlative: i64,
    pub customer: Customer,
    pub status: LineStatus,
    /// ISO 4217, "PEN".
    pub currency: String,
    /// The document's own totals (gravado, IGV, total), as its Invoice or CreditNote XML states
    /// them.
    pub totals: Totals,
    /// For a credit note: the boleta it modifies. `None` for a boleta.
    #[serde(default)]
    pub modifies: Option<ModifiedDocument>,
}

impl SummaryLine {
    /// `cbc:DocumentTypeCode`: 07 for a credit note, else the document's own type (03).
    pub fn type_code(&self) -> &'static str {
        match self.modifies {
            Some(_) => crate::credit_note::CREDIT_NOTE_TYPE,
            None => self.doc_type.code(),
        }
    }

    /// `SERIE-CORRELATIVO`.
    pub fn document_id(&self) -> String {
        format!("{}-{}", self.series, self.correlative)
    }
}

/// A Resumen Diario: the boletas of one issue date (`reference_date`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailySummary {
    pub company: Company,
    #[serde(with = "id_serde")]
    pub id: SummaryId,
    /// The issue date of every document it carries (`cbc:ReferenceDate`).
    pub reference_date: NaiveDate,
    pub lines: Vec<SummaryLine>,
}

/// One factura in a Comunicación de Baja.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoidedLine {
    pub doc_type: DocumentType,
    pub series: Series,
    pub correlative: i64,
    /// Why it is voided (free text, 3 to 100 characters; SUNAT has no catalog for it).
    pub reason: String,
}

/// A Comunicación de Baja: facturas of one issue date (`reference_date`, SUNAT 2375).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoidedDocuments {
    pub company: Company,
    #[serde(with = "id_serde")]
    pub id: SummaryId,
    pub reference_date: NaiveDate,
    pub lines: Vec<VoidedLine>,
}

mod id_serde {
    use super::SummaryId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &SummaryId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SummaryId, D::Error> {
        let s = String::deserialize(d)?;
        SummaryId::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn check_header(
    id: &SummaryId,
    want: SummaryKind,
    reference_date: NaiveDate,
    lines: usize,
) -> Result<(), SummaryError> {
    if id.kind != want {
        return Err(SummaryError::InvalidId(id.to_string()));
    }
    if lines == 0 {
        return Err(SummaryError::NoLines);
    }
    if lines > MAX_LINES {
        return Err(SummaryError::TooManyLines(lines));
    }
    if reference_date > id.issue_date {
        return Err(SummaryError::ReferenceAfterIssue {
            reference: reference_date,
            issue: id.issue_date,
        });
    }
    Ok(())
}

fn check_correlative(index: usize, correlative: i64) -> Result<(), SummaryError> {
    if (1..=99_999_999).contains(&correlative) {
        Ok(())
    } else {
        Err(SummaryError::Correlative { index, correlative })
    }
}

impl DailySummary {
    /// Only boletas (03) and credit notes (07) of boletas, each once, amounts consistent, one
    /// issue date.
    pub fn validate(&self) -> Result<(), SummaryError> {
        check_header(
            &self.id,
            SummaryKind::Daily,
            self.reference_date,
            self.lines.len(),
        )?;
        let mut seen = HashSet::new();
        let zero = BigDecimal::from(0);
        for (index, l) in self.lines.iter().enumerate() {
            if l.doc_type != DocumentType::Boleta {
                return Err(SummaryError::WrongDocumentType {
                    index,
                    kind: "Resumen Diario",
                    doc: l.doc_type.name(),
                    why: "facturas are voided with a Comunicación de Baja (SUNAT 2241)",
                });
            }
            if let Some(m) = &l.modifies {
                if m.doc_type != DocumentType::Boleta {
                    return Err(SummaryError::WrongDocumentType {
                        index,
                        kind: "Resumen Diario",
                        doc: "credit note of a factura",
                        why: "a Resumen Diario carries notes of boletas only (SUNAT 2513)",
                    });
                }
                check_correlative(index, m.correlative)?;
            }
            check_correlative(index, l.correlative)?;
            if !seen.insert((l.type_code(), l.document_id())) {
                return Err(SummaryError::Duplicate {
                    index,
                    id: l.document_id(),
                });
            }
            let t = &l.totals;
            if t.subtotal < zero || t.igv < zero || t.total != &t.subtotal + &t.taxes {
                return Err(SummaryError::Amounts { index });
            }
        }
        Ok(())
    }

    /// `RUC-RC-YYYYMMDD-N`.
    pub fn file_stem(&self) -> String {
        format!("{}-{}", self.company.ruc, self.id)
    }
}

impl VoidedDocuments {
    /// Only facturas (01), each once, with a reason of 3 to 100 characters.
    pub fn validate(&self) -> Result<(), SummaryError> {
        check_header(
            &self.id,
            SummaryKind::Voided,
            self.reference_date,
            self.lines.len(),
        )?;
        let mut seen = HashSet::new();
        for (index, l) in self.lines.iter().enumerate() {
            if l.doc_type != DocumentType::Factura {
                return Err(SummaryError::WrongDocumentType {
                    index,
                    kind: "Comunicación de Baja",
                    doc: l.doc_type.name(),
                    why: "boletas are voided with status 3 in a Resumen Diario (SUNAT 2308)",
                });
            }
            check_correlative(index, l.correlative)?;
            let id = format!("{}-{}", l.series, l.correlative);
            if !seen.insert(id.clone()) {
                return Err(SummaryError::Duplicate { index, id });
            }
            let len = l.reason.trim().chars().count();
            if !(3..=100).contains(&len) || l.reason.chars().any(char::is_control) {
                return Err(SummaryError::Reason { index, len });
            }
        }
        Ok(())
    }

    /// `RUC-RA-YYYYMMDD-N`.
    pub fn file_stem(&self) -> String {
        format!("{}-{}", self.company.ruc, self.id)
    }
}

/// The root, the header and the supplier, common to both summaries.
fn header(
    w: &mut Xml,
    root: &str,
    ns: &str,
    customization: &str,
    id: &SummaryId,
    reference_date: NaiveDate,
    company: &Company,
) {
    w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    w.raw(&format!(
        "<{root} xmlns=\"{ns}\" xmlns:cac=\"{NS_CAC}\" xmlns:cbc=\"{NS_CBC}\" xmlns:ds=\"{NS_DS}\" xmlns:ext=\"{NS_EXT}\" xmlns:sac=\"{NS_SAC}\">\n"
    ));
    w.open("ext:UBLExtensions");
    w.open("ext:UBLExtension");
    w.indent();
    w.raw("<ext:ExtensionContent></ext:ExtensionContent>\n");
    w.close("ext:UBLExtension");
    w.close("ext:UBLExtensions");
    w.leaf("cbc:UBLVersionID", &[], "2.0");
    w.leaf("cbc:CustomizationID", &[], customization);
    w.leaf("cbc:ID", &[], &id.to_string());
    w.leaf(
        "cbc:ReferenceDate",
        &[],
        &reference_date.format("%Y-%m-%d").to_string(),
    );
    w.leaf(
        "cbc:IssueDate",
        &[],
        &id.issue_date.format("%Y-%m-%d").to_string(),
    );
    ubl::signature_reference(w, company);
    w.open("cac:AccountingSupplierParty");
    w.leaf("cbc:CustomerAssignedAccountID", &[], company.ruc.as_str());
    w.leaf("cbc:AdditionalAccountID", &[], "6");
    w.open("cac:Party");
    w.open("cac:PartyLegalEntity");
    w.leaf("cbc:RegistrationName", &[], &company.legal_name);
    w.close("cac:PartyLegalEntity");
    w.close("cac:Party");
    w.close("cac:AccountingSupplierParty");
}

/// The unsigned `SummaryDocuments` XML (CustomizationID 1.1, one line per boleta).
pub fn summary_xml(s: &DailySummary) -> Result<String, SummaryError> {
    s.validate()?;
    let mut w = Xml::default();
    header(
        &mut w,
        "SummaryDocuments",
        NS_SUMMARY,
        "1.1",
        &s.id,
        s.reference_date,
        &s.company,
    );
    for (i, l) in s.lines.iter().enumerate() {
        let cur = l.currency.as_str();
        w.open("sac:SummaryDocumentsLine");
        w.leaf("cbc:LineID", &[], &(i + 1).to_string());
        w.leaf("cbc:DocumentTypeCode", &[], l.type_code());
        w.leaf("cbc:ID", &[], &l.document_id());
        w.open("cac:AccountingCustomerParty");
        w.leaf("cbc:CustomerAssignedAccountID", &[], &l.customer.doc_number);
        w.leaf("cbc:AdditionalAccountID", &[], l.customer.doc_type.code());
        w.close("cac:AccountingCustomerParty");
        // The boleta a note modifies, in the schema's place (after the customer, before the
        // status; greenter's summary.xml.twig).
        if let Some(m) = &l.modifies {
            w.open("cac:BillingReference");
            w.open("cac:InvoiceDocumentReference");
            w.leaf("cbc:ID", &[], &m.id());
            w.leaf("cbc:DocumentTypeCode", &[], m.doc_type.code());
            w.close("cac:InvoiceDocumentReference");
            w.close("cac:BillingReference");
        }
        w.open("cac:Status");
        w.leaf("cbc:ConditionCode", &[], l.status.code());
        w.close("cac:Status");
        let t = &l.totals;
        let zero = BigDecimal::from(0);
        w.amount("sac:TotalAmount", cur, &t.total);
        // Catálogo 11, one payment per base: 01 gravado (always, even when zero), 02 exonerado,
        // 03 inafecto, 05 gratuito (the last three only when the boleta has such lines).
        for (code, amount, always) in [
            ("01", &t.gravada, true),
            ("02", &t.exonerada, false),
            ("03", &t.inafecta, false),
            ("05", &t.gratuita, false),
        ] {
            if always || *amount != zero {
                w.open("sac:BillingPayment");
                w.amount("cbc:PaidAmount", cur, amount);
                w.leaf("cbc:InstructionID", &[], code);
                w.close("sac:BillingPayment");
            }
        }
        let mut taxes = vec![(TaxScheme::Igv, &t.igv)];
        if t.icbper != zero {
            taxes.push((TaxScheme::Icbper, &t.icbper));
        }
        for (scheme, amount) in taxes {
            w.open("cac:TaxTotal");
            w.amount("cbc:TaxAmount", cur, amount);
            w.open("cac:TaxSubtotal");
            w.amount("cbc:TaxAmount", cur, amount);
            w.open("cac:TaxCategory");
            taxation::write_scheme(&mut w, scheme);
            w.close("cac:TaxCategory");
            w.close("cac:TaxSubtotal");
            w.close("cac:TaxTotal");
        }
        w.close("sac:SummaryDocumentsLine");
    }
    w.raw("</SummaryDocuments>\n");
    Ok(w.into_string())
}

/// The unsigned `VoidedDocuments` XML (CustomizationID 1.0).
pub fn voided_xml(v: &VoidedDocuments) -> Result<String, SummaryError> {
    v.validate()?;
    let mut w = Xml::default();
    header(
        &mut w,
        "VoidedDocuments",
        NS_VOIDED,
        "1.0",
        &v.id,
        v.reference_date,
        &v.company,
    );
    for (i, l) in v.lines.iter().enumerate() {
        w.open("sac:VoidedDocumentsLine");
        w.leaf("cbc:LineID", &[], &(i + 1).to_string());
        w.leaf("cbc:DocumentTypeCode", &[], l.doc_type.code());
        w.leaf("sac:DocumentSerialID", &[], l.series.as_str());
        w.leaf("sac:DocumentNumberID", &[], &l.correlative.to_string());
        w.leaf("sac:VoidReasonDescription", &[], l.reason.trim());
        w.close("sac:VoidedDocumentsLine");
    }
    w.raw("</VoidedDocuments>\n");
    Ok(w.into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_bad_ones_are_refused() {
        let id = SummaryId::parse("RC-20250115-12").unwrap();
        assert_eq!(id.kind, SummaryKind::Daily);
        assert_eq!(id.number, 12);
        assert_eq!(id.to_string(), "RC-20250115-12");
        assert_eq!(
            SummaryId::parse("RA-20250115-1").unwrap().kind,
            SummaryKind::Voided
        );
        for bad in [
            "RC-20250115-0",
            "RC-20250115-100000",
            "RX-20250115-1",
            "RC-2025011-1",
            "RC-20251315-1",
            "RC-20250115-01",
            "RC-20250115",
        ] {
            assert!(SummaryId::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
