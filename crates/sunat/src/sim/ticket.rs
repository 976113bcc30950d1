//! The simulator's ticket services: `sendSummary` (a Resumen Diario or a Comunicación de Baja,
//! checked like SUNAT: file name, zip, ID, dates, signature, then each line against the
//! registry), `getStatus` (98 for a chosen number of polls, then 0 or 99 with the CDR) and the
//! billConsultService's `getStatusCdr`.
//!
//! A summary's lines take effect when it is received (an accepted RA or RC status 3 voids its
//! documents, an RC status 1 registers its boletas); the ticket only delays the answer. The
//! voiding window is measured from the document's issue date (the summary's `ReferenceDate`) to
//! the summary's `IssueDate`, which SUNAT checks against the reception date.

use std::collections::{HashMap, HashSet};

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use bigdecimal::BigDecimal;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::notes::Facts;
use super::{
    cdr_zip, client_fault, doc_key, Fault, Registry, Request, Shared, SimState, State, B64, NS_CAC,
    NS_SOAP_ENV,
};
use crate::archive;
use crate::document::{DocumentType, Ruc, Series};
use crate::sign;
use crate::summary::{SummaryId, SummaryKind, NS_SAC, NS_SUMMARY, NS_VOIDED};
use crate::ubl::escape_text;

/// How the simulator answers one summary, set with `POST /control/summary`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRequest {
    /// `RC-20250315-1` or `RA-20250315-1`.
    pub summary_id: String,
    /// How many `getStatus` calls answer 98 (in process) before the result.
    #[serde(default)]
    pub pending_polls: u32,
    /// `accepted` (default: the checks decide) or `rejection` (99 with CDR 2800, nothing applied).
    #[serde(default)]
    pub scenario: Option<SummaryScenario>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryScenario {
    Accepted,
    Rejection,
}

#[derive(Default)]
pub(super) struct Tickets {
    next: u64,
    by_ticket: HashMap<String, Ticket>,
    /// `RUC-RC-YYYYMMDD-N` already received: an ID is never reused (2223, 2324).
    ids_seen: HashSet<String>,
    controls: HashMap<String, (u32, Option<SummaryScenario>)>,
}

struct Ticket {
    polls_left: u32,
    status_code: &'static str,
    zip: Vec<u8>,
}

impl SimState {
    pub fn set_summary(&self, req: SummaryRequest) {
        let mut s = self.lock();
        s.tickets.controls.insert(
            req.summary_id.trim().to_owned(),
            (req.pending_polls, req.scenario),
        );
    }
}

pub(super) async fn control_summary(
    shared: web::Data<Shared>,
    req: web::Json<SummaryRequest>,
) -> HttpResponse {
    let req = req.into_inner();
    if SummaryId::parse(&req.summary_id).is_err() {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": format!("invalid summary_id {:?}: expected e.g. RC-20250315-1 or RA-20250315-1", req.summary_id)
        }));
    }
    shared.state.set_summary(req);
    HttpResponse::Ok().json(serde_json::json!({ "ok": true }))
}

fn soap_ok(inner: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap-env:Envelope xmlns:soap-env=\"{NS_SOAP_ENV}\">\
<soap-env:Header/><soap-env:Body>{inner}</soap-env:Body></soap-env:Envelope>"
        ))
}

/// A line's error: SUNAT's code and text.
type LineError = (&'static str, String);

/// What the summary's lines do when it is accepted.
enum Effect {
    Void(String),
    /// A boleta informed with status 1, with what the registry keeps of it (its notes are
    /// checked against its total).
    Register(String, Facts),
    /// A credit note of a boleta informed with status 1: registered, and its total taken off
    /// what is left of the boleta (`original`).
    Credit {
        key: String,
        original: String,
        total: BigDecimal,
        facts: Facts,
    },
}

pub(super) fn send_summary(shared: &Shared, request: Request) -> HttpResponse {
    match check_summary(&shared.state, &request) {
        Ok(answer) => answer,
        Err(fault) => fault.into_response(),
    }
}

fn check_summary(state: &SimState, request: &Request) -> Result<HttpResponse, Fault> {
    let bad_name = || {
        Fault::client(
            "0151",
            &format!(
                "El nombre del archivo ZIP es incorrecto: {}",
                request.file_name
            ),
        )
    };
    let stem = request
        .file_name
        .strip_suffix(".zip")
        .ok_or_else(bad_name)?;
    let (ruc, id) = stem.split_once('-').ok_or_else(bad_name)?;
    let ruc = Ruc::parse(ruc).map_err(|_| bad_name())?.to_string();
    let id = SummaryId::parse(id).map_err(|_| bad_name())?;
    if request.username.get(..11) != Some(ruc.as_str()) {
        return Err(Fault::client(
            "0154",
            "El RUC del archivo no corresponde al RUC del usuario",
        ));
    }
    let zip = B64
        .decode(request.content.as_bytes())
        .map_err(|_| Fault::client("0156", "El archivo ZIP esta corrupto (base64)"))?;
    let (entry, xml) = archive::read_single(&zip)
        .map_err(|e| Fault::client(e.sunat_code(), &format!("El archivo ZIP no es valido: {e}")))?;
    if entry != format!("{stem}.xml") {
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
    let (ns, root_name, customization) = match id.kind {
        SummaryKind::Daily => (NS_SUMMARY, "SummaryDocuments", "1.1"),
        SummaryKind::Voided => (NS_VOIDED, "VoidedDocuments", "1.0"),
    };
    if !root.has_tag_name((ns, root_name)) {
        return Err(unreadable(&format!("the root element is not {root_name}")));
    }
    let cbc = super::cbc_text;
    let missing = |what: &str| {
        Fault::client(
            "0305",
            &format!("El XML no contiene el tag o no existe informacion de {what}"),
        )
    };
    if cbc(root, "ID") != Some(id.to_string().as_str()) {
        return Err(Fault::client(
            "2220",
            "El ID debe coincidir con el nombre del archivo",
        ));
    }
    if cbc(root, "CustomizationID") != Some(customization) {
        return Err(Fault::client(
            "2072",
            "CustomizationID - La versión del documento no es la correcta",
        ));
    }
    let date = |name: &str| {
        cbc(root, name)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| missing(name))
    };
    let issue_date = date("IssueDate")?;
    let reference_date = date("ReferenceDate")?;
    if issue_date != id.issue_date {
        return Err(Fault::client(
            "2346",
            "La fecha de generación del resumen debe ser igual a la fecha consignada en el nombre del archivo",
        ));
    }
    if reference_date > issue_date {
        return Err(Fault::client(
            "2671",
            "La fecha de emision de los documentos debe ser menor o igual a la fecha de generacion",
        ));
    }
    let supplier = root
        .children()
        .find(|n| n.has_tag_name((NS_CAC, "AccountingSupplierParty")))
        .and_then(|p| cbc(p, "CustomerAssignedAccountID"))
        .ok_or_else(|| missing("AccountingSupplierParty/CustomerAssignedAccountID"))?;
    if supplier != ruc {
        return Err(Fault::client(
            "1034",
            "Número de RUC del nombre del archivo no coincide con el consignado en el contenido del archivo XML",
        ));
    }
    sign::verify(&xml).map_err(|e| {
        let text = match e.sunat_code() {
            "2335" => "El documento electrónico ingresado ha sido alterado".to_owned(),
            _ => format!("Ocurrió un error en el proceso de validación de la firma digital: {e}"),
        };
        Fault::client(e.sunat_code(), &text)
    })?;

    let late = (issue_date - reference_date).num_days() > 7;
    let key_seen = format!("{ruc}-{id}");
    let mut s = state.lock();
    let (pending_polls, scenario) = s
        .tickets
        .controls
        .remove(&id.to_string())
        .unwrap_or((0, None));
    let reused = !s.tickets.ids_seen.insert(key_seen);
    let checked = if reused {
        Err(match id.kind {
            SummaryKind::Daily => (
                "2223",
                "El archivo ya fue presentado anteriormente".to_owned(),
            ),
            SummaryKind::Voided => (
                "2324",
                "El archivo de comunicacion de baja ya fue presentado anteriormente".to_owned(),
            ),
        })
    } else {
        match id.kind {
            SummaryKind::Voided => {
                check_voided(root, &ruc, late, &s.registered).map(|effects| (effects, Vec::new()))
            }
            SummaryKind::Daily => check_daily(root, &ruc, late, reference_date, &s),
        }
    };
    let checked = match (checked, scenario) {
        (Ok(_), Some(SummaryScenario::Rejection)) => Err((
            "2800",
            "El dato ingresado en el tipo de documento de identidad del receptor no esta permitido."
                .to_owned(),
        )),
        (other, _) => other,
    };
    let mut observations = Vec::new();
    let (status_code, code, description) = match checked {
        Ok((effects, notes)) => {
            observations = notes;
            for effect in effects {
                match effect {
                    Effect::Void(key) => {
                        s.registered.insert(key, Registry::Voided);
                    }
                    Effect::Register(key, facts) => {
                        s.registered.insert(key.clone(), Registry::Accepted);
                        s.facts.insert(key, facts);
                    }
                    Effect::Credit {
                        key,
                        original,
                        total,
                        facts,
                    } => {
                        s.registered.insert(key.clone(), Registry::Accepted);
                        s.facts.insert(key, facts);
                        *s.credited.entry(original).or_default() += total;
                    }
                }
            }
            let what = match id.kind {
                SummaryKind::Daily => "El Resumen diario",
                SummaryKind::Voided => "La Comunicacion de baja",
            };
            ("0", "0", format!("{what} {id}, ha sido aceptado"))
        }
        Err((code, text)) => ("99", code, text),
    };
    let zip = cdr_zip(
        &ruc,
        &id.to_string(),
        stem,
        code,
        &description,
        &observations,
    )
    .map_err(|e| Fault::client("0200", &e.to_string()))?;
    s.tickets.next += 1;
    let ticket = format!("{}", 1_700_000_000_000_u64 + s.tickets.next);
    s.tickets.by_ticket.insert(
        ticket.clone(),
        Ticket {
            polls_left: pending_polls,
            status_code,
            zip,
        },
    );
    drop(s);
    tracing::info!(file_name = %request.file_name, %ticket, code, "sendSummary");
    Ok(soap_ok(&format!(
        "<br:sendSummaryResponse xmlns:br=\"http://service.sunat.gob.pe\"><ticket>{ticket}</ticket></br:sendSummaryResponse>"
    )))
}

fn sac_text<'a>(parent: roxmltree::Node<'a, '_>, local: &str) -> Option<&'a str> {
    parent
        .children()
        .find(|n| n.has_tag_name((NS_SAC, local)))
        .and_then(|n| n.text())
        .map(str::trim)
}

fn lines<'a, 'i>(
    root: roxmltree::Node<'a, 'i>,
    local: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    root.children()
        .filter(move |n| n.has_tag_name((NS_SAC, local)))
}

/// A Comunicación de Baja's lines: facturas (01) SUNAT has accepted, each once, inside the
/// window.
fn check_voided(
    root: roxmltree::Node<'_, '_>,
    ruc: &str,
    late: bool,
    registry: &HashMap<String, Registry>,
) -> Result<Vec<Effect>, LineError> {
    let mut effects = Vec::new();
    let mut seen = HashSet::new();
    for line in lines(root, "VoidedDocumentsLine") {
        let tt = super::cbc_text(line, "DocumentTypeCode").unwrap_or("");
        let series = sac_text(line, "DocumentSerialID").unwrap_or("");
        let number = sac_text(line, "DocumentNumberID").unwrap_or("");
        let reason = sac_text(line, "VoidReasonDescription").unwrap_or("");
        if tt != "01" || Series::parse_for(series, DocumentType::Factura).is_err() {
            return Err((
                "2308",
                format!("El tipo de documento {tt} {series} no puede darse de baja con una Comunicacion de Baja"),
            ));
        }
        if reason.is_empty() {
            return Err(("2315", "Debe indicar el motivo de baja".to_owned()));
        }
        let key = doc_key(ruc, tt, series, number);
        if !seen.insert(key.clone()) {
            return Err((
                "2348",
                format!("El documento {series}-{number} se repite en la comunicacion de baja"),
            ));
        }
        match registry.get(&key) {
            None => {
                return Err((
                    "2105",
                    format!("El documento {series}-{number} no se encuentra registrado"),
                ))
            }
            Some(Registry::Rejected) => {
                return Err((
                    "2398",
                    format!("El documento {series}-{number} se encuentra rechazado"),
                ))
            }
            Some(Registry::Voided) => {
                return Err((
                    "2323",
                    format!("El documento {series}-{number} ya se encuentra de baja"),
                ))
            }
            Some(Registry::Accepted) => {}
        }
        if late {
            return Err((
                "2957",
                "El plazo para dar de baja el comprobante ha vencido (7 dias)".to_owned(),
            ));
        }
        effects.push(Effect::Void(key));
    }
    if effects.is_empty() {
        return Err(("0305", "La comunicacion de baja no tiene lineas".to_owned()));
    }
    Ok(effects)
}

/// A Resumen Diario's lines: boletas (03) and credit notes (07) of boletas; status 1 for a
/// document SUNAT does not have, status 3 for one it accepted inside the window, each document
/// and status once. A note must name, in `cac:BillingReference`, a boleta SUNAT holds (or one an
/// earlier line of this summary informs) that is neither voided nor rejected (V/RD 11: 2524,
/// 2583, 2513, 2920, 2989, 2990); a `cac:BillingReference` on a boleta's line is 2582. A note
/// for more than what is left of its boleta is observation 4028, as by `sendBill`. Returns the
/// effects and the observations.
fn check_daily(
    root: roxmltree::Node<'_, '_>,
    ruc: &str,
    late: bool,
    reference_date: NaiveDate,
    state: &State,
) -> Result<(Vec<Effect>, Vec<String>), LineError> {
    let registry = &state.registered;
    let mut effects = Vec::new();
    let mut observations = Vec::new();
    let mut seen = HashSet::new();
    // Boletas this summary informs, with their totals, and what its notes took of each.
    let mut informed: HashMap<String, BigDecimal> = HashMap::new();
    let mut credited_here: HashMap<String, BigDecimal> = HashMap::new();
    for line in lines(root, "SummaryDocumentsLine") {
        let tt = super::cbc_text(line, "DocumentTypeCode").unwrap_or("");
        let doc_id = super::cbc_text(line, "ID").unwrap_or("");
        let (series, number) = doc_id.split_once('-').unwrap_or((doc_id, ""));
        let status = line
            .children()
            .find(|n| n.has_tag_name((NS_CAC, "Status")))
            .and_then(|st| super::cbc_text(st, "ConditionCode"))
            .unwrap_or("");
        if !["03", "07"].contains(&tt) || Series::parse_for(series, DocumentType::Boleta).is_err() {
            return Err((
                "2241",
                format!(
                    "El tipo de documento {tt} {doc_id} no puede informarse en un resumen diario"
                ),
            ));
        }
        let total_node = line
            .children()
            .find(|n| n.has_tag_name((NS_SAC, "TotalAmount")));
        let Some(total_node) = total_node else {
            return Err(("0305", format!("La linea de {doc_id} no tiene TotalAmount")));
        };
        let total: BigDecimal = match total_node.text().map(str::trim).map(str::parse::<BigDecimal>) {
            Some(Ok(t)) if t.sign() != bigdecimal::num_bigint::Sign::Minus => t,
            _ => {
                return Err((
                    "2251",
                    format!(
                        "El dato ingresado en TotalAmount de {doc_id} debe ser numerico mayor o igual a cero"
                    ),
                ))
            }
        };
        let facts = Facts {
            total: total.clone(),
            currency: total_node.attribute("currencyID").unwrap_or("").to_owned(),
            issue_date: reference_date,
        };
        let reference = line
            .children()
            .filter(|n| n.has_tag_name((NS_CAC, "BillingReference")))
            .flat_map(|b| b.children())
            .find(|n| n.has_tag_name((NS_CAC, "InvoiceDocumentReference")));
        // A note's boleta: its registry key, checked before the note's own state.
        let original = if tt == "07" {
            if status == "3" {
                None
            } else {
                Some(note_reference(reference, ruc, doc_id, registry, &informed)?)
            }
        } else {
            if reference.is_some() {
                return Err((
                    "2582",
                    format!(
                        "Solo se debe incluir el tag de Comprobante de referencia cuando se trata de una nota de credito o debito ({doc_id})"
                    ),
                ));
            }
            None
        };
        let key = doc_key(ruc, tt, series, number);
        if !seen.insert(key.clone()) {
            return Err((
                "3094",
                format!("El documento {doc_id} se repite en el resumen con el mismo estado"),
            ));
        }
        let registered = registry.get(&key).copied();
        if matches!(registered, Some(Registry::Rejected | Registry::Voided)) {
            return Err((
                "2987",
                format!(
                    "El documento {doc_id} ya fue informado y se encuentra anulado o rechazado"
                ),
            ));
        }
        match status {
            "1" if registered.is_some() => {
                return Err(("2282", format!("El documento {doc_id} ya fue informado")))
            }
            "1" => match original {
                Some(original) => {
                    // What is left of the boleta: its total less the notes SUNAT took before
                    // and those earlier in this summary.
                    let boleta_total = state
                        .facts
                        .get(&original)
                        .map(|f| f.total.clone())
                        .or_else(|| informed.get(&original).cloned());
                    let before = state.credited.get(&original).cloned().unwrap_or_default()
                        + credited_here.get(&original).cloned().unwrap_or_default();
                    if let Some(boleta_total) = boleta_total {
                        if total > &boleta_total - &before {
                            observations.push(format!(
                                "4028 - El monto total de la nota de credito {doc_id} debe ser menor o igual al monto de la boleta"
                            ));
                        }
                    }
                    *credited_here.entry(original.clone()).or_default() += &total;
                    effects.push(Effect::Credit {
                        key,
                        original,
                        total,
                        facts,
                    });
                }
                None => {
                    informed.insert(key.clone(), total);
                    effects.push(Effect::Register(key, facts));
                }
            },
            "3" if registered.is_none() => {
                return Err((
                    "2663",
                    format!("El documento {doc_id} no se encuentra registrado"),
                ))
            }
            "3" if late => {
                return Err((
                    "2957",
                    "El plazo para anular el comprobante ha vencido (7 dias)".to_owned(),
                ))
            }
            "3" => effects.push(Effect::Void(key)),
            other => {
                return Err((
                    "2896",
                    format!("El estado {other:?} de {doc_id} no es valido (catalogo 19)"),
                ))
            }
        }
    }
    if effects.is_empty() {
        return Err(("0305", "El resumen diario no tiene lineas".to_owned()));
    }
    Ok((effects, observations))
}

/// The boleta a note's line modifies, as its registry key: the reference must be there (2524),
/// name a boleta (2583, 2513) by a boleta number (2920), and SUNAT must hold that boleta, or an
/// earlier line of the summary inform it (2989), neither voided nor rejected (2990).
fn note_reference(
    reference: Option<roxmltree::Node<'_, '_>>,
    ruc: &str,
    doc_id: &str,
    registry: &HashMap<String, Registry>,
    informed: &HashMap<String, BigDecimal>,
) -> Result<String, LineError> {
    let Some(reference) = reference else {
        return Err((
            "2524",
            format!("Debe indicar el documento afectado por la nota {doc_id}"),
        ));
    };
    let Some(rt) = super::cbc_text(reference, "DocumentTypeCode").filter(|t| !t.is_empty()) else {
        return Err((
            "2583",
            format!("Debe consignar tipo de documento que modifica la nota {doc_id}"),
        ));
    };
    if rt != "03" {
        return Err((
            "2513",
            format!("La nota {doc_id} de un resumen diario modifica una boleta (03), no {rt}"),
        ));
    }
    let rid = super::cbc_text(reference, "ID").unwrap_or("");
    let (rseries, rnumber) = rid.split_once('-').unwrap_or((rid, ""));
    let number_ok = (1..=8).contains(&rnumber.len())
        && rnumber.bytes().all(|b| b.is_ascii_digit())
        && rnumber.trim_start_matches('0') == rnumber;
    if Series::parse_for(rseries, DocumentType::Boleta).is_err() || !number_ok {
        return Err((
            "2920",
            format!("Dato no cumple con formato de acuerdo al tipo de documento: {rid}"),
        ));
    }
    let key = doc_key(ruc, rt, rseries, rnumber);
    match registry.get(&key) {
        Some(Registry::Accepted) => Ok(key),
        Some(Registry::Voided | Registry::Rejected) => Err((
            "2990",
            format!(
                "El comprobante (electronico) {rid} a la que hace referencia la nota {doc_id}, se encuentra anulado o rechazada."
            ),
        )),
        None if informed.contains_key(&key) => Ok(key),
        None => Err((
            "2989",
            format!(
                "El comprobante (electronico) {rid} a la que hace referencia la nota {doc_id}, no se encuentra informado."
            ),
        )),
    }
}

pub(super) fn get_status(shared: &Shared, request: &Request) -> HttpResponse {
    let ticket = request.fields.get("ticket").cloned().unwrap_or_default();
    let mut s = shared.state.lock();
    let Some(t) = s.tickets.by_ticket.get_mut(&ticket) else {
        return client_fault("0127", "El ticket no existe");
    };
    let inner = if t.polls_left > 0 {
        t.polls_left -= 1;
        "<statusCode>98</statusCode>".to_owned()
    } else {
        format!(
            "<content>{}</content><statusCode>{}</statusCode>",
            B64.encode(&t.zip),
            t.status_code
        )
    };
    drop(s);
    soap_ok(&format!(
        "<br:getStatusResponse xmlns:br=\"http://service.sunat.gob.pe\"><status>{inner}</status></br:getStatusResponse>"
    ))
}

pub(super) fn get_status_cdr(shared: &Shared, request: &Request) -> HttpResponse {
    let field = |name: &str| request.fields.get(name).map(String::as_str).unwrap_or("");
    let (ruc, tt, series, number) = (
        field("rucComprobante"),
        field("tipoComprobante"),
        field("serieComprobante"),
        field("numeroComprobante"),
    );
    let answer = |code: &str, message: &str, content: Option<&[u8]>| {
        let content = content
            .map(|z| format!("<content>{}</content>", B64.encode(z)))
            .unwrap_or_default();
        soap_ok(&format!(
            "<br:getStatusCdrResponse xmlns:br=\"http://service.sunat.gob.pe\"><statusCdr>{content}\
<statusCode>{code}</statusCode><statusMessage>{}</statusMessage></statusCdr></br:getStatusCdrResponse>",
            escape_text(message)
        ))
    };
    if Ruc::parse(ruc).is_err() {
        return answer("0004", "El RUC no cumple con el formato", None);
    }
    if request.username.get(..11) != Some(ruc) {
        return answer("0012", "El comprobante no pertenece al contribuyente", None);
    }
    if !["01", "07", "08"].contains(&tt) {
        return answer("0009", "El tipo de comprobante debe ser 01, 07 o 08", None);
    }
    if !series.starts_with('F') || series.len() != 4 {
        return answer(
            "0010",
            "Solo se puede consultar facturas y notas con serie F",
            None,
        );
    }
    if !number.parse::<i64>().is_ok_and(|n| n > 0) {
        return answer("0007", "El numero debe ser mayor a cero", None);
    }
    let key = doc_key(ruc, tt, series, number);
    let s = shared.state.lock();
    let cdr = s.cdrs.get(&key).cloned();
    let registry = s.registered.get(&key).copied();
    drop(s);
    match registry {
        None => answer("0011", "El comprobante de pago electrónico no existe", None),
        Some(Registry::Accepted) => answer(
            "0001",
            "El comprobante existe y está aceptado",
            cdr.as_deref(),
        ),
        Some(Registry::Rejected) => answer(
            "0002",
            "El comprobante existe pero está rechazado",
            cdr.as_deref(),
        ),
        Some(Registry::Voided) => answer(
            "0003",
            "El comprobante existe pero está de baja",
            cdr.as_deref(),
        ),
    }
}
