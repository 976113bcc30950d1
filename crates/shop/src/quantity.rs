//! Quantities of goods as exact decimals with at most 3 decimals (a scale weighs grams): a line's
//! [`Quantity`] (parsed once: above 0, at most 3 decimals and 8 integer digits), and the stock
//! levels, thresholds and stock changes that are read and written the same way ([`number`]).
//!
//! On the wire a quantity is read from a JSON number (`2`, `1.25`) or a decimal string (`"1.250"`)
//! and written as a JSON number: whole quantities as integers (`2`), others with their decimals
//! (`1.25`). serde_json (without its `arbitrary_precision` feature, which would change it for the
//! whole workspace) hands a decimal number over as an `f64`; its shortest round-trip text
//! (`0.3`, `2.675`) is exactly what the client wrote whenever that has at most 15 significant
//! digits, which every accepted quantity has (8 integer digits and 3 decimals at most), so the
//! text is parsed as a decimal and never computed with as a float. Written back, a quantity of at
//! most 15 significant digits goes through the nearest `f64`, whose shortest text is again the
//! quantity. Whether a product takes decimals at all (`decimal_quantity`) is the product's: the
//! stock code checks it ([`crate::stock`]).

use std::fmt;

use bigdecimal::BigDecimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most decimals a quantity, a stock or a stock change may have.
pub const DECIMALS: i64 = faena_sunat::taxation::QUANTITY_DECIMALS;

/// A line's quantity is below this (8 integer digits; SUNAT's `InvoicedQuantity` takes 12).
const LINE_LIMIT: i64 = 100_000_000;

/// What is wrong with a quantity, with the value and what to give instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{0:?} is not a quantity: give a number such as 2 or 1.25, or a decimal string such as \"1.250\"")]
    NotANumber(String),
    #[error("{0} is not above 0: give a quantity above 0, such as 1 or 0.5")]
    NotPositive(String),
    #[error("{0} has more than 3 decimals: give at most 3 (grams of a kilogram, such as 1.250)")]
    TooManyDecimals(String),
    #[error("{0} is too large: a line takes at most 99999999.999")]
    TooLarge(String),
    #[error("{0} is negative: give 0 or more")]
    Negative(String),
}

/// Parses decimal text: an optional minus sign, digits, and optionally a dot and digits (no
/// exponent, no spaces, no plus sign), with at most [`DECIMALS`] decimals once trailing zeros
/// are dropped (`"1.2500"` is 1.25). Answers the value with scale 3.
pub fn parse_decimal(text: &str) -> Result<BigDecimal, QuantityError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(frac)
        || (digits.contains('.') && frac.is_empty())
    {
        return Err(QuantityError::NotANumber(text.to_owned()));
    }
    if frac.trim_end_matches('0').len() > DECIMALS as usize {
        return Err(QuantityError::TooManyDecimals(text.to_owned()));
    }
    let value: BigDecimal = text
        .parse()
        .map_err(|_| QuantityError::NotANumber(text.to_owned()))?;
    Ok(value.with_scale(DECIMALS))
}

/// A decimal with at most 3 decimals as text without trailing zeros: `2`, `1.25`, `0.5`.
pub fn format(q: &BigDecimal) -> String {
    let s = q.with_scale(DECIMALS).to_plain_string();
    match s.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{frac}")
            }
        }
        None => s,
    }
}

/// With exactly 3 decimals when it has any (`1.250`), else whole (`2`): how a weighed quantity
/// is printed next to its unit.
pub fn format_fixed(q: &BigDecimal) -> String {
    if is_whole(q) {
        format(q)
    } else {
        q.with_scale(DECIMALS).to_plain_string()
    }
}

/// Whether `q` has no fraction.
pub fn is_whole(q: &BigDecimal) -> bool {
    q.with_scale(0) == *q
}

/// A line's quantity: above 0, at most 3 decimals, below 100000000. Whether its product takes a
/// fraction is checked where the product is known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Quantity(BigDecimal);

impl Quantity {
    /// Parses decimal text (see [`parse_decimal`]).
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        Self::check(parse_decimal(text)?, text)
    }

    /// A whole number of units.
    pub fn whole(units: i64) -> Result<Self, QuantityError> {
        Self::check(
            BigDecimal::from(units).with_scale(DECIMALS),
            &units.to_string(),
        )
    }

    /// Checks a decimal read elsewhere (a stored line).
    pub fn from_decimal(value: &BigDecimal) -> Result<Self, QuantityError> {
        Self::parse(&value.to_plain_string())
    }

    fn check(value: BigDecimal, text: &str) -> Result<Self, QuantityError> {
        if value <= 0 {
            return Err(QuantityError::NotPositive(text.to_owned()));
        }
        if value >= LINE_LIMIT {
            return Err(QuantityError::TooLarge(text.to_owned()));
        }
        Ok(Self(value))
    }

    /// The value, with scale 3.
    pub fn decimal(&self) -> &BigDecimal {
        &self.0
    }

    pub fn is_whole(&self) -> bool {
        is_whole(&self.0)
    }
}

impl fmt::Display for Quantity {
    /// Without trailing zeros: `2`, `1.25`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(&self.0))
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        number::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(DecimalText)?;
        Quantity::parse(&text).map_err(de::Error::custom)
    }
}

/// Reads a JSON number or string as its decimal text (see the module's documentation).
struct DecimalText;

impl Visitor<'_> for DecimalText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number such as 2 or 1.25, or a decimal string such as \"1.250\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        if !v.is_finite() {
            return Err(E::custom(QuantityError::NotANumber(v.to_string())));
        }
        // Rust's `Display` of an f64: the shortest text that reads back as it, never exponent
        // notation (1e-7 is `0.0000001`).
        Ok(v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}

/// `#[serde(with = "crate::quantity::number")]` for a `BigDecimal` holding a stock, a threshold or
/// a stock change: written as a JSON number (whole as an integer), read from a number or a
/// decimal string with at most 3 decimals, of any sign (the caller checks its range).
pub mod number {
    use super::*;

    pub fn serialize<S: Serializer>(q: &BigDecimal, s: S) -> Result<S::Ok, S::Error> {
        let text = format(q);
        if let Ok(units) = text.parse::<i64>() {
            return s.serialize_i64(units);
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => s.serialize_f64(v),
            _ => Err(serde::ser::Error::custom(format!(
                "quantity {text} cannot be written as a JSON number"
            ))),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BigDecimal, D::Error> {
        let text = d.deserialize_any(DecimalText)?;
        parse_decimal(&text).map_err(de::Error::custom)
    }

    /// For `Option<BigDecimal>` fields (a patch).
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(q: &Option<BigDecimal>, s: S) -> Result<S::Ok, S::Error> {
            match q {
                Some(q) => super::serialize(q, s),
                None => s.serialize_none(),
            }
        }

        /// `null` is `None`, as for any optional field.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<BigDecimal>, D::Error> {
            #[derive(Deserialize)]
            struct Given(#[serde(with = "super")] BigDecimal);
            Ok(Option::<Given>::deserialize(d)?.map(|g| g.0))
        }
    }
}

/// The OpenAPI schema of a quantity a request gives: a number above 0 or a decimal string.
pub fn request_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .exclusive_minimum(Some(0))
                .maximum(Some(99_999_999.999))
                .description(Some("At most 3 decimals")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[0-9]{1,8}(\.[0-9]{1,3})?$")),
        )
        .description(Some(
            "A JSON number (2, 1.25) or a decimal string (\"1.250\"): above 0, at most 3 \
             decimals; a fraction only for a product with `decimal_quantity`",
        ))
        .examples([serde_json::json!(1.25), serde_json::json!("1.250")])
        .build();
    Schema::OneOf(one_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(body: &str) -> Result<Quantity, String> {
        serde_json::from_str::<Quantity>(body).map_err(|e| e.to_string())
    }

    fn d(s: &str) -> BigDecimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn numbers_and_strings_read_exactly() {
        for (body, value) in [
            ("2", "2"),
            ("1.25", "1.25"),
            ("\"1.250\"", "1.25"),
            ("\"1.2500\"", "1.25"),
            ("1.1", "1.1"),
            ("0.3", "0.3"),
            ("2.675", "2.675"),
            ("0.001", "0.001"),
            ("2.0", "2"),
            ("1e2", "100"),
            ("99999999.999", "99999999.999"),
            ("\"007\"", "7"),
        ] {
            let q = from_json(body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(q.decimal(), &d(value), "{body}");
            assert_eq!(q.to_string(), value, "{body}");
        }
        // Exact, not the nearest binary fraction: 2.675 is not 2.67499999999999982236431605997495353221893310546875.
        assert_eq!(
            from_json("2.675").map(|q| q.decimal().with_scale(10).to_plain_string()),
            Ok("2.6750000000".to_owned())
        );
    }

    #[test]
    fn bad_quantities_say_what_to_give() {
        for (body, says) in [
            ("0", "not above 0"),
            ("\"0.000\"", "not above 0"),
            ("-1", "not above 0"),
            ("-0.5", "not above 0"),
            ("1.2505", "more than 3 decimals"),
            ("\"1.2505\"", "more than 3 decimals"),
            ("0.0001", "more than 3 decimals"),
            ("100000000", "too large"),
            ("\"\"", "not a quantity"),
            ("\"1.\"", "not a quantity"),
            ("\".5\"", "not a quantity"),
            ("\"1e3\"", "not a quantity"),
            ("\" 1\"", "not a quantity"),
            ("\"+1\"", "not a quantity"),
            ("\"abc\"", "not a quantity"),
            ("true", "a number such as 2"),
            ("null", "a number such as 2"),
        ] {
            let e = from_json(body).expect_err(body);
            assert!(e.contains(says), "{body}: {e}");
        }
    }

    #[test]
    fn quantities_write_as_exact_numbers() {
        #[derive(Serialize)]
        struct Line {
            quantity: Quantity,
            #[serde(with = "number")]
            stock: BigDecimal,
        }
        for (q, stock, json) in [
            ("2", "5.000", r#"{"quantity":2,"stock":5}"#),
            ("1.250", "0.750", r#"{"quantity":1.25,"stock":0.75}"#),
            (
                "0.3",
                "2147483647",
                r#"{"quantity":0.3,"stock":2147483647}"#,
            ),
            (
                "2.675",
                "9999999999.999",
                r#"{"quantity":2.675,"stock":9999999999.999}"#,
            ),
        ] {
            let line = Line {
                quantity: Quantity::parse(q).unwrap_or_else(|e| panic!("{q}: {e}")),
                stock: d(stock),
            };
            assert_eq!(serde_json::to_string(&line).ok().as_deref(), Some(json));
        }
    }

    #[test]
    fn an_optional_quantity_may_be_null_or_absent() {
        #[derive(Deserialize)]
        struct Patch {
            #[serde(default, with = "number::option")]
            threshold: Option<BigDecimal>,
        }
        let read = |body: &str| {
            serde_json::from_str::<Patch>(body)
                .map(|p| p.threshold)
                .map_err(|e| e.to_string())
        };
        assert_eq!(read("{}"), Ok(None));
        assert_eq!(read(r#"{"threshold": null}"#), Ok(None));
        assert_eq!(read(r#"{"threshold": "0.5"}"#), Ok(Some(d("0.500"))));
        assert!(read(r#"{"threshold": 0.0001}"#).is_err());
    }

    #[test]
    fn fixed_text_for_print() {
        assert_eq!(format_fixed(&d("1.25")), "1.250");
        assert_eq!(format_fixed(&d("2.000")), "2");
        assert_eq!(format(&d("0")), "0");
        assert!(is_whole(&d("3.000")) && !is_whole(&d("3.001")));
        assert_eq!(
            Quantity::whole(4).map(|q| q.decimal().clone()),
            Ok(d("4.000"))
        );
    }
}
