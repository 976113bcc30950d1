//! Line taxation as SUNAT defines it: the IGV affectation of a line (catálogo 07), its unit
//! (catálogo 03), decimal quantities, line discounts (catálogo 53 code 00), free lines
//! ("transferencia gratuita", catálogo 07 codes 11-16, 21, 31-37), the plastic-bag tax ICBPER
//! (tributo 7152), the dated IGV and ICBPER tables, the tax schemes (catálogo 05), a line's
//! amounts ([`line_amounts`]) and a document's ([`DocumentTotals`]), and the amount in words
//! (legend 1000).
//!
//! Any document made of lines (an Invoice, a CreditNote) computes its amounts here and writes
//! its `cac:TaxTotal` / `cac:LegalMonetaryTotal` and its lines' tax elements with the writers at
//! the end of this module, so every document states the same sums SUNAT checks.
//!
//! The rounding rule (docs/decisions.md, "Line taxation and rounding"): every amount is rounded
//! half-up to the cent at the line, in this order: gross = price x quantity, discount, net =
//! gross - discount, value = net / (1 + rate) (taxed lines; otherwise value = net), IGV = net -
//! value, ICBPER = bags x amount. Document totals are sums of the rounded line amounts, so they
//! equal SUNAT's own sums of the lines with zero difference, and what the buyer pays for a line
//! is exactly its value plus its IGV.

use std::fmt;

use bigdecimal::{BigDecimal, RoundingMode, Zero};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::xml::{decimal, Xml};

/// What is wrong with a taxation value: which value, and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxError {
    #[error("invalid IGV affectation {0:?}: expected a catálogo 07 code: 10 (gravado), 11-16 (gravado, gratuito), 20 (exonerado), 21 (exonerado, gratuito), 30 (inafecto) or 31-37 (inafecto, gratuito)")]
    Affectation(String),
    #[error("invalid unit code {0:?}: expected a catálogo 03 code such as NIU (unidad), ZZ (servicio), KGM (kilogramo), LTR (litro); see the README for the list")]
    Unit(String),
    #[error("invalid quantity {0}: expected a number above 0 with at most 3 decimals and 8 integer digits")]
    Quantity(String),
    #[error("quantity {0} has decimals, but the product is sold in whole units (decimal_quantity is false)")]
    WholeQuantity(String),
    #[error("invalid discount {0}: expected a percent above 0 and below 100 with at most 2 decimals, or an amount of at least 0.01 with at most 2 decimals")]
    Discount(String),
    #[error("the discount {discount} is not below the line's amount {gross}: a line that costs nothing is a free line (\"free\": true)")]
    DiscountTooLarge { discount: String, gross: String },
    #[error("ICBPER is not in force on {0} (it starts on 2019-08-01; SUNAT rejects it before with 2949)")]
    IcbperNotInForce(NaiveDate),
    #[error("a plastic-bag (ICBPER) product counts whole bags: quantity {0} has decimals")]
    IcbperQuantity(String),
    #[error("a free line cannot have a discount")]
    FreeWithDiscount,
    #[error("quantity {part} is not above 0 and at most the {left} left of the line")]
    Share { part: String, left: String },
}

/// A tax scheme of catálogo 05, with its id, name and international type code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaxScheme {
    /// 1000 / IGV / VAT: gravado, onerous.
    Igv,
    /// 9997 / EXO / VAT: exonerado.
    Exo,
    /// 9998 / INA / FRE: inafecto.
    Ina,
    /// 9996 / GRA / FRE: free lines (transferencia gratuita).
    Gra,
    /// 7152 / ICBPER / OTH: plastic bags.
    Icbper,
}

impl TaxScheme {
    /// Every scheme, in the order the document's `cac:TaxSubtotal`s are written.
    pub const ALL: [TaxScheme; 5] = [Self::Igv, Self::Exo, Self::Ina, Self::Gra, Self::Icbper];

    pub fn id(self) -> &'static str {
        match self {
            Self::Igv => "1000",
            Self::Exo => "9997",
            Self::Ina => "9998",
            Self::Gra => "9996",
            Self::Icbper => "7152",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Igv => "IGV",
            Self::Exo => "EXO",
            Self::Ina => "INA",
            Self::Gra => "GRA",
            Self::Icbper => "ICBPER",
        }
    }

    pub fn type_code(self) -> &'static str {
        match self {
            Self::Igv | Self::Exo => "VAT",
            Self::Ina | Self::Gra => "FRE",
            Self::Icbper => "OTH",
        }
    }

    /// The scheme of a catálogo 05 id.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }
}

/// The base an affectation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaxBase {
    Gravado,
    Exonerado,
    Inafecto,
}

impl TaxBase {
    /// Spanish, as printed.
    pub fn label(self) -> &'static str {
        match self {
            Self::Gravado => "gravado",
            Self::Exonerado => "exonerado",
            Self::Inafecto => "inafecto",
        }
    }
}

/// The catálogo 07 codes Faena issues. 17 (IVAP) and 40 (exportación) are left out: they need
/// operation types (IVAP rice, exports) a shop's boletas and facturas do not carry.
const AFFECTATIONS: [&str; 17] = [
    "10", "11", "12", "13", "14", "15", "16", "20", "21", "30", "31", "32", "33", "34", "35", "36",
    "37",
];

/// An IGV affectation (catálogo 07, `cbc:TaxExemptionReasonCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct Affectation(&'static str);

impl Affectation {
    /// 10: gravado, operación onerosa (the default).
    pub const GRAVADO: Self = Self("10");
    /// 20: exonerado, operación onerosa.
    pub const EXONERADO: Self = Self("20");
    /// 30: inafecto, operación onerosa.
    pub const INAFECTO: Self = Self("30");

    pub fn parse(s: &str) -> Result<Self, TaxError> {
        let t = s.trim();
        AFFECTATIONS
            .iter()
            .find(|c| **c == t)
            .map(|c| Self(c))
            .ok_or_else(|| TaxError::Affectation(s.to_owned()))
    }

    pub fn code(self) -> &'static str {
        self.0
    }

    /// A gratuitous code (11-16, 21, 31-37): the line is given, not sold.
    pub fn is_free(self) -> bool {
        !matches!(self.0, "10" | "20" | "30")
    }

    pub fn base(self) -> TaxBase {
        match self.0.as_bytes()[0] {
            b'1' => TaxBase::Gravado,
            b'2' => TaxBase::Exonerado,
            _ => TaxBase::Inafecto,
        }
    }

    /// The code of a free line of a product with this affectation: itself when already
    /// gratuitous, else the "bonificación" code of its base (15 gravado, 21 exonerado, 31
    /// inafecto).
    pub fn free_variant(self) -> Self {
        if self.is_free() {
            return self;
        }
        match self.base() {
            TaxBase::Gravado => Self("15"),
            TaxBase::Exonerado => Self("21"),
            TaxBase::Inafecto => Self("31"),
        }
    }

    /// The scheme a line with this affectation is taxed under (sunat-lifecycle.md §6).
    pub fn scheme(self) -> TaxScheme {
        if self.is_free() {
            return TaxScheme::Gra;
        }
        match self.base() {
            TaxBase::Gravado => TaxScheme::Igv,
            TaxBase::Exonerado => TaxScheme::Exo,
            TaxBase::Inafecto => TaxScheme::Ina,
        }
    }
}

impl Default for Affectation {
    fn default() -> Self {
        Self::GRAVADO
    }
}

impl fmt::Display for Affectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Affectation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<String> for Affectation {
    type Error = TaxError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Affectation> for String {
    fn from(a: Affectation) -> Self {
        a.0.to_owned()
    }
}

/// The catálogo 03 codes Faena takes (UN/ECE Rec 20), with their Spanish names. Catálogo 03 is
/// all of Rec 20; these are the ones a shop uses (G-FAC p. 57), and a new one is one more row.
pub const UNIT_CODES: [(&str, &str); 27] = [
    ("NIU", "unidad"),
    ("ZZ", "servicio"),
    ("KGM", "kilogramo"),
    ("GRM", "gramo"),
    ("LTR", "litro"),
    ("MLT", "mililitro"),
    ("GLL", "galón"),
    ("MTR", "metro"),
    ("MTK", "metro cuadrado"),
    ("MTQ", "metro cúbico"),
    ("KTM", "kilómetro"),
    ("BX", "caja"),
    ("BG", "bolsa"),
    ("BO", "botella"),
    ("BJ", "balde"),
    ("CA", "lata"),
    ("CT", "cartón"),
    ("CY", "cilindro"),
    ("SET", "juego"),
    ("KT", "kit"),
    ("LBR", "libra"),
    ("ONZ", "onza"),
    ("MLL", "millar"),
    ("UM", "millón de unidades"),
    ("DZN", "docena"),
    ("PK", "paquete"),
    ("PR", "par"),
];

/// A unit of measure (catálogo 03, `unitCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct UnitCode(&'static str);

impl UnitCode {
    /// NIU, unidad (bienes): the default.
    pub const NIU: Self = Self("NIU");

    pub fn parse(s: &str) -> Result<Self, TaxError> {
        let t = s.trim();
        UNIT_CODES
            .iter()
            .find(|(c, _)| *c == t)
            .map(|(c, _)| Self(c))
            .ok_or_else(|| TaxError::Unit(s.to_owned()))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Its Spanish name ("kilogramo").
    pub fn name(self) -> &'static str {
        UNIT_CODES
            .iter()
            .find(|(c, _)| *c == self.0)
            .map_or("", |(_, n)| n)
    }
}

impl Default for UnitCode {
    fn default() -> Self {
        Self::NIU
    }
}

impl fmt::Display for UnitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<'de> Deserialize<'de> for UnitCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<String> for UnitCode {
    type Error = TaxError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<UnitCode> for String {
    fn from(u: UnitCode) -> Self {
        u.0.to_owned()
    }
}

/// The most decimals a quantity may have (SUNAT takes up to 10; a shop's scale weighs grams).
pub const QUANTITY_DECIMALS: i64 = 3;

/// Checks a quantity: above 0, at most [`QUANTITY_DECIMALS`] decimals and 8 integer digits, and
/// whole unless `decimal_allowed`. Answers it with its trailing zeros dropped.
pub fn check_quantity(q: &BigDecimal, decimal_allowed: bool) -> Result<BigDecimal, TaxError> {
    let n = q.normalized();
    let (_, scale) = n.as_bigint_and_exponent();
    if n <= BigDecimal::zero() || scale > QUANTITY_DECIMALS || n >= 100_000_000 {
        return Err(TaxError::Quantity(q.to_string()));
    }
    if !decimal_allowed && scale > 0 {
        return Err(TaxError::WholeQuantity(q.to_string()));
    }
    Ok(n)
}

/// A line discount, as the buyer sees it: a percent of the line, or an amount off its price
/// (with taxes). Written as catálogo 53 code 00 (reduces the IGV base).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discount {
    /// Percent of the line, above 0 and below 100, up to 2 decimals.
    Percent(BigDecimal),
    /// Amount off the line's price with taxes, at least 0.01, 2 decimals.
    Amount(BigDecimal),
}

impl Discount {
    /// Checks the value's range and decimals.
    pub fn check(self) -> Result<Self, TaxError> {
        let (v, ok) = match &self {
            Discount::Percent(p) => (p, *p > 0 && *p < 100),
            Discount::Amount(a) => (a, *a >= BigDecimal::new(1.into(), 2)),
        };
        let (_, scale) = v.normalized().as_bigint_and_exponent();
        if !ok || scale > 2 {
            return Err(TaxError::Discount(v.to_string()));
        }
        Ok(self)
    }

    /// The discount on a line of `gross` (price with taxes x quantity), to the cent.
    pub fn of(&self, gross: &BigDecimal) -> BigDecimal {
        match self {
            Discount::Percent(p) => round2(&(gross * p / BigDecimal::from(100))),
            Discount::Amount(a) => round2(a),
        }
    }
}

/// The catálogo 53 code of a line discount that reduces the IGV base.
pub const DISCOUNT_REDUCES_BASE: &str = "00";

/// The IGV rate (IGV 16% + IPM 2%) from each date on, latest last. The reduced rate of some
/// restaurants (Ley 31556) is not a row here: see docs/decisions.md.
const IGV_RATES: [((i32, u32, u32), &str); 2] = [((2003, 8, 1), "0.19"), ((2011, 3, 1), "0.18")];

/// ICBPER per bag from each date on (Ley 30884; sunat-lifecycle.md §6), latest last.
const ICBPER_AMOUNTS: [((i32, u32, u32), &str); 5] = [
    ((2019, 8, 1), "0.10"),
    ((2020, 1, 1), "0.20"),
    ((2021, 1, 1), "0.30"),
    ((2022, 1, 1), "0.40"),
    ((2023, 1, 1), "0.50"),
];

fn on_date(table: &[((i32, u32, u32), &str)], date: NaiveDate) -> Option<BigDecimal> {
    table
        .iter()
        .rev()
        .find(|((y, m, d), _)| NaiveDate::from_ymd_opt(*y, *m, *d).is_some_and(|from| from <= date))
        .and_then(|(_, v)| v.parse().ok())
}

/// The IGV rate in force on `date` (0.18 since 2011-03-01).
pub fn igv_rate_on(date: NaiveDate) -> BigDecimal {
    on_date(&IGV_RATES, date).unwrap_or_else(|| BigDecimal::new(18.into(), 2))
}

/// The ICBPER amount per bag on `date`, or `None` before 2019-08-01.
pub fn icbper_on(date: NaiveDate) -> Option<BigDecimal> {
    on_date(&ICBPER_AMOUNTS, date)
}

pub(crate) fn round2(v: &BigDecimal) -> BigDecimal {
    v.with_scale_round(2, RoundingMode::HalfUp)
}

/// What a line asks for, the input of [`line_amounts`].
#[derive(Debug, Clone, Copy)]
pub struct LineInput<'a> {
    pub quantity: &'a BigDecimal,
    /// Unit price with taxes (IGV for a gravado line), without ICBPER.
    pub unit_price: &'a BigDecimal,
    pub affectation: Affectation,
    pub discount: Option<&'a Discount>,
    pub icbper: bool,
}

/// A line's amounts, each rounded to the cent by the rule in the module's documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineAmounts {
    /// The affectation as written: a free line's is gratuitous.
    pub affectation: Affectation,
    pub scheme: TaxScheme,
    /// Price with taxes x quantity, before the discount (the referential value of a free line).
    pub gross: BigDecimal,
    /// The discount, with taxes (what the buyer sees off the line).
    pub discount: BigDecimal,
    /// The value before the discount (`AllowanceCharge/BaseAmount`).
    pub base_value: BigDecimal,
    /// The discount without taxes (`AllowanceCharge/Amount`).
    pub discount_value: BigDecimal,
    /// `LineExtensionAmount`: base_value - discount_value.
    pub value: BigDecimal,
    /// The line's IGV (of the referential value, for a free gravado line).
    pub igv: BigDecimal,
    /// ICBPER: bags x the amount in force.
    pub icbper: BigDecimal,
    /// ICBPER per bag, when the line carries it.
    pub icbper_rate: Option<BigDecimal>,
    /// What the buyer pays for the line: value + IGV + ICBPER, or only ICBPER for a free line.
    pub payable: BigDecimal,
    /// `cac:Price/cbc:PriceAmount`: value per unit before the discount, 0 for a free line.
    pub unit_value: BigDecimal,
    /// `AlternativeConditionPrice`: code 01 (price with taxes per unit), or 02 (referential
    /// value per unit) for a free line.
    pub reference_price: BigDecimal,
    pub reference_code: &'static str,
    /// The IGV rate of the line's `cbc:Percent` (0 for exonerado and inafecto lines).
    pub percent: BigDecimal,
}

impl LineAmounts {
    pub fn is_free(&self) -> bool {
        self.scheme == TaxScheme::Gra
    }

    /// The line's `cac:TaxTotal/cbc:TaxAmount`: the taxes SUNAT sums there (3292: 1000, 1016,
    /// 2000, 7152, 9999), so a free line's IGV (9996) is not among them.
    pub fn tax_total(&self) -> BigDecimal {
        if self.scheme == TaxScheme::Igv {
            &self.igv + &self.icbper
        } else {
            self.icbper.clone()
        }
    }
}

/// A line's amounts. `igv_rate` and `icbper_rate` are those in force on the issue date.
pub fn line_amounts(
    line: LineInput<'_>,
    free: bool,
    igv_rate: &BigDecimal,
    icbper_rate: Option<&BigDecimal>,
) -> Result<LineAmounts, TaxError> {
    let affectation = if free {
        line.affectation.free_variant()
    } else {
        line.affectation
    };
    let is_free = affectation.is_free();
    if is_free && line.discount.is_some() {
        return Err(TaxError::FreeWithDiscount);
    }
    let taxed = affectation.base() == TaxBase::Gravado;
    let one_plus = BigDecimal::from(1) + igv_rate;
    let qty = line.quantity;
    let gross = round2(&(line.unit_price * qty));
    let discount = line
        .discount
        .map_or_else(BigDecimal::zero, |d| d.of(&gross));
    if discount >= gross && !discount.is_zero() {
        return Err(TaxError::DiscountTooLarge {
            discount: discount.to_string(),
            gross: gross.to_string(),
        });
    }
    let net = &gross - &discount;
    let (base_value, value, igv) = if taxed {
        let base_value = round2(&(&gross / &one_plus));
        let value = round2(&(&net / &one_plus));
        let igv = if is_free {
            round2(&(&value * igv_rate))
        } else {
            &net - &value
        };
        (base_value, value, igv)
    } else {
        (gross.clone(), net.clone(), BigDecimal::zero())
    };
    let discount_value = &base_value - &value;
    let icbper_rate = if line.icbper {
        let (_, scale) = qty.normalized().as_bigint_and_exponent();
        if scale > 0 {
            return Err(TaxError::IcbperQuantity(qty.to_string()));
        }
        icbper_rate.cloned()
    } else {
        None
    };
    let icbper = icbper_rate
        .as_ref()
        .map_or_else(BigDecimal::zero, |r| round2(&(r * qty)));
    let ten = |v: BigDecimal| v.with_scale_round(10, RoundingMode::HalfUp).normalized();
    let (payable, unit_value, reference_price, reference_code) = if is_free {
        let reference = if taxed {
            line.unit_price / &one_plus
        } else {
            line.unit_price.clone()
        };
        (icbper.clone(), BigDecimal::zero(), ten(reference), "02")
    } else {
        let payable = &value + &igv + &icbper;
        let unit_value = ten(&base_value / qty);
        let reference = ten(&payable / qty);
        (payable, unit_value, reference, "01")
    };
    Ok(LineAmounts {
        affectation,
        scheme: affectation.scheme(),
        gross,
        discount,
        base_value,
        discount_value,
        value,
        igv,
        icbper,
        icbper_rate,
        payable,
        unit_value,
        reference_price,
        reference_code,
        percent: if taxed {
            igv_rate * BigDecimal::from(100)
        } else {
            BigDecimal::zero()
        },
    })
}

/// The amounts of `part` units of a line of `whole` units of which `before` were already taken
/// (credited): the line's amounts at `before + part` units minus its amounts at `before`, each
/// by [`line_amounts`]. So the parts of a line, however it is split, add up to the whole line to
/// the cent, and a last part is exactly what is left of it. A percent discount applies to every
/// part; a discount amount is shared in proportion to the quantity (half-up to the cent).
/// `line.quantity` is ignored: `whole` is the line's quantity.
pub fn share_amounts(
    line: LineInput<'_>,
    free: bool,
    igv_rate: &BigDecimal,
    icbper_rate: Option<&BigDecimal>,
    whole: &BigDecimal,
    before: &BigDecimal,
    part: &BigDecimal,
) -> Result<LineAmounts, TaxError> {
    let upto = before + part;
    if *part <= BigDecimal::zero() || *before < BigDecimal::zero() || upto > *whole {
        return Err(TaxError::Share {
            part: part.to_string(),
            left: (whole - before).to_string(),
        });
    }
    let at = |q: &BigDecimal| -> Result<LineAmounts, TaxError> {
        let discount = line.discount.map(|d| match d {
            Discount::Amount(a) if q != whole => Discount::Amount(round2(&(a * q / whole))),
            other => other.clone(),
        });
        line_amounts(
            LineInput {
                quantity: q,
                discount: discount.as_ref(),
                ..line
            },
            free,
            igv_rate,
            icbper_rate,
        )
    };
    let taken = at(&upto)?;
    if before.is_zero() {
        return Ok(taken);
    }
    Ok(taken.minus(&at(before)?, part))
}

impl LineAmounts {
    /// These amounts less `earlier`'s (the same line at fewer units), for `part` units.
    fn minus(&self, earlier: &LineAmounts, part: &BigDecimal) -> LineAmounts {
        let ten = |v: BigDecimal| v.with_scale_round(10, RoundingMode::HalfUp).normalized();
        let base_value = &self.base_value - &earlier.base_value;
        let payable = &self.payable - &earlier.payable;
        let (unit_value, reference_price) = if self.is_free() {
            (BigDecimal::zero(), self.reference_price.clone())
        } else {
            (ten(&base_value / part), ten(&payable / part))
        };
        LineAmounts {
            affectation: self.affectation,
            scheme: self.scheme,
            gross: &self.gross - &earlier.gross,
            discount: &self.discount - &earlier.discount,
            base_value,
            discount_value: &self.discount_value - &earlier.discount_value,
            value: &self.value - &earlier.value,
            igv: &self.igv - &earlier.igv,
            icbper: &self.icbper - &earlier.icbper,
            icbper_rate: self.icbper_rate.clone(),
            payable,
            unit_value,
            reference_price,
            reference_code: self.reference_code,
            percent: self.percent.clone(),
        }
    }
}

/// One document-level `cac:TaxSubtotal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeTotal {
    pub scheme: TaxScheme,
    /// Sum of the lines' values (none for ICBPER).
    pub taxable: BigDecimal,
    pub tax: BigDecimal,
}

/// A document's totals: sums of its lines' rounded amounts.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DocumentTotals {
    /// Value of the gravado (1000), exonerado (9997), inafecto (9998) and free (9996) lines.
    pub gravada: BigDecimal,
    pub exonerada: BigDecimal,
    pub inafecta: BigDecimal,
    pub gratuita: BigDecimal,
    /// IGV of the onerous gravado lines (what the buyer pays).
    pub igv: BigDecimal,
    /// IGV of the free gravado lines (the issuer's, not charged).
    pub igv_gratuita: BigDecimal,
    pub icbper: BigDecimal,
    /// Line discounts with taxes, as the buyer sees them.
    pub discounts: BigDecimal,
    /// `LegalMonetaryTotal/LineExtensionAmount`: gravada + exonerada + inafecta.
    pub subtotal: BigDecimal,
    /// `TaxTotal/TaxAmount`: igv + icbper.
    pub taxes: BigDecimal,
    /// `TaxInclusiveAmount` and `PayableAmount`: subtotal + taxes.
    pub total: BigDecimal,
}

impl DocumentTotals {
    /// Sums the lines' amounts.
    pub fn of<'a>(lines: impl IntoIterator<Item = &'a LineAmounts>) -> Self {
        let mut t = Self::default();
        for l in lines {
            match l.scheme {
                TaxScheme::Igv => {
                    t.gravada += &l.value;
                    t.igv += &l.igv;
                }
                TaxScheme::Exo => t.exonerada += &l.value,
                TaxScheme::Ina => t.inafecta += &l.value,
                TaxScheme::Gra | TaxScheme::Icbper => {
                    t.gratuita += &l.value;
                    t.igv_gratuita += &l.igv;
                }
            }
            t.icbper += &l.icbper;
            t.discounts += &l.discount;
        }
        t.subtotal = &t.gravada + &t.exonerada + &t.inafecta;
        t.taxes = &t.igv + &t.icbper;
        t.total = &t.subtotal + &t.taxes;
        for v in [
            &mut t.gravada,
            &mut t.exonerada,
            &mut t.inafecta,
            &mut t.gratuita,
            &mut t.igv,
            &mut t.igv_gratuita,
            &mut t.icbper,
            &mut t.discounts,
            &mut t.subtotal,
            &mut t.taxes,
            &mut t.total,
        ] {
            *v = round2(v);
        }
        t
    }

    /// The document's `cac:TaxSubtotal`s: one per scheme its lines use, in [`TaxScheme::ALL`]
    /// order (2638 asks for each scheme a line uses).
    pub fn subtotals(&self, lines: &[LineAmounts]) -> Vec<SchemeTotal> {
        let used = |s: TaxScheme| lines.iter().any(|l| l.scheme == s);
        let mut out = Vec::with_capacity(5);
        for scheme in TaxScheme::ALL {
            let (present, taxable, tax) = match scheme {
                TaxScheme::Igv => (used(scheme), &self.gravada, &self.igv),
                TaxScheme::Exo => (used(scheme), &self.exonerada, &BigDecimal::zero()),
                TaxScheme::Ina => (used(scheme), &self.inafecta, &BigDecimal::zero()),
                TaxScheme::Gra => (used(scheme), &self.gratuita, &self.igv_gratuita),
                TaxScheme::Icbper => (
                    lines.iter().any(|l| l.icbper_rate.is_some()),
                    &BigDecimal::zero(),
                    &self.icbper,
                ),
            };
            if present {
                out.push(SchemeTotal {
                    scheme,
                    taxable: round2(taxable),
                    tax: round2(tax),
                });
            }
        }
        out
    }
}

/// Legend 1002 (catálogo 52), written when a document has free lines.
pub const FREE_LEGEND: &str =
    "TRANSFERENCIA GRATUITA DE UN BIEN Y/O SERVICIO PRESTADO GRATUITAMENTE";

/// The amount in words of legend 1000: `SON CUARENTA Y SIETE CON 20/100 SOLES`.
pub fn amount_in_words(amount: &BigDecimal, currency: &str) -> String {
    let cents = round2(amount).abs();
    let (digits, _) = cents.with_scale(2).as_bigint_and_exponent();
    let total: u128 = digits.to_string().parse().unwrap_or(0);
    let (whole, frac) = (total / 100, total % 100);
    let name = match currency {
        "PEN" => "SOLES",
        "USD" => "DÓLARES AMERICANOS",
        "EUR" => "EUROS",
        other => other,
    };
    format!("SON {} CON {frac:02}/100 {name}", number_words(whole))
}

fn number_words(n: u128) -> String {
    if n == 0 {
        return "CERO".to_owned();
    }
    let mut parts = Vec::new();
    let millions = n / 1_000_000;
    let rest = n % 1_000_000;
    if millions == 1 {
        parts.push("UN MILLÓN".to_owned());
    } else if millions > 1 {
        parts.push(format!("{} MILLONES", apocope(&number_words(millions))));
    }
    let thousands = rest / 1000;
    let units = rest % 1000;
    if thousands == 1 {
        parts.push("MIL".to_owned());
    } else if thousands > 1 {
        parts.push(format!("{} MIL", apocope(&below_thousand(thousands))));
    }
    if units > 0 {
        parts.push(below_thousand(units));
    }
    parts.join(" ")
}

/// "UNO" before a noun is "UN" ("VEINTIUN MIL", "TREINTA Y UN MILLONES").
fn apocope(words: &str) -> String {
    match words.strip_suffix("VEINTIUNO") {
        Some(head) => format!("{head}VEINTIÚN"),
        None => match words.strip_suffix("UNO") {
            Some(head) => format!("{head}UN"),
            None => words.to_owned(),
        },
    }
}

fn below_thousand(n: u128) -> String {
    const UNITS: [&str; 30] = [
        "",
        "UNO",
        "DOS",
        "TRES",
        "CUATRO",
        "CINCO",
        "SEIS",
        "SIETE",
        "OCHO",
        "NUEVE",
        "DIEZ",
        "ONCE",
        "DOCE",
        "TRECE",
        "CATORCE",
        "QUINCE",
        "DIECISÉIS",
        "DIECISIETE",
        "DIECIOCHO",
        "DIECINUEVE",
        "VEINTE",
        "VEINTIUNO",
        "VEINTIDÓS",
        "VEINTITRÉS",
        "VEINTICUATRO",
        "VEINTICINCO",
        "VEINTISÉIS",
        "VEINTISIETE",
        "VEINTIOCHO",
        "VEINTINUEVE",
    ];
    const TENS: [&str; 10] = [
        "",
        "",
        "",
        "TREINTA",
        "CUARENTA",
        "CINCUENTA",
        "SESENTA",
        "SETENTA",
        "OCHENTA",
        "NOVENTA",
    ];
    const HUNDREDS: [&str; 10] = [
        "",
        "CIENTO",
        "DOSCIENTOS",
        "TRESCIENTOS",
        "CUATROCIENTOS",
        "QUINIENTOS",
        "SEISCIENTOS",
        "SETECIENTOS",
        "OCHOCIENTOS",
        "NOVECIENTOS",
    ];
    if n == 100 {
        return "CIEN".to_owned();
    }
    let h = (n / 100) as usize;
    let r = (n % 100) as usize;
    let tens = if r < 30 {
        UNITS[r].to_owned()
    } else if r.is_multiple_of(10) {
        TENS[r / 10].to_owned()
    } else {
        format!("{} Y {}", TENS[r / 10], UNITS[r % 10])
    };
    match (HUNDREDS[h], tens.is_empty()) {
        ("", _) => tens,
        (hundreds, true) => hundreds.to_owned(),
        (hundreds, false) => format!("{hundreds} {tens}"),
    }
}

// ---- XML -----------------------------------------------------------------------------------

/// A `cac:TaxScheme` with the scheme's catálogo 05 id, name and type code.
pub(crate) fn write_scheme(w: &mut Xml, scheme: TaxScheme) {
    w.open("cac:TaxScheme");
    w.leaf("cbc:ID", &[], scheme.id());
    w.leaf("cbc:Name", &[], scheme.name());
    w.leaf("cbc:TaxTypeCode", &[], scheme.type_code());
    w.close("cac:TaxScheme");
}

/// The document's `cac:TaxTotal` (one `cac:TaxSubtotal` per scheme its lines use) and its
/// `cac:LegalMonetaryTotal`. Line discounts are catálogo 53 code 00 (they reduce the base), so
/// they are inside `LineExtensionAmount` and `AllowanceTotalAmount` (codes 01, 03 only, 3300)
/// is left out.
pub(crate) fn write_document_taxes(
    w: &mut Xml,
    cur: &str,
    totals: &DocumentTotals,
    lines: &[LineAmounts],
) {
    w.open("cac:TaxTotal");
    w.amount("cbc:TaxAmount", cur, &totals.taxes);
    for sub in totals.subtotals(lines) {
        w.open("cac:TaxSubtotal");
        if sub.scheme != TaxScheme::Icbper {
            w.amount("cbc:TaxableAmount", cur, &sub.taxable);
        }
        w.amount("cbc:TaxAmount", cur, &sub.tax);
        w.open("cac:TaxCategory");
        write_scheme(w, sub.scheme);
        w.close("cac:TaxCategory");
        w.close("cac:TaxSubtotal");
    }
    w.close("cac:TaxTotal");

    w.open("cac:LegalMonetaryTotal");
    w.amount("cbc:LineExtensionAmount", cur, &totals.subtotal);
    w.amount("cbc:TaxInclusiveAmount", cur, &totals.total);
    w.amount("cbc:PayableAmount", cur, &totals.total);
    w.close("cac:LegalMonetaryTotal");
}

/// An invoice line's `LineExtensionAmount`, `PricingReference`, `AllowanceCharge` (its
/// discount) and `TaxTotal` (its affectation's subtotal, and ICBPER's), in the order of
/// `InvoiceLineType`.
pub(crate) fn write_line_taxes(w: &mut Xml, cur: &str, a: &LineAmounts) {
    write_line_value(w, cur, a);
    if !a.discount_value.is_zero() {
        write_line_discount(w, cur, a);
    }
    write_line_tax_total(w, cur, a);
}

/// A line's `LineExtensionAmount` and `PricingReference` (price 01 with taxes, or 02
/// referential for a free line).
pub(crate) fn write_line_value(w: &mut Xml, cur: &str, a: &LineAmounts) {
    w.amount("cbc:LineExtensionAmount", cur, &a.value);
    w.open("cac:PricingReference");
    w.open("cac:AlternativeConditionPrice");
    w.leaf(
        "cbc:PriceAmount",
        &[("currencyID", cur)],
        &decimal(&a.reference_price, 2, 10),
    );
    w.leaf("cbc:PriceTypeCode", &[], a.reference_code);
    w.close("cac:AlternativeConditionPrice");
    w.close("cac:PricingReference");
}

/// A line's discount as `cac:AllowanceCharge` code 00 (reduces the base).
fn write_line_discount(w: &mut Xml, cur: &str, a: &LineAmounts) {
    w.open("cac:AllowanceCharge");
    w.leaf("cbc:ChargeIndicator", &[], "false");
    w.leaf("cbc:AllowanceChargeReasonCode", &[], DISCOUNT_REDUCES_BASE);
    w.leaf(
        "cbc:MultiplierFactorNumeric",
        &[],
        &decimal(&(&a.discount_value / &a.base_value), 2, 5),
    );
    w.amount("cbc:Amount", cur, &a.discount_value);
    w.amount("cbc:BaseAmount", cur, &a.base_value);
    w.close("cac:AllowanceCharge");
}

/// A line's `cac:TaxTotal`: its affectation's subtotal, and ICBPER's.
pub(crate) fn write_line_tax_total(w: &mut Xml, cur: &str, a: &LineAmounts) {
    w.open("cac:TaxTotal");
    w.amount("cbc:TaxAmount", cur, &a.tax_total());
    w.open("cac:TaxSubtotal");
    w.amount("cbc:TaxableAmount", cur, &a.value);
    w.amount("cbc:TaxAmount", cur, &a.igv);
    w.open("cac:TaxCategory");
    w.leaf("cbc:Percent", &[], &decimal(&a.percent, 0, 5));
    w.leaf("cbc:TaxExemptionReasonCode", &[], a.affectation.code());
    write_scheme(w, a.scheme);
    w.close("cac:TaxCategory");
    w.close("cac:TaxSubtotal");
    if let Some(rate) = &a.icbper_rate {
        w.open("cac:TaxSubtotal");
        w.amount("cbc:TaxAmount", cur, &a.icbper);
        w.leaf(
            "cbc:BaseUnitMeasure",
            &[("unitCode", "NIU")],
            &decimal(&(&a.icbper / rate), 0, 0),
        );
        w.open("cac:TaxCategory");
        w.leaf(
            "cbc:PerUnitAmount",
            &[("currencyID", cur)],
            &decimal(rate, 2, 5),
        );
        write_scheme(w, TaxScheme::Icbper);
        w.close("cac:TaxCategory");
        w.close("cac:TaxSubtotal");
    }
    w.close("cac:TaxTotal");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> BigDecimal {
        s.parse().unwrap()
    }

    #[test]
    fn amounts_in_words() {
        let w = |s: &str| amount_in_words(&d(s), "PEN");
        assert_eq!(w("47.20"), "SON CUARENTA Y SIETE CON 20/100 SOLES");
        assert_eq!(w("118"), "SON CIENTO DIECIOCHO CON 00/100 SOLES");
        assert_eq!(w("0.5"), "SON CERO CON 50/100 SOLES");
        assert_eq!(w("100"), "SON CIEN CON 00/100 SOLES");
        assert_eq!(w("1001.01"), "SON MIL UNO CON 01/100 SOLES");
        assert_eq!(
            w("21521.99"),
            "SON VEINTIÚN MIL QUINIENTOS VEINTIUNO CON 99/100 SOLES"
        );
        assert_eq!(w("2000000"), "SON DOS MILLONES CON 00/100 SOLES");
        assert_eq!(
            w("1031000.30"),
            "SON UN MILLÓN TREINTA Y UN MIL CON 30/100 SOLES"
        );
    }

    #[test]
    fn codes_parse_and_map_to_their_schemes() {
        assert_eq!(Affectation::parse("10").unwrap().scheme(), TaxScheme::Igv);
        assert_eq!(Affectation::parse("20").unwrap().scheme(), TaxScheme::Exo);
        assert_eq!(Affectation::parse("30").unwrap().scheme(), TaxScheme::Ina);
        for free in ["11", "15", "21", "31", "37"] {
            assert_eq!(Affectation::parse(free).unwrap().scheme(), TaxScheme::Gra);
        }
        for bad in ["17", "40", "1", "", "99"] {
            assert!(Affectation::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Affectation::INAFECTO.free_variant().code(), "31");
        assert!(UnitCode::parse("KGM").is_ok());
        assert!(UnitCode::parse("kgm").is_err());
    }

    #[test]
    fn quantities_have_at_most_three_decimals() {
        assert_eq!(check_quantity(&d("1.250"), true).unwrap(), d("1.25"));
        assert!(check_quantity(&d("1.2505"), true).is_err());
        assert!(matches!(
            check_quantity(&d("1.5"), false),
            Err(TaxError::WholeQuantity(_))
        ));
        assert!(check_quantity(&d("0"), true).is_err());
        assert!(check_quantity(&d("2.000"), false).is_ok());
    }

    #[test]
    fn dated_tables() {
        let day = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(igv_rate_on(day(2026, 12, 2)), d("0.18"));
        assert_eq!(icbper_on(day(2019, 7, 31)), None);
        assert_eq!(icbper_on(day(2019, 8, 1)), Some(d("0.10")));
        assert_eq!(icbper_on(day(2022, 6, 1)), Some(d("0.40")));
        assert_eq!(icbper_on(day(2026, 1, 1)), Some(d("0.50")));
    }
}
