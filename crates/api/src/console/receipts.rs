//! *Comprobantes*: sales by SUNAT state. First the ones that need a person (ERROR, REJECTED,
//! CONFLICT) with SUNAT's code and description and what it means in plain words, then the
//! undecided ones within 24 hours of their sendBill deadline, then any state. A receipt's page
//! resends it (`routes::sales::queue_send`, as `POST /api/sales/{id}/send-to-sunat`) and serves
//! its XML, CDR and PDF. Sellers see their own sales only; admins every sale.

use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use faena_shop::deadlines::{self, SaleDue, SaleFilter};
use faena_shop::sales::{self, SaleView, SunatAnswer, SunatStatus};
use maud::{html, Markup};
use serde::Deserialize;

use crate::console::error::ConsoleError;
use crate::console::i18n::{Lang, Msg};
use crate::console::layout::{badge, html_response, page, see_other, time, Tab};
use crate::console::session::{Action, Viewer};
use crate::error::ApiError;
use crate::AppState;

/// How many sales one list shows at most.
const LIST_LIMIT: i64 = 100;

/// The states that need a person, shown first.
const NEEDS_A_PERSON: [SunatStatus; 3] = [
    SunatStatus::Error,
    SunatStatus::Rejected,
    SunatStatus::Conflict,
];

pub fn status_msg(s: SunatStatus) -> Msg {
    match s {
        SunatStatus::Pending => Msg::SunatPending,
        SunatStatus::Sending => Msg::SunatSending,
        SunatStatus::Accepted => Msg::SunatAccepted,
        SunatStatus::Rejected => Msg::SunatRejected,
        SunatStatus::Error => Msg::SunatError,
        SunatStatus::Conflict => Msg::SunatConflict,
        SunatStatus::Voided => Msg::SunatVoided,
    }
}

/// What an outcome class means, in plain words.
fn outcome_msg(outcome: &str) -> Option<Msg> {
    Some(match outcome {
        "accepted" => Msg::OutAccepted,
        "observed" => Msg::OutObserved,
        "rejected" => Msg::OutRejected,
        "retryable" => Msg::OutRetryable,
        "unknown" | "in_process" => Msg::OutUnknown,
        "conflict" => Msg::OutConflict,
        "already_registered" => Msg::OutAlreadyRegistered,
        "config_error" => Msg::OutConfigError,
        "document_error" => Msg::OutDocumentError,
        "needs_summary" => Msg::OutNeedsSummary,
        _ => return None,
    })
}

fn scope(v: &Viewer) -> Option<String> {
    (!v.is_admin()).then(|| v.user_id())
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    estado: Option<String>,
}

fn sale_table(
    rows: &[(SaleDue, Option<SunatAnswer>)],
    l: Lang,
    tz: chrono_tz::Tz,
    id: &str,
) -> Markup {
    let now = Utc::now();
    html! {
        table id=(id) {
            thead { tr {
                th { (Msg::Number.text(l)) } th { (Msg::DocType.text(l)) } th { (Msg::IssueDate.text(l)) }
                th { (Msg::State.text(l)) } th { (Msg::SunatCode.text(l)) } th { (Msg::WhatItMeans.text(l)) }
                th { (Msg::Deadline.text(l)) }
            } }
            tbody {
                @for (s, row) in rows {
                    tr data-sale=(s.sale_id) data-status=(s.sunat_status.as_str()) {
                        td { a href={ "/console/comprobantes/" (s.sale_id) } { (s.number) } }
                        td { (if s.doc_type == "01" { Msg::Factura } else { Msg::Boleta }.text(l)) }
                        td { (s.issue_date) }
                        td { (badge(s.sunat_status.as_str())) " " (status_msg(s.sunat_status).text(l)) }
                        td { @if let Some(a) = row { code { (a.code.as_deref().unwrap_or("-")) } } }
                        td {
                            @if let Some(a) = row {
                                @if let Some(m) = a.outcome.as_deref().and_then(outcome_msg) { (m.text(l)) br; }
                                span.muted { (a.description.as_deref().unwrap_or("")) }
                            }
                        }
                        td {
                            (time(Some(s.sunat_deadline), tz))
                            @if s.sunat_deadline <= now && deadlines::UNDECIDED.contains(&s.sunat_status) { " " span.badge.DEAD { (Msg::PastDeadline.text(l)) } }
                        }
                    }
                }
            }
        }
    }
}

/// Adds SUNAT's last answer (outcome, code, description) to each sale of a list, in one query.
async fn with_answers(
    conn: &mut faena_core::db::PooledConnection,
    due: Vec<SaleDue>,
) -> Result<Vec<(SaleDue, Option<SunatAnswer>)>, ApiError> {
    let ids: Vec<i64> = due.iter().map(|s| s.sale_id).collect();
    let mut answers = sales::sunat_answers(conn, &ids)
        .await
        .map_err(|e| ApiError::from_query(&e, false))?;
    Ok(due
        .into_iter()
        .map(|s| {
            let a = answers.remove(&s.sale_id);
            (s, a)
        })
        .collect())
}

/// The receipts page.
#[get("/comprobantes")]
pub async fn list(
    state: web::Data<AppState>,
    v: Viewer,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let l = v.lang;
    let tz = state.sale_defaults.tz;
    let chosen = match q.estado.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<SunatStatus>().map_err(|e| {
            v.fail(ApiError::bad_request(
                "invalid_query",
                e.to_string(),
                Some("estado".into()),
            ))
        })?),
    };
    let seller = scope(&v);
    let mut conn = state.db_conn().await.map_err(|e| v.fail(e))?;
    let db = |e: faena_core::db::QueryError| v.fail(ApiError::from_query(&e, false));
    let mut attention = Vec::new();
    for st in NEEDS_A_PERSON {
        let found = deadlines::list_sales(
            &mut conn,
            &SaleFilter {
                sunat_status: Some(st),
                seller_id: seller.clone(),
                limit: Some(LIST_LIMIT),
                ..SaleFilter::default()
            },
            tz,
        )
        .await
        .map_err(db)?;
        attention.extend(found.into_iter().filter(|s| !s.is_cancelled));
    }
    let attention = with_answers(&mut conn, attention)
        .await
        .map_err(|e| v.fail(e))?;
    let soon: Vec<SaleDue> =
        deadlines::undecided_due_before(&mut conn, Utc::now() + deadlines::WARN_BEFORE, tz)
            .await
            .map_err(db)?
            .into_iter()
            .filter(|s| seller.as_ref().is_none_or(|me| &s.seller_id == me))
            .take(LIST_LIMIT as usize)
            .collect();
    let soon = with_answers(&mut conn, soon).await.map_err(|e| v.fail(e))?;
    let by_state = deadlines::list_sales(
        &mut conn,
        &SaleFilter {
            sunat_status: chosen,
            seller_id: seller.clone(),
            limit: Some(LIST_LIMIT),
            ..SaleFilter::default()
        },
        tz,
    )
    .await
    .map_err(db)?;
    let by_state = with_answers(&mut conn, by_state)
        .await
        .map_err(|e| v.fail(e))?;
    let body = html! {
        section.card {
            h2 { (Msg::NeedsAPerson.text(l)) }
            @if attention.is_empty() { p.muted #no-attention { (Msg::NothingToDo.text(l)) } } @else {
                (sale_table(&attention, l, tz, "attention"))
            }
        }
        section.card {
            h2 { (Msg::DueSoon.text(l)) }
            @if soon.is_empty() { p.muted { (Msg::NothingDueSoon.text(l)) } } @else {
                (sale_table(&soon, l, tz, "due-soon"))
            }
        }
        section.card {
            h2 { (Msg::ByState.text(l)) }
            form.filters method="get" action="/console/comprobantes" {
                div { label for="estado" { (Msg::State.text(l)) }
                    select #estado name="estado" {
                        option value="" { (Msg::AllStates.text(l)) }
                        @for s in SunatStatus::ALL {
                            option value=(s.as_str()) selected[chosen == Some(*s)] { (status_msg(*s).text(l)) }
                        }
                    }
                }
                button type="submit" { (Msg::Filter.text(l)) }
            }
            @if by_state.is_empty() { p.muted { (Msg::NoSales.text(l)) } } @else {
                (sale_table(&by_state, l, tz, "sales"))
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page(&v.chrome(Tab::Receipts), Msg::TabReceipts.text(l), body),
    ))
}

/// A sale the viewer may see, or 403/404.
async fn sale_of(state: &AppState, v: &Viewer, id: i64) -> Result<SaleView, ConsoleError> {
    let sale = sales::get_sale(&mut *state.db_conn().await.map_err(|e| v.fail(e))?, id)
        .await
        .map_err(|e| v.fail(ApiError::from(e)))?;
    crate::auth::require_owner(&v.user_id(), v.is_admin(), Some(&sale.seller_id), "sale")
        .map_err(|e| v.fail(e))?;
    Ok(sale)
}

fn parse_sale_id(v: &Viewer, raw: &str) -> Result<i64, ConsoleError> {
    raw.parse().map_err(|_| {
        v.fail(ApiError::bad_request(
            "invalid_path",
            format!("{raw:?} is not a sale id (a whole number)"),
            Some("id".into()),
        ))
    })
}

/// A receipt's page.
#[get("/comprobantes/{id}")]
pub async fn show(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let l = v.lang;
    let tz = state.sale_defaults.tz;
    let s = sale_of(&state, &v, parse_sale_id(&v, &id)?).await?;
    let deadline = deadlines::deadline(&s.doc_type, s.issue_date, tz);
    let files: [(&str, Msg, &Option<String>); 3] = [
        ("xml", Msg::DownloadXml, &s.files.xml),
        ("cdr", Msg::DownloadCdr, &s.files.cdr),
        ("pdf", Msg::DownloadPdf, &s.files.pdf),
    ];
    let body = html! {
        p { a href="/console/comprobantes" { "← " (Msg::TabReceipts.text(l)) } }
        div.grid {
            section.card #sale {
                table {
                    tr { th { (Msg::DocType.text(l)) } td { (if s.doc_type == "01" { Msg::Factura } else { Msg::Boleta }.text(l)) } }
                    tr { th { (Msg::IssueDate.text(l)) } td { (s.issue_date) } }
                    tr { th { (Msg::Customer.text(l)) } td { (s.customer_name) " (" (s.customer_doc_number) ")" } }
                    tr { th { (Msg::Total.text(l)) } td { (s.currency) " " (s.total.with_scale(2)) } }
                    tr { th { (Msg::Deadline.text(l)) } td { (time(Some(deadline), tz)) } }
                    @if s.is_cancelled { tr { th { } td { span.badge.DEAD { (Msg::Cancelled.text(l)) } } } }
                }
            }
            section.card #sunat data-status=(s.sunat.status.as_str()) {
                h2 { "SUNAT" }
                p { (badge(s.sunat.status.as_str())) " " (status_msg(s.sunat.status).text(l)) }
                @if let Some(c) = &s.sunat.code { p { (Msg::SunatCode.text(l)) ": " code #sunat-code { (c) } } }
                @if let Some(d) = &s.sunat.description { p #sunat-description { (d) } }
                @if let Some(m) = s.sunat.outcome.as_deref().and_then(outcome_msg) { p #sunat-meaning { strong { (m.text(l)) } } }
                @if let Some(notes) = s.sunat.notes.as_array().filter(|n| !n.is_empty()) {
                    ul { @for n in notes { li { (n.as_str().map_or_else(|| n.to_string(), str::to_owned)) } } }
                }
                p {
                    @for (kind, msg, path) in &files {
                        @if path.is_some() {
                            a.button.secondary id={ "download-" (kind) } href={ "/console/comprobantes/" (s.id) "/archivo/" (kind) } download { (msg.text(l)) }
                            " "
                        }
                    }
                }
                // Only while SUNAT has not decided (the api answers 409 otherwise, and says why).
                @if !s.is_cancelled && deadlines::UNDECIDED.contains(&s.sunat.status) {
                    form method="post" action={ "/console/comprobantes/" (s.id) "/reenviar" } {
                        input type="hidden" name="csrf" value=(v.session.csrf_token);
                        button #resend type="submit" { (Msg::Resend.text(l)) }
                    }
                }
            }
        }
        section.card {
            h2 { (Msg::Submissions.text(l)) }
            @if s.sunat.submissions.is_empty() { p.muted { (Msg::NoSubmissions.text(l)) } } @else {
                table #submissions {
                    thead { tr {
                        th.num { "#" } th { (Msg::StartedAt.text(l)) } th.num { "ms" } th { (Msg::Outcome.text(l)) }
                        th { (Msg::SunatCode.text(l)) } th { (Msg::Description.text(l)) }
                    } }
                    tbody {
                        @for sub in &s.sunat.submissions {
                            tr {
                                td.num { (sub.attempt) } td { (time(Some(sub.started_at), tz)) } td.num { (sub.duration_ms) }
                                td { (sub.outcome) } td { (sub.code.as_deref().unwrap_or("-")) } td { (sub.description.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    };
    let title = format!("{} {}", Msg::Receipt.text(l), s.number);
    Ok(html_response(
        StatusCode::OK,
        page(&v.chrome(Tab::Receipts), &title, body),
    ))
}

/// Queues the send again, as `POST /api/sales/{id}/send-to-sunat` (409 with its message when
/// SUNAT decided, it is being sent, or it is cancelled), and opens the receipt again.
#[post("/comprobantes/{id}/reenviar")]
pub async fn resend(
    state: web::Data<AppState>,
    a: Action,
    id: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let v = &a.viewer;
    let sale_id = parse_sale_id(v, &id)?;
    crate::routes::sales::queue_send(&state, &v.user_id(), v.is_admin(), sale_id)
        .await
        .map_err(|e| v.fail(e))?;
    Ok(see_other(&format!("/console/comprobantes/{sale_id}")))
}

/// A receipt's signed XML, SUNAT's CDR (a zip) or the printable PDF.
#[get("/comprobantes/{id}/archivo/{kind}")]
pub async fn file(
    state: web::Data<AppState>,
    v: Viewer,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ConsoleError> {
    let (raw, kind) = path.into_inner();
    let s = sale_of(&state, &v, parse_sale_id(&v, &raw)?).await?;
    let (rel, ctype) = match kind.as_str() {
        "xml" => (&s.files.xml, "application/xml"),
        "cdr" => (&s.files.cdr, "application/zip"),
        "pdf" => (&s.files.pdf, "application/pdf"),
        _ => {
            return Err(v.fail(ApiError::NotFound(format!(
                "no file {kind:?}: a receipt has xml, cdr and pdf"
            ))))
        }
    };
    let missing = || {
        v.fail(ApiError::NotFound(format!(
            "sale {} has no {kind} file (not made yet, or deleted by the retention)",
            s.id
        )))
    };
    let rel = rel.as_deref().ok_or_else(missing)?;
    let full = faena_shop::reports::under(&state.files_dir, rel).ok_or_else(missing)?;
    let bytes = tokio::fs::read(&full).await.map_err(|e| {
        tracing::warn!(sale_id = s.id, path = %full.display(), error = %e, "a receipt file could not be read");
        missing()
    })?;
    let name = std::path::Path::new(rel).file_name().map_or_else(
        || format!("{}.{kind}", s.number),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok(HttpResponse::Ok()
        .content_type(ctype)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", name.replace('"', "")),
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(bytes))
}
