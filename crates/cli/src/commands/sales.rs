//! Sales: `faena sales show|send|cancel|credit-note` (a sale with its SUNAT state, cancellation
//! and credit notes; queue its send; cancel it by the decision table of `faena_shop::cancel`;
//! issue a credit note).

use std::io::Write;

use clap::Subcommand;
use faena_core::jobs::EnqueueRequest;

use super::common::{broker, pg, print_json, say, CliSettings, Times};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum SalesCommand {
    /// A sale with its items, SUNAT state and every attempt.
    Show { id: i64 },
    /// Queue the sale's send to SUNAT (the worker's `sunat` queue).
    Send { id: i64 },
    /// Cancel the sale: its stock comes back, and SUNAT is told as the decision table says (a
    /// Comunicación de Baja or a Resumen Diario line, sent by the nightly build). Exit 1 when it
    /// cannot be cancelled now (the message says why); cancelling again prints the same.
    Cancel {
        id: i64,
        /// Why, 3 to 100 characters (the text SUNAT receives in a Comunicación de Baja).
        #[arg(long)]
        reason: String,
    },
    /// Issue a credit note (07) of an accepted sale: the whole of what is left (reason 01, 02
    /// or 06) or chosen lines (reason 07 with --item); the units go back to stock and the note
    /// is queued for SUNAT.
    CreditNote {
        id: i64,
        /// Catálogo 09: 01 anulación de la operación, 02 anulación por error en el RUC, 06
        /// devolución total, 07 devolución por ítem.
        #[arg(long)]
        reason_code: String,
        /// Why, as printed on the note (1 to 500 characters).
        #[arg(long)]
        description: String,
        /// A line to credit (reason 07), repeatable: the product's id and the units.
        #[arg(long = "item", value_name = "PRODUCT=QTY")]
        items: Vec<String>,
    },
}

/// `PRODUCT=QTY` of `--item`.
fn parse_item(s: &str) -> Result<faena_shop::credit_notes::CreditItemInput, String> {
    let (p, q) = s
        .split_once('=')
        .ok_or_else(|| format!("--item {s:?}: expected PRODUCT=QTY, e.g. --item 12=2"))?;
    let product_id = p
        .trim()
        .parse()
        .map_err(|_| format!("--item {s:?}: the product {p:?} is not a product id"))?;
    let quantity = faena_shop::quantity::Quantity::parse(q.trim())
        .map_err(|e| format!("--item {s:?}: the quantity {q:?}: {e}"))?;
    Ok(faena_shop::credit_notes::CreditItemInput {
        product_id,
        quantity,
    })
}

/// Where credit notes take their dates (their series is the sale's store's).
fn note_defaults(settings: &CliSettings) -> faena_shop::credit_notes::NoteDefaults {
    faena_shop::credit_notes::NoteDefaults { tz: settings.tz }
}

/// `faena sales ...`.
pub(crate) async fn run(
    settings: &CliSettings,
    command: SalesCommand,
    json: bool,
    times: &Times,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    use faena_shop::{credit_notes, money, sales};
    let mut conn = pg(settings).await?;
    match command {
        SalesCommand::Show { id } => {
            let detail = match credit_notes::sale_detail(&mut conn, id).await {
                Ok(s) => s,
                Err(e @ credit_notes::CreditNoteError::NotFound { .. }) => {
                    eprintln!("faena: {e}");
                    return Ok(exit::FAILED);
                }
                Err(e) => return Err(e.into()),
            };
            if json {
                print_json(out, &detail)?;
                return Ok(exit::OK);
            }
            let sale = &detail.sale;
            writeln!(out, "sale:         {} ({})", sale.id, sale.number)?;
            writeln!(
                out,
                "document:     {} {} issued {}",
                if sale.doc_type == "01" {
                    "factura"
                } else {
                    "boleta"
                },
                sale.number,
                sale.issue_date
            )?;
            let store = faena_shop::stores::sale_store(&mut conn, sale.id).await?;
            writeln!(
                out,
                "store:        {} ({}, establecimiento {})",
                store.code, store.name, store.establishment_code
            )?;
            writeln!(
                out,
                "customer:     {} {} {}",
                sale.customer_doc_type, sale.customer_doc_number, sale.customer_name
            )?;
            for i in &sale.items {
                // What sets a line apart, only when it differs from a gravado unit line.
                let mut marks = Vec::new();
                if i.unit_code != "NIU" {
                    marks.push(i.unit_code.clone());
                }
                if i.free {
                    marks.push(format!("gratuito ({})", i.igv_affectation));
                } else if i.igv_affectation.starts_with('2') {
                    marks.push("exonerado".to_owned());
                } else if i.igv_affectation.starts_with('3') {
                    marks.push("inafecto".to_owned());
                }
                if money::format(&i.discount) != "0.00" {
                    marks.push(format!("descuento {}", money::format(&i.discount)));
                }
                if i.icbper {
                    marks.push(format!("ICBPER {}", money::format(&i.icbper_amount)));
                }
                let marks = if marks.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", marks.join(", "))
                };
                writeln!(
                    out,
                    "  {:>4} x {:<30} {:>10} {:>10}{marks}",
                    faena_shop::quantity::format(&i.quantity),
                    i.description,
                    money::format(&i.unit_price),
                    money::format(&i.line_total)
                )?;
            }
            writeln!(
                out,
                "totals:       subtotal {} IGV {} total {} {}",
                money::format(&sale.subtotal),
                money::format(&sale.igv),
                money::format(&sale.total),
                sale.currency
            )?;
            writeln!(
                out,
                "SUNAT:        {} ({}) code {} {}",
                sale.sunat.status,
                sale.sunat.outcome.as_deref().unwrap_or("-"),
                sale.sunat.code.as_deref().unwrap_or("-"),
                sale.sunat.description.as_deref().unwrap_or("")
            )?;
            writeln!(out, "              {}", sale.sunat.status_label)?;
            if sale.sunat.status == sales::SunatStatus::Conflict {
                writeln!(
                    out,
                    "              SUNAT already holds {}: look the number up at SUNAT before \
                     anything else (see README, troubleshooting)",
                    sale.number
                )?;
            }
            for s in &sale.sunat.submissions {
                writeln!(
                    out,
                    "  attempt {} at {}: {} {} ({} ms, HTTP {})",
                    s.attempt,
                    times.show(Some(s.started_at)),
                    s.outcome,
                    s.code.as_deref().unwrap_or("-"),
                    s.duration_ms,
                    s.http_status.map_or("-".into(), |h| h.to_string())
                )?;
            }
            if let Some(c) = &sale.cancellation {
                writeln!(
                    out,
                    "anulada:      {} por {}: {}",
                    times.show(Some(c.cancelled_at)),
                    c.cancelled_by,
                    c.reason
                )?;
                writeln!(
                    out,
                    "              SUNAT: {} {} ({}){}",
                    c.sunat_action,
                    c.sunat_state,
                    c.sunat_label,
                    match (&c.sunat_code, &c.sunat_description) {
                        (Some(code), Some(d)) => format!(" {code} {d}"),
                        _ => String::new(),
                    }
                )?;
                if let Some(n) = &c.credit_note {
                    writeln!(
                        out,
                        "              con la nota de crédito {} ({})",
                        n.number, n.status
                    )?;
                }
            } else if sale.is_cancelled {
                writeln!(out, "anulada")?;
            }
            for s in &sale.summaries {
                writeln!(
                    out,
                    "  {} (estado {} en la línea) {}: ticket {} {} {}{}",
                    s.summary_id,
                    s.condition_code,
                    s.state,
                    s.ticket.as_deref().unwrap_or("-"),
                    s.outcome.as_deref().unwrap_or("sin respuesta"),
                    s.sunat_code.as_deref().unwrap_or(""),
                    s.sunat_description
                        .as_deref()
                        .map(|d| format!(" {d}"))
                        .unwrap_or_default()
                )?;
            }
            if let Some(pdf) = &sale.files.pdf {
                writeln!(
                    out,
                    "pdf:          {}",
                    settings.files_dir.join(pdf).display()
                )?;
            }
            for n in &detail.credit_notes {
                writeln!(
                    out,
                    "nota de crédito {} del {}: {} {} ({} {}) S/ {} — {} ({})",
                    n.number,
                    n.issue_date,
                    n.reason_code,
                    n.reason_label,
                    n.sunat.status,
                    n.sunat.code.as_deref().unwrap_or("-"),
                    money::format(&n.total),
                    n.description,
                    n.sunat.status_label
                )?;
                for i in &n.items {
                    writeln!(
                        out,
                        "  {:>4} x {:<30} {:>10}",
                        i.quantity,
                        i.description,
                        money::format(&i.line_total)
                    )?;
                }
            }
            if !detail.credit_notes.is_empty() {
                writeln!(
                    out,
                    "acreditado:   S/ {}, queda S/ {}",
                    money::format(&detail.credited),
                    money::format(&detail.remaining)
                )?;
            }
            Ok(exit::OK)
        }
        SalesCommand::CreditNote {
            id,
            reason_code,
            description,
            items,
        } => {
            let items = match items
                .iter()
                .map(|i| parse_item(i))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(v) => (!v.is_empty()).then_some(v),
                Err(why) => {
                    eprintln!("faena: {why}");
                    return Ok(exit::USAGE);
                }
            };
            let input = credit_notes::NewCreditNote {
                reason_code,
                description,
                items,
            };
            let defaults = note_defaults(settings);
            let made = match credit_notes::CreditRequest::parse(&input) {
                Ok(req) => credit_notes::create(&mut conn, id, "cli", &req, &defaults).await,
                Err(e) => Err(e),
            };
            let note = match made {
                Ok(n) => n,
                Err(e @ credit_notes::CreditNoteError::Invalid { .. }) => {
                    eprintln!("faena: {e}");
                    return Ok(exit::USAGE);
                }
                Err(
                    e @ (credit_notes::CreditNoteError::NotFound { .. }
                    | credit_notes::CreditNoteError::NotCreditable { .. }
                    | credit_notes::CreditNoteError::Exceeds { .. }),
                ) => {
                    eprintln!("faena: {e}");
                    return Ok(exit::FAILED);
                }
                Err(e) => return Err(e.into()),
            };
            if json {
                print_json(out, &note)?;
            } else {
                writeln!(
                    out,
                    "nota de crédito {} de la venta {id}: {} {}, S/ {}; las unidades volvieron al stock y su envío a SUNAT está en cola",
                    note.number,
                    note.reason_code,
                    note.reason_label,
                    money::format(&note.total)
                )?;
                for i in &note.items {
                    writeln!(
                        out,
                        "  {:>4} x {:<30} {:>10}",
                        i.quantity,
                        i.description,
                        money::format(&i.line_total)
                    )?;
                }
            }
            Ok(exit::OK)
        }
        SalesCommand::Cancel { id, reason } => {
            use faena_shop::cancel::{self, CancelError, CancelRequest, Canceller};
            let now = chrono::Utc::now();
            let today = now.with_timezone(&settings.tz).date_naive();
            let req = CancelRequest { reason };
            let notes = note_defaults(settings);
            match cancel::cancel(
                &mut conn,
                id,
                &Canceller::Operator,
                &req,
                now,
                today,
                &notes,
            )
            .await
            {
                Ok(c) => {
                    let note = c
                        .credit_note
                        .as_ref()
                        .map(|n| format!(" (nota de crédito {}, en cola para SUNAT)", n.number))
                        .unwrap_or_default();
                    say(
                        out,
                        json,
                        format!("venta {id} anulada: {}{note}", c.sunat_label),
                        serde_json::to_value(&c)?,
                    )?;
                    Ok(exit::OK)
                }
                Err(e @ CancelError::Invalid { .. }) => {
                    eprintln!("faena: {e}");
                    Ok(exit::USAGE)
                }
                Err(e @ (CancelError::NotFound(_) | CancelError::Refused { .. })) => {
                    eprintln!("faena: {e}");
                    Ok(exit::FAILED)
                }
                Err(e) => Err(e.into()),
            }
        }
        SalesCommand::Send { id } => {
            let row = match sales::sale_row(&mut conn, id).await {
                Ok(r) => r,
                Err(e @ sales::SaleError::NotFound { .. }) => {
                    eprintln!("faena: {e}");
                    return Ok(exit::FAILED);
                }
                Err(e) => return Err(e.into()),
            };
            if let Err(why) = sales::check_sendable(&row) {
                eprintln!("faena: {why}");
                return Ok(exit::FAILED);
            }
            let task_id = broker(settings)?
                .enqueue(EnqueueRequest {
                    kind: "send_sale_to_sunat".into(),
                    args: serde_json::json!({ "sale_id": id }),
                    ..Default::default()
                })
                .await?;
            say(
                out,
                json,
                format!(
                    "queued the send of sale {id} ({}-{}) to SUNAT: task {task_id}",
                    row.series, row.correlative
                ),
                serde_json::json!({
                    "task_id": task_id, "sale_id": id, "correlative": row.correlative,
                }),
            )?;
            Ok(exit::OK)
        }
    }
}
