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
        // is its variant's name in SCREAMING_SNAKE_CASE (`CreditNote` is `CREDIT_NOTE`, which
        // UPPERCASE would make `CREDITNOTE`); the tests hold serde, utoipa and `as_str` together.
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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
    /// retry is due, ERROR -> SENDING on a retry; ACCEPTED -> VOIDED when SUNAT accepts the
    /// summary that voids it, ERROR (1079) -> ACCEPTED when it accepts the Resumen Diario that
    /// informs it.
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
        /// SUNAT voided it: an accepted Comunicación de Baja (facturas) or a Resumen Diario line
        /// with status 3 (boletas) carried its cancellation. Final.
        Voided = "VOIDED",
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
    pub const DECIDED: [Self; 3] = [Self::Accepted, Self::Rejected, Self::Voided];

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
            Self::Voided => "Anulado en SUNAT (comunicación de baja o resumen diario)",
        }
    }
}

text_states! {
    /// A Resumen Diario's or Comunicación de Baja's state (`sunat_summaries.state`):
    /// PENDING -> SENT (SUNAT answered a ticket) -> ACCEPTED | REJECTED; PENDING -> REJECTED when
    /// SUNAT refuses the file itself; PENDING | SENT -> ERROR when a person must look.
    SummaryState ("summary state") {
        /// Built; not sent yet, or a resend is due.
        Pending = "PENDING",
        /// SUNAT answered a ticket; `poll_sunat_ticket` asks for it.
        Sent = "SENT",
        /// The ticket answered 0: every line was applied.
        Accepted = "ACCEPTED",
        /// The ticket answered 99, or SUNAT refused the file: no line was applied.
        Rejected = "REJECTED",
        /// Needs a person (e.g. SUNAT already had this ID from a send whose answer was lost).
        Error = "ERROR",
    }
}

text_states! {
    /// How SUNAT learns of a sale's cancellation (`sale_cancellations.sunat_action`), from the
    /// decision table in `docs/decisions.md`.
    VoidRoute ("cancellation route") {
        /// SUNAT holds nothing to void (never sent, rejected, or answered 1079).
        None = "NONE",
        /// A line of a Comunicación de Baja (an accepted factura).
        Baja = "BAJA",
        /// A line with status 3 of a Resumen Diario (an accepted boleta).
        Resumen = "RESUMEN",
        /// A whole credit note (catálogo 09 code 01), made in the cancelling transaction: an
        /// accepted receipt past the voiding window. The note's own SUNAT state says where it
        /// stands; the cancellation's [`VoidState`] stays NONE.
        CreditNote = "CREDIT_NOTE",
    }
}

text_states! {
    /// Where a cancellation stands at SUNAT (`sale_cancellations.sunat_state`):
    /// QUEUED -> CARRIED -> VOIDED | FAILED, QUEUED -> FAILED past the 7 days; NONE when SUNAT
    /// has nothing to void, or when a credit note carries the cancellation (route CREDIT_NOTE:
    /// the note's own SUNAT state says where it stands).
    VoidState ("cancellation state") {
        None = "NONE",
        /// Waits for the nightly `build_sunat_summaries`.
        Queued = "QUEUED",
        /// In a summary SUNAT has not answered yet.
        Carried = "CARRIED",
        /// SUNAT accepted the summary: the receipt is voided.
        Voided = "VOIDED",
        /// SUNAT refused it, or it is past SUNAT's 7 days: a credit note is needed.
        Failed = "FAILED",
    }
}

impl VoidState {
    /// The state as the shop's staff read it, in Spanish.
    pub const fn label(self) -> &'static str {
        match self {
            Self::None => "Anulada en Faena; SUNAT no tiene nada que anular",
            Self::Queued => "Anulada; la baja sale con el resumen de esta noche",
            Self::Carried => "Anulada; esperando la respuesta de SUNAT a la baja",
            Self::Voided => "Anulada y dada de baja en SUNAT",
            Self::Failed => {
                "Anulada en Faena, pero SUNAT no la dio de baja: emita una nota de crédito"
            }
        }
    }
}

impl VoidRoute {
    /// How a cancellation by credit note stands, in Spanish, from its note's SUNAT state.
    pub const fn credit_note_label(note: SunatStatus) -> &'static str {
        match note {
            SunatStatus::Pending | SunatStatus::Sending | SunatStatus::Error => {
                "Anulada con una nota de crédito; su envío a SUNAT está en curso"
            }
            SunatStatus::Accepted | SunatStatus::Voided => {
                "Anulada con una nota de crédito aceptada por SUNAT"
            }
            SunatStatus::Rejected => {
                "Anulada en Faena, pero SUNAT rechazó la nota de crédito: necesita revisión"
            }
            SunatStatus::Conflict => {
                "Anulada con una nota de crédito en conflicto en SUNAT: necesita revisión"
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
            ["PENDING", "SENDING", "ACCEPTED", "REJECTED", "ERROR", "CONFLICT", "VOIDED"]
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
    fn cancellation_routes_and_states_round_trip_through_their_words() {
        round_trips(VoidRoute::ALL, VoidRoute::as_str);
        round_trips(VoidState::ALL, VoidState::as_str);
        let words: Vec<_> = VoidRoute::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(words, ["NONE", "BAJA", "RESUMEN", "CREDIT_NOTE"]);
        assert_eq!(
            VoidRoute::credit_note_label(SunatStatus::Accepted),
            "Anulada con una nota de crédito aceptada por SUNAT"
        );
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
                     PENDING, SENDING, ACCEPTED, REJECTED, ERROR, CONFLICT, VOIDED"
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
    fn only_accepted_rejected_and_voided_are_decided() {
        let decided: Vec<_> = SunatStatus::ALL
            .iter()
            .filter(|s| s.is_decided())
            .copied()
            .collect();
        assert_eq!(
            decided,
            [
                SunatStatus::Accepted,
                SunatStatus::Rejected,
                SunatStatus::Voided
            ]
        );
    }
}
