//! What a `sendBill` answer means and what to do next, per the outcomes table of
//! `docs/sunat.md`: every CDR code, SOAP fault code and transport failure maps to one
//! [`Outcome`], whose [`Outcome::name`] is stable (it is stored in a database column).
//!
//! Codes and texts are SUNAT's (`CodigosRetorno` sheet of its validation workbook, the same
//! texts as greenter's `CodeErrors.xml`). An answer is read alone first; whether an earlier
//! attempt of ours may have registered the document is the caller's knowledge, applied with
//! [`Outcome::on_resend`].

use serde::{Deserialize, Serialize};

/// The classified result of one `sendBill` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// CDR ResponseCode 0 without observations: store the CDR, print the receipt.
    Accepted {
        code: String,
        description: String,
        notes: Vec<String>,
    },
    /// CDR code >= 4000 or 4xxx notes: accepted; keep the observations.
    #[serde(rename = "observed")]
    AcceptedWithObservations {
        code: String,
        description: String,
        notes: Vec<String>,
    },
    /// CDR 2000-3999: rejected, the number is used up. Terminal.
    Rejected {
        code: String,
        description: String,
        notes: Vec<String>,
    },
    /// SUNAT unavailable or service-side trouble: retry with backoff.
    Retryable {
        code: Option<String>,
        reason: String,
    },
    /// The document may or may not have been registered (read timeout after upload, HTTP 200
    /// without CDR): reconcile by resending the *stored* bytes, then read the answer with
    /// [`Outcome::on_resend`].
    Unknown { reason: String },
    /// 0140: the same document is being processed: wait, then reconcile; do not resend blindly.
    #[serde(rename = "in_process")]
    AlreadyInProcess { code: String, description: String },
    /// The number is taken at SUNAT and nothing says it was us: 1033 "El comprobante fue
    /// registrado previamente con otros datos", 0402 "La numeracion o nombre del documento ya ha
    /// sido enviado anteriormente", 2223 "El archivo ya fue presentado anteriormente", 4000 "El
    /// documento ya fue presentado anteriormente" (registered), or 1032 "El comprobante ya esta
    /// informado y se encuentra con estado anulado o rechazado" (used up). On a first send this
    /// means another document holds the number (a restored database, a second POS on the same
    /// series): a person must look. Never accepted, never retried.
    Conflict { code: String, description: String },
    /// 1033 / 0402 / 2223 / 4000 on a resend of the stored bytes after an unknown or in-process
    /// outcome ([`Outcome::on_resend`]): our first send registered the document. Accepted.
    AlreadyRegistered { code: String, description: String },
    /// Credentials or certificate (0101-0106, 0110-0113, 0154, 2325-2328), or an issuer not
    /// enabled for this channel (1078, 1080): pause sending, alert.
    #[serde(rename = "config_error")]
    PermanentConfig { code: String, description: String },
    /// A bug in the document (0151-0161, 0202-0204, 0252, 0300-0302, 0305, 0306, 1000-1999
    /// except 1032/1033/1078/1079/1080, 2335/2336):
    /// fix it and send again with the same number.
    #[serde(rename = "document_error")]
    PermanentDocument { code: String, description: String },
    /// 1079: a boleta past its deadline: it must go in a Resumen Diario.
    NeedsSummary { code: String, description: String },
}

impl Outcome {
    /// Every stable name, in declaration order.
    pub const NAMES: [&'static str; 11] = [
        "accepted",
        "observed",
        "rejected",
        "retryable",
        "unknown",
        "in_process",
        "conflict",
        "already_registered",
        "config_error",
        "document_error",
        "needs_summary",
    ];

    /// The stable name stored in the database.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::AcceptedWithObservations { .. } => "observed",
            Self::Rejected { .. } => "rejected",
            Self::Retryable { .. } => "retryable",
            Self::Unknown { .. } => "unknown",
            Self::AlreadyInProcess { .. } => "in_process",
            Self::Conflict { .. } => "conflict",
            Self::AlreadyRegistered { .. } => "already_registered",
            Self::PermanentConfig { .. } => "config_error",
            Self::PermanentDocument { .. } => "document_error",
            Self::NeedsSummary { .. } => "needs_summary",
        }
    }

    /// SUNAT's code, when the answer had one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Accepted { code, .. }
            | Self::AcceptedWithObservations { code, .. }
            | Self::Rejected { code, .. }
            | Self::AlreadyInProcess { code, .. }
            | Self::Conflict { code, .. }
            | Self::AlreadyRegistered { code, .. }
            | Self::PermanentConfig { code, .. }
            | Self::PermanentDocument { code, .. }
            | Self::NeedsSummary { code, .. } => Some(code),
            Self::Retryable { code, .. } => code.as_deref(),
            Self::Unknown { .. } => None,
        }
    }

    /// A one-line description for logs and the UI.
    pub fn description(&self) -> &str {
        match self {
            Self::Accepted { description, .. }
            | Self::AcceptedWithObservations { description, .. }
            | Self::Rejected { description, .. }
            | Self::AlreadyInProcess { description, .. }
            | Self::Conflict { description, .. }
            | Self::AlreadyRegistered { description, .. }
            | Self::PermanentConfig { description, .. }
            | Self::PermanentDocument { description, .. }
            | Self::NeedsSummary { description, .. } => description,
            Self::Retryable { reason, .. } | Self::Unknown { reason } => reason,
        }
    }

    /// SUNAT has the document and accepted it (with or without observations).
    pub fn is_accepted(&self) -> bool {
        matches!(
            self,
            Self::Accepted { .. } | Self::AcceptedWithObservations { .. }
        )
    }

    /// Sending again later, with the same stored bytes, is the right move.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// A login failure: 0101 "El encabezado de seguridad es incorrecto", 0102 "Usuario o
    /// contrasena incorrectos", 0103 "El Usuario ingresado no existe", 0104 "La Clave ingresada
    /// es incorrecta", 0105 "El Usuario no está activo", 0106 "El Usuario no es válido", 0111 "No
    /// tiene el perfil para enviar comprobantes electronicos". Sending again with the same
    /// settings fails the same way (and counts against the SOL user).
    pub fn is_credential_error(&self) -> bool {
        matches!(self, Self::PermanentConfig { code, .. } if CREDENTIAL_CODES.contains(&code.as_str()))
    }

    /// Reads an answer to a *resend of the stored bytes* after an [`Outcome::Unknown`] or
    /// [`Outcome::AlreadyInProcess`] of the same bytes: then 1033, 0402, 2223 and 4000 mean our
    /// first send registered the document ([`Outcome::AlreadyRegistered`]), and 1032 means SUNAT
    /// rejected it ([`Outcome::Rejected`]: the number is used up). Call it only with that
    /// history: on a first send these codes are a [`Outcome::Conflict`].
    pub fn on_resend(self) -> Self {
        match self {
            Self::Conflict { code, description } => match code_number(&code) {
                Some(1032) => Self::Rejected {
                    code,
                    description,
                    notes: Vec::new(),
                },
                _ => Self::AlreadyRegistered { code, description },
            },
            other => other,
        }
    }
}

/// The codes of [`Outcome::is_credential_error`].
pub const CREDENTIAL_CODES: [&str; 7] = ["0101", "0102", "0103", "0104", "0105", "0106", "0111"];

/// The number of a SUNAT code ("0109" -> 109).
fn code_number(code: &str) -> Option<u32> {
    code.trim().parse().ok()
}

/// SUNAT codes are written with 4 digits.
fn code4(n: u32) -> String {
    format!("{n:04}")
}

/// Classifies a CDR (`cac:DocumentResponse/cac:Response/cbc:ResponseCode` and the root
/// `cbc:Note`s).
pub fn classify_cdr(response_code: &str, description: &str, notes: &[String]) -> Outcome {
    let description = description.trim().to_owned();
    let notes = notes.to_vec();
    let Some(n) = code_number(response_code) else {
        return Outcome::Unknown {
            reason: format!("CDR with an unreadable ResponseCode {response_code:?}: {description}"),
        };
    };
    let code = code4(n);
    let has_observations = notes
        .iter()
        .any(|note| note_code(note).is_some_and(|c| (4000..5000).contains(&c)));
    match n {
        0 if has_observations => Outcome::AcceptedWithObservations {
            code,
            description,
            notes,
        },
        0 => Outcome::Accepted {
            code,
            description,
            notes,
        },
        2000..=3999 => Outcome::Rejected {
            code,
            description,
            notes,
        },
        n if n >= 4000 => Outcome::AcceptedWithObservations {
            code,
            description,
            notes,
        },
        // A CDR carrying an exception code (0100-1999) is read like the fault of that code.
        _ => classify_fault_code(n, &description),
    }
}

/// The leading code of a note such as `4031 - mensaje`.
fn note_code(note: &str) -> Option<u32> {
    let digits: String = note
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Classifies a SOAP fault: the digits of `faultcode` (`soap-env:Client.2800`), else the digits
/// of `faultstring`. A fault without a code ("soap-env:Server", "Internal Error") came after the
/// upload, from a service that may have registered the document: an unknown outcome, reconciled
/// by resending the stored bytes.
pub fn classify_fault(faultcode: &str, faultstring: &str) -> Outcome {
    let from_code = digits_of(faultcode);
    let from_string = || {
        let s = faultstring.trim();
        let d = digits_of(s);
        // Only a string that is, or starts with, a code: not any number inside a sentence.
        (d.is_some()
            && (s.chars().all(|c| c.is_ascii_digit())
                || s.starts_with(|c: char| c.is_ascii_digit())))
        .then_some(d)
        .flatten()
    };
    match from_code.or_else(from_string) {
        Some(n) => classify_fault_code(n, faultstring),
        None => Outcome::Unknown {
            reason: format!("SOAP fault without a code: {faultcode}: {faultstring}"),
        },
    }
}

/// The first run of digits in `s`.
fn digits_of(s: &str) -> Option<u32> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let digits: String = s[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The table of `docs/sunat.md` for a numeric code, with SUNAT's texts (`CodigosRetorno`).
pub fn classify_fault_code(n: u32, description: &str) -> Outcome {
    let code = code4(n);
    let description = description.trim().to_owned();
    match n {
        // The number is taken: 1032 "ya esta informado y se encuentra con estado anulado o
        // rechazado", 1033 "registrado previamente con otros datos", 0402 "La numeracion o nombre
        // del documento ya ha sido enviado anteriormente", 2223 "El archivo ya fue presentado
        // anteriormente", 4000 "El documento ya fue presentado anteriormente". Whether it was
        // us is the caller's to say (`on_resend`).
        1032 | 1033 | 402 | 2223 | 4000 => Outcome::Conflict { code, description },
        140 => Outcome::AlreadyInProcess { code, description },
        1079 => Outcome::NeedsSummary { code, description },
        // 0125 "No se pudo obtener la constancia", 0307 "No se pudo recuperar la constancia":
        // SUNAT may have registered the document and lost only its answer.
        125 | 307 => Outcome::Unknown {
            reason: format!("SOAP fault {code}: {description}"),
        },
        // 0303 "No existe el directorio de schemas", 0304 "No existe el archivo de schema":
        // SUNAT's own files, not our document.
        100 | 109 | 130..=138 | 200 | 201 | 250 | 251 | 253 | 303 | 304 => Outcome::Retryable {
            code: Some(code),
            reason: description,
        },
        // 1078 "El emisor no se encuentra autorizado a emitir en el SEE-Desde los sistemas del
        // contribuyente", 1080 "Debe enviar su comprobante por el SEE-Empresas supervisadas":
        // the issuer's channel, not the document.
        101..=106 | 110..=113 | 154 | 1078 | 1080 | 2325..=2328 => {
            Outcome::PermanentConfig { code, description }
        }
        151..=161 | 202..=204 | 252 | 300..=302 | 305 | 306 | 1000..=1999 | 2335 | 2336 => {
            Outcome::PermanentDocument { code, description }
        }
        // Other exceptions: SUNAT did not register the document and a blind retry will not help.
        1..=999 => Outcome::PermanentDocument { code, description },
        2000..=3999 => Outcome::Rejected {
            code,
            description,
            notes: Vec::new(),
        },
        // 0 or 4xxx as a fault is not in the table: find out by resending the stored bytes.
        _ => Outcome::Unknown {
            reason: format!("SOAP fault {code}: {description}"),
        },
    }
}

/// A failure before any HTTP answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// DNS, TCP or TLS failure, or the connect timeout: the request was never sent.
    ConnectFailed,
    /// Connected, then no answer within the read timeout: the document may have arrived.
    ReadTimeout,
    /// Any other failure once connected (reset while sending or reading).
    AfterUpload,
}

/// The table's network rows.
pub fn classify_transport(t: Transport, detail: &str) -> Outcome {
    match t {
        Transport::ConnectFailed => Outcome::Retryable {
            code: None,
            reason: format!("SUNAT unreachable (nothing was sent): {detail}"),
        },
        Transport::ReadTimeout => Outcome::Unknown {
            reason: format!("no answer within the read timeout after sending: {detail}"),
        },
        Transport::AfterUpload => Outcome::Unknown {
            reason: format!("the connection failed after sending: {detail}"),
        },
    }
}

/// What an HTTP answer without SOAP held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpBody {
    Empty,
    /// An HTML page: a proxy or maintenance page, SUNAT's service was not reached.
    Html,
}

/// An HTTP answer without SOAP: HTML or 502/503/504 mean unavailable (retry); an empty 200 is
/// an unknown outcome; 401/403/404/405 mean a wrong endpoint; anything else is unknown.
pub fn classify_http(status: u16, body: HttpBody) -> Outcome {
    match (status, body) {
        (_, HttpBody::Html) | (502..=504, _) => Outcome::Retryable {
            code: None,
            reason: format!("SUNAT unavailable: HTTP {status} with {body:?} body"),
        },
        (401 | 403 | 404 | 405, HttpBody::Empty) => Outcome::PermanentConfig {
            code: format!("http_{status}"),
            description: format!("HTTP {status}: check the SUNAT endpoint URL"),
        },
        _ => Outcome::Unknown {
            reason: format!("HTTP {status} with an empty body"),
        },
    }
}

/// An answer that is not XML, or not SOAP: unavailable for 502/503/504, unknown otherwise.
pub fn classify_unreadable(status: u16, why: &str) -> Outcome {
    if (502..=504).contains(&status) {
        Outcome::Retryable {
            code: None,
            reason: format!("SUNAT unavailable: HTTP {status}"),
        }
    } else {
        Outcome::Unknown {
            reason: format!("HTTP {status} with an unreadable answer: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cdr_rows() {
        // CDR ResponseCode 0: accepted.
        assert_eq!(classify_cdr("0", "aceptada", &[]).name(), "accepted");
        // CDR >= 4000, or notes 4xxx: observed.
        assert_eq!(classify_cdr("4031", "obs", &[]).name(), "observed");
        assert_eq!(
            classify_cdr("0", "aceptada", &notes(&["4287 - precio"])).name(),
            "observed"
        );
        // CDR 2000-3999: rejected.
        let rejected = classify_cdr("2800", "rechazada", &[]);
        assert_eq!(rejected.name(), "rejected");
        assert_eq!(rejected.code(), Some("2800"));
        assert_eq!(classify_cdr("x", "?", &[]).name(), "unknown");
    }

    #[test]
    fn fault_rows() {
        let class = |code: &str| classify_fault(&format!("soap-env:Client.{code}"), "x").name();
        // Service-side trouble: retry. 0303/0304 are SUNAT's own schema files.
        for c in [
            "0100", "0109", "0130", "0134", "0138", "0200", "0201", "0250", "0251", "0253", "0303",
            "0304",
        ] {
            assert_eq!(class(c), "retryable", "{c}");
        }
        // 0125 "No se pudo obtener la constancia", 0307 "No se pudo recuperar la constancia":
        // the document may be registered; reconcile.
        for c in ["0125", "0307"] {
            assert_eq!(class(c), "unknown", "{c}");
        }
        // 0140: in process.
        assert_eq!(class("0140"), "in_process");
        // The number is taken: a conflict until our own history says otherwise.
        for c in ["1032", "1033", "0402", "2223", "4000"] {
            assert_eq!(class(c), "conflict", "{c}");
        }
        // Credentials or certificate, and the issuer's channel (1078, 1080).
        for c in [
            "0101", "0102", "0106", "0110", "0111", "0113", "0154", "1078", "1080", "2325", "2328",
        ] {
            assert_eq!(class(c), "config_error", "{c}");
        }
        // A bug in the document.
        for c in [
            "0151", "0155", "0161", "0202", "0204", "0252", "0300", "0302", "0305", "0306", "1000",
            "1034", "1999", "2335", "2336",
        ] {
            assert_eq!(class(c), "document_error", "{c}");
        }
        // 1079: Resumen Diario.
        assert_eq!(class("1079"), "needs_summary");
        // Other 2xxx faults: rejected.
        assert_eq!(class("2800"), "rejected");
    }

    #[test]
    fn only_login_failures_are_credential_errors() {
        let fault = |code: &str| classify_fault(&format!("soap-env:Client.{code}"), "x");
        for c in CREDENTIAL_CODES {
            assert!(fault(c).is_credential_error(), "{c}");
        }
        for c in [
            "0110", "0113", "0154", "1078", "1080", "2325", "0109", "0151",
        ] {
            assert!(!fault(c).is_credential_error(), "{c}");
        }
        // A missing setting is a config error of ours, not a SOL login that failed.
        assert!(!classify_http(404, HttpBody::Empty).is_credential_error());
    }

    #[test]
    fn faults_without_a_code_are_unknown() {
        // After the upload: the service may have registered the document.
        for (code, string) in [
            ("soap-env:Server", "Internal Error"),
            ("soap-env:Client", "Internal Error"),
            ("soap:Server", "java.lang.NullPointerException"),
            ("soap-env:Client", "algo raro"),
        ] {
            let o = classify_fault(code, string);
            assert_eq!(o.name(), "unknown", "{code} {string}");
            assert_eq!(o.code(), None);
        }
    }

    #[test]
    fn fault_code_falls_back_to_the_fault_string() {
        assert_eq!(
            classify_fault("soap-env:Server", "0109").code(),
            Some("0109")
        );
        assert_eq!(
            classify_fault("soap-env:Server", "0130 - servicio no disponible").name(),
            "retryable"
        );
    }

    #[test]
    fn resend_after_unknown_reads_taken_numbers_as_ours() {
        // 1033 / 0402 / 2223 / 4000: our first send registered it.
        for c in ["1033", "4000", "0402", "2223"] {
            let o = classify_fault(&format!("soap-env:Client.{c}"), "x").on_resend();
            assert_eq!(o.name(), "already_registered", "{c}");
            assert_eq!(o.code(), Some(c));
        }
        // 1032: our first send was rejected; the number is used up.
        let o = classify_fault("soap-env:Client.1032", "anulado o rechazado").on_resend();
        assert_eq!((o.name(), o.code()), ("rejected", Some("1032")));
        // Anything else reads the same on a resend.
        for o in [
            classify_cdr("0", "ok", &[]),
            classify_cdr("2800", "rechazada", &[]),
            classify_fault("soap-env:Client.0109", "x"),
            classify_fault("soap-env:Client.0102", "x"),
        ] {
            assert_eq!(o.clone().on_resend(), o);
        }
    }

    #[test]
    fn network_rows() {
        // connect/DNS/TLS failure, timeout before upload: retry.
        assert_eq!(
            classify_transport(Transport::ConnectFailed, "refused").name(),
            "retryable"
        );
        // read timeout after upload: unknown.
        assert_eq!(
            classify_transport(Transport::ReadTimeout, "timeout").name(),
            "unknown"
        );
        assert_eq!(
            classify_transport(Transport::AfterUpload, "reset").name(),
            "unknown"
        );
        // HTTP 502/503/504, HTML body: retry.
        for status in [502, 503, 504] {
            assert_eq!(classify_http(status, HttpBody::Empty).name(), "retryable");
        }
        assert_eq!(classify_http(200, HttpBody::Html).name(), "retryable");
        assert_eq!(classify_unreadable(503, "x").name(), "retryable");
        // empty HTTP 200 or 200 without CDR: unknown.
        assert_eq!(classify_http(200, HttpBody::Empty).name(), "unknown");
        assert_eq!(classify_unreadable(200, "garbage").name(), "unknown");
        assert_eq!(classify_http(404, HttpBody::Empty).name(), "config_error");
    }

    #[test]
    fn serde_tag_is_the_stable_name() {
        for o in [
            classify_cdr("0", "ok", &notes(&["4287 - x"])),
            classify_fault("soap-env:Client.0140", "x"),
            classify_fault("soap-env:Client.0102", "x"),
            classify_fault("soap-env:Client.0151", "x"),
            classify_fault("soap-env:Client.1033", "x"),
            classify_fault("soap-env:Client.1033", "x").on_resend(),
            classify_transport(Transport::ReadTimeout, "x"),
        ] {
            let json = serde_json::to_value(&o).unwrap();
            assert_eq!(json["outcome"], o.name());
        }
    }

    #[test]
    fn names_are_stable_and_distinct() {
        let mut names = Outcome::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Outcome::NAMES.len());
    }
}
