//! A local SUNAT billService for tests and development: the same SOAP `sendBill`, `sendSummary`,
//! `getStatus` and `getStatusCdr` protocol, the
//! checks SUNAT makes (credentials, zip, file name vs XML, structure, signature), a CDR or a SOAP
//! fault in answer, and scenarios to reproduce every outcome on demand.
//!
//! # Scenarios
//! A scenario is chosen per document (series + correlative), first by the control endpoint, then
//! by the correlative convention, else `accepted`:
//!
//! | scenario | correlative | answer |
//! |---|---|---|
//! | `accepted` | any other | CDR ResponseCode 0 |
//! | `observations` | 99999901 | CDR 0 with a `4287 - ...` note |
//! | `rejection` | 99999902 | CDR 2800 (rejected) |
//! | `fault_0109` | 99999903 | fault `soap-env:Client.0109`, HTTP 500 |
//! | `fault_0130` | 99999904 | fault `soap-env:Server` with faultstring `0130`, HTTP 500 |
//! | `http_503` | 99999905 | HTTP 503 with an HTML page |
//! | `timeout` | 99999906 | waits `timeout_delay`, then fault 0109 (not registered) |
//! | `empty_200` | 99999907 | HTTP 200 with an empty body (not registered) |
//! | `already_registered` | 99999908 | fault 1033 on a first send: the number is registered with other data (another POS, a restored database) |
//! | `unknown_then_1033` | 99999909 | registers the document, waits `timeout_delay`, then the CDR; a resend gets 1033 |
//! | `fault_1032` | 99999910 | fault 1032 on a first send: the number is informed as voided or rejected |
//! | `fault_1078` | 99999911 | fault 1078: the issuer is not enabled for SEE-Del contribuyente (not registered) |
//! | `unknown_then_1032` | 99999912 | rejects the document (2800), waits `timeout_delay`, then the CDR; a resend gets 1032 |
//! | `fault_0125` | 99999913 | registers the document, answers fault 0125 "No se pudo obtener la constancia"; a resend gets 1033 |
//! | `fault_1079` | 99999914 | fault 1079 "Solo puede enviar el comprobante en un resumen diario": a boleta past its sendBill window (not registered; a Resumen Diario with status 1 takes it) |
//!
//! A convention scenario applies to the first send of that document only; a control scenario to
//! the next `times` sends. A document once registered answers, on every later send, fault 1033
//! when it was accepted or observed and fault 1032 when it was rejected, like SUNAT (its
//! registry's states 1 and 0; rules 1033 and 1032 of the boleta and factura sheets).
//!
//! # Observations and rejections the checks make (CDR)
//! On a boleta, a buyer number of type 0, 4, 7 or A-G that is not 1 to 15 letters or digits
//! (`^[\d\w]{1,15}$`, as validators apply rule 4208) gets the note `4208 - El dato ingresado
//! como numero de documento de identidad del receptor no cumple con el formato establecido`; a
//! DNI (type 1) that is not 8 digits gets `4207 - El DNI debe tener 8 caracteres numéricos`. On any
//! receipt, a `SellersItemIdentification/cbc:ID` that is not 1 to 30 characters without line
//! breaks or tabs gets `4269 - El dato ingresado como codigo de producto no cumple con el formato
//! establecido.` (all accepted with observations), and a buyer `RegistrationName` that is not 3
//! to 1500 characters without line breaks or tabs is rejected with CDR 2022 "RegistrationName -
//! El dato ingresado no cumple con el estandar".
//!
//! The sums SUNAT checks (`sim/sums.rs`), with its tolerance of ± 1 where the rule has one, reject
//! the receipt with their CDR code: each line's scheme id, name and type code against catálogo 05
//! (2036, 3051, 2377) and its affectation code against its scheme (2040); a line's IGV against
//! rate x base (3103), zero IGV on exonerado, inafecto and their free lines (3110), the line's
//! TaxAmount (3292), its value against unit value x quantity - discounts 00 (3271), a discount
//! against base x factor (3290), a free line's price 0 (2640); each scheme's document subtotal
//! present (2638) and equal to its lines' sums (3277 gravado, 3275 exonerado, 3274 inafecto, 3276
//! gratuito, 3302 free IGV, 3306 ICBPER), the document IGV against rate x base (3291), zero tax
//! on 9997/9998 (3000), TaxTotal (3294), legend 1002 with a free total (2416), and
//! LegalMonetaryTotal's LineExtensionAmount (3278), TaxInclusiveAmount (3279) and PayableAmount
//! (3280). An ICBPER line whose amount is not bags x amount per bag, or whose amount per bag is
//! not the one in force on the issue date, is accepted with 4318 or 4237.
//!
//! # Faults the checks answer (HTTP 500)
//! 0101 no WS-Security header · 0102 wrong user or password · 0151 bad zip file name ·
//! 0154 file RUC is not the user's RUC · 0155 empty zip · 0156 corrupt zip or base64 ·
//! 0157 more than one file · 0160 empty XML · 0161 XML name differs from the zip name ·
//! 0305 a required element is missing · 0306 unreadable SOAP or XML, or the root is not an
//! Invoice · 1003 InvoiceTypeCode differs from the name · 1034 RUC differs · 1035 series differs ·
//! 1036 number differs · 2335 altered document (digest or signature mismatch) · 2336 signature
//! missing or unusable.
//!
//! # Summaries, tickets and the consult service ([`ticket`])
//! `sendSummary` takes a Resumen Diario (RC) or a Comunicación de Baja (RA), checks the file
//! name, zip, `cbc:ID`, CustomizationID, dates and signature (faults), then each line against the
//! registry, and answers a ticket. `getStatus` answers 98 for the summary's `pending_polls`, then
//! 0 with the CDR, or 99 with a CDR carrying the first line error: RA 2308 (not a factura), 2105
//! (not registered), 2398 (rejected), 2323 (already voided), 2348 (repeated), 2957 (more than 7
//! days); RC 2241 (not a boleta or a B-series note), 2251 (a TotalAmount below 0), 2282 (status 1
//! for a registered document), 2663 (status 3 for one SUNAT does not have), 2987 (already voided
//! or rejected), 3094 (repeated), 2957, and for a credit note (07) of a boleta: 2524 (no
//! `cac:BillingReference`), 2583 / 2513 (the referenced type missing, or not 03), 2920 (not a
//! boleta number), 2989 (a boleta SUNAT does not hold, nor an earlier line of the summary), 2990
//! (a voided or rejected boleta), and observation 4028 when the note is above what is left of the
//! boleta; 2582 for a reference on a boleta's line; an ID used before, 2223 (RC) / 2324 (RA). An
//! unknown ticket is fault 0127. An accepted summary voids its documents (a later sendBill gets
//! 1032) or registers its status-1 boletas and notes (1033), a note's total taken off its boleta.
//! `getStatusCdr` (on any path; [`SimHandle::consult_endpoint`]) answers 0001 accepted, 0002
//! rejected or 0003 voided with the stored CDR, 0011 unknown, 0009 a type other than 01/07/08,
//! 0010 a series not starting with F.
//!
//! # Control endpoints
//! `POST /control/summary {"summary_id":"RC-20250315-1","pending_polls":3,"scenario":"rejection"}`
//! (`scenario` optional: `accepted` lets the checks decide, `rejection` answers 99 with CDR 2800
//! and applies nothing),
//! `POST /control/scenario {"series":"B001","correlative":7,"scenario":"http_503","times":2}`,
//! `GET /control/calls` (`{"total":3,"calls":{"20100066603-03-B001-7.zip":3}}`; getStatus calls
//! count under `getStatus:<ticket>`, getStatusCdr under `getStatusCdr:<type>-<series>-<number>`),
//! `POST /control/reset`, `GET /health`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

mod notes;
mod sums;

use crate::archive;
use crate::client::{NS_SOAP_ENV, NS_WSSE};
use crate::credit_note::NS_CREDIT_NOTE;
use crate::document::{DocumentType, Ruc, Series};
use crate::sign;
use crate::ubl::{escape_text, NS_CAC, NS_CBC, NS_INVOICE};

mod ticket;
pub use ticket::{SummaryRequest, SummaryScenario};

/// The simulator's settings.
#[derive(Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The SOL user expected after the RUC in the WS-Security user name.
    pub sol_user: String,
    pub sol_password: SecretString,
    /// How long the `timeout` and `unknown_then_1033` scenarios wait before answering: make it
    /// longer than the client's read timeout.
    pub timeout_delay: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8099)),
            sol_user: "MODDATOS".into(),
            sol_password: SecretString::from("moddatos"),
            timeout_delay: Duration::from_secs(90),
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("bind", &self.bind)
            .field("sol_user", &self.sol_user)
            .field("sol_password", &"[REDACTED]")
            .field("timeout_delay", &self.timeout_delay)
            .finish()
    }
}

/// How the simulator answers a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Accepted,
    Observations,
    Rejection,
    #[serde(rename = "fault_0109")]
    Fault0109,
    #[serde(rename = "fault_0130")]
    Fault0130,
    #[serde(rename = "http_503")]
    Http503,
    Timeout,
    #[serde(rename = "empty_200")]
    Empty200,
    AlreadyRegistered,
    #[serde(rename = "unknown_then_1033")]
    UnknownThen1033,
    #[serde(rename = "fault_1032")]
    Fault1032,
    #[serde(rename = "fault_1078")]
    Fault1078,
    #[serde(rename = "unknown_then_1032")]
    UnknownThen1032,
    #[serde(rename = "fault_0125")]
    Fault0125,
    #[serde(rename = "fault_1079")]
    Fault1079,
}

impl Scenario {
    /// Every scenario, in the order of the table above.
    pub const ALL: [Self; 15] = [
        Self::Accepted,
        Self::Observations,
        Self::Rejection,
        Self::Fault0109,
        Self::Fault0130,
        Self::Http503,
        Self::Timeout,
        Self::Empty200,
        Self::AlreadyRegistered,
        Self::UnknownThen1033,
        Self::Fault1032,
        Self::Fault1078,
        Self::UnknownThen1032,
        Self::Fault0125,
        Self::Fault1079,
    ];

    /// The correlative that selects a scenario by convention.
    pub fn by_correlative(correlative: i64) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.correlative() == Some(correlative))
    }

    /// The correlative of its convention (none for `accepted`, the default).
    pub fn correlative(self) -> Option<i64> {
        Some(match self {
            Self::Accepted => return None,
            Self::Observations => 99_999_901,
            Self::Rejection => 99_999_902,
            Self::Fault0109 => 99_999_903,
            Self::Fault0130 => 99_999_904,
            Self::Http503 => 99_999_905,
            Self::Timeout => 99_999_906,
            Self::Empty200 => 99_999_907,
            Self::AlreadyRegistered => 99_999_908,
            Self::UnknownThen1033 => 99_999_909,
            Self::Fault1032 => 99_999_910,
            Self::Fault1078 => 99_999_911,
            Self::UnknownThen1032 => 99_999_912,
            Self::Fault0125 => 99_999_913,
            Self::Fault1079 => 99_999_914,
        })
    }

    /// The name the control endpoint takes (`fault_0109`).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// What the simulator answers, in a line.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Accepted => "CDR ResponseCode 0",
            Self::Observations => "CDR 0 with a 4287 observation",
            Self::Rejection => "CDR 2800 (rejected)",
            Self::Fault0109 => "fault soap-env:Client.0109, HTTP 500",
            Self::Fault0130 => "fault soap-env:Server with faultstring 0130, HTTP 500",
            Self::Http503 => "HTTP 503 with an HTML page",
            Self::Timeout => "waits the timeout delay, then fault 0109 (not registered)",
            Self::Empty200 => "HTTP 200 with an empty body (not registered)",
            Self::AlreadyRegistered => "fault 1033 on a first send (registered with other data)",
            Self::UnknownThen1033 => {
                "registers it, answers after the timeout delay; a resend gets 1033"
            }
            Self::Fault1032 => "fault 1032 on a first send (informed as voided or rejected)",
            Self::Fault1078 => "fault 1078: issuer not enabled for SEE-Del contribuyente",
            Self::UnknownThen1032 => {
                "rejects it (2800), answers after the timeout delay; a resend gets 1032"
            }
            Self::Fault0125 => "registers it, answers fault 0125 (no CDR); a resend gets 1033",
            Self::Fault1079 => {
                "fault 1079: past the sendBill window, only a Resumen Diario takes it (not registered)"
            }
        }
    }
}

/// A scenario for the next `times` sends of one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioRequest {
    pub series: String,
    pub correlative: i64,
    pub scenario: Scenario,
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

/// The `GET /control/calls` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calls {
    pub total: u64,
    /// sendBill calls per `fileName` (a request too broken to name its file counts under "").
    pub calls: BTreeMap<String, u64>,
}

/// The registry key of a document: its sendBill zip name (`RUC-TT-SERIE-NUMERO.zip`), also for
/// a document a summary informs or voids.
fn doc_key(ruc: &str, doc_type: &str, series: &str, number: &str) -> String {
    format!("{ruc}-{doc_type}-{series}-{number}.zip")
}

/// A document's state in the simulated registry ("listado" of SUNAT's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registry {
    /// Accepted, with or without observations (state 1): a later send gets 1033.
    Accepted,
    /// Rejected (state 0): a later send gets 1032.
    Rejected,
    /// Voided by a Comunicación de Baja or an RC line with status 3 (state 2): a later send gets
    /// 1032.
    Voided,
}

#[derive(Default)]
struct State {
    scenarios: HashMap<(String, i64), (Scenario, u32)>,
    calls: Calls,
    registered: HashMap<String, Registry>,
    /// The CDR zip of each registered document, by its zip file name (for getStatusCdr).
    cdrs: HashMap<String, Vec<u8>>,
    tickets: ticket::Tickets,
    /// Total, currency and issue date of each accepted document, by registry key.
    facts: HashMap<String, notes::Facts>,
    /// What accepted credit notes took off each original, by the original's registry key.
    credited: HashMap<String, bigdecimal::BigDecimal>,
}

/// The simulator's shared state, for tests that run it in-process.
#[derive(Clone, Default)]
pub struct SimState(Arc<Mutex<State>>);

impl fmt::Debug for SimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimState").finish_non_exhaustive()
    }
}

impl SimState {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep serving.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_scenario(&self, req: ScenarioRequest) {
        let key = (req.series.to_ascii_uppercase(), req.correlative);
        let mut s = self.lock();
        if req.times == 0 {
            s.scenarios.remove(&key);
        } else {
            s.scenarios.insert(key, (req.scenario, req.times));
        }
    }

    pub fn calls(&self) -> Calls {
        self.lock().calls.clone()
    }

    /// sendBill calls received for one `fileName`.
    pub fn calls_for(&self, file_name: &str) -> u64 {
        self.lock().calls.calls.get(file_name).copied().unwrap_or(0)
    }

    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    /// The scenario of this send: a control one (used up one at a time), else the convention's
    /// on the first send, else accepted.
    fn take_scenario(&self, series: &str, correlative: i64, file_name: &str) -> Scenario {
        let mut s = self.lock();
        let key = (series.to_owned(), correlative);
        if let Some((scenario, left)) = s.scenarios.get_mut(&key) {
            let scenario = *scenario;
            *left -= 1;
            if *left == 0 {
                s.scenarios.remove(&key);
            }
            return scenario;
        }
        let first = s.calls.calls.get(file_name).copied().unwrap_or(0) <= 1;
        match Scenario::by_correlative(correlative) {
            Some(scenario) if first => scenario,
            _ => Scenario::Accepted,
        }
    }

    fn count_call(&self, file_name: &str) {
        let mut s = self.lock();
        s.calls.total += 1;
        *s.calls.calls.entry(file_name.to_owned()).or_default() += 1;
    }

    /// Registers the document; false when it was registered before.
    fn register(&self, file_name: &str, as_: Registry) -> bool {
        match self.lock().registered.entry(file_name.to_owned()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(as_);
                true
            }
        }
    }

    /// Registers the document with what its checks found: its facts, and once accepted, a
    /// credit note's amount against its original. False when it was registered before.
    fn register_with(&self, file_name: &str, as_: Registry, checked: &Checked) -> bool {
        let mut s = self.lock();
        if s.registered.contains_key(file_name) {
            return false;
        }
        s.registered.insert(file_name.to_owned(), as_);
        if as_ == Registry::Accepted {
            if let Some(facts) = &checked.facts {
                s.facts.insert(file_name.to_owned(), facts.clone());
            }
            if let Some((original, amount)) = &checked.credit {
                *s.credited.entry(original.clone()).or_default() += amount;
            }
        }
        true
    }

    fn registry(&self, file_name: &str) -> Option<Registry> {
        self.lock().registered.get(file_name).copied()
    }

    fn store_cdr(&self, file_name: &str, zip: Vec<u8>) {
        self.lock().cdrs.insert(file_name.to_owned(), zip);
    }
}

/// Why the simulator could not start. `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(
        "cannot listen on {addr}: {source} (is another sunat-sim running? use --bind 127.0.0.1:0)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the simulator's server failed: {0}")]
    Server(std::io::Error),
}

impl SimError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Bind { .. } => "sim.bind",
            Self::Server(_) => "sim.server",
        }
    }
}

/// A running simulator.
#[derive(Debug, Clone)]
pub struct SimHandle {
    server: ServerHandle,
    pub state: SimState,
    pub addr: SocketAddr,
}

impl SimHandle {
    /// The billService URL to give the client.
    pub fn endpoint(&self) -> String {
        format!("http://{}/ol-ti-itcpfegem-beta/billService", self.addr)
    }

    /// The billConsultService URL (`getStatusCdr`) to give the client.
    pub fn consult_endpoint(&self) -> String {
        format!("http://{}/ol-it-wsconscpegem/billConsultService", self.addr)
    }

    /// Stops the server, letting answers in progress finish.
    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}

struct Shared {
    config: SimConfig,
    state: SimState,
}

/// Whether the server stops itself on SIGINT/SIGTERM (the binary) or is stopped by its handle
/// (in-process tests, whose runtime owns the signals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signals {
    Handle,
    Ignore,
}

fn server(
    config: SimConfig,
    state: SimState,
    signals: Signals,
) -> Result<(SocketAddr, actix_web::dev::Server), SimError> {
    let listener = TcpListener::bind(config.bind).map_err(|source| SimError::Bind {
        addr: config.bind,
        source,
    })?;
    let addr = listener.local_addr().map_err(SimError::Server)?;
    let shared = web::Data::new(Shared { config, state });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
            .route("/health", web::get().to(|| async { "ok" }))
            .route("/control/scenario", web::post().to(control_scenario))
            .route("/control/calls", web::get().to(control_calls))
            .route("/control/reset", web::post().to(control_reset))
            .route("/control/summary", web::post().to(ticket::control_summary))
            .default_service(web::post().to(send_bill))
    })
    .workers(2);
    let server = match signals {
        Signals::Handle => server,
        Signals::Ignore => server.disable_signals(),
    };
    let server = server.listen(listener).map_err(SimError::Server)?.run();
    Ok((addr, server))
}

/// Starts the simulator on the current tokio runtime and returns its address (`bind` may use
/// port 0) and a handle to control and stop it.
pub async fn spawn(config: SimConfig) -> Result<(SocketAddr, SimHandle), SimError> {
    let state = SimState::default();
    let (addr, server) = server(config, state.clone(), Signals::Ignore)?;
    let handle = SimHandle {
        server: server.handle(),
        state,
        addr,
    };
    tokio::spawn(server);
    Ok((addr, handle))
}

/// Runs the simulator until the process is stopped (the `sunat-sim` binary).
pub async fn run(config: SimConfig) -> Result<(), SimError> {
    let (addr, server) = server(config, SimState::default(), Signals::Handle)?;
    tracing::info!(%addr, "sunat-sim listening");
    server.await.map_err(SimError::Server)
}

async fn control_scenario(
    shared: web::Data<Shared>,
    req: web::Json<ScenarioRequest>,
) -> HttpResponse {
    let req = req.into_inner();
    if Series::parse(&req.series).is_err() {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": format!("invalid series {:?}: expected e.g. B001 or F001", req.series)
        }));
    }
    shared.state.set_scenario(req);
    HttpResponse::Ok().json(serde_json::json!({ "ok": true }))
}

async fn control_calls(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.state.calls())
}

async fn control_reset(shared: web::Data<Shared>) -> HttpResponse {
    shared.state.reset();
    HttpResponse::Ok().json(serde_json::json!({ "ok": true }))
}

/// A SOAP fault with HTTP 500, as SUNAT answers.
fn fault(faultcode: &str, faultstring: &str) -> HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap-env:Envelope xmlns:soap-env=\"{NS_SOAP_ENV}\">\
<soap-env:Body><soap-env:Fault><faultcode>{}</faultcode><faultstring>{}</faultstring>\
</soap-env:Fault></soap-env:Body></soap-env:Envelope>",
        escape_text(faultcode),
        escape_text(faultstring)
    );
    HttpResponse::InternalServerError()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

fn client_fault(code: &str, message: &str) -> HttpResponse {
    Fault::client(code, message).into_response()
}

/// A failed check: the SOAP fault to answer.
#[derive(Debug)]
struct Fault {
    faultcode: String,
    faultstring: String,
}

impl Fault {
    fn client(code: &str, message: &str) -> Self {
        Self {
            faultcode: format!("soap-env:Client.{code}"),
            faultstring: message.to_owned(),
        }
    }

    fn into_response(self) -> HttpResponse {
        fault(&self.faultcode, &self.faultstring)
    }
}

/// The parts of a request: the operation (`sendBill`, `sendSummary`, `getStatus`,
/// `getStatusCdr`), the credentials, and the operation's fields.
struct Request {
    op: String,
    username: String,
    password: String,
    file_name: String,
    content: String,
    fields: HashMap<String, String>,
}

impl Request {
    /// What `GET /control/calls` counts this call under: the `fileName` of a sendBill or
    /// sendSummary, `getStatus:<ticket>`, `getStatusCdr:<type>-<series>-<number>`.
    fn call_key(&self) -> String {
        let f = |name: &str| self.fields.get(name).map(String::as_str).unwrap_or("");
        match self.op.as_str() {
            "getStatus" => format!("getStatus:{}", f("ticket")),
            "getStatusCdr" => format!(
                "getStatusCdr:{}-{}-{}",
                f("tipoComprobante"),
                f("serieComprobante"),
                f("numeroComprobante")
            ),
            _ => self.file_name.clone(),
        }
    }
}

/// The operations the simulator speaks.
const OPERATIONS: [&str; 4] = ["sendBill", "sendSummary", "getStatus", "getStatusCdr"];

fn parse_envelope(body: &str) -> Result<Request, Fault> {
    let unreadable =
        |why: &str| Fault::client("0306", &format!("No se pudo leer el mensaje SOAP: {why}"));
    let doc = roxmltree::Document::parse(body).map_err(|e| unreadable(&e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name((NS_SOAP_ENV, "Envelope")) {
        return Err(unreadable("the root is not soapenv:Envelope"));
    }
    let send_bill = root
        .children()
        .find(|n| n.has_tag_name((NS_SOAP_ENV, "Body")))
        .and_then(|b| {
            b.children()
                .find(|n| OPERATIONS.contains(&n.tag_name().name()))
        })
        .ok_or_else(|| unreadable("no Body/sendBill"))?;
    let op = send_bill.tag_name().name().to_owned();
    let child = |parent: roxmltree::Node<'_, '_>, name: &str| {
        parent
            .children()
            .find(|n| n.tag_name().name() == name)
            .map(|n| n.text().unwrap_or("").trim().to_owned())
    };
    let fields: HashMap<String, String> = send_bill
        .children()
        .filter(|n| n.is_element())
        .map(|n| {
            (
                n.tag_name().name().to_owned(),
                n.text().unwrap_or("").trim().to_owned(),
            )
        })
        .collect();
    let carries_file = op == "sendBill" || op == "sendSummary";
    let file_name = match child(send_bill, "fileName") {
        Some(f) => f,
        None if carries_file => return Err(unreadable("no fileName")),
        None => String::new(),
    };
    let content = match child(send_bill, "contentFile") {
        Some(c) => c,
        None if carries_file => return Err(unreadable("no contentFile")),
        None => String::new(),
    };
    let token = root
        .children()
        .find(|n| n.has_tag_name((NS_SOAP_ENV, "Header")))
        .and_then(|h| h.children().find(|n| n.has_tag_name((NS_WSSE, "Security"))))
        .and_then(|s| {
            s.children()
                .find(|n| n.has_tag_name((NS_WSSE, "UsernameToken")))
        });
    let Some(token) = token else {
        return Err(Fault::client(
            "0101",
            "El encabezado de seguridad es incorrecto",
        ));
    };
    Ok(Request {
        op,
        username: child(token, "Username").unwrap_or_default(),
        password: child(token, "Password").unwrap_or_default(),
        file_name,
        content,
        fields,
    })
}

/// What a sendBill file carries: a receipt (01, 03) or a credit note (07).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Invoice,
    CreditNote,
}

/// `RUC-TT-SERIE-CORRELATIVO.zip`.
struct FileName {
    ruc: String,
    kind: FileKind,
    /// The receipt's type; for a credit note, the type its series' letter modifies (F: factura,
    /// B: boleta), whose buyer rules it follows.
    doc_type: DocumentType,
    series: String,
    correlative: i64,
    stem: String,
}

fn parse_file_name(name: &str) -> Option<FileName> {
    let stem = name.strip_suffix(".zip")?;
    let mut parts = stem.split('-');
    let (ruc, tt, series, number) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let ruc = Ruc::parse(ruc).ok()?;
    let (kind, series) = if tt == crate::credit_note::CREDIT_NOTE_TYPE {
        (FileKind::CreditNote, Series::parse(series).ok()?)
    } else {
        let doc_type = DocumentType::parse(tt).ok().filter(|_| tt.len() == 2)?;
        (FileKind::Invoice, Series::parse_for(series, doc_type).ok()?)
    };
    let doc_type = series.document_type();
    if number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let correlative: i64 = number.parse().ok()?;
    Some(FileName {
        ruc: ruc.to_string(),
        kind,
        doc_type,
        series: series.to_string(),
        correlative,
        stem: stem.to_owned(),
    })
}

async fn send_bill(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let soap_action = req
        .headers()
        .get("SOAPAction")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_matches('"')
        .to_owned();
    let Ok(text) = std::str::from_utf8(&body) else {
        shared.state.count_call("");
        return client_fault("0306", "No se pudo leer el mensaje SOAP: not UTF-8");
    };
    let request = match parse_envelope(text) {
        Ok(r) => r,
        Err(fault) => {
            shared.state.count_call("");
            return fault.into_response();
        }
    };
    shared.state.count_call(&request.call_key());
    if !soap_action.is_empty() && soap_action != format!("urn:{}", request.op) {
        return client_fault("0306", &format!("Operacion no soportada: {soap_action}"));
    }
    if !credentials_ok(&shared.config, &request) {
        return client_fault("0102", "Usuario o contraseña incorrectos");
    }
    match request.op.as_str() {
        "sendSummary" => ticket::send_summary(&shared, request),
        "getStatus" => ticket::get_status(&shared, &request),
        "getStatusCdr" => ticket::get_status_cdr(&shared, &request),
        _ => handle(&shared, request).await,
    }
}

/// WS-Security: RUC + SOL user, and the password.
fn credentials_ok(config: &SimConfig, request: &Request) -> bool {
    request.username.len() > 11
        && request.username.is_char_boundary(11)
        && request.username[11..] == config.sol_user
        && request.password == *config.sol_password.expose_secret()
}

async fn handle(shared: &Shared, request: Request) -> HttpResponse {
    let config = &shared.config;
    let state = &shared.state;
    let Some(name) = parse_file_name(&request.file_name) else {
        return client_fault(
            "0151",
            &format!(
                "El nombre del archivo ZIP es incorrecto: {}",
                request.file_name
            ),
        );
    };
    // Credentials: RUC + SOL user, and the password.
    let user_ok = request.username.len() > 11
        && request.username.is_char_boundary(11)
        && request.username[11..] == config.sol_user
        && request.password == *config.sol_password.expose_secret();
    if !user_ok {
        return client_fault("0102", "Usuario o contraseña incorrectos");
    }
    if request.username[..11] != name.ruc {
        return client_fault(
            "0154",
            "El RUC del archivo no corresponde al RUC del usuario",
        );
    }

    let scenario = state.take_scenario(&name.series, name.correlative, &request.file_name);
    tracing::info!(file_name = %request.file_name, ?scenario, "sendBill");
    match scenario {
        Scenario::Fault0109 => {
            return client_fault("0109", "El sistema no puede responder su solicitud. (El servicio de autenticación no está disponible)")
        }
        Scenario::Fault0130 => return fault("soap-env:Server", "0130"),
        Scenario::Http503 => {
            return HttpResponse::ServiceUnavailable()
                .content_type("text/html")
                .body("<html><body><h1>503 Service Unavailable</h1></body></html>")
        }
        Scenario::Empty200 => return HttpResponse::Ok().content_type("text/xml").finish(),
        Scenario::Timeout => {
            tokio::time::sleep(config.timeout_delay).await;
            return client_fault("0109", "El sistema no puede responder su solicitud");
        }
        _ => {}
    }

    if let Some(registry) = state.registry(&request.file_name) {
        return taken(registry);
    }
    let checked = match check_document(&name, &request, state) {
        Ok(c) => c,
        Err(fault) => return fault.into_response(),
    };
    let mut answer = match scenario {
        Scenario::AlreadyRegistered => {
            state.register(&request.file_name, Registry::Accepted);
            return taken(Registry::Accepted);
        }
        Scenario::Fault1032 => {
            state.register(&request.file_name, Registry::Rejected);
            return taken(Registry::Rejected);
        }
        Scenario::Fault1079 => {
            return client_fault(
                "1079",
                "Solo puede enviar el comprobante en un resumen diario",
            )
        }
        Scenario::Fault1078 => {
            return client_fault(
                "1078",
                "El emisor no se encuentra autorizado a emitir en el SEE-Desde los sistemas del contribuyente",
            )
        }
        Scenario::Rejection | Scenario::UnknownThen1032 => Answer::rejected(
            "2800",
            "El dato ingresado en el tipo de documento de identidad del receptor no esta permitido.",
        ),
        _ => match &checked.rejection {
            Some((code, text)) => Answer::rejected(code, text),
            None if scenario == Scenario::Observations => Answer {
                code: "0",
                description: accepted_text(&name),
                notes: vec!["4287 - El precio unitario de la operación que está informando difiere de los cálculos realizados en base a la cantidad y el valor unitario".to_owned()],
            },
            None => Answer {
                code: "0",
                description: accepted_text(&name),
                notes: Vec::new(),
            },
        },
    };
    // The content checks' observations ride on an accepted CDR, as SUNAT's do.
    if answer.code == "0" {
        answer.notes.extend(checked.notes.iter().cloned());
    }
    let registry = if answer.code == "0" {
        Registry::Accepted
    } else {
        Registry::Rejected
    };
    if !state.register_with(&request.file_name, registry, &checked) {
        // Another request registered it meanwhile.
        return state.registry(&request.file_name).map_or_else(
            || {
                client_fault(
                    "0138",
                    "El sistema no puede responder su solicitud. (Error en Base de Datos)",
                )
            },
            taken,
        );
    }
    if scenario == Scenario::Fault0125 {
        return client_fault("0125", "No se pudo obtener la constancia");
    }
    let id = format!("{}-{}", name.series, name.correlative);
    let zip = match cdr_zip(
        &name.ruc,
        &id,
        &name.stem,
        answer.code,
        &answer.description,
        &answer.notes,
    ) {
        Ok(z) => z,
        Err(e) => return fault("soap-env:Server", &format!("0200 - {e}")),
    };
    state.store_cdr(&request.file_name, zip.clone());
    let response = application_response(&zip);
    if matches!(
        scenario,
        Scenario::UnknownThen1033 | Scenario::UnknownThen1032
    ) {
        tokio::time::sleep(config.timeout_delay).await;
    }
    response
}

/// The fault for a document already in the registry: 1033 when it was accepted, 1032 when it was
/// rejected (rules 1033 and 1032 of SUNAT's boleta and factura sheets).
fn taken(registry: Registry) -> HttpResponse {
    match registry {
        Registry::Accepted => client_fault(
            "1033",
            "El comprobante fue registrado previamente con otros datos",
        ),
        Registry::Rejected | Registry::Voided => client_fault(
            "1032",
            "El comprobante ya esta informado y se encuentra con estado anulado o rechazado",
        ),
    }
}

/// The CDR to answer.
struct Answer {
    code: &'static str,
    description: String,
    notes: Vec<String>,
}

impl Answer {
    fn rejected(code: &'static str, description: &str) -> Self {
        Self {
            code,
            description: description.to_owned(),
            notes: Vec::new(),
        }
    }
}

fn accepted_text(name: &FileName) -> String {
    let kind = match (name.kind, name.doc_type) {
        (FileKind::CreditNote, _) => "Nota de Credito",
        (_, DocumentType::Factura) => "Factura",
        (_, DocumentType::Boleta) => "Boleta",
    };
    format!(
        "La {kind} numero {}-{}, ha sido aceptada",
        name.series, name.correlative
    )
}

/// What the content checks found in a readable, signed document.
#[derive(Debug, Default)]
struct Checked {
    /// A rule that rejects the receipt (CDR code and text).
    rejection: Option<(&'static str, String)>,
    /// Observations (`4208 - ...`) for the CDR of an accepted receipt.
    notes: Vec<String>,
    /// What the registry keeps of the document once accepted (a credit note's limit reads it).
    facts: Option<notes::Facts>,
    /// A credit note's amount, credited to its original (by registry key) once accepted.
    credit: Option<(String, bigdecimal::BigDecimal)>,
}

/// The zip, the file names, the XML's identity and structure, and the signature (faults); then
/// the buyer's and the items' rules (a rejection or observations).
fn check_document(name: &FileName, request: &Request, state: &SimState) -> Result<Checked, Fault> {
    let zip = B64
        .decode(request.content.as_bytes())
        .map_err(|_| Fault::client("0156", "El archivo ZIP esta corrupto (base64)"))?;
    let (entry, xml) = archive::read_single(&zip)
        .map_err(|e| Fault::client(e.sunat_code(), &format!("El archivo ZIP no es valido: {e}")))?;
    if entry != format!("{}.xml", name.stem) {
        return Err(Fault::client(
            "0161",
            &format!("El nombre del archivo XML {entry} no coincide con el nombre del archivo ZIP"),
        ));
    }
    if xml.is_empty() {
        return Err(Fault::client("0160", "El archivo XML esta vacio"));
    }
    let unreadable = |why: &str| {
        Fault::client(
            "0306",
            &format!("No se puede leer (parsear) el archivo XML: {why}"),
        )
    };
    let text = std::str::from_utf8(&xml).map_err(|e| unreadable(&e.to_string()))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| unreadable(&e.to_string()))?;
    let root = doc.root_element();
    let (root_name, line_tag) = match name.kind {
        FileKind::Invoice => ((NS_INVOICE, "Invoice"), "InvoiceLine"),
        FileKind::CreditNote => ((NS_CREDIT_NOTE, "CreditNote"), "CreditNoteLine"),
    };
    if !root.has_tag_name(root_name) {
        return Err(unreadable(&format!(
            "the root element is not an UBL {} (the file name says type {})",
            root_name.1,
            match name.kind {
                FileKind::Invoice => name.doc_type.code(),
                FileKind::CreditNote => crate::credit_note::CREDIT_NOTE_TYPE,
            }
        )));
    }
    let cbc = cbc_text;
    let missing = |what: &str| {
        Fault::client(
            "0305",
            &format!("El XML no contiene el tag o no existe informacion de {what}"),
        )
    };
    for required in [
        "UBLVersionID",
        "CustomizationID",
        "ID",
        "IssueDate",
        "DocumentCurrencyCode",
    ] {
        cbc(root, required).ok_or_else(|| missing(required))?;
    }
    if name.kind == FileKind::Invoice {
        cbc(root, "InvoiceTypeCode").ok_or_else(|| missing("InvoiceTypeCode"))?;
    }
    for required in [
        "AccountingSupplierParty",
        "AccountingCustomerParty",
        "TaxTotal",
        "LegalMonetaryTotal",
        line_tag,
    ] {
        root.children()
            .find(|n| n.has_tag_name((NS_CAC, required)))
            .ok_or_else(|| missing(required))?;
    }
    let supplier_ruc = root
        .children()
        .find(|n| n.has_tag_name((NS_CAC, "AccountingSupplierParty")))
        .and_then(|p| {
            p.descendants()
                .find(|n| n.has_tag_name((NS_CAC, "PartyIdentification")))
        })
        .and_then(|pi| cbc(pi, "ID"))
        .ok_or_else(|| missing("AccountingSupplierParty/Party/PartyIdentification/ID"))?;
    if supplier_ruc != name.ruc {
        return Err(Fault::client(
            "1034",
            "Número de RUC del nombre del archivo no coincide con el consignado en el contenido del archivo XML",
        ));
    }
    let id = cbc(root, "ID").unwrap_or("");
    let (series, number) = id.split_once('-').unwrap_or((id, ""));
    if series != name.series {
        return Err(Fault::client(
            "1035",
            "Numero de Serie del nombre del archivo no coincide con el consignado en el contenido del archivo XML",
        ));
    }
    if number.parse::<i64>().ok() != Some(name.correlative) {
        return Err(Fault::client(
            "1036",
            "Número de documento en el nombre del archivo no coincide con el consignado en el contenido del XML",
        ));
    }
    if name.kind == FileKind::Invoice && cbc(root, "InvoiceTypeCode") != Some(name.doc_type.code())
    {
        return Err(Fault::client(
            "1003",
            "InvoiceTypeCode - El valor del tipo de documento es invalido o no coincide con el nombre del archivo",
        ));
    }
    sign::verify(&xml).map_err(|e| {
        let text = match e.sunat_code() {
            "2335" => "El documento electrónico ingresado ha sido alterado".to_owned(),
            _ => format!("Ocurrió un error en el proceso de validación de la firma digital: {e}"),
        };
        Fault::client(e.sunat_code(), &text)
    })?;
    let mut checked = check_content(root, name.doc_type);
    // The sums of the lines and totals, and the tax schemes against the affectations.
    let lines = match name.kind {
        FileKind::Invoice => sums::INVOICE_LINES,
        FileKind::CreditNote => sums::CREDIT_NOTE_LINES,
    };
    let sums = sums::check(root, lines);
    checked.notes.extend(sums.notes);
    if checked.rejection.is_none() {
        checked.rejection = sums.rejection;
    }
    checked.facts = notes::Facts::of(root);
    if name.kind == FileKind::CreditNote {
        // What it modifies, why, and by how much, against the registry.
        let note = notes::check(root, name, state);
        checked.notes.extend(note.notes);
        if checked.rejection.is_none() {
            checked.rejection = note.rejection;
        }
        checked.credit = note.credit;
    }
    Ok(checked)
}

/// SUNAT's format rules on the buyer and the items that the simulator answers.
fn check_content(root: roxmltree::Node<'_, '_>, doc_type: DocumentType) -> Checked {
    let mut checked = Checked::default();
    let customer = root
        .children()
        .find(|n| n.has_tag_name((NS_CAC, "AccountingCustomerParty")));
    let buyer_id = customer
        .and_then(|c| {
            c.descendants()
                .find(|n| n.has_tag_name((NS_CAC, "PartyIdentification")))
        })
        .and_then(|pi| pi.children().find(|n| n.has_tag_name((NS_CBC, "ID"))));
    if let Some(id) = buyer_id.filter(|_| doc_type == DocumentType::Boleta) {
        let number = id.text().unwrap_or("");
        match id.attribute("schemeID").unwrap_or("") {
            // 4208, for types 4, 7, 0 and A-G: as validators apply it, `^[\d\w]{1,15}$`.
            "0" | "4" | "7" | "A" | "B" | "C" | "D" | "E" | "F" | "G" => {
                let len = number.chars().count();
                let word = number
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !((1..=15).contains(&len) && word) {
                    checked.notes.push("4208 - El dato ingresado como numero de documento de identidad del receptor no cumple con el formato establecido".to_owned());
                }
            }
            // 4207: a DNI is 8 digits.
            "1" if !(number.len() == 8 && number.bytes().all(|b| b.is_ascii_digit())) => {
                checked
                    .notes
                    .push("4207 - El DNI debe tener 8 caracteres numéricos".to_owned());
            }
            _ => {}
        }
    }
    // 2022: the buyer's name, 3 to 1500 characters, no whitespace but spaces.
    let buyer_name = customer
        .and_then(|c| {
            c.descendants()
                .find(|n| n.has_tag_name((NS_CBC, "RegistrationName")))
        })
        .and_then(|n| n.text())
        .unwrap_or("");
    if !crate::document::is_registration_name(buyer_name) {
        checked.rejection = Some((
            "2022",
            "RegistrationName -  El dato ingresado no cumple con el estandar".to_owned(),
        ));
    }
    // 4269: each item code, 1 to 30 characters, no whitespace but spaces.
    let bad_code = root
        .descendants()
        .filter(|n| n.has_tag_name((NS_CAC, "SellersItemIdentification")))
        .filter_map(|n| n.children().find(|c| c.has_tag_name((NS_CBC, "ID"))))
        .any(|id| {
            let code = id.text().unwrap_or("");
            let len = code.chars().count();
            !(1..=30).contains(&len) || code.chars().any(|c| c != ' ' && c.is_whitespace())
        });
    if bad_code {
        checked.notes.push(
            "4269 - El dato ingresado como codigo de producto no cumple con el formato establecido."
                .to_owned(),
        );
    }
    checked
}

/// The trimmed text of the `cbc:<local>` child of `parent`.
fn cbc_text<'a>(parent: roxmltree::Node<'a, '_>, local: &str) -> Option<&'a str> {
    parent
        .children()
        .find(|n| n.has_tag_name((NS_CBC, local)))
        .and_then(|n| n.text())
        .map(str::trim)
}

/// The CDR zip (`dummy/` then `R-<stem>.xml`, ISO-8859-1 like SUNAT's) answering document or
/// summary `id`.
fn cdr_zip(
    ruc: &str,
    id: &str,
    stem: &str,
    code: &str,
    description: &str,
    notes: &[String],
) -> Result<Vec<u8>, archive::ArchiveError> {
    let xml = cdr_xml(ruc, id, code, description, notes);
    let latin1: Vec<u8> = xml
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect();
    archive::zip_entries(&[("dummy/", b""), (&format!("R-{stem}.xml"), &latin1)])
}

/// The success answer of sendBill: `applicationResponse` holding the CDR zip.
fn application_response(zip: &[u8]) -> HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap-env:Envelope xmlns:soap-env=\"{NS_SOAP_ENV}\">\
<soap-env:Header/><soap-env:Body><br:sendBillResponse xmlns:br=\"http://service.sunat.gob.pe\">\
<applicationResponse>{}</applicationResponse></br:sendBillResponse></soap-env:Body></soap-env:Envelope>",
        B64.encode(zip)
    );
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(body)
}

/// The CDR, an UBL 2.1 `ApplicationResponse` (unsigned: the simulator has no SUNAT key).
fn cdr_xml(ruc: &str, id: &str, code: &str, description: &str, notes: &[String]) -> String {
    let utc = chrono::Utc::now();
    // Lima is UTC-5 all year.
    let now = chrono::FixedOffset::west_opt(5 * 3600)
        .map(|lima| utc.with_timezone(&lima).naive_local())
        .unwrap_or_else(|| utc.naive_utc());
    let date = now.format("%Y-%m-%d").to_string();
    let time = now.format("%H:%M:%S").to_string();
    let mut notes_xml = String::new();
    for n in notes {
        notes_xml.push_str(&format!("<cbc:Note>{}</cbc:Note>", escape_text(n)));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n\
<ar:ApplicationResponse xmlns:ar=\"urn:oasis:names:specification:ubl:schema:xsd:ApplicationResponse-2\" xmlns:cac=\"{NS_CAC}\" xmlns:cbc=\"{NS_CBC}\">\
<cbc:UBLVersionID>2.0</cbc:UBLVersionID><cbc:CustomizationID>1.0</cbc:CustomizationID>\
<cbc:ID>{}</cbc:ID><cbc:IssueDate>{date}</cbc:IssueDate><cbc:IssueTime>{time}</cbc:IssueTime>\
<cbc:ResponseDate>{date}</cbc:ResponseDate><cbc:ResponseTime>{time}</cbc:ResponseTime>{notes_xml}\
<cac:SenderParty><cac:PartyIdentification><cbc:ID>20131312955</cbc:ID></cac:PartyIdentification></cac:SenderParty>\
<cac:ReceiverParty><cac:PartyIdentification><cbc:ID>{}</cbc:ID></cac:PartyIdentification></cac:ReceiverParty>\
<cac:DocumentResponse><cac:Response><cbc:ReferenceID>{}</cbc:ReferenceID><cbc:ResponseCode>{}</cbc:ResponseCode>\
<cbc:Description>{}</cbc:Description></cac:Response>\
<cac:DocumentReference><cbc:ID>{}</cbc:ID></cac:DocumentReference></cac:DocumentResponse></ar:ApplicationResponse>\n",
        utc.timestamp_millis(),
        escape_text(ruc),
        escape_text(id),
        escape_text(code),
        escape_text(description),
        escape_text(id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse() {
        let n = parse_file_name("20100066603-03-B001-7.zip").unwrap();
        assert_eq!((n.series.as_str(), n.correlative), ("B001", 7));
        assert!(parse_file_name("20100066603-03-F001-7.zip").is_none());
        assert!(parse_file_name("20100066603-03-B001-07.zip").is_none());
        assert!(parse_file_name("20100066603-03-B001-7.xml").is_none());
    }

    #[test]
    fn scenario_names_are_the_documented_ones() {
        let s: Scenario = serde_json::from_str("\"unknown_then_1033\"").unwrap();
        assert_eq!(s, Scenario::UnknownThen1033);
        assert_eq!(
            serde_json::to_string(&Scenario::Http503).unwrap(),
            "\"http_503\""
        );
        assert_eq!(
            Scenario::by_correlative(99_999_906),
            Some(Scenario::Timeout)
        );
        assert_eq!(Scenario::by_correlative(7), None);
        for s in Scenario::ALL {
            let name = s.name();
            let back: Scenario = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(back, s);
            if let Some(c) = s.correlative() {
                assert_eq!(Scenario::by_correlative(c), Some(s), "{name}");
            }
            // The module's table lists every scenario with its correlative.
            let row = format!(
                "//! | `{name}` | {} |",
                s.correlative()
                    .map_or("any other".into(), |c| c.to_string())
            );
            assert!(include_str!("sim.rs").contains(&row), "{row}");
        }
    }

    fn content(xml: &str) -> Checked {
        let doc = roxmltree::Document::parse(xml).unwrap();
        check_content(doc.root_element(), DocumentType::Boleta)
    }

    fn boleta(scheme: &str, id: &str, name: &str, code: &str) -> String {
        format!(
            "<Invoice xmlns=\"{NS_INVOICE}\" xmlns:cac=\"{NS_CAC}\" xmlns:cbc=\"{NS_CBC}\">\
<cac:AccountingCustomerParty><cac:Party><cac:PartyIdentification><cbc:ID schemeID=\"{scheme}\">{id}</cbc:ID>\
</cac:PartyIdentification><cac:PartyLegalEntity><cbc:RegistrationName>{name}</cbc:RegistrationName>\
</cac:PartyLegalEntity></cac:Party></cac:AccountingCustomerParty><cac:InvoiceLine><cac:Item>\
<cac:SellersItemIdentification><cbc:ID>{code}</cbc:ID></cac:SellersItemIdentification></cac:Item>\
</cac:InvoiceLine></Invoice>"
        )
    }

    #[test]
    fn the_buyer_and_item_rules_answer_sunat_codes() {
        let notes = |x: &str| content(x).notes;
        let ok = boleta("0", "00000000", "CLIENTES VARIOS", "INKA-500");
        assert!(notes(&ok).is_empty());
        assert!(content(&ok).rejection.is_none());
        // 4208: type 0 with "-", with a space, too long.
        for id in ["-", "A B", "1234567890123456", ""] {
            let n = notes(&boleta("0", id, "CLIENTES VARIOS", "X"));
            assert!(n.len() == 1 && n[0].starts_with("4208 - "), "{id:?}: {n:?}");
        }
        assert!(notes(&boleta("7", "AB12345", "Juan Pérez", "X")).is_empty());
        // 4207: a DNI of 7 digits.
        let n = notes(&boleta("1", "1234567", "Juan Pérez", "X"));
        assert!(n[0].starts_with("4207 - "), "{n:?}");
        // 4269: an item code of 31 characters.
        let n = notes(&boleta("1", "12345678", "Juan Pérez", &"A".repeat(31)));
        assert!(n[0].starts_with("4269 - "), "{n:?}");
        // 2022: a name of 2 characters.
        let c = content(&boleta("1", "12345678", "Al", "X"));
        assert_eq!(c.rejection.map(|r| r.0), Some("2022"));
    }
}
