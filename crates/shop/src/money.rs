//! Money on the wire (JSON) and in CSV: always exactly two decimals (`"0.10"`, `"1.00"`,
//! `"100.00"`), whatever scale the value happens to carry.
//!
//! Amounts are `NUMERIC(12|14, 2)` in PostgreSQL, so they never have more than two decimals, but a
//! [`BigDecimal`] does not keep that scale: a stored `0.00` comes back as `0`, and sums and
//! products come back with whatever scale their arithmetic left. `BigDecimal`'s own `Display` and
//! serde write that scale, so every money field is written through here instead:
//! `#[serde(with = "crate::money")]` on the field, [`format`] for text (CSV, the CLI).

use bigdecimal::BigDecimal;
use serde::{Deserialize, Deserializer, Serializer};

/// `amount` with exactly two decimals and no exponent: `0` is `"0.00"`, `1.1` is `"1.10"`.
/// Amounts come from two-decimal columns, so setting the scale never drops a digit.
pub fn format(amount: &BigDecimal) -> String {
    amount.with_scale(2).to_plain_string()
}

/// Serializes an amount as a string with two decimals ([`format`]).
pub fn serialize<S: Serializer>(amount: &BigDecimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(amount))
}

/// Reads an amount as `BigDecimal` does (a decimal string, or a JSON number), for the stored
/// reports and summaries this crate wrote.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BigDecimal, D::Error> {
    BigDecimal::deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> String {
        format(&s.parse::<BigDecimal>().unwrap_or_default())
    }

    #[test]
    fn two_decimals_whatever_the_scale() {
        let cases = [
            ("0", "0.00"),
            ("0.00", "0.00"),
            ("0.1", "0.10"),
            ("1", "1.00"),
            ("1.5", "1.50"),
            ("100", "100.00"),
            ("1E+2", "100.00"),
            ("12.50", "12.50"),
            ("-3.2", "-3.20"),
            ("99999999999999.99", "99999999999999.99"),
        ];
        for (value, written) in cases {
            assert_eq!(money(value), written, "{value}");
        }
        let normalized = "100.00".parse::<BigDecimal>().map(|d| d.normalized());
        assert_eq!(
            normalized.map(|d| format(&d)).ok().as_deref(),
            Some("100.00")
        );
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Priced {
        #[serde(with = "crate::money")]
        price: BigDecimal,
    }

    #[test]
    fn serde_writes_a_string_and_reads_what_it_wrote() -> Result<(), serde_json::Error> {
        let p = Priced {
            price: BigDecimal::from(0),
        };
        let text = serde_json::to_string(&p)?;
        assert_eq!(text, r#"{"price":"0.00"}"#);
        let back: Priced = serde_json::from_str(&text)?;
        assert_eq!(back, p);
        let number: Priced = serde_json::from_str(r#"{"price":4.9}"#)?;
        assert_eq!(serde_json::to_string(&number)?, r#"{"price":"4.90"}"#);
        Ok(())
    }
}
