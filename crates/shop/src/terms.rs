//! A line's sale terms, as a checkout or a sale gives them: a discount (`{"percent": "10"}` or
//! `{"amount": "1.50"}`) and whether the line is given free. Checked once here for both, so a
//! checkout stores terms a sale made from it can use as they are.

use bigdecimal::BigDecimal;
use faena_sunat::taxation::{Discount, TaxError};
use serde::{Deserialize, Serialize};

/// A line discount: a percent above 0 and below 100, or an amount of at least 0.01 (2 decimals).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum DiscountInput {
    #[schema(value_type = String, example = "10")]
    Percent(BigDecimal),
    #[schema(value_type = String, example = "1.50")]
    Amount(BigDecimal),
}

impl DiscountInput {
    /// The discount, its range and decimals checked.
    pub fn check(&self) -> Result<Discount, TaxError> {
        match self {
            Self::Percent(p) => Discount::Percent(p.clone()),
            Self::Amount(a) => Discount::Amount(a.clone()),
        }
        .check()
    }

    /// As stored: `(discount_percent, discount_amount)`.
    pub fn columns(d: Option<&Discount>) -> (Option<BigDecimal>, Option<BigDecimal>) {
        match d {
            Some(Discount::Percent(p)) => (Some(p.clone()), None),
            Some(Discount::Amount(a)) => (None, Some(a.clone())),
            None => (None, None),
        }
    }

    /// From the stored columns (a percent wins; the database keeps at most one).
    pub fn from_columns(percent: Option<&BigDecimal>, amount: Option<&BigDecimal>) -> Option<Self> {
        match (percent, amount) {
            // As given: `10`, not `10.00` (a percent has at most 2 decimals).
            (Some(p), _) => Some(Self::Percent(
                crate::quantity::format(p)
                    .parse()
                    .unwrap_or_else(|_| p.clone()),
            )),
            (None, Some(a)) => Some(Self::Amount(a.with_scale(2))),
            (None, None) => None,
        }
    }

    /// The discount as the taxation reads it.
    pub fn discount(&self) -> Discount {
        match self {
            Self::Percent(p) => Discount::Percent(p.clone()),
            Self::Amount(a) => Discount::Amount(a.clone()),
        }
    }
}

/// A line's terms, checked: its discount, and whether it is free (never both).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineTerms {
    pub discount: Option<Discount>,
    pub free: bool,
}

/// Which of a line's fields a term error names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermField {
    Discount,
    Free,
}

impl TermField {
    pub fn name(self) -> &'static str {
        match self {
            Self::Discount => "discount",
            Self::Free => "free",
        }
    }
}

impl LineTerms {
    /// Checks a line's discount and `free`; the error names the field at fault.
    pub fn parse(
        discount: Option<&DiscountInput>,
        free: bool,
    ) -> Result<Self, (TermField, TaxError)> {
        let discount = discount
            .map(|d| d.check().map_err(|e| (TermField::Discount, e)))
            .transpose()?;
        if free && discount.is_some() {
            return Err((TermField::Free, TaxError::FreeWithDiscount));
        }
        Ok(Self { discount, free })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> BigDecimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn terms_name_the_field_at_fault() {
        let ten = DiscountInput::Percent(d("10"));
        assert_eq!(
            LineTerms::parse(Some(&ten), false).map(|t| t.discount),
            Ok(Some(Discount::Percent(d("10"))))
        );
        assert_eq!(
            LineTerms::parse(Some(&ten), true).map_err(|e| e.0),
            Err(TermField::Free)
        );
        let bad = DiscountInput::Amount(d("1.505"));
        assert_eq!(
            LineTerms::parse(Some(&bad), false).map_err(|e| e.0),
            Err(TermField::Discount)
        );
        assert_eq!(
            DiscountInput::from_columns(Some(&d("10.00")), None),
            Some(ten)
        );
    }
}
