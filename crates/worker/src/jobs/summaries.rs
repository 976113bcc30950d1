//! The summary jobs: `build_sunat_summaries` (beat's nightly build of the Resumen Diario and
//! Comunicación de Baja), `send_sunat_summary` (sign once, `sendSummary`, store the ticket) and
//! `poll_sunat_ticket` (`getStatus`, snoozing while SUNAT answers 98, then SUNAT's answer applied
//! to every document the summary carried). The database side is `faena_shop::summaries`.
//!
//! One send of a summary at a time: the job holds the broker lock `summary:<id>`, and only a
//! PENDING summary is sent (`summaries::begin_send` counts the call under the row's lock). The
//! signed XML is written once; a resend sends the same bytes. An earlier call that may have
//! reached SUNAT makes a later "ID already presented" (2223, 2324) an ERROR for a person, never
//! an acceptance.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use faena_core::jobs::JobError;
use faena_core::Settings;
use faena_shop::credit_notes;
use faena_shop::files::{write_atomic, ReceiptFiles};
use faena_shop::jobs::{BuildSunatSummariesArgs, PollSunatTicketArgs, SendSunatSummaryArgs};
use faena_shop::sales;
use faena_shop::states::SummaryState;
use faena_shop::summaries::{self, Decision, LineRow, Printed, Prints, SummaryRow};
use faena_sunat::document::{DocumentType, Series};
use faena_sunat::{
    printable, CreditNote, DailySummary, LineStatus, ModifiedDocument, Outcome, SummaryId,
    SummaryKind, SummaryLine, TicketStatus, VoidedDocuments, VoidedLine,
};
use serde_json::{json, Value};

use super::sunat::{Ready, SunatJobs};
use crate::handlers::{Handlers, JobContext};

/// The longest wait between two polls of a ticket.
const MAX_POLL_WAIT: Duration = Duration::from_secs(1800);

/// The summary jobs, over the SUNAT jobs' client, signer and company.
pub struct SummaryJobs {
    sunat: Arc<SunatJobs>,
    first_poll: Duration,
    max_polls: u32,
}

impl std::fmt::Debug for SummaryJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummaryJobs")
            .field("first_poll", &self.first_poll)
            .field("max_polls", &self.max_polls)
            .finish_non_exhaustive()
    }
}

fn db_err(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(anyhow::anyhow!("database: {e}"))
}

/// The wait after the `polls`-th answer of 98: the first wait doubled each time, at most 30
/// minutes.
pub fn poll_wait(first: Duration, polls: u32) -> Duration {
    let factor = 2u32.saturating_pow(polls.saturating_sub(1).min(20));
    first.saturating_mul(factor).min(MAX_POLL_WAIT)
}

impl SummaryJobs {
    pub fn from_settings(sunat: Arc<SunatJobs>, settings: &Settings) -> Self {
        Self {
            sunat,
            first_poll: settings.sunat.ticket_poll,
            max_polls: settings.sunat.ticket_max_polls,
        }
    }

    /// Registers `build_sunat_summaries`, `send_sunat_summary` and `poll_sunat_ticket`.
    pub fn register(self: Arc<Self>, h: &mut Handlers) {
        let jobs = Arc::clone(&self);
        h.register(move |a: BuildSunatSummariesArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.build(a).await }
        });
        let jobs = Arc::clone(&self);
        h.register(move |a: SendSunatSummaryArgs, ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.send(a.summary_id, &ctx).await }
        });
        let jobs = self;
        h.register(move |a: PollSunatTicketArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.poll(a.summary_id).await }
        });
    }

    fn ready(&self) -> Result<&Ready, JobError> {
        self.sunat.ready.as_ref().map_err(|why| {
            JobError::Permanent(anyhow::anyhow!(
                "SUNAT sending is not configured: {why} (the summary stays PENDING; the nightly build sends it again)"
            ))
        })
    }

    async fn build(&self, a: BuildSunatSummariesArgs) -> Result<Value, JobError> {
        let tz = self.sunat.tz;
        let today = Utc::now().with_timezone(&tz).date_naive();
        let date = a.date.unwrap_or_else(|| today - chrono::Duration::days(1));
        // Everything that waited until the end of `date`, in the business time zone.
        let end = (date + chrono::Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(tz).earliest())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                JobError::Permanent(anyhow::anyhow!("no midnight after {date} in {tz}"))
            })?;
        let mut conn = self.sunat.db.get().await.map_err(db_err)?;
        let report = summaries::build(&mut conn, today, end)
            .await
            .map_err(db_err)?;
        tracing::info!(
            built = report.built.len(),
            late = report.late.len(),
            resent = report.resent.len(),
            repolled = report.repolled.len(),
            %date,
            "built the SUNAT summaries"
        );
        Ok(json!({ "date": date, "today": today, "report": report }))
    }

    async fn send(&self, id: i64, ctx: &JobContext) -> Result<Value, JobError> {
        let lock = format!("summary:{id}");
        let holder = format!("{}:{}", ctx.task_id, ctx.token);
        let got = self
            .sunat
            .broker
            .acquire_lock(&lock, &holder, self.sunat.lock_ttl)
            .await
            .map_err(|e| JobError::Retry(anyhow::anyhow!("redis: {e}")))?;
        if !got {
            return Ok(
                json!({ "summary": id, "skipped": "another send of this summary is in flight" }),
            );
        }
        let result = self.send_locked(id).await;
        if let Err(e) = self.sunat.broker.release_lock(&lock, &holder).await {
            tracing::warn!(summary = id, error = %e, "could not release the summary's lock; it expires by itself");
        }
        result
    }

    /// The summary's document: the RC lines with each boleta's or credit note's own totals (a
    /// note's line names its boleta), or the RA lines with each cancellation's reason.
    async fn document(
        &self,
        conn: &mut faena_core::db::PooledConnection,
        ready: &Ready,
        row: &SummaryRow,
        id: SummaryId,
    ) -> Result<Result<faena_sunat::Prepared, String>, JobError> {
        let lines = summaries::lines(conn, row.id).await.map_err(db_err)?;
        let prepared = match id.kind {
            SummaryKind::Daily => {
                let mut out = Vec::with_capacity(lines.len());
                for l in &lines {
                    if let Some(note_id) = l.credit_note_id {
                        let note = match self.note(conn, ready, note_id).await? {
                            Ok(n) => n,
                            Err(e) => {
                                return Ok(Err(format!("{}-{}: {e}", l.series, l.correlative)))
                            }
                        };
                        let totals = match note.totals() {
                            Ok(t) => t,
                            Err(e) => return Ok(Err(format!("{}: {e}", note.id()))),
                        };
                        out.push(SummaryLine {
                            doc_type: note.original.doc_type,
                            series: note.series.clone(),
                            correlative: note.correlative,
                            customer: note.customer.clone(),
                            status: LineStatus::Add,
                            currency: note.currency.clone(),
                            totals,
                            modifies: Some(ModifiedDocument {
                                doc_type: note.original.doc_type,
                                series: note.original.series.clone(),
                                correlative: note.original.correlative,
                            }),
                        });
                        continue;
                    }
                    let sale = sales::sale_row(conn, l.sale_id).await.map_err(db_err)?;
                    let items = sales::sale_items(conn, l.sale_id).await.map_err(db_err)?;
                    let receipt = match self.sunat.receipt(&ready.company, &sale, &items) {
                        Ok(r) => r,
                        Err(e) => return Ok(Err(format!("{}-{}: {e}", l.series, l.correlative))),
                    };
                    let totals = match receipt.totals() {
                        Ok(t) => t,
                        Err(e) => return Ok(Err(format!("{}: {e}", receipt.id()))),
                    };
                    out.push(SummaryLine {
                        doc_type: receipt.doc_type,
                        series: receipt.series.clone(),
                        correlative: receipt.correlative,
                        customer: receipt.customer.clone(),
                        status: if l.condition_code == "1" {
                            LineStatus::Add
                        } else {
                            LineStatus::Void
                        },
                        currency: receipt.currency.clone(),
                        totals,
                        modifies: None,
                    });
                }
                let s = DailySummary {
                    company: ready.company.clone(),
                    id,
                    reference_date: row.reference_date,
                    lines: out,
                };
                faena_sunat::prepare_summary(&s, &ready.signer)
            }
            SummaryKind::Voided => {
                let ids: Vec<i64> = lines.iter().map(|l| l.sale_id).collect();
                let reasons = summaries::reasons(conn, &ids).await.map_err(db_err)?;
                let mut out = Vec::with_capacity(lines.len());
                for l in &lines {
                    let series = match Series::parse_for(&l.series, DocumentType::Factura) {
                        Ok(s) => s,
                        Err(e) => return Ok(Err(format!("{}-{}: {e}", l.series, l.correlative))),
                    };
                    out.push(VoidedLine {
                        doc_type: DocumentType::Factura,
                        series,
                        correlative: l.correlative,
                        reason: reasons.get(&l.sale_id).cloned().unwrap_or_default(),
                    });
                }
                let v = VoidedDocuments {
                    company: ready.company.clone(),
                    id,
                    reference_date: row.reference_date,
                    lines: out,
                };
                faena_sunat::prepare_voided(&v, &ready.signer)
            }
        };
        Ok(prepared.map_err(|e| e.to_string()))
    }

    async fn send_locked(&self, id: i64) -> Result<Value, JobError> {
        let mut conn = self.sunat.db.get().await.map_err(db_err)?;
        let row = match summaries::summary(&mut conn, id).await {
            Ok(r) => r,
            Err(summaries::SummaryError::NotFound(_)) => {
                return Err(JobError::Permanent(anyhow::anyhow!("no summary {id}")))
            }
            Err(e) => return Err(db_err(e)),
        };
        if row.state != SummaryState::Pending {
            return Ok(
                json!({ "summary": row.name(), "skipped": format!("the summary is {}", row.state) }),
            );
        }
        let summary_id = row
            .summary_id()
            .map_err(|e| JobError::Permanent(anyhow::anyhow!("{e}")))?;
        let ready = self.ready()?;
        let files = ReceiptFiles::of_summary(&ready.company.ruc, &summary_id);
        let files_dir = &self.sunat.files_dir;
        // Sign once; a resend sends the stored bytes.
        let zip = match &row.xml_path {
            Some(xml_rel) => match std::fs::read(files_dir.join(files.zip())) {
                Ok(zip) => zip,
                Err(_) => {
                    let xml = std::fs::read(files_dir.join(xml_rel)).map_err(|e| {
                        JobError::Permanent(anyhow::anyhow!(
                            "summary {summary_id}: the signed XML {xml_rel} is gone ({e}); it is never regenerated after a send"
                        ))
                    })?;
                    faena_sunat::archive::zip_single(&files.xml_name(), &xml)
                        .map_err(|e| JobError::Permanent(anyhow::anyhow!("zip: {e}")))?
                }
            },
            None => {
                let prepared = match self.document(&mut conn, ready, &row, summary_id).await? {
                    Ok(p) => p,
                    Err(why) => {
                        // Nothing reached SUNAT: a person must fix the document.
                        let d = Decision::Error {
                            code: None,
                            description: format!("no se pudo armar el resumen: {why}"),
                        };
                        summaries::decide(&mut conn, id, &d, &Prints::default())
                            .await
                            .map_err(db_err)?;
                        return Err(JobError::Permanent(anyhow::anyhow!(
                            "summary {summary_id}: cannot build it: {why}"
                        )));
                    }
                };
                write_atomic(&files_dir.join(files.xml()), &prepared.xml)
                    .and_then(|()| write_atomic(&files_dir.join(files.zip()), &prepared.zip))
                    .map_err(|e| {
                        JobError::Retry(anyhow::anyhow!(
                            "cannot write under {}: {e}",
                            files_dir.display()
                        ))
                    })?;
                summaries::store_signed(&mut conn, id, &files.xml(), &prepared.signed_sha256())
                    .await
                    .map_err(db_err)?;
                prepared.zip
            }
        };
        let Some((before, last)) = summaries::begin_send(&mut conn, id).await.map_err(db_err)?
        else {
            return Ok(
                json!({ "summary": summary_id.to_string(), "skipped": "no longer PENDING" }),
            );
        };
        // An earlier call that did not surely fail may have reached SUNAT.
        let unsure = before > 0 && !matches!(last.as_deref(), Some("retryable" | "config_error"));
        let answer = ready.client.send_summary(&files.zip_name(), &zip).await;
        match answer {
            Ok(ticket) => {
                summaries::record_ticket(
                    &mut conn,
                    id,
                    &ticket,
                    self.first_poll.as_secs().max(1),
                    unsure,
                )
                .await
                .map_err(db_err)?;
                tracing::info!(summary = %summary_id, %ticket, "sendSummary answered a ticket");
                Ok(json!({ "summary": summary_id.to_string(), "ticket": ticket }))
            }
            Err(outcome) => {
                let code = outcome.code().map(str::to_owned);
                let description = outcome.description().to_owned();
                tracing::warn!(summary = %summary_id, outcome = outcome.name(), code = code.as_deref().unwrap_or("-"), %description, "sendSummary failed");
                match outcome {
                    Outcome::Retryable { .. }
                    | Outcome::Unknown { .. }
                    | Outcome::AlreadyInProcess { .. }
                    | Outcome::PermanentConfig { .. } => {
                        summaries::record_outcome(
                            &mut conn,
                            id,
                            outcome.name(),
                            code.as_deref(),
                            &description,
                        )
                        .await
                        .map_err(db_err)?;
                        let calls = u32::try_from(before + 1).unwrap_or(u32::MAX);
                        if matches!(outcome, Outcome::PermanentConfig { .. })
                            || calls > self.sunat.max_retries
                        {
                            return Err(JobError::Permanent(anyhow::anyhow!(
                                "summary {summary_id}: {} {}: {description} (stays PENDING; the nightly build sends it again)",
                                outcome.name(),
                                code.as_deref().unwrap_or("-")
                            )));
                        }
                        Err(JobError::Snooze(self.sunat.retry_delay))
                    }
                    // SUNAT refused the file itself: none of its lines was applied. Unless it
                    // says the ID was presented before and an earlier call of ours may have been
                    // that: then only a person can tell what SUNAT did with it.
                    _ => {
                        let presented = matches!(code.as_deref(), Some("2223" | "2324"));
                        let d = if presented && unsure {
                            Decision::Error {
                                code,
                                description: format!(
                                    "SUNAT ya tenía {summary_id} de un envío anterior cuya respuesta \
                                     se perdió ({description}): consulte ese resumen en SUNAT SOL"
                                ),
                            }
                        } else {
                            Decision::Rejected {
                                code,
                                description,
                                cdr_path: None,
                            }
                        };
                        let applied = summaries::decide(&mut conn, id, &d, &Prints::default())
                            .await
                            .map_err(db_err)?;
                        Ok(
                            json!({ "summary": summary_id.to_string(), "state": "REJECTED", "applied": applied }),
                        )
                    }
                }
            }
        }
    }

    async fn poll(&self, id: i64) -> Result<Value, JobError> {
        let mut conn = self.sunat.db.get().await.map_err(db_err)?;
        let row = match summaries::summary(&mut conn, id).await {
            Ok(r) => r,
            Err(summaries::SummaryError::NotFound(_)) => {
                return Err(JobError::Permanent(anyhow::anyhow!("no summary {id}")))
            }
            Err(e) => return Err(db_err(e)),
        };
        if row.state != SummaryState::Sent {
            return Ok(
                json!({ "summary": row.name(), "skipped": format!("the summary is {}", row.state) }),
            );
        }
        let (Some(ticket), Ok(summary_id)) = (row.ticket.clone(), row.summary_id()) else {
            return Err(JobError::Permanent(anyhow::anyhow!(
                "summary {id} is SENT without a readable ticket or id"
            )));
        };
        let ready = self.ready()?;
        match ready.client.get_status(&ticket).await {
            Ok(TicketStatus::InProcess) => {
                let polls = summaries::count_poll(&mut conn, id).await.map_err(db_err)?;
                let polls = u32::try_from(polls).unwrap_or(u32::MAX);
                if polls >= self.max_polls {
                    return Err(JobError::Permanent(anyhow::anyhow!(
                        "summary {summary_id}: ticket {ticket} still in process (98) after {polls} polls; it stays SENT and the nightly build polls it again"
                    )));
                }
                let wait = poll_wait(self.first_poll, polls);
                tracing::info!(summary = %summary_id, %ticket, polls, wait_secs = wait.as_secs(), "ticket in process (98)");
                Err(JobError::Snooze(wait))
            }
            Ok(TicketStatus::Done {
                status_code,
                cdr_zip,
                cdr,
            }) => {
                let files = ReceiptFiles::of_summary(&ready.company.ruc, &summary_id);
                write_atomic(&self.sunat.files_dir.join(files.cdr()), &cdr_zip).map_err(|e| {
                    JobError::Retry(anyhow::anyhow!("cannot store the summary's CDR: {e}"))
                })?;
                let cdr_path = Some(files.cdr());
                let accepted = status_code == "0" && cdr.response_code.trim() == "0";
                let reused = matches!(cdr.response_code.trim(), "2223" | "2324");
                let decision = if accepted {
                    Decision::Accepted {
                        code: cdr.response_code.clone(),
                        description: cdr.description.clone(),
                        cdr_path,
                    }
                } else if reused
                    && row.last_outcome.as_deref() == Some(summaries::TICKET_AFTER_UNSURE)
                {
                    Decision::Error {
                        code: Some(cdr.response_code.clone()),
                        description: format!(
                            "SUNAT ya tenía {summary_id} de un envío anterior cuya respuesta se perdió \
                             ({}): consulte ese resumen en SUNAT SOL antes de hacer nada más",
                            cdr.description
                        ),
                    }
                } else {
                    Decision::Rejected {
                        code: Some(cdr.response_code.clone()),
                        description: cdr.description.clone(),
                        cdr_path,
                    }
                };
                let printed = if accepted {
                    self.print_added(&mut conn, ready, id).await?
                } else {
                    Prints::default()
                };
                let applied = summaries::decide(&mut conn, id, &decision, &printed)
                    .await
                    .map_err(db_err)?;
                tracing::info!(summary = %summary_id, %ticket, %status_code, code = %cdr.response_code, ?applied, "ticket answered");
                Ok(json!({
                    "summary": summary_id.to_string(), "ticket": ticket, "status_code": status_code,
                    "code": cdr.response_code, "applied": applied,
                }))
            }
            Err(outcome) => {
                if outcome.code() == Some("0127") {
                    let d = Decision::Error {
                        code: Some("0127".into()),
                        description: format!(
                            "SUNAT no conoce el ticket {ticket} de {summary_id}: consulte el resumen en SUNAT SOL"
                        ),
                    };
                    summaries::decide(&mut conn, id, &d, &Prints::default())
                        .await
                        .map_err(db_err)?;
                    return Err(JobError::Permanent(anyhow::anyhow!(
                        "summary {summary_id}: SUNAT does not know ticket {ticket} (0127)"
                    )));
                }
                match outcome {
                    Outcome::Retryable { .. } | Outcome::Unknown { .. } => {
                        Err(JobError::Snooze(self.sunat.retry_delay))
                    }
                    other => Err(JobError::Permanent(anyhow::anyhow!(
                        "summary {summary_id}: getStatus {ticket}: {} {}: {} (stays SENT; the nightly build polls it again)",
                        other.name(),
                        other.code().unwrap_or("-"),
                        other.description()
                    ))),
                }
            }
        }
    }

    /// A credit note as SUNAT receives it (its CreditNote document), or why it cannot be built.
    async fn note(
        &self,
        conn: &mut faena_core::db::PooledConnection,
        ready: &Ready,
        note_id: i64,
    ) -> Result<Result<CreditNote, String>, JobError> {
        let row = credit_notes::row(conn, note_id).await.map_err(db_err)?;
        Ok(
            credit_notes::document(conn, &row, &ready.company, self.sunat.tz)
                .await
                .map_err(db_err)?
                .map_err(|e| e.to_string()),
        )
    }

    /// The PDF and QR of a credit note an accepted Resumen Diario informs, printed as a note
    /// accepted by sendBill is (with the digest of the XML it signed before its 1079).
    async fn print_note(
        &self,
        conn: &mut faena_core::db::PooledConnection,
        ready: &Ready,
        l: &LineRow,
        note_id: i64,
    ) -> Result<Option<Printed>, JobError> {
        let row = credit_notes::row(conn, note_id).await.map_err(db_err)?;
        let (Ok(note), Some(digest)) = (
            self.note(conn, ready, note_id).await?,
            row.digest_value.as_deref(),
        ) else {
            tracing::warn!(
                credit_note_id = note_id,
                line = l.line_no,
                "cannot print a credit note the Resumen Diario informs (no signed XML or document)"
            );
            return Ok(None);
        };
        let files = ReceiptFiles::of_credit_note(&note);
        let printed = printable::credit_note_pdf(&note, digest, &[])
            .and_then(|pdf| Ok((pdf, printable::credit_note_qr_png(&note, digest)?)))
            .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot print the note: {e}")))?;
        for (rel, bytes) in [(files.pdf(), printed.0), (files.qr(), printed.1)] {
            write_atomic(&self.sunat.files_dir.join(&rel), &bytes)
                .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot write {rel}: {e}")))?;
        }
        Ok(Some(Printed {
            pdf_path: Some(files.pdf()),
            qr_path: Some(files.qr()),
        }))
    }

    /// The PDF and QR of each boleta and credit note an accepted Resumen Diario informs (status
    /// 1), printed as one accepted by sendBill is, before the state changes.
    async fn print_added(
        &self,
        conn: &mut faena_core::db::PooledConnection,
        ready: &Ready,
        id: i64,
    ) -> Result<Prints, JobError> {
        let mut out = Prints::default();
        for l in summaries::lines(conn, id).await.map_err(db_err)? {
            if l.condition_code != "1" {
                continue;
            }
            if let Some(note_id) = l.credit_note_id {
                if let Some(p) = self.print_note(conn, ready, &l, note_id).await? {
                    out.notes.insert(note_id, p);
                }
                continue;
            }
            let sale = sales::sale_row(conn, l.sale_id).await.map_err(db_err)?;
            let items = sales::sale_items(conn, l.sale_id).await.map_err(db_err)?;
            let (Ok(receipt), Some(digest)) = (
                self.sunat.receipt(&ready.company, &sale, &items),
                sale.digest_value.as_deref(),
            ) else {
                continue;
            };
            let files = ReceiptFiles::of(&receipt);
            let printed = printable::receipt_pdf(&receipt, digest, &[])
                .and_then(|pdf| Ok((pdf, printable::receipt_qr_png(&receipt, digest)?)))
                .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot print the receipt: {e}")))?;
            for (rel, bytes) in [(files.pdf(), printed.0), (files.qr(), printed.1)] {
                write_atomic(&self.sunat.files_dir.join(&rel), &bytes)
                    .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot write {rel}: {e}")))?;
            }
            out.sales.insert(
                l.sale_id,
                Printed {
                    pdf_path: Some(files.pdf()),
                    qr_path: Some(files.qr()),
                },
            );
        }
        Ok(out)
    }
}
