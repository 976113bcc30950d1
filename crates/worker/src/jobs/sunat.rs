//! The SUNAT jobs: `send_sale_to_sunat` (sign once, send, classify, retry what is temporary,
//! store CDR, PDF and QR) and `retry_failed_sunat_sends` (beat's half-hourly sweep of ERROR sales
//! and credit notes).
//!
//! At most one send of a sale is in flight anywhere: the job holds the broker lock `sale:<id>`
//! while it sends, and moves the sale to SENDING with a conditional update that records the
//! attempt (`task_id:token`); a second job that finds the lock taken or the sale decided returns
//! at once without calling SUNAT, and only the attempt that moved the sale to SENDING moves it
//! out. The signed XML and its zip are written once under the files directory; every retry sends
//! those same bytes, and each call records their SHA-256, so a 1033 or 1032 is read as our own
//! earlier send only after an unknown or in-process outcome of the same bytes (else CONFLICT).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use faena_broker::Broker;
use faena_core::db::PgPool;
use faena_core::jobs::{EnqueueRequest, JobError};
use faena_core::Settings;
use faena_shop::files::{write_atomic, ReceiptFiles};
use faena_shop::jobs::{RetryFailedSendsArgs, SendSaleArgs};
use faena_shop::sales::{self, NewSubmission, NotSendable, SaleRow, SendResult, SunatStatus};
use faena_shop::sendable::Sendable;
use faena_shop::stores;
use faena_sunat::document::{Company, Customer, CustomerDocType, DocumentType, Receipt};
use faena_sunat::{printable, Client, Outcome, Ruc, Series, Signer, SunatConfig};
use serde_json::{json, Value};

use crate::handlers::{Handlers, JobContext};

/// What sending needs once the settings are complete (the summaries' and the credit notes' jobs
/// build it too).
pub(crate) struct Ready {
    pub(crate) client: Client,
    pub(crate) signer: Signer,
    pub(crate) company: Company,
    /// `SunatConfig::fingerprint` of these settings, recorded with each call.
    pub(super) fingerprint: String,
}

/// One attempt of `send_sale_to_sunat` on one sale.
struct Attempt<'a> {
    sale_id: i64,
    /// The sale's attempt count after `begin_send`.
    number: i32,
    started_at: chrono::DateTime<Utc>,
    /// `task_id:token`: the lock's holder and the sale's send marker.
    marker: &'a str,
    ctx: &'a JobContext,
    /// The settings' fingerprint, when they are complete.
    fingerprint: Option<&'a str>,
}

/// The SUNAT jobs and what they share.
pub struct SunatJobs {
    pub(crate) db: PgPool,
    pub(crate) broker: Broker,
    /// The client, signer and company, or what is missing from the settings.
    pub(crate) ready: Result<Ready, String>,
    pub(crate) files_dir: PathBuf,
    pub(crate) tz: chrono_tz::Tz,
    pub(crate) max_retries: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) lock_ttl: Duration,
}

impl std::fmt::Debug for SunatJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SunatJobs")
            .field("ready", &self.ready.as_ref().map(|_| "ready"))
            .field("files_dir", &self.files_dir)
            .finish()
    }
}

pub(super) fn build(settings: &Settings) -> Result<Ready, String> {
    let s = &settings.sunat;
    let need = |v: &Option<String>, name: &str| {
        v.clone()
            .filter(|x| !x.trim().is_empty())
            .ok_or_else(|| format!("{name} is not set"))
    };
    let ruc = Ruc::parse(&need(&s.company_ruc, "FAENA_COMPANY_RUC")?)
        .map_err(|e| format!("FAENA_COMPANY_RUC: {e}"))?;
    let legal_name = need(&s.company_name, "FAENA_COMPANY_NAME")?;
    let sol_user = need(&s.sol_user, "SUNAT_SOL_USER")?;
    let sol_password = s
        .sol_password
        .clone()
        .ok_or("SUNAT_SOL_PASSWORD is not set")?;
    let cert_path = s.cert_path.clone().ok_or("SUNAT_CERT_PATH is not set")?;
    let cert_password = s
        .cert_password
        .clone()
        .ok_or("SUNAT_CERT_PASSWORD is not set")?;
    let signer = Signer::from_pkcs12(&cert_path, &cert_password)
        .map_err(|e| format!("SUNAT_CERT_PATH / SUNAT_CERT_PASSWORD: {e}"))?;
    let cert = std::fs::read(&cert_path)
        .map_err(|e| format!("SUNAT_CERT_PATH: cannot read {}: {e}", cert_path.display()))?;
    let config = SunatConfig {
        endpoint: s.endpoint.clone(),
        ruc: ruc.clone(),
        sol_user,
        sol_password,
        connect_timeout: s.connect_timeout,
        read_timeout: s.read_timeout,
        consult_endpoint: s.consult_endpoint.clone(),
    };
    let fingerprint = config.fingerprint(&cert);
    let client = Client::new(config).map_err(|e| format!("SUNAT client: {e}"))?;
    Ok(Ready {
        client,
        signer,
        fingerprint,
        company: Company {
            ruc,
            legal_name,
            address: s.company_address.clone(),
            // Each sale's store's, set per receipt.
            establishment_code: faena_shop::stores::MAIN_ESTABLISHMENT.into(),
        },
    })
}

/// The answer of an attempt whose sale another attempt took over.
fn superseded(mut answer: Value) -> Value {
    answer["superseded"] =
        json!("another attempt holds the sale; this answer was recorded, not applied");
    answer
}

fn db_err(e: impl std::fmt::Display) -> JobError {
    JobError::Retry(anyhow::anyhow!("database: {e}"))
}

impl SunatJobs {
    /// Reads the company and SUNAT settings. Missing ones do not stop the worker: the other jobs
    /// run, and `send_sale_to_sunat` ends each sale in ERROR with a message naming them.
    pub fn from_settings(db: PgPool, broker: Broker, settings: &Settings) -> Self {
        let ready = build(settings);
        if let Err(why) = &ready {
            tracing::warn!(problem = %why, "SUNAT sending is not configured: send_sale_to_sunat will fail until it is");
        }
        let s = &settings.sunat;
        Self {
            db,
            broker,
            ready,
            files_dir: settings.files_dir.clone(),
            tz: settings.tz,
            max_retries: s.max_retries,
            retry_delay: s.retry_delay,
            lock_ttl: s.connect_timeout + s.read_timeout + Duration::from_secs(60),
        }
    }

    /// Registers `send_sale_to_sunat` and `retry_failed_sunat_sends`.
    pub fn register(self: Arc<Self>, h: &mut Handlers) {
        let jobs = Arc::clone(&self);
        h.register(move |a: SendSaleArgs, ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.send(a.sale_id, &ctx).await }
        });
        let jobs = self;
        h.register(move |a: RetryFailedSendsArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.retry_failed(a).await }
        });
    }

    async fn send(&self, sale_id: i64, ctx: &JobContext) -> Result<Value, JobError> {
        let lock = sales::send_lock(sale_id);
        // Held by this attempt, not by the task: a later attempt of the same task (after this one
        // lost its lease) must not take over a lock an earlier attempt may still be sending under.
        let holder = format!("{}:{}", ctx.task_id, ctx.token);
        let got = self
            .broker
            .acquire_lock(&lock, &holder, self.lock_ttl)
            .await
            .map_err(|e| JobError::Retry(anyhow::anyhow!("redis: {e}")))?;
        if !got {
            tracing::info!(
                sale_id,
                "another worker is sending this sale; nothing to do"
            );
            return Ok(
                json!({ "sale_id": sale_id, "skipped": "another send of this sale is in flight" }),
            );
        }
        let result = self.send_locked(sale_id, &holder, ctx).await;
        if let Err(e) = self.broker.release_lock(&lock, &holder).await {
            tracing::warn!(sale_id, error = %e, "could not release the sale's lock; it expires by itself");
        }
        result
    }

    async fn send_locked(
        &self,
        sale_id: i64,
        marker: &str,
        ctx: &JobContext,
    ) -> Result<Value, JobError> {
        let mut conn = self.db.get().await.map_err(db_err)?;
        let number = match sales::begin_send(&mut conn, sale_id, marker).await {
            Ok(Ok(n)) => n,
            Ok(Err(NotSendable::Done(status))) => {
                return Ok(
                    json!({ "sale_id": sale_id, "skipped": format!("the sale is {status}") }),
                )
            }
            Ok(Err(NotSendable::Cancelled)) => {
                return Ok(json!({ "sale_id": sale_id, "skipped": "the sale is cancelled" }))
            }
            Err(sales::SaleError::NotFound { .. }) => {
                return Err(JobError::Permanent(anyhow::anyhow!("no sale {sale_id}")))
            }
            Err(e) => return Err(db_err(e)),
        };
        let a = Attempt {
            sale_id,
            number,
            started_at: Utc::now(),
            marker,
            ctx,
            fingerprint: self.ready.as_ref().ok().map(|r| r.fingerprint.as_str()),
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
                self.record(&mut conn, &a, Duration::ZERO, &r, None, None)
                    .await?;
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "sale {sale_id}: SUNAT sending is not configured: {why}"
                )));
            }
        };
        let row = sales::sale_row(&mut conn, sale_id).await.map_err(db_err)?;
        let items = sales::sale_items(&mut conn, sale_id)
            .await
            .map_err(db_err)?;
        // The issuer is the company; the establishment is the sale's store's.
        let store = stores::sale_store(&mut conn, sale_id)
            .await
            .map_err(db_err)?;
        let company = Company {
            establishment_code: store.establishment_code,
            ..ready.company.clone()
        };
        let receipt = match self.receipt(&company, &row, &items) {
            Ok(r) => r,
            Err(e) => {
                // Caught before sending: SUNAT would refuse it and use up the number (2022).
                let r = SendResult {
                    status: SunatStatus::Error,
                    outcome: "document_error".into(),
                    description: Some(format!("not sent: {e}")),
                    ..Default::default()
                };
                self.record(&mut conn, &a, Duration::ZERO, &r, None, None)
                    .await?;
                return Err(JobError::Permanent(anyhow::anyhow!("sale {sale_id}: {e}")));
            }
        };
        let files = ReceiptFiles::of(&receipt);
        let xml_file = self.files_dir.join(files.xml());
        let zip_file = self.files_dir.join(files.zip());
        // Sign once; every later attempt sends the stored bytes.
        let (zip, signed, digest) = match &row.digest_value {
            Some(digest) if row.xml_path.is_some() => {
                let stored = std::fs::read(&zip_file).ok().and_then(|zip| {
                    let (_, xml) = faena_sunat::archive::read_single(&zip).ok()?;
                    Some((zip, xml))
                });
                let (zip, xml) = match stored {
                    Some(pair) => pair,
                    None => {
                        let xml = std::fs::read(&xml_file).map_err(|e| {
                            JobError::Permanent(anyhow::anyhow!(
                                "sale {sale_id}: the signed XML {} is gone ({e}); it is never regenerated after a send",
                                xml_file.display()
                            ))
                        })?;
                        let zip = faena_sunat::archive::zip_single(&files.xml_name(), &xml)
                            .map_err(|e| JobError::Permanent(anyhow::anyhow!("zip: {e}")))?;
                        (zip, xml)
                    }
                };
                (zip, faena_sunat::signed_sha256(&xml), digest.clone())
            }
            _ => {
                let prepared = faena_sunat::prepare(&receipt, &ready.signer).map_err(|e| {
                    JobError::Permanent(anyhow::anyhow!("sale {sale_id}: cannot sign: {e}"))
                })?;
                write_atomic(&xml_file, &prepared.xml)
                    .and_then(|()| write_atomic(&zip_file, &prepared.zip))
                    .map_err(|e| {
                        JobError::Retry(anyhow::anyhow!(
                            "cannot write under {}: {e}",
                            self.files_dir.display()
                        ))
                    })?;
                sales::store_signed(&mut conn, sale_id, &prepared.digest_value, &files.xml())
                    .await
                    .map_err(db_err)?;
                let signed = prepared.signed_sha256();
                (prepared.zip, signed, prepared.digest_value)
            }
        };

        // After an unknown or in-process outcome of these very bytes, SUNAT may hold the
        // document because of us: then 1033 means accepted and 1032 rejected. Otherwise they
        // mean another document holds the number.
        let reconciling = sales::sent_unsure_before(&mut conn, sale_id, &signed)
            .await
            .map_err(db_err)?;
        // Before resending after an unsure send, ask SUNAT's consult service for the CDR of the
        // number (facturas only; none on beta): when SUNAT has it, it decides, with no resend.
        let clock = Instant::now();
        let consulted = if reconciling {
            self.consult(ready, &receipt).await
        } else {
            None
        };
        let (outcome, cdr_zip, http_status, via) = match consulted {
            Some((outcome, cdr_zip)) => (outcome, cdr_zip, None, "getStatusCdr"),
            None => {
                let submission = ready.client.send_bill(&files.zip_name(), &zip).await;
                let outcome = if reconciling {
                    submission.outcome.on_resend()
                } else {
                    submission.outcome
                };
                (
                    outcome,
                    submission.cdr_zip,
                    submission.http_status,
                    "sendBill",
                )
            }
        };
        let took = clock.elapsed();
        tracing::info!(
            sale_id,
            attempt = number,
            outcome = outcome.name(),
            code = outcome.code().unwrap_or("-"),
            reconciling,
            ms = took.as_millis() as u64,
            via,
            "SUNAT answered"
        );
        let mut r = SendResult {
            outcome: outcome.name().into(),
            code: outcome.code().map(str::to_owned),
            description: Some(if via == "sendBill" {
                outcome.description().to_owned()
            } else {
                format!("{via}: {}", outcome.description())
            }),
            ..Default::default()
        };
        let http = http_status.map(i32::from);
        let answer = json!({
            "sale_id": sale_id, "number": receipt.id(), "attempt": number,
            "outcome": outcome.name(), "code": outcome.code(),
        });
        // This attempt's lock may have expired while it waited for SUNAT, and a later attempt
        // taken the sale over: then the answer is recorded, never applied (no files written).
        if !sales::is_sending(&mut conn, sale_id, marker)
            .await
            .map_err(db_err)?
        {
            let s = self.submission(&a, took, &r, http, Some(&signed));
            sales::record_submission(&mut conn, &s)
                .await
                .map_err(db_err)?;
            tracing::warn!(
                sale_id,
                marker,
                outcome = outcome.name(),
                "another attempt took the sale over while this one waited for SUNAT: its answer is recorded, not applied"
            );
            return Ok(superseded(answer));
        }
        match &outcome {
            Outcome::Accepted { notes, .. } | Outcome::AcceptedWithObservations { notes, .. } => {
                r.notes = notes.clone();
                self.accept(&receipt, &digest, &cdr_zip, &mut r)?;
            }
            Outcome::AlreadyRegistered { .. } => {
                self.accept(&receipt, &digest, &cdr_zip, &mut r)?;
            }
            Outcome::Rejected { notes, .. } => {
                r.status = SunatStatus::Rejected;
                r.notes = notes.clone();
                // A CDR that a consult found is stored like sendBill's.
                if let Some(cdr) = cdr_zip.as_ref().filter(|_| via == "getStatusCdr") {
                    let rel = files.cdr();
                    write_atomic(&self.files_dir.join(&rel), cdr).map_err(|e| {
                        JobError::Retry(anyhow::anyhow!("cannot store the CDR: {e}"))
                    })?;
                    r.cdr_path = Some(rel);
                }
            }
            Outcome::Retryable { .. }
            | Outcome::Unknown { .. }
            | Outcome::AlreadyInProcess { .. } => {
                if number <= i32::try_from(self.max_retries).unwrap_or(i32::MAX) {
                    r.status = SunatStatus::Pending;
                    if !self
                        .record(&mut conn, &a, took, &r, http, Some(&signed))
                        .await?
                    {
                        return Ok(superseded(answer));
                    }
                    return Err(JobError::Snooze(self.retry_delay));
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
                if !self
                    .record(&mut conn, &a, took, &r, http, Some(&signed))
                    .await?
                {
                    return Ok(superseded(answer));
                }
                return Err(JobError::Permanent(anyhow::anyhow!(
                    "sale {sale_id} ({}): {} {}: {} (needs a person; not retried)",
                    receipt.id(),
                    outcome.name(),
                    outcome.code().unwrap_or("-"),
                    outcome.description()
                )));
            }
        }
        if !self
            .record(&mut conn, &a, took, &r, http, Some(&signed))
            .await?
        {
            return Ok(superseded(answer));
        }
        let mut answer = answer;
        answer["status"] = json!(r.status);
        Ok(answer)
    }

    /// getStatusCdr for a factura whose earlier send is unsure: SUNAT's own answer (its CDR read
    /// as sendBill's would be: accepted, observed, rejected; a voided number is a conflict) when
    /// SUNAT has the document and its CDR, else `None` (no consult service, a boleta, SUNAT does
    /// not have it, or the consult failed): then the stored bytes are sent again.
    async fn consult(
        &self,
        ready: &Ready,
        receipt: &Receipt,
    ) -> Option<(Outcome, Option<Vec<u8>>)> {
        if receipt.doc_type != DocumentType::Factura {
            return None;
        }
        let answer = match ready
            .client
            .get_status_cdr(
                receipt.doc_type.code(),
                receipt.series.as_str(),
                receipt.correlative,
            )
            .await
        {
            Ok(Some(a)) => a,
            Ok(None) => return None,
            Err(o) => {
                tracing::warn!(number = %receipt.id(), outcome = o.name(), "getStatusCdr failed; reconciling by resending");
                return None;
            }
        };
        let cdr = answer.cdr.as_ref()?;
        if !answer.exists() {
            return None;
        }
        let outcome = if answer.status_code == "0003" {
            Outcome::Conflict {
                code: answer.status_code.clone(),
                description: format!("SUNAT: {}", answer.status_message),
            }
        } else {
            faena_sunat::outcome::classify_cdr(&cdr.response_code, &cdr.description, &cdr.notes)
        };
        tracing::info!(number = %receipt.id(), status = %answer.status_code, outcome = outcome.name(), "getStatusCdr found the document at SUNAT");
        Some((outcome, answer.cdr_zip))
    }

    /// Stores the CDR and prints the PDF and QR; the result becomes ACCEPTED.
    pub(crate) fn accept(
        &self,
        receipt: &Receipt,
        digest: &str,
        cdr_zip: &Option<Vec<u8>>,
        r: &mut SendResult,
    ) -> Result<(), JobError> {
        let files = ReceiptFiles::of(receipt);
        if let Some(cdr) = cdr_zip {
            write_atomic(&self.files_dir.join(files.cdr()), cdr)
                .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot store the CDR: {e}")))?;
            r.cdr_path = Some(files.cdr());
        }
        let printed = printable::receipt_pdf(receipt, digest, &r.notes)
            .and_then(|pdf| {
                let qr = printable::receipt_qr_png(receipt, digest)?;
                Ok([(files.pdf(), pdf), (files.qr(), qr)])
            })
            .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot print the receipt: {e}")))?;
        for (rel, bytes) in printed {
            write_atomic(&self.files_dir.join(&rel), &bytes).map_err(|e| {
                JobError::Retry(anyhow::anyhow!(
                    "cannot print the receipt: cannot write {rel} under {}: {e}",
                    self.files_dir.display()
                ))
            })?;
        }
        r.pdf_path = Some(files.pdf());
        r.qr_path = Some(files.qr());
        r.status = SunatStatus::Accepted;
        Ok(())
    }

    /// The `sunat_submissions` row of one call (or of an attempt that made none).
    fn submission(
        &self,
        a: &Attempt<'_>,
        took: Duration,
        r: &SendResult,
        http_status: Option<i32>,
        signed: Option<&str>,
    ) -> NewSubmission {
        NewSubmission {
            sale_id: a.sale_id,
            attempt: a.number,
            started_at: a.started_at,
            duration_ms: i32::try_from(took.as_millis()).unwrap_or(i32::MAX),
            outcome: r.outcome.clone(),
            code: r.code.clone(),
            description: r.description.clone(),
            http_status,
            task_id: Some(a.ctx.task_id.to_string()),
            signed_sha256: signed.map(str::to_owned),
            settings_fingerprint: a.fingerprint.map(str::to_owned),
        }
    }

    /// Records the attempt and moves the sale to the result's state, if this attempt still holds
    /// it; false when a later attempt took it over (the row is recorded, the state untouched).
    async fn record(
        &self,
        conn: &mut faena_core::db::PooledConnection,
        a: &Attempt<'_>,
        took: Duration,
        r: &SendResult,
        http_status: Option<i32>,
        signed: Option<&str>,
    ) -> Result<bool, JobError> {
        let s = self.submission(a, took, r, http_status, signed);
        sales::record_submission(conn, &s).await.map_err(db_err)?;
        let wrote = sales::finish_send(conn, a.sale_id, a.marker, r)
            .await
            .map_err(db_err)?;
        if !wrote {
            tracing::warn!(
                sale_id = a.sale_id,
                marker = a.marker,
                outcome = %r.outcome,
                "the sale is no longer SENDING under this attempt: its answer is recorded, not applied"
            );
        }
        Ok(wrote)
    }

    /// The receipt of a stored sale.
    pub(crate) fn receipt(
        &self,
        company: &Company,
        row: &SaleRow,
        items: &[sales::SaleItem],
    ) -> Result<Receipt, faena_sunat::DocumentError> {
        let doc_type = DocumentType::parse(&row.doc_type)?;
        let customer = Customer::new(
            CustomerDocType::parse(&row.customer_doc_type)?,
            &row.customer_doc_number,
            &row.customer_name,
        )?;
        let receipt = Receipt {
            company: company.clone(),
            doc_type,
            series: Series::parse_for(&row.series, doc_type)?,
            correlative: row.correlative,
            issue_date: row.issue_date,
            issue_time: row.issued_at.with_timezone(&self.tz).time(),
            customer,
            currency: row.currency.clone(),
            lines: items
                .iter()
                .enumerate()
                .map(|(index, i)| {
                    i.line()
                        .map_err(|source| faena_sunat::DocumentError::Tax { index, source })
                })
                .collect::<Result<_, _>>()?,
        };
        receipt.validate()?;
        Ok(receipt)
    }

    /// Gives sales and credit notes in ERROR that a retry may fix a new round of retries.
    async fn retry_failed(&self, a: RetryFailedSendsArgs) -> Result<Value, JobError> {
        let limit = i64::from(a.limit.unwrap_or(50).clamp(1, 1000));
        let older = chrono::Duration::seconds(
            i64::try_from(a.older_than_secs.unwrap_or(3600)).unwrap_or(3600),
        );
        let mut conn = self.db.get().await.map_err(db_err)?;
        // A document refused at the SOL login is resent only once the settings differ.
        let fingerprint = self.ready.as_ref().ok().map(|r| r.fingerprint.as_str());
        let mut requeued: Vec<(Sendable, i64)> = Vec::new();
        let mut reqs = Vec::new();
        for doc in Sendable::ALL {
            let due = doc
                .failed_to_retry(&mut conn, older, limit, fingerprint)
                .await
                .map_err(db_err)?;
            for id in due {
                if doc.requeue_failed(&mut conn, id).await.map_err(db_err)? {
                    requeued.push((doc, id));
                    reqs.push(EnqueueRequest {
                        kind: doc.job_kind().into(),
                        args: doc.job_args(id),
                        idempotency_key: Some(doc.retry_key(id, Utc::now())),
                        ..Default::default()
                    });
                }
            }
        }
        if !reqs.is_empty() {
            self.broker
                .enqueue_many(reqs)
                .await
                .map_err(|e| JobError::Retry(anyhow::anyhow!("enqueue: {e}")))?;
        }
        let ids = |kind: Sendable| -> Vec<i64> {
            requeued
                .iter()
                .filter(|(d, _)| *d == kind)
                .map(|(_, id)| *id)
                .collect()
        };
        let (sale_ids, note_ids) = (ids(Sendable::Sale), ids(Sendable::CreditNote));
        tracing::info!(
            sales = sale_ids.len(),
            credit_notes = note_ids.len(),
            "re-enqueued documents in ERROR"
        );
        // `requeued` counts every document queued again, sales and credit notes alike.
        Ok(json!({
            "requeued": requeued.len(), "sales": sale_ids.len(), "credit_notes": note_ids.len(),
            "sale_ids": sale_ids, "credit_note_ids": note_ids,
        }))
    }
}
