//! The SOAP 1.1 `sendBill` client of SUNAT's billService: WS-Security UsernameToken, the zip in
//! base64, and every answer (CDR, SOAP fault, empty body, HTML, timeout) turned into an
//! [`Outcome`] together with the HTTP status and the duration of the call.

use std::fmt;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::archive;
use crate::document::Ruc;
use crate::outcome::{self, Outcome};
use crate::ubl::{escape_text, NS_CAC, NS_CBC};

pub const NS_SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_SER: &str = "http://service.sunat.gob.pe";
pub const NS_WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";

/// SUNAT's beta billService.
pub const BETA_ENDPOINT: &str = "https://e-beta.sunat.gob.pe/ol-ti-itcpfegem-beta/billService";
/// SUNAT's production billService.
pub const PRODUCTION_ENDPOINT: &str = "https://e-factura.sunat.gob.pe/ol-ti-itcpfegem/billService";
/// SUNAT's production billConsultService (`getStatusCdr`). SUNAT publishes no beta instance of it
/// (greenter: the lookup "solo es posible en Producción"), so on beta it stays unset and an
/// unknown outcome is reconciled by resending the stored bytes.
pub const PRODUCTION_CONSULT_ENDPOINT: &str =
    "https://e-factura.sunat.gob.pe/ol-it-wsconscpegem/billConsultService";

/// How to reach SUNAT for one company. The SOAP user is `ruc` + `sol_user`.
#[derive(Clone)]
pub struct SunatConfig {
    /// The billService URL ([`BETA_ENDPOINT`], [`PRODUCTION_ENDPOINT`] or the simulator's).
    pub endpoint: String,
    /// The issuing company's RUC.
    pub ruc: Ruc,
    /// The SOL user, without the RUC (e.g. `MODDATOS` on beta).
    pub sol_user: String,
    pub sol_password: SecretString,
    /// Time to establish the TCP + TLS connection; failing here is safe to retry.
    pub connect_timeout: Duration,
    /// Time to wait for the answer once connected; running out makes the outcome unknown.
    pub read_timeout: Duration,
    /// The billConsultService URL for `getStatusCdr` ([`PRODUCTION_CONSULT_ENDPOINT`] or the
    /// simulator's); `None` where SUNAT offers none (beta).
    pub consult_endpoint: Option<String>,
}

impl fmt::Debug for SunatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SunatConfig")
            .field("endpoint", &self.endpoint)
            .field("ruc", &self.ruc)
            .field("sol_user", &self.sol_user)
            .field("sol_password", &"[REDACTED]")
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("consult_endpoint", &self.consult_endpoint)
            .finish()
    }
}

impl SunatConfig {
    /// SUNAT's beta service with its public test user `MODDATOS` / `moddatos`.
    pub fn beta(ruc: Ruc) -> Self {
        Self {
            endpoint: BETA_ENDPOINT.into(),
            ruc,
            sol_user: "MODDATOS".into(),
            sol_password: SecretString::from("moddatos"),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            consult_endpoint: None,
        }
    }

    /// The WS-Security user name: RUC + SOL user.
    pub fn username(&self) -> String {
        format!("{}{}", self.ruc, self.sol_user)
    }

    /// A fingerprint of what a SOL login depends on: the endpoint, RUC, SOL user and password,
    /// and the signing certificate (`cert` is the PKCS#12 file's bytes). Equal fingerprints mean
    /// the same settings, so a credential error will repeat; it holds no secret (a SHA-256 over
    /// length-prefixed fields, one of them the SHA-256 of the certificate file, whose private key
    /// makes the input unguessable). `v1:` and 64 hex digits.
    pub fn fingerprint(&self, cert: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let cert_hash = Sha256::digest(cert);
        let mut h = Sha256::new();
        for field in [
            b"faena-sunat-settings-v1".as_slice(),
            self.endpoint.as_bytes(),
            self.ruc.as_str().as_bytes(),
            self.sol_user.as_bytes(),
            self.sol_password.expose_secret().as_bytes(),
            cert_hash.as_slice(),
        ] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field);
        }
        format!("v1:{}", hex(&h.finalize()))
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the client could not be built. `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid SUNAT endpoint {endpoint:?}: {why}")]
    Endpoint { endpoint: String, why: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

impl ClientError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Endpoint { .. } => "client.endpoint",
            Self::Http(_) => "client.http",
        }
    }
}

/// The CDR (Constancia de Recepción) read from `applicationResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cdr {
    /// The document the CDR answers (`B001-7`).
    pub reference_id: String,
    pub response_code: String,
    pub description: String,
    /// The root `cbc:Note`s (observations such as `4287 - ...`).
    pub notes: Vec<String>,
}

/// One `sendBill` call: what it means, and what to record about it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub outcome: Outcome,
    /// The HTTP status, when an answer came.
    pub http_status: Option<u16>,
    /// From the start of the request to the end of the answer (or the failure).
    pub duration: Duration,
    /// The CDR zip exactly as received, to store.
    pub cdr_zip: Option<Vec<u8>>,
    pub cdr: Option<Cdr>,
}

/// A `sendBill` client for one company.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    config: SunatConfig,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(config: SunatConfig) -> Result<Self, ClientError> {
        let url = reqwest::Url::parse(&config.endpoint).map_err(|e| ClientError::Endpoint {
            endpoint: config.endpoint.clone(),
            why: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::Endpoint {
                endpoint: config.endpoint.clone(),
                why: "expected an http:// or https:// URL".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            // A backstop for an answer that trickles in: never wait beyond both timeouts.
            .timeout(config.connect_timeout + config.read_timeout * 2)
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &SunatConfig {
        &self.config
    }

    /// Sends `zip` as `file_name` (`RUC-TT-SERIE-CORRELATIVO.zip`). Never fails: every problem
    /// is an [`Outcome`].
    pub async fn send_bill(&self, file_name: &str, zip: &[u8]) -> Submission {
        let body = send_bill_envelope(
            &self.config.username(),
            self.config.sol_password.expose_secret(),
            file_name,
            zip,
        );
        let started = Instant::now();
        let (status, content_type, bytes) =
            match self.post(&self.config.endpoint, "urn:sendBill", body).await {
                Ok(answer) => answer,
                Err((outcome, http_status)) => {
                    return Submission {
                        outcome,
                        http_status,
                        duration: started.elapsed(),
                        cdr_zip: None,
                        cdr: None,
                    }
                }
            };
        let duration = started.elapsed();
        let (outcome, cdr_zip, cdr) = read_answer(status, &content_type, &bytes);
        tracing::debug!(
            file_name,
            status,
            outcome = outcome.name(),
            code = outcome.code().unwrap_or(""),
            elapsed_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            "sendBill answered"
        );
        Submission {
            outcome,
            http_status: Some(status),
            duration,
            cdr_zip,
            cdr,
        }
    }

    /// Sends a Resumen Diario or a Comunicación de Baja (`RUC-RC-YYYYMMDD-N.zip`) with
    /// `sendSummary`, on the same billService as `sendBill`. `Ok` carries SUNAT's ticket, to ask
    /// with [`Client::get_status`]; `Err` the classified fault or transport failure.
    pub async fn send_summary(&self, file_name: &str, zip: &[u8]) -> Result<String, Outcome> {
        let body = format!(
            "<ser:sendSummary><fileName>{}</fileName><contentFile>{}</contentFile></ser:sendSummary>",
            escape_text(file_name),
            B64.encode(zip)
        );
        let (status, content_type, bytes) = self
            .post(
                &self.config.endpoint,
                "urn:sendSummary",
                self.envelope(&body),
            )
            .await
            .map_err(|(o, _)| o)?;
        let ticket = read_child_text(&bytes, "ticket");
        match ticket.filter(|t| !t.is_empty()) {
            Some(t) => {
                tracing::debug!(file_name, ticket = %t, "sendSummary answered");
                Ok(t)
            }
            None => Err(non_result(status, &content_type, &bytes, "ticket")),
        }
    }

    /// Asks for a ticket of `sendSummary`: [`TicketStatus::InProcess`] (98) to ask again later,
    /// or [`TicketStatus::Done`] (0 processed, 99 processed with errors) with the CDR. `Err` is
    /// a fault (0127: no such ticket) or a transport failure.
    pub async fn get_status(&self, ticket: &str) -> Result<TicketStatus, Outcome> {
        let body = format!(
            "<ser:getStatus><ticket>{}</ticket></ser:getStatus>",
            escape_text(ticket)
        );
        let (status, content_type, bytes) = self
            .post(&self.config.endpoint, "urn:getStatus", self.envelope(&body))
            .await
            .map_err(|(o, _)| o)?;
        let Some(code) = read_child_text(&bytes, "statusCode") else {
            return Err(non_result(status, &content_type, &bytes, "statusCode"));
        };
        if code == "98" {
            return Ok(TicketStatus::InProcess);
        }
        let content = read_child_text(&bytes, "content").unwrap_or_default();
        let zip = B64
            .decode(content.as_bytes())
            .ok()
            .filter(|z| !z.is_empty())
            .ok_or_else(|| Outcome::Unknown {
                reason: format!("getStatus answered {code} without a readable CDR"),
            })?;
        let cdr = parse_cdr_zip(&zip).map_err(|reason| Outcome::Unknown { reason })?;
        Ok(TicketStatus::Done {
            status_code: code,
            cdr_zip: zip,
            cdr,
        })
    }

    /// Asks SUNAT's billConsultService for the state and CDR of one factura (or F-series note):
    /// the check before resending after an unknown outcome. `Ok(None)` when no consult endpoint
    /// is set (SUNAT's beta has none): reconcile by resending the stored bytes instead.
    pub async fn get_status_cdr(
        &self,
        doc_type_code: &str,
        series: &str,
        number: i64,
    ) -> Result<Option<ConsultAnswer>, Outcome> {
        let Some(endpoint) = self.config.consult_endpoint.clone() else {
            return Ok(None);
        };
        let body = format!(
            "<ser:getStatusCdr><rucComprobante>{}</rucComprobante><tipoComprobante>{}</tipoComprobante>\
<serieComprobante>{}</serieComprobante><numeroComprobante>{number}</numeroComprobante></ser:getStatusCdr>",
            escape_text(self.config.ruc.as_str()),
            escape_text(doc_type_code),
            escape_text(series),
        );
        let (status, content_type, bytes) = self
            .post(&endpoint, "urn:getStatusCdr", self.envelope(&body))
            .await
            .map_err(|(o, _)| o)?;
        let Some(code) = read_child_text(&bytes, "statusCode") else {
            return Err(non_result(status, &content_type, &bytes, "statusCode"));
        };
        let message = read_child_text(&bytes, "statusMessage").unwrap_or_default();
        let zip = read_child_text(&bytes, "content")
            .and_then(|c| B64.decode(c.as_bytes()).ok())
            .filter(|z| !z.is_empty());
        let cdr = match &zip {
            Some(z) => Some(parse_cdr_zip(z).map_err(|reason| Outcome::Unknown { reason })?),
            None => None,
        };
        Ok(Some(ConsultAnswer {
            status_code: code,
            status_message: message,
            cdr_zip: zip,
            cdr,
        }))
    }

    fn envelope(&self, operation: &str) -> String {
        soap_envelope(
            &self.config.username(),
            self.config.sol_password.expose_secret(),
            operation,
        )
    }

    /// One SOAP POST: the HTTP status, content type and body, or the transport failure's
    /// outcome (with the HTTP status when one came).
    async fn post(
        &self,
        url: &str,
        action: &str,
        body: String,
    ) -> Result<(u16, String, Vec<u8>), (Outcome, Option<u16>)> {
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .header("SOAPAction", action)
            .body(body)
            .send()
            .await
            .map_err(|e| (transport_outcome(&e), e.status().map(|s| s.as_u16())))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = response.bytes().await.map_err(|e| {
            (
                Outcome::Unknown {
                    reason: format!("HTTP {status}, then reading the answer failed: {e}"),
                },
                Some(status),
            )
        })?;
        Ok((status, content_type, bytes.to_vec()))
    }
}

/// What a ticket says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketStatus {
    /// 98: SUNAT is still processing the summary; ask again later.
    InProcess,
    /// 0 (processed) or 99 (processed with errors), with the CDR: `cdr.response_code` 0 means
    /// every line was applied, anything else that none was.
    Done {
        status_code: String,
        cdr_zip: Vec<u8>,
        cdr: Cdr,
    },
}

/// The billConsultService's answer about one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultAnswer {
    /// 0001 accepted, 0002 rejected, 0003 voided, 0011 does not exist, 0004-0012 input errors.
    pub status_code: String,
    pub status_message: String,
    pub cdr_zip: Option<Vec<u8>>,
    pub cdr: Option<Cdr>,
}

impl ConsultAnswer {
    /// SUNAT has the document (accepted, rejected or voided).
    pub fn exists(&self) -> bool {
        matches!(self.status_code.as_str(), "0001" | "0002" | "0003")
    }
}

/// The trimmed text of the first element named `local` in a SOAP answer.
fn read_child_text(body: &[u8], local: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let doc = roxmltree::Document::parse(text.trim_start_matches('\u{feff}').trim()).ok()?;
    let body_el = doc
        .descendants()
        .find(|n| n.has_tag_name((NS_SOAP_ENV, "Body")))?;
    body_el
        .descendants()
        .find(|n| n.tag_name().name() == local)
        .map(|n| {
            n.text()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect()
        })
}

/// An answer without the expected result: the fault, HTML or empty body classified like a
/// sendBill answer; anything else is unknown.
fn non_result(status: u16, content_type: &str, body: &[u8], wanted: &str) -> Outcome {
    match read_answer(status, content_type, body).0 {
        Outcome::Unknown { .. } => Outcome::Unknown {
            reason: format!("HTTP {status} without a {wanted}"),
        },
        other => other,
    }
}

/// A SOAP envelope with the WS-Security UsernameToken around one `ser:` operation.
pub fn soap_envelope(username: &str, password: &str, operation: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<soapenv:Envelope xmlns:soapenv=\"{NS_SOAP_ENV}\" xmlns:ser=\"{NS_SER}\" xmlns:wsse=\"{NS_WSSE}\">\
<soapenv:Header><wsse:Security><wsse:UsernameToken>\
<wsse:Username>{}</wsse:Username><wsse:Password Type=\"{PASSWORD_TEXT}\">{}</wsse:Password>\
</wsse:UsernameToken></wsse:Security></soapenv:Header>\
<soapenv:Body>{operation}</soapenv:Body></soapenv:Envelope>",
        escape_text(username),
        escape_text(password),
    )
}

/// The `sendBill` SOAP envelope.
pub fn send_bill_envelope(username: &str, password: &str, file_name: &str, zip: &[u8]) -> String {
    soap_envelope(
        username,
        password,
        &format!(
            "<ser:sendBill><fileName>{}</fileName><contentFile>{}</contentFile></ser:sendBill>",
            escape_text(file_name),
            B64.encode(zip)
        ),
    )
}

/// A failure before any HTTP answer: connecting (DNS, TCP, TLS, connect timeout) is safe to
/// retry; anything after the request may have been sent is unknown.
fn transport_outcome(e: &reqwest::Error) -> Outcome {
    if e.is_connect() {
        outcome::classify_transport(outcome::Transport::ConnectFailed, &e.to_string())
    } else if e.is_builder() {
        Outcome::PermanentConfig {
            code: "client".into(),
            description: e.to_string(),
        }
    } else if e.is_timeout() {
        outcome::classify_transport(outcome::Transport::ReadTimeout, &e.to_string())
    } else {
        outcome::classify_transport(outcome::Transport::AfterUpload, &e.to_string())
    }
}

/// Classifies an HTTP answer and extracts the CDR when there is one.
pub fn read_answer(
    status: u16,
    content_type: &str,
    body: &[u8],
) -> (Outcome, Option<Vec<u8>>, Option<Cdr>) {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    let looks_html = content_type.to_ascii_lowercase().contains("text/html")
        || trimmed
            .get(..14)
            .is_some_and(|s| s.eq_ignore_ascii_case("<!doctype html"))
        || trimmed
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("<html"));
    if trimmed.is_empty() || looks_html {
        let body = if looks_html {
            outcome::HttpBody::Html
        } else {
            outcome::HttpBody::Empty
        };
        return (outcome::classify_http(status, body), None, None);
    }
    let doc = match roxmltree::Document::parse(trimmed) {
        Ok(d) => d,
        Err(e) => {
            return (
                outcome::classify_unreadable(status, &e.to_string()),
                None,
                None,
            )
        }
    };
    let body_el = doc
        .descendants()
        .find(|n| n.has_tag_name((NS_SOAP_ENV, "Body")));
    let Some(body_el) = body_el else {
        return (
            outcome::classify_unreadable(status, "the answer has no SOAP Body"),
            None,
            None,
        );
    };
    if let Some(fault) = body_el
        .children()
        .find(|n| n.has_tag_name((NS_SOAP_ENV, "Fault")))
    {
        let child_text = |name: &str| {
            fault
                .children()
                .find(|n| n.tag_name().name() == name)
                .and_then(|n| n.text())
                .unwrap_or("")
                .trim()
                .to_owned()
        };
        let faultcode = child_text("faultcode");
        let faultstring = child_text("faultstring");
        return (
            outcome::classify_fault(&faultcode, &faultstring),
            None,
            None,
        );
    }
    let app_response = body_el
        .descendants()
        .find(|n| n.tag_name().name() == "applicationResponse")
        .and_then(|n| n.text())
        .map(|t| t.chars().filter(|c| !c.is_whitespace()).collect::<String>());
    let Some(app_response) = app_response.filter(|s| !s.is_empty()) else {
        return (
            Outcome::Unknown {
                reason: format!("HTTP {status} without a CDR (no applicationResponse)"),
            },
            None,
            None,
        );
    };
    let zip = match B64.decode(app_response) {
        Ok(z) => z,
        Err(e) => {
            return (
                Outcome::Unknown {
                    reason: format!("the CDR is not valid base64: {e}"),
                },
                None,
                None,
            )
        }
    };
    match parse_cdr_zip(&zip) {
        Ok(cdr) => (
            outcome::classify_cdr(&cdr.response_code, &cdr.description, &cdr.notes),
            Some(zip),
            Some(cdr),
        ),
        Err(reason) => (Outcome::Unknown { reason }, Some(zip), None),
    }
}

/// Reads a CDR zip: the first `*.xml` entry, UTF-8 or ISO-8859-1.
pub fn parse_cdr_zip(zip: &[u8]) -> Result<Cdr, String> {
    let (name, xml) =
        archive::first_xml(zip).map_err(|e| format!("the CDR zip cannot be read: {e}"))?;
    parse_cdr_xml(&xml).map_err(|e| format!("the CDR {name} cannot be read: {e}"))
}

/// Reads a CDR `ApplicationResponse`, decoding ISO-8859-1 when its declaration says so.
pub fn parse_cdr_xml(xml: &[u8]) -> Result<Cdr, String> {
    let xml = xml.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(xml);
    let head = String::from_utf8_lossy(&xml[..xml.len().min(100)]).to_ascii_lowercase();
    let text: String = if head.starts_with("<?xml")
        && ["iso-8859-1", "latin1", "latin-1", "windows-1252"]
            .iter()
            .any(|enc| head.contains(enc))
    {
        encoding_rs::WINDOWS_1252.decode(xml).0.into_owned()
    } else {
        String::from_utf8(xml.to_vec()).map_err(|e| format!("not UTF-8: {e}"))?
    };
    let doc = roxmltree::Document::parse(&text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    let response = root
        .children()
        .find(|n| n.has_tag_name((NS_CAC, "DocumentResponse")))
        .and_then(|d| d.children().find(|n| n.has_tag_name((NS_CAC, "Response"))))
        .ok_or("no cac:DocumentResponse/cac:Response")?;
    let field = |name: &str| {
        response
            .children()
            .find(|n| n.has_tag_name((NS_CBC, name)))
            .and_then(|n| n.text())
            .map(|t| t.trim().to_owned())
    };
    let response_code = field("ResponseCode").ok_or("no cbc:ResponseCode")?;
    Ok(Cdr {
        reference_id: field("ReferenceID").unwrap_or_default(),
        response_code,
        description: field("Description").unwrap_or_default(),
        notes: root
            .children()
            .filter(|n| n.has_tag_name((NS_CBC, "Note")))
            .filter_map(|n| n.text())
            .map(|t| t.trim().to_owned())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_fingerprint_changes_with_each_setting_and_holds_no_secret() {
        let ruc = |s: &str| Ruc::parse(s).expect("valid test RUC");
        let base = SunatConfig::beta(ruc("20100066603"));
        let cert = b"pkcs12 bytes".as_slice();
        let fp = base.fingerprint(cert);
        assert!(fp.starts_with("v1:") && fp.len() == 67, "{fp}");
        assert_eq!(fp, base.clone().fingerprint(cert), "deterministic");
        let mut changed = Vec::new();
        let mut c = base.clone();
        c.sol_password = SecretString::from("otra");
        changed.push(c.fingerprint(cert));
        let mut c = base.clone();
        c.sol_user = "OTRO".into();
        changed.push(c.fingerprint(cert));
        let mut c = base.clone();
        c.ruc = ruc("20131312955");
        changed.push(c.fingerprint(cert));
        let mut c = base.clone();
        c.endpoint = PRODUCTION_ENDPOINT.into();
        changed.push(c.fingerprint(cert));
        changed.push(base.fingerprint(b"another certificate"));
        // Timeouts do not make a login succeed.
        let mut c = base.clone();
        c.read_timeout = Duration::from_secs(1);
        assert_eq!(c.fingerprint(cert), fp);
        for other in &changed {
            assert_ne!(other, &fp);
            assert!(!other.contains("moddatos") && !other.contains("MODDATOS"));
        }
        assert!(!fp.contains("moddatos"));
    }

    #[test]
    fn envelope_escapes_and_carries_the_zip() {
        let env = send_bill_envelope("20100066603MODDATOS", "a<b&c", "x.zip", b"zip");
        assert!(env.contains("<wsse:Password Type=\""));
        assert!(env.contains(">a&lt;b&amp;c</wsse:Password>"));
        assert!(env.contains("<contentFile>emlw</contentFile>"));
        roxmltree::Document::parse(&env).unwrap();
    }

    #[test]
    fn debug_hides_the_password() {
        let mut c = SunatConfig::beta(Ruc::parse("20100066603").unwrap());
        c.sol_password = SecretString::from("s3cr3t-pw");
        assert!(!format!("{c:?}").contains("s3cr3t-pw"));
    }

    #[test]
    fn answers_without_soap() {
        assert_eq!(read_answer(200, "text/xml", b"").0.name(), "unknown");
        assert_eq!(
            read_answer(503, "text/html", b"<html>busy</html>").0.name(),
            "retryable"
        );
        assert_eq!(
            read_answer(200, "", b"<!DOCTYPE html><html/>").0.name(),
            "retryable"
        );
        let fault = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client.0102</faultcode><faultstring>Usuario o contrasena incorrectos</faultstring></s:Fault></s:Body></s:Envelope>"#;
        let (o, _, _) = read_answer(500, "text/xml", fault);
        assert_eq!((o.name(), o.code()), ("config_error", Some("0102")));
        let no_cdr = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x:sendBillResponse xmlns:x="http://service.sunat.gob.pe"/></s:Body></s:Envelope>"#;
        assert_eq!(read_answer(200, "text/xml", no_cdr).0.name(), "unknown");
    }

    #[test]
    fn latin1_cdr_is_decoded() {
        let xml = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><ar:ApplicationResponse xmlns:ar=\"urn:oasis:names:specification:ubl:schema:xsd:ApplicationResponse-2\" xmlns:cac=\"urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2\" xmlns:cbc=\"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2\"><cbc:Note>4287 - precio inválido</cbc:Note><cac:DocumentResponse><cac:Response><cbc:ReferenceID>B001-1</cbc:ReferenceID><cbc:ResponseCode>0</cbc:ResponseCode><cbc:Description>La Boleta número B001-1, ha sido aceptada</cbc:Description></cac:Response></cac:DocumentResponse></ar:ApplicationResponse>";
        let latin1: Vec<u8> = xml.chars().map(|c| c as u32 as u8).collect();
        let cdr = parse_cdr_xml(&latin1).unwrap();
        assert_eq!(cdr.response_code, "0");
        assert_eq!(cdr.reference_id, "B001-1");
        assert_eq!(cdr.notes, vec!["4287 - precio inválido".to_string()]);
        assert!(cdr.description.contains("número"));
    }
}
