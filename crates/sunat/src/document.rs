//! The receipt as SUNAT sees it: company, customer, lines and totals, built from validated
//! newtypes (RUC, series) so that the XML, the PDF and the QR code all read the same values.

use std::fmt;

use bigdecimal::BigDecimal;
use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

use crate::taxation::{
    self, icbper_on, igv_rate_on, Affectation, Discount, DocumentTotals, LineAmounts, LineInput,
    TaxError, UnitCode,
};

/// What is wrong with a document value, with the value and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("invalid RUC {0:?}: expected 11 digits with a valid check digit, starting with 10, 15, 16, 17 or 20")]
    InvalidRuc(String),
    #[error("invalid series {0:?}: expected 4 characters, B or F then 3 digits or letters (e.g. B001, F001)")]
    InvalidSeries(String),
    #[error("series {series} does not fit a {doc}: boletas use a B series, facturas an F series")]
    SeriesMismatch { series: String, doc: &'static str },
    #[error("invalid document type {0:?}: expected 01 (factura) or 03 (boleta)")]
    InvalidDocumentType(String),
    #[error("invalid customer document {0}")]
    InvalidCustomer(String),
    /// SUNAT rejects the receipt (2022 "RegistrationName - El dato ingresado no cumple con el
    /// estandar") unless the buyer's name has 3 to 1500 characters and no line break or tab.
    #[error("invalid customer name {0:?}: SUNAT needs 3 to 1500 characters without line breaks or tabs (it rejects the receipt with 2022 otherwise)")]
    InvalidCustomerName(String),
    #[error("invalid line {index}: {why}")]
    InvalidLine { index: usize, why: String },
    #[error("a receipt needs at least one line")]
    NoLines,
    /// A credit note that SUNAT would refuse: what is wrong, with SUNAT's code.
    #[error("invalid credit note: {0}")]
    InvalidNote(String),
    #[error("line {index}: {source}")]
    Tax {
        index: usize,
        #[source]
        source: TaxError,
    },
}

/// A RUC (Registro Único de Contribuyentes): 11 digits whose last one is a mod-11 check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ruc(String);

impl Ruc {
    pub fn parse(s: &str) -> Result<Self, DocumentError> {
        let s = s.trim();
        let bad = || DocumentError::InvalidRuc(s.to_owned());
        if s.len() != 11 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if !["10", "15", "16", "17", "20"].contains(&&s[..2]) {
            return Err(bad());
        }
        const WEIGHTS: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
        let digits: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
        let sum: u32 = digits[..10].iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
        let check = (11 - sum % 11) % 10;
        if check != digits[10] {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ruc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Ruc {
    type Error = DocumentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Ruc> for String {
    fn from(r: Ruc) -> Self {
        r.0
    }
}

/// The kind of receipt, with SUNAT's catalog 01 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentType {
    /// Factura, code 01: to a buyer with a RUC.
    Factura,
    /// Boleta de venta, code 03: to a final consumer.
    Boleta,
}

impl DocumentType {
    /// SUNAT's code: "01" or "03".
    pub fn code(self) -> &'static str {
        match self {
            Self::Factura => "01",
            Self::Boleta => "03",
        }
    }

    /// Parses "01"/"03" or "factura"/"boleta".
    pub fn parse(s: &str) -> Result<Self, DocumentError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "01" | "factura" => Ok(Self::Factura),
            "03" | "boleta" => Ok(Self::Boleta),
            _ => Err(DocumentError::InvalidDocumentType(s.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Factura => "factura",
            Self::Boleta => "boleta",
        }
    }

    /// The first letter of its series.
    pub fn series_letter(self) -> char {
        match self {
            Self::Factura => 'F',
            Self::Boleta => 'B',
        }
    }
}

/// A series such as `B001` or `F001`: 4 characters, the letter of the document type then 3 digits
/// or uppercase letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Series(String);

impl Series {
    pub fn parse(s: &str) -> Result<Self, DocumentError> {
        let s = s.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        if b.len() != 4
            || !(b[0] == b'B' || b[0] == b'F')
            || !b[1..]
                .iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        {
            return Err(DocumentError::InvalidSeries(s));
        }
        Ok(Self(s))
    }

    /// Parses a series and checks it fits the document type.
    pub fn parse_for(s: &str, doc: DocumentType) -> Result<Self, DocumentError> {
        let series = Self::parse(s)?;
        if !series.0.starts_with(doc.series_letter()) {
            return Err(DocumentError::SeriesMismatch {
                series: series.0,
                doc: doc.name(),
            });
        }
        Ok(series)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The document type the series belongs to.
    pub fn document_type(&self) -> DocumentType {
        if self.0.starts_with('F') {
            DocumentType::Factura
        } else {
            DocumentType::Boleta
        }
    }
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Series {
    type Error = DocumentError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Series> for String {
    fn from(s: Series) -> Self {
        s.0
    }
}

/// The document number sent for a buyer without one (catalog 06 code `0`). SUNAT observes (4208
/// "El dato ingresado como numero de documento de identidad del receptor no cumple con el formato
/// establecido") a type-0 number that is not 1 to 15 letters or digits (`^[\d\w]{1,15}$`, as
/// validators apply it): `-`, which boletas carried before, is observed; eight zeros are not.
/// See `docs/decisions.md`.
pub const ANONYMOUS_DOC_NUMBER: &str = "00000000";

/// The name of an anonymous buyer.
pub const ANONYMOUS_NAME: &str = "CLIENTES VARIOS";

/// The customer's identity document type (SUNAT catalog 06).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerDocType {
    /// No document ("0", allowed on boletas up to S/ 700). The number is
    /// [`ANONYMOUS_DOC_NUMBER`].
    None,
    /// DNI, code "1": 8 digits.
    Dni,
    /// RUC, code "6".
    Ruc,
    /// Carné de extranjería, code "4".
    Ce,
    /// Pasaporte, code "7".
    Passport,
}

impl CustomerDocType {
    /// SUNAT's catalog 06 code, used as `schemeID`.
    pub fn code(self) -> &'static str {
        match self {
            Self::None => "0",
            Self::Dni => "1",
            Self::Ce => "4",
            Self::Ruc => "6",
            Self::Passport => "7",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DocumentError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "0" | "none" | "-" => Ok(Self::None),
            "1" | "dni" => Ok(Self::Dni),
            "4" | "ce" => Ok(Self::Ce),
            "6" | "ruc" => Ok(Self::Ruc),
            "7" | "passport" | "pasaporte" => Ok(Self::Passport),
            other => Err(DocumentError::InvalidCustomer(format!(
                "document type {other:?}: expected none, dni, ce, ruc or passport"
            ))),
        }
    }
}

/// The buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub doc_type: CustomerDocType,
    /// The document number ([`ANONYMOUS_DOC_NUMBER`] when `doc_type` is `None`).
    pub doc_number: String,
    pub name: String,
}

impl Customer {
    /// An anonymous final consumer (boletas up to S/ 700).
    pub fn anonymous() -> Self {
        Self {
            doc_type: CustomerDocType::None,
            doc_number: ANONYMOUS_DOC_NUMBER.into(),
            name: ANONYMOUS_NAME.into(),
        }
    }

    /// Checks the number against its type: DNI 8 digits, RUC a valid RUC, CE/passport up to 12
    /// alphanumerics, none "-", empty or [`ANONYMOUS_DOC_NUMBER`] (stored as the latter); and the
    /// name as SUNAT's rule 2022 does (an empty name of a buyer without a document is
    /// [`ANONYMOUS_NAME`]).
    pub fn new(
        doc_type: CustomerDocType,
        doc_number: &str,
        name: &str,
    ) -> Result<Self, DocumentError> {
        let n = doc_number.trim();
        let ok = match doc_type {
            CustomerDocType::None => n == "-" || n.is_empty() || n == ANONYMOUS_DOC_NUMBER,
            CustomerDocType::Dni => n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()),
            CustomerDocType::Ruc => Ruc::parse(n).is_ok(),
            CustomerDocType::Ce | CustomerDocType::Passport => {
                !n.is_empty() && n.len() <= 12 && n.bytes().all(|b| b.is_ascii_alphanumeric())
            }
        };
        if !ok {
            return Err(DocumentError::InvalidCustomer(format!(
                "number {n:?} does not fit document type {:?}",
                doc_type
            )));
        }
        let name = name.trim();
        if doc_type != CustomerDocType::None && name.is_empty() {
            return Err(DocumentError::InvalidCustomer("name is empty".into()));
        }
        let name = if name.is_empty() {
            ANONYMOUS_NAME
        } else {
            name
        };
        if !is_registration_name(name) {
            return Err(DocumentError::InvalidCustomerName(name.to_owned()));
        }
        Ok(Self {
            doc_type,
            doc_number: if doc_type == CustomerDocType::None {
                ANONYMOUS_DOC_NUMBER.into()
            } else {
                n.into()
            },
            name: name.into(),
        })
    }
}

/// SUNAT's rule 2022 for `cac:AccountingCustomerParty/.../cbc:RegistrationName`: "alfanumérico de
/// 3 hasta 1500 caracteres (se considera cualquier carácter incluido espacio, no se permite ningún
/// otro whitespace character: salto de línea, tab, fin de línea, etc.)".
pub fn is_registration_name(name: &str) -> bool {
    is_text_of(name, 3, 1500)
}

/// SUNAT's usual text rule: `min` to `max` characters, not only spaces, and no whitespace but the
/// space ("no se permite ningún otro whitespace character: salto de línea, tab, fin de línea").
pub fn is_text_of(s: &str, min: usize, max: usize) -> bool {
    let len = s.chars().count();
    (min..=max).contains(&len) && !s.trim().is_empty() && !has_other_whitespace(s)
}

/// Whitespace other than the plain space (line breaks, tabs, ...), which SUNAT's text rules
/// (2022, 4269) refuse.
fn has_other_whitespace(s: &str) -> bool {
    s.chars()
        .any(|c| c != ' ' && (c.is_whitespace() || c.is_control()))
}

/// The issuing company (the emisor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    pub ruc: Ruc,
    pub legal_name: String,
    /// Street address printed on the receipt.
    pub address: String,
    /// SUNAT's establishment code (`AddressTypeCode`), "0000" for the main office.
    pub establishment_code: String,
}

/// One line of the receipt. Prices include IGV, as a POS shows them; how a line is taxed is in
/// [`crate::taxation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The product's code (SKU).
    pub code: String,
    pub description: String,
    /// Above 0, up to 3 decimals (whole for a product sold in units).
    pub quantity: BigDecimal,
    /// Catálogo 03 (NIU unless the product says otherwise).
    #[serde(default)]
    pub unit_code: UnitCode,
    /// Unit price with IGV, 2 decimals (the referential price of a free line).
    pub unit_price: BigDecimal,
    /// Catálogo 07 (10 gravado unless the product says otherwise).
    #[serde(default)]
    pub affectation: Affectation,
    /// A plastic bag subject to ICBPER (tributo 7152).
    #[serde(default)]
    pub icbper: bool,
    #[serde(default)]
    pub discount: Option<Discount>,
    /// Given, not sold ("transferencia gratuita").
    #[serde(default)]
    pub free: bool,
}

/// The longest product code SUNAT takes without an observation (4269 "El dato ingresado como
/// codigo de producto no cumple con el formato establecido": `SellersItemIdentification/cbc:ID`
/// must have 1 to 30 characters, spaces allowed, no other whitespace).
pub const MAX_PRODUCT_CODE_CHARS: usize = 30;

impl Line {
    /// The code as `cac:SellersItemIdentification/cbc:ID` carries it, or `None` to leave the
    /// optional element out: an empty code, or one SUNAT would observe (4269: over
    /// [`MAX_PRODUCT_CODE_CHARS`] characters, or holding a line break or tab). The code is left
    /// out rather than cut: a cut code names no product of the shop.
    pub fn sunat_code(&self) -> Option<&str> {
        let code = self.code.trim();
        let len = code.chars().count();
        ((1..=MAX_PRODUCT_CODE_CHARS).contains(&len) && !has_other_whitespace(code)).then_some(code)
    }

    /// A gravado line in units (NIU), without discount: what every line was before issue 16.
    pub fn new(code: &str, description: &str, quantity: i64, unit_price: BigDecimal) -> Self {
        Self {
            code: code.into(),
            description: description.into(),
            quantity: BigDecimal::from(quantity),
            unit_code: UnitCode::NIU,
            unit_price,
            affectation: Affectation::GRAVADO,
            icbper: false,
            discount: None,
            free: false,
        }
    }

    /// The line as [`crate::taxation::line_amounts`] reads it.
    pub fn input(&self) -> LineInput<'_> {
        LineInput {
            quantity: &self.quantity,
            unit_price: &self.unit_price,
            affectation: self.affectation,
            discount: self.discount.as_ref(),
            icbper: self.icbper,
        }
    }
}

/// Totals of a receipt (see [`DocumentTotals`]).
pub type Totals = DocumentTotals;

/// A receipt to send: everything the XML, the PDF and the QR need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub company: Company,
    pub doc_type: DocumentType,
    pub series: Series,
    /// The correlative number, 1 to 99999999.
    pub correlative: i64,
    pub issue_date: NaiveDate,
    pub issue_time: NaiveTime,
    pub customer: Customer,
    /// ISO 4217 currency, "PEN".
    pub currency: String,
    pub lines: Vec<Line>,
}

impl Receipt {
    /// Checks what the XML builder relies on: series fits the type, a factura has a RUC buyer,
    /// the buyer's name passes SUNAT's rule 2022, at least one line, quantities > 0, prices > 0.
    pub fn validate(&self) -> Result<(), DocumentError> {
        Series::parse_for(self.series.as_str(), self.doc_type)?;
        if self.doc_type == DocumentType::Factura && self.customer.doc_type != CustomerDocType::Ruc
        {
            return Err(DocumentError::InvalidCustomer(
                "a factura needs a buyer with a RUC".into(),
            ));
        }
        if self.lines.is_empty() {
            return Err(DocumentError::NoLines);
        }
        let zero = BigDecimal::from(0);
        for (index, l) in self.lines.iter().enumerate() {
            taxation::check_quantity(&l.quantity, true)
                .map_err(|source| DocumentError::Tax { index, source })?;
            if l.unit_price <= zero {
                return Err(DocumentError::InvalidLine {
                    index,
                    why: format!("unit price {} must be > 0", l.unit_price),
                });
            }
        }
        self.amounts()?;
        if !is_registration_name(&self.customer.name) {
            return Err(DocumentError::InvalidCustomerName(
                self.customer.name.clone(),
            ));
        }
        if !(1..=99_999_999).contains(&self.correlative) {
            return Err(DocumentError::InvalidLine {
                index: 0,
                why: format!("correlative {} out of 1..=99999999", self.correlative),
            });
        }
        Ok(())
    }

    /// `SERIE-CORRELATIVO`, the XML's `cbc:ID` (e.g. `B001-1`).
    pub fn id(&self) -> String {
        format!("{}-{}", self.series, self.correlative)
    }

    /// `RUC-TT-SERIE-CORRELATIVO`, the file name without extension.
    pub fn file_stem(&self) -> String {
        format!(
            "{}-{}-{}",
            self.company.ruc,
            self.doc_type.code(),
            self.id()
        )
    }

    /// The IGV rate in force on the issue date.
    pub fn igv_rate(&self) -> BigDecimal {
        igv_rate_on(self.issue_date)
    }

    /// Every line's amounts, with the IGV rate and ICBPER amount of the issue date.
    pub fn amounts(&self) -> Result<Vec<LineAmounts>, DocumentError> {
        let rate = self.igv_rate();
        let icbper = icbper_on(self.issue_date);
        self.lines
            .iter()
            .enumerate()
            .map(|(index, l)| {
                if l.icbper && icbper.is_none() {
                    return Err(DocumentError::Tax {
                        index,
                        source: TaxError::IcbperNotInForce(self.issue_date),
                    });
                }
                taxation::line_amounts(l.input(), l.free, &rate, icbper.as_ref())
                    .map_err(|source| DocumentError::Tax { index, source })
            })
            .collect()
    }

    /// The receipt's totals: sums of its lines' rounded amounts.
    pub fn totals(&self) -> Result<Totals, DocumentError> {
        Ok(DocumentTotals::of(&self.amounts()?))
    }

    /// The QR content of `sunat.md`: `RUC|TIPO|SERIE|NUMERO|IGV|TOTAL|YYYY-MM-DD|TIPO_DOC_ADQ|NUM_DOC_ADQ|DIGEST_VALUE|`.
    pub fn qr_content(&self, digest_value: &str) -> Result<String, DocumentError> {
        let t = self.totals()?;
        Ok(format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|",
            self.company.ruc,
            self.doc_type.code(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruc_check_digit() {
        assert!(Ruc::parse("20100066603").is_ok());
        assert!(Ruc::parse("20100066604").is_err());
        assert!(Ruc::parse("2010006660").is_err());
        assert!(Ruc::parse("30100066603").is_err());
    }

    #[test]
    fn series_fits_type() {
        assert!(Series::parse_for("B001", DocumentType::Boleta).is_ok());
        assert!(Series::parse_for("f001", DocumentType::Factura).is_ok());
        assert!(Series::parse_for("F001", DocumentType::Boleta).is_err());
        assert!(Series::parse("B01").is_err());
    }

    #[test]
    fn an_anonymous_buyer_is_eight_zeros_of_type_0() {
        let a = Customer::anonymous();
        assert_eq!(
            (a.doc_type.code(), a.doc_number.as_str(), a.name.as_str()),
            ("0", "00000000", "CLIENTES VARIOS")
        );
        // What sales stored before ("-") and what a request may give read the same.
        for n in ["-", "", " - ", "00000000"] {
            assert_eq!(
                Customer::new(CustomerDocType::None, n, "").unwrap(),
                a,
                "{n:?}"
            );
        }
        assert!(Customer::new(CustomerDocType::None, "12345678", "").is_err());
    }

    #[test]
    fn a_buyer_name_follows_rule_2022() {
        // 2022: 3 to 1500 characters, spaces allowed, no other whitespace.
        for bad in [
            "Al",
            "  Al  ",
            "Ana\nMaría",
            "Ana\tMaría",
            &"x".repeat(1501),
        ] {
            let e = Customer::new(CustomerDocType::Dni, "46027897", bad).unwrap_err();
            assert!(
                matches!(e, DocumentError::InvalidCustomerName(_)),
                "{bad:?}: {e}"
            );
        }
        for good in ["Ana", "José Pérez", "Ñoño", &"x".repeat(1500)] {
            assert!(
                Customer::new(CustomerDocType::Dni, "46027897", good).is_ok(),
                "{good:?}"
            );
        }
        // A short name on an anonymous boleta too: it is sent as given.
        assert!(Customer::new(CustomerDocType::None, "-", "Yo").is_err());
    }

    #[test]
    fn a_product_code_over_30_characters_is_left_out() {
        let line = |code: &str| Line::new(code, "x", 1, BigDecimal::from(1));
        let thirty = "A".repeat(30);
        assert_eq!(line(&thirty).sunat_code(), Some(thirty.as_str()));
        assert_eq!(line(" INKA 500 ").sunat_code(), Some("INKA 500"));
        assert_eq!(line("ÑAÑA-1").sunat_code(), Some("ÑAÑA-1"));
        for bad in ["A".repeat(31), String::new(), "  ".into(), "A\tB".into()] {
            assert_eq!(line(&bad).sunat_code(), None, "{bad:?}");
        }
    }

    #[test]
    fn totals_add_up_to_the_cent() {
        let line = |p: &str, q| Line::new("X", "x", q, p.parse().unwrap());
        let rate = igv_rate_on(NaiveDate::from_ymd_opt(2025, 3, 14).unwrap());
        let lines = [line("10.00", 3), line("2.50", 1), line("0.10", 7)];
        let amounts: Vec<_> = lines
            .iter()
            .map(|l| taxation::line_amounts(l.input(), false, &rate, None).unwrap())
            .collect();
        let total: BigDecimal = amounts.iter().map(|a| a.payable.clone()).sum();
        assert_eq!(total, "33.20".parse::<BigDecimal>().unwrap());
        for a in &amounts {
            assert_eq!(&a.value + &a.igv, a.gross);
        }
        // 30.00 / 1.18 = 25.42; 2.50 / 1.18 = 2.12; 0.70 / 1.18 = 0.59
        let value: BigDecimal = amounts.iter().map(|a| a.value.clone()).sum();
        assert_eq!(value, "28.13".parse::<BigDecimal>().unwrap());
    }
}
