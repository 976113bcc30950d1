//! XML text for SUNAT's documents: decimals in plain notation, escaping, and the small indenting
//! writer every document (Invoice, SummaryDocuments, VoidedDocuments) is written with.

use std::fmt::Write as _;

use bigdecimal::{BigDecimal, RoundingMode};

/// A decimal in plain notation with at least `min` and at most `max` decimals (`12.50`,
/// `8.4745762712`).
pub fn decimal(v: &BigDecimal, min: i64, max: i64) -> String {
    let s = v.with_scale_round(max, RoundingMode::HalfUp).to_string();
    let Some(dot) = s.find('.') else {
        // BigDecimal writes a zero as `0` whatever its scale: SUNAT's amounts want their decimals.
        let zeros = usize::try_from(min).unwrap_or(0);
        return if zeros == 0 {
            s
        } else {
            format!("{s}.{}", "0".repeat(zeros))
        };
    };
    let keep_at_least = dot + 1 + usize::try_from(min).unwrap_or(0);
    let trimmed = s.trim_end_matches('0');
    let end = trimmed.len().max(keep_at_least).min(s.len());
    s[..end].trim_end_matches('.').to_owned()
}

/// Escapes text for element content. Characters XML 1.0 does not allow are dropped.
pub fn escape_text(s: &str) -> String {
    escape(s, false)
}

/// Escapes text for a double-quoted attribute value.
pub fn escape_attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            '\t' if attr => out.push_str("&#x9;"),
            '\n' if attr => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
    out
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A tiny indenting writer: every text value goes through [`escape_text`], every attribute
/// through [`escape_attr`].
#[derive(Default)]
pub(crate) struct Xml {
    pub(crate) out: String,
    depth: usize,
}

impl Xml {
    pub(crate) fn into_string(self) -> String {
        self.out
    }

    pub(crate) fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    pub(crate) fn indent(&mut self) {
        for _ in 0..=self.depth {
            self.out.push_str("  ");
        }
    }

    pub(crate) fn open(&mut self, name: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>");
        self.depth += 1;
    }

    pub(crate) fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }

    pub(crate) fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.indent();
        let _ = write!(self.out, "<{name}");
        for (k, v) in attrs {
            let _ = write!(self.out, " {k}=\"{}\"", escape_attr(v));
        }
        let _ = writeln!(self.out, ">{}</{name}>", escape_text(text));
    }

    pub(crate) fn amount(&mut self, name: &str, currency: &str, v: &BigDecimal) {
        self.leaf(name, &[("currencyID", currency)], &decimal(v, 2, 2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_plain() {
        let d = |s: &str| s.parse::<BigDecimal>().unwrap();
        assert_eq!(decimal(&d("12.5"), 2, 2), "12.50");
        assert_eq!(decimal(&d("0"), 2, 2), "0.00", "a zero keeps its decimals");
        assert_eq!(decimal(&d("0.00"), 2, 10), "0.00");
        assert_eq!(decimal(&d("0"), 0, 2), "0");
        assert_eq!(decimal(&d("10"), 2, 10), "10.00");
        assert_eq!(decimal(&d("8.47457627118"), 2, 10), "8.4745762712");
        assert_eq!(decimal(&d("1000000"), 2, 2), "1000000.00");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape_text("A&B <x> \u{1}"), "A&amp;B &lt;x&gt; ");
        assert_eq!(escape_attr("a\"b\n"), "a&quot;b&#xA;");
    }
}
