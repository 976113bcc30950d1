//! The states of a sale's SUNAT send ([`SunatStatus`]) and of a checkout reservation
//! ([`ReservationStatus`]) as types: stored in their `TEXT` columns, sent on the wire and printed
//! as the same uppercase words (`PENDING`, `ACTIVE`...), and nowhere else spelled as strings.
//!
//! Reading a word that is not a state (from the database or a request) is an [`UnknownState`]
//! error, never a panic.

use std::fmt;
use std::str::FromStr;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

/// A word that names no state of `what`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {what}: expected one of {expected}")]
pub struct UnknownState {
    /// What the word should have named, e.g. "SUNAT status".
    pub what: &'static str,
    /// The word as read.
    pub value: String,
    /// The words that name a state, separated by commas.
    pub expected: &'static str,
}

/// Defines a state enum whose variants are stored, serialized and printed as the given words.
macro_rules! text_states {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow, Serialize,
            Deserialize, utoipa::ToSchema,
        )]
        #[diesel(sql_type = Text)]
        // Not `#[serde(rename = $word)]`: utoipa does not read a macro's literal there. Every word
        // is its variant's name in uppercase; the tests hold serde, utoipa and `as_str` together.
        #[serde(rename_all = "UPPERCASE")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every state, in the order of the declaration.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The word stored in the database and sent on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $word, )+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s {
                    $( $word => Ok(Self::$variant), )+
                    _ => Err(UnknownState {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($word, ", "),+).trim_end_matches(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let word = std::str::from_utf8(bytes.as_bytes())?;
                Ok(word.parse::<Self>()?)
            }
        }
    };
}

text_states! {
    /// A sale's SUNAT state (`sales.sunat_status`; `docs/job-states.md` draws its machine):
    /// PENDING -> SENDING -> ACCEPTED | REJECTED | ERROR | CONFLICT, SENDING -> PENDING when a
    /// retry is due, ERROR -> SENDING on a retry.
    SunatStatus ("SUNAT status") {
        /// Not sent yet, or a retry is due. The column's default.
        Pending = "PENDING",
        /// A worker holds the sale and is sending it.
        Sending = "SENDING",
        /// SUNAT accepted it (possibly with observations); its CDR, PDF and QR are stored.
        Accepted = "ACCEPTED",
        /// SUNAT rejected it: final, never sent again.
        Rejected = "REJECTED",
        /// Retries used up, or a problem that needs a person.
        Error = "ERROR",
        /// SUNAT already holds the sale's number, with other data or as voided or rejected, and
        /// nothing says an earlier send of ours put it there (a restored database, a second POS
        /// on the same series): a person must look. No receipt is printed; never sent again by
        /// itself.
        Conflict = "CONFLICT",
    }
}

text_states! {
    /// A checkout reservation's state (`reservations.status`): ACTIVE holds stock until it is
    /// CONFIRMED, RELEASED (by its owner) or EXPIRED (by the release job).
    ReservationStatus ("reservation status") {
        /// Holds its stock until `expires_at`.
        Active = "ACTIVE",
        /// Confirmed in time: its stock is sold (it may become a sale).
        Confirmed = "CONFIRMED",
        /// Released before it expired: its stock went back.
        Released = "RELEASED",
        /// Expired unconfirmed: the release job gave its stock back.
        Expired = "EXPIRED",
        /// Allowed by the column's CHECK; nothing in Faena writes it today.
        Cancelled = "CANCELLED",
    }
}

impl SunatStatus {
    /// The states in which SUNAT has answered for good: the sale is never sent again.
    pub const DECIDED: [Self; 2] = [Self::Accepted, Self::Rejected];

    /// True in a [`Self::DECIDED`] state.
    pub fn is_decided(self) -> bool {
        Self::DECIDED.contains(&self)
    }

    /// The state as the shop's staff read it, in Spanish (the API's `sunat.status_label`).
    pub const fn label(self) -> &'static str {
        match self {
            Self::Pending => "Pendiente de envío a SUNAT",
            Self::Sending => "Enviando a SUNAT",
            Self::Accepted => "Aceptado por SUNAT",
            Self::Rejected => "Rechazado por SUNAT",
            Self::Error => "Error de envío: se reintenta o necesita revisión",
            Self::Conflict => {
                "Conflicto: SUNAT ya tiene este número con otros datos; necesita revisión"
            }
        }
    }
}

impl Default for SunatStatus {
    /// PENDING, the column's default.
    fn default() -> Self {
        Self::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words, the enum, serde and the OpenAPI schema agree.
    fn round_trips<T>(all: &[T], as_str: fn(T) -> &'static str)
    where
        T: Copy + fmt::Debug + PartialEq + FromStr<Err = UnknownState> + Serialize,
        T: for<'de> Deserialize<'de> + fmt::Display + utoipa::PartialSchema,
    {
        let schema = serde_json::to_value(T::schema()).expect("a schema serializes");
        let words: Vec<_> = all.iter().map(|&s| as_str(s)).collect();
        assert_eq!(schema["enum"], serde_json::json!(words), "{schema}");
        for &state in all {
            let word = as_str(state);
            assert_eq!(word.parse::<T>(), Ok(state));
            assert_eq!(state.to_string(), word);
            let json = serde_json::to_string(&state).expect("a state serializes");
            assert_eq!(json, format!("\"{word}\""));
            assert_eq!(serde_json::from_str::<T>(&json).expect("and back"), state);
        }
    }

    #[test]
    fn sunat_status_round_trips_through_its_words() {
        round_trips(SunatStatus::ALL, SunatStatus::as_str);
        let words: Vec<_> = SunatStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            ["PENDING", "SENDING", "ACCEPTED", "REJECTED", "ERROR", "CONFLICT"]
        );
    }

    #[test]
    fn every_sunat_status_has_a_spanish_label() {
        let mut labels: Vec<_> = SunatStatus::ALL.iter().map(|s| s.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), SunatStatus::ALL.len());
        assert!(SunatStatus::Conflict.label().starts_with("Conflicto"));
    }

    #[test]
    fn reservation_status_round_trips_through_its_words() {
        round_trips(ReservationStatus::ALL, ReservationStatus::as_str);
        let words: Vec<_> = ReservationStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            words,
            ["ACTIVE", "CONFIRMED", "RELEASED", "EXPIRED", "CANCELLED"]
        );
    }

    #[test]
    fn unknown_words_are_errors_that_name_the_word_and_the_choices() {
        for word in ["", "accepted", "Accepted", "ACCEPTED ", "SENT"] {
            let e = word.parse::<SunatStatus>().expect_err(word);
            assert_eq!(e.value, word);
            assert_eq!(
                e.to_string(),
                format!(
                    "`{word}` is not a SUNAT status: expected one of \
                     PENDING, SENDING, ACCEPTED, REJECTED, ERROR, CONFLICT"
                )
            );
        }
        let e = "active"
            .parse::<ReservationStatus>()
            .expect_err("lowercase is not a state");
        assert_eq!(e.what, "reservation status");
        assert!(serde_json::from_str::<SunatStatus>("\"DONE\"").is_err());
        assert!(serde_json::from_str::<ReservationStatus>("\"active\"").is_err());
    }

    #[test]
    fn only_accepted_and_rejected_are_decided() {
        let decided: Vec<_> = SunatStatus::ALL
            .iter()
            .filter(|s| s.is_decided())
            .copied()
            .collect();
        assert_eq!(decided, [SunatStatus::Accepted, SunatStatus::Rejected]);
    }
}
