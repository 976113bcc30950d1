//! `send_credit_note_to_sunat`: signs a credit note once, sends it with `sendBill` (the way SUNAT
//! takes notes of facturas, and notes of boletas within their 5 days), classifies the answer,
//! retries what SUNAT says is temporary, and on acceptance stores the CDR and prints the PDF and
//! QR, as `send_sale_to_sunat` does a sale (`jobs/sunat.rs`).
//!
//! The same guards: one send of a note at a time (the broker lock `credit_note:<id>`, held by
//! the attempt, and the conditional move to SENDING that records the attempt as its marker);
//! only that attempt moves the note out of SENDING; the signed XML and its zip are written once
//! and every retry sends those bytes. A 1033 or 1032 is read as our own earlier send only when an
//! earlier send of these very bytes had an unknown or in-process outcome (the note's
//! `unsure_sha256`); otherwise the note is CONFLICT. A note of a boleta past its 5 days gets 1079
//! (`needs_summary`) and stays ERROR until the nightly Resumen Diario carries it (a line of type
//! 07 with its boleta; `jobs/summaries.rs`), whose acceptance makes it ACCEPTED.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use faena_broker::Broker;
use faena_core::db::PgPool;
use faena_core::jobs::JobError;
use faena_core::Settings;
use faena_shop::credit_notes::{self, CreditNoteError};
use faena_shop::files::{write_atomic, ReceiptFiles};
use faena_shop::jobs::SendCreditNoteArgs;
use faena_shop::sales::{NotSendable, SendResult, SunatStatus, UNSURE};
use faena_sunat::{printable, CreditNote, Outcome};
use serde_json::{json, Value};

use super::sunat::{build, Ready};
use crate::handlers::{Handlers, JobContext};

/// The credit note job and what it needs.
pub struct CreditNoteJobs {
    db: PgPool,
    broker: Broker,
    ready: Result<Ready, String>,
    files_dir: PathBuf,
    tz: chrono_tz::Tz,
    max_retries: u32,
    retry_delay: Duration,
    lock_ttl: Duration,
}

impl std::fmt::Debug for CreditNoteJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreditNoteJobs")
            .field("ready", &self.ready.as_ref().map(|_| "ready"))
            .field("files_dir", &self.files_dir)
            .finish()
    }
}

fn db_err(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(anyhow::anyhow!("database: {e}"))
}

impl CreditNoteJobs {
    /// Reads the company and SUNAT settings (missing ones end each note in ERROR, naming them).
    pub fn from_settings(db: PgPool, broker: Broker, settings: &Settings) -> Self {
        let s = &settings.sunat;
        Self {
            db,
            broker,
            ready: build(settings),
            files_dir: settings.files_dir.clone(),
            tz: settings.tz,
            max_retries: s.max_retries,
            retry_delay: s.retry_delay,
            lock_ttl: s.connect_timeout + s.read_timeout + Duration::from_secs(60),
        }
    }

    /// Registers `send_credit_note_to_sunat`.
    pub fn register(self: Arc<Self>, h: &mut Handlers) {
        h.register(move |a: SendCreditNoteArgs, ctx: JobContext| {
            let jobs = Arc::clone(&self);
            async move { jobs.send(a.credit_note_id, &ctx).await }
        });
    }

    async fn send(&self, id: i64, ctx: &JobContext) -> Result<Value, JobError> {
        let lock = credit_notes::send_lock(id);
        let holder = format!("{}:{}", ctx.task_id, ctx.token);
        let got = self
            .broker
            .acquire_lock(&lock, &holder, self.lock_ttl)
            .await
            .map_err(|e| JobError::Retry(anyhow::anyhow!("redis: {e}")))?;
        if !got {
            return Ok(
                json!({ "credit_note_id": id, "skipped": "another send of this note is in flight" }),
            );
        }
        let result = self.send_locked(id, &holder).await;
        if let Err(e) = self.broker.release_lock(&lock, &holder).await {
            tracing::warn!(credit_note_id = id, error = %e, "could not release the note's lock; it expires by itself");
        }
        result
    }

    async fn send_locked(&self, id: i64, marker: &str) -> Result<Value, JobError> {
        let mut conn = self.db.get().await.map_err(db_err)?;
        let number = match credit_notes::begin_send(&mut conn, id, marker).await {
            Ok(Ok(n)) => n,
            Ok(Err(NotSendable::Done(status))) => {
                return Ok(
                    json!({ "credit_note_id": id, "skipped": format!("the note is {status}") }),
                )
            }
            Ok(Err(NotSendable::Cancelled)) => {
                return Ok(json!({ "credit_note_id": id, "skipped": "cancelled" }))
            }
            Err(CreditNoteError::NotFound { .. }) => {
                return Err(JobError::Permanent(anyhow::anyhow!("no credit note {id}")))
            }
            Err(e) => return Err(db_err(e)),
        };
        let ready = match &self.ready {
            Ok(r) => r,
            Err(why) => {
                let r = SendResult {
                    status: SunatStatus::Error,
                    outcome: "config_error".into(),
                    description: Some(format!("SUNAT sending is not configured: {why}")),
                    ..Default::default()
                };
                self.finish(&mut conn, id, marker, &r, None).await?;
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "credit note {id}: SUNAT sending is not configured: {why}"
                )));
            }
        };
        let row = credit_notes::row(&mut conn, id).await.map_err(db_err)?;
        let note = match credit_notes::document(&mut conn, &row, &ready.company, self.tz)
            .await
            .map_err(db_err)?
        {
            Ok(n) => n,
            Err(e) => {
                let r = SendResult {
                    status: SunatStatus::Error,
                    outcome: "document_error".into(),
                    description: Some(format!("not sent: {e}")),
                    ..Default::default()
                };
                self.finish(&mut conn, id, marker, &r, None).await?;
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "credit note {id}: {e}"
                )));
            }
        };
        let files = ReceiptFiles::of_credit_note(&note);
        let xml_file = self.files_dir.join(files.xml());
        let zip_file = self.files_dir.join(files.zip());
        // Sign once; every later attempt sends the stored bytes.
        let (zip, signed, digest) = match &row.digest_value {
            Some(digest) if row.xml_path.is_some() => {
                let xml = std::fs::read(&xml_file).map_err(|e| {
                    JobError::Permanent(anyhow::anyhow!(
                        "credit note {id}: the signed XML {} is gone ({e}); it is never regenerated after a send",
                        xml_file.display()
                    ))
                })?;
                let zip = match std::fs::read(&zip_file) {
                    Ok(z) => z,
                    Err(_) => faena_sunat::archive::zip_single(&files.xml_name(), &xml)
                        .map_err(|e| JobError::Permanent(anyhow::anyhow!("zip: {e}")))?,
                };
                (zip, faena_sunat::signed_sha256(&xml), digest.clone())
            }
            _ => {
                let prepared =
                    faena_sunat::prepare_credit_note(&note, &ready.signer).map_err(|e| {
                        JobError::Permanent(anyhow::anyhow!("credit note {id}: cannot sign: {e}"))
                    })?;
                write_atomic(&xml_file, &prepared.xml)
                    .and_then(|()| write_atomic(&zip_file, &prepared.zip))
                    .map_err(|e| {
                        JobError::Retry(anyhow::anyhow!(
                            "cannot write under {}: {e}",
                            self.files_dir.display()
                        ))
                    })?;
                credit_notes::store_signed(&mut conn, id, &prepared.digest_value, &files.xml())
                    .await
                    .map_err(db_err)?;
                let signed = prepared.signed_sha256();
                (prepared.zip, signed, prepared.digest_value)
            }
        };
        let reconciling = row.unsure_sha256.as_deref() == Some(signed.as_str());
        let submission = ready.client.send_bill(&files.zip_name(), &zip).await;
        let outcome = if reconciling {
            submission.outcome.clone().on_resend()
        } else {
            submission.outcome.clone()
        };
        tracing::info!(
            credit_note_id = id,
            attempt = number,
            outcome = outcome.name(),
            code = outcome.code().unwrap_or("-"),
            reconciling,
            "sendBill (credit note)"
        );
        let mut r = SendResult {
            outcome: outcome.name().into(),
            code: outcome.code().map(str::to_owned),
            description: Some(outcome.description().to_owned()),
            ..Default::default()
        };
        let answer = json!({
            "credit_note_id": id, "number": note.id(), "attempt": number,
            "outcome": outcome.name(), "code": outcome.code(),
        });
        if !credit_notes::is_sending(&mut conn, id, marker)
            .await
            .map_err(db_err)?
        {
            tracing::warn!(
                credit_note_id = id,
                outcome = outcome.name(),
                "another attempt took the note over while this one waited for SUNAT: its answer is not applied"
            );
            return Ok(answer);
        }
        let unsure = UNSURE.contains(&outcome.name()).then_some(signed.as_str());
        match &outcome {
            Outcome::Accepted { notes, .. } | Outcome::AcceptedWithObservations { notes, .. } => {
                r.notes = notes.clone();
                self.accept(&note, &digest, &submission.cdr_zip, &mut r)?;
            }
            Outcome::AlreadyRegistered { .. } => {
                self.accept(&note, &digest, &submission.cdr_zip, &mut r)?;
            }
            Outcome::Rejected { notes, .. } => {
                r.status = SunatStatus::Rejected;
                r.notes = notes.clone();
            }
            Outcome::Retryable { .. }
            | Outcome::Unknown { .. }
            | Outcome::AlreadyInProcess { .. } => {
                if number <= i32::try_from(self.max_retries).unwrap_or(i32::MAX) {
                    r.status = SunatStatus::Pending;
                    if self.finish(&mut conn, id, marker, &r, unsure).await? {
                        return Err(JobError::Snooze(self.retry_delay));
                    }
                    return Ok(answer);
                }
                r.status = SunatStatus::Error;
            }
            Outcome::Conflict { .. }
            | Outcome::PermanentConfig { .. }
            | Outcome::PermanentDocument { .. }
            | Outcome::NeedsSummary { .. } => {
                r.status = if matches!(outcome, Outcome::Conflict { .. }) {
                    SunatStatus::Conflict
                } else {
                    SunatStatus::Error
                };
                if !self.finish(&mut conn, id, marker, &r, unsure).await? {
                    return Ok(answer);
                }
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "credit note {id} ({}): {} {}: {} (needs a person; not retried)",
                    note.id(),
                    outcome.name(),
                    outcome.code().unwrap_or("-"),
                    outcome.description()
                )));
            }
        }
        self.finish(&mut conn, id, marker, &r, unsure).await?;
        let mut answer = answer;
        answer["status"] = json!(r.status);
        Ok(answer)
    }

    /// Stores the CDR and prints the PDF and QR; the result becomes ACCEPTED.
    fn accept(
        &self,
        note: &CreditNote,
        digest: &str,
        cdr_zip: &Option<Vec<u8>>,
        r: &mut SendResult,
    ) -> Result<(), JobError> {
        let files = ReceiptFiles::of_credit_note(note);
        if let Some(cdr) = cdr_zip {
            write_atomic(&self.files_dir.join(files.cdr()), cdr)
                .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot store the CDR: {e}")))?;
            r.cdr_path = Some(files.cdr());
        }
        let printed = printable::credit_note_pdf(note, digest, &r.notes)
            .and_then(|pdf| {
                let qr = printable::credit_note_qr_png(note, digest)?;
                Ok([(files.pdf(), pdf), (files.qr(), qr)])
            })
            .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot print the note: {e}")))?;
        for (rel, bytes) in printed {
            write_atomic(&self.files_dir.join(&rel), &bytes).map_err(|e| {
                JobError::Retry(anyhow::anyhow!(
                    "cannot print the note: cannot write {rel} under {}: {e}",
                    self.files_dir.display()
                ))
            })?;
        }
        r.pdf_path = Some(files.pdf());
        r.qr_path = Some(files.qr());
        r.status = SunatStatus::Accepted;
        Ok(())
    }

    /// Moves the note to the result's state if this attempt still holds it.
    async fn finish(
        &self,
        conn: &mut faena_core::db::PooledConnection,
        id: i64,
        marker: &str,
        r: &SendResult,
        unsure: Option<&str>,
    ) -> Result<bool, JobError> {
        let wrote = credit_notes::finish_send(conn, id, marker, r, unsure)
            .await
            .map_err(db_err)?;
        if !wrote {
            tracing::warn!(
                credit_note_id = id,
                outcome = %r.outcome,
                "the note is no longer SENDING under this attempt: its answer is not applied"
            );
        }
        Ok(wrote)
    }
}
