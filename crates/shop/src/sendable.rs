//! The documents the worker sends to SUNAT one by one with `sendBill`, a sale (its receipt) and a
//! credit note, as one [`Sendable`]: what differs between them (the table, the job that sends
//! one and its argument, the lock a send holds, where the send job last queued is recorded,
//! whether a cancelled row is left alone) is data here, and the queries that find the ones
//! nobody is sending, take a stuck one back and give a failed one a new round, and the send's
//! bookkeeping (begin, check, store the signed file, finish), are written once.
//!
//! SQL is built from these `'static` names only (never from input), so each statement has one
//! shape per document kind and stays prepared.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Int4, Int8, Jsonb, Nullable, Text, Timestamptz};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use faena_catalog::{SendCreditNoteArgs, SendSaleArgs};
use faena_core::db::QueryError;
use faena_core::jobs::JobArgs;

use crate::states::SunatStatus;

/// A document sent with `sendBill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sendable {
    Sale,
    CreditNote,
}

/// What a kind of [`Sendable`] is made of.
struct Spec {
    /// Its table.
    table: &'static str,
    /// In messages and logs.
    what: &'static str,
    /// The Redis lock a send holds is `<lock>:<id>`.
    lock: &'static str,
    /// The job that sends one, and the name of its argument.
    kind: &'static str,
    arg: &'static str,
    /// The send job last queued for a row, as a column of `d` (the row) or of the `jobs` join.
    last_job: &'static str,
    jobs: &'static str,
    /// Whether the row `d` is cancelled (a cancelled sale is never sent).
    cancelled: &'static str,
    /// The column that keeps the SHA-256 of signed bytes sent with an unsure outcome, when the
    /// row keeps it (a sale keeps it in `sunat_submissions`).
    unsure: Option<&'static str>,

    /// The idempotency key of a sweep's retry is `<retry>:<id>:<half hour>`.
    retry: &'static str,
    /// The settings fingerprint of the row's last send, as SQL over `d` (`$5` when none is
    /// recorded: read as the same settings, so a SOL login refusal is never resent by itself).
    last_fingerprint: &'static str,
}

const SALE: Spec = Spec {
    table: "sales",
    what: "sale",
    lock: "sale",
    kind: SendSaleArgs::KIND,
    arg: "sale_id",
    last_job: "j.task_id",
    jobs: "LEFT JOIN sale_send_jobs j ON j.sale_id = d.id",
    cancelled: "d.is_cancelled",
    unsure: None,
    retry: "retry-sunat",
    last_fingerprint: "(SELECT x.settings_fingerprint FROM sunat_submissions x \
                       WHERE x.sale_id = d.id ORDER BY x.id DESC LIMIT 1)",
};

const CREDIT_NOTE: Spec = Spec {
    table: "credit_notes",
    what: "credit note",
    lock: "credit_note",
    kind: SendCreditNoteArgs::KIND,
    arg: "credit_note_id",
    last_job: "d.send_task_id",
    jobs: "",
    cancelled: "FALSE",
    unsure: Some("unsure_sha256"),
    retry: "retry-credit-note",
    last_fingerprint: "$5",
};

/// A row a sweep looks at, with the send job last queued for it (if known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsent {
    pub id: i64,
    pub task_id: Option<String>,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Int8)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    task_id: Option<String>,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Int8)]
    id: i64,
}

impl Sendable {
    /// Every kind, sales first.
    pub const ALL: [Self; 2] = [Self::Sale, Self::CreditNote];

    const fn spec(self) -> &'static Spec {
        match self {
            Self::Sale => &SALE,
            Self::CreditNote => &CREDIT_NOTE,
        }
    }

    /// "sale" or "credit note".
    pub const fn what(self) -> &'static str {
        self.spec().what
    }

    /// The kind of the job that sends one.
    pub const fn job_kind(self) -> &'static str {
        self.spec().kind
    }

    /// The job's arguments for row `id`.
    pub fn job_args(self, id: i64) -> serde_json::Value {
        let mut args = serde_json::Map::new();
        args.insert(self.spec().arg.to_owned(), id.into());
        serde_json::Value::Object(args)
    }

    /// The idempotency key of the retry a sweep queues for row `id` at `now`: one per row and
    /// half hour, even if the sweep itself runs twice.
    pub fn retry_key(self, id: i64, now: DateTime<Utc>) -> String {
        format!("{}:{id}:{}", self.spec().retry, now.timestamp() / 1800)
    }

    /// The name of the Redis lock a send of row `id` holds from before it marks the row SENDING
    /// until after it records the outcome (held by the attempt: `task_id:token`).
    pub fn send_lock(self, id: i64) -> String {
        format!("{}:{id}", self.spec().lock)
    }

    /// Rows in `status` (not cancelled), oldest first, at most `limit`: PENDING ones created
    /// before `before`, SENDING ones whose last send began before it.
    async fn in_state_before(
        self,
        conn: &mut AsyncPgConnection,
        status: SunatStatus,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Unsent>, QueryError> {
        let s = self.spec();
        let age = if status == SunatStatus::Sending {
            "sunat_sent_at"
        } else {
            "created_at"
        };
        let found: Vec<Found> = diesel::sql_query(format!(
            "SELECT d.id, {job} AS task_id FROM {table} d {jobs} \
             WHERE d.sunat_status = $1 AND NOT {cancelled} AND d.{age} < $2 ORDER BY d.id LIMIT $3",
            job = s.last_job,
            table = s.table,
            jobs = s.jobs,
            cancelled = s.cancelled,
        ))
        .bind::<Text, _>(status)
        .bind::<Timestamptz, _>(before)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?;
        Ok(found
            .into_iter()
            .map(|f| Unsent {
                id: f.id,
                task_id: f.task_id,
            })
            .collect())
    }

    /// PENDING rows, not cancelled, created before `before`, oldest first.
    pub async fn pending_before(
        self,
        conn: &mut AsyncPgConnection,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Unsent>, QueryError> {
        self.in_state_before(conn, SunatStatus::Pending, before, limit)
            .await
    }

    /// SENDING rows, not cancelled, whose last send began before `before`, oldest first.
    pub async fn sending_before(
        self,
        conn: &mut AsyncPgConnection,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Unsent>, QueryError> {
        self.in_state_before(conn, SunatStatus::Sending, before, limit)
            .await
    }

    /// SENDING -> PENDING, only if it is still SENDING (the caller holds the row's send lock,
    /// so no attempt is inside its send). True when it changed.
    pub async fn take_back(
        self,
        conn: &mut AsyncPgConnection,
        id: i64,
    ) -> Result<bool, QueryError> {
        let n = diesel::sql_query(format!(
            "UPDATE {} SET sunat_status = $1, updated_at = now() WHERE id = $2 AND sunat_status = $3",
            self.spec().table
        ))
        .bind::<Text, _>(SunatStatus::Pending)
        .bind::<Int8, _>(id)
        .bind::<Text, _>(SunatStatus::Sending)
        .execute(conn)
        .await?;
        Ok(n == 1)
    }

    /// Rows in ERROR whose last attempt is older than `older_than`, not cancelled and not
    /// needing a person ([`NOT_AUTO_RETRIED`]), oldest first, at most `limit`. A
    /// row whose last answer was a SOL login failure (`faena_sunat::outcome::CREDENTIAL_CODES`)
    /// is left out while `settings_fingerprint` (of the settings the sweep would send with) is
    /// the one that failure was recorded with, or unknown: the same login would fail again, and
    /// failed logins count against the SOL user. A credit note records no fingerprint, so one
    /// refused at the login waits for a person.
    pub async fn failed_to_retry(
        self,
        conn: &mut AsyncPgConnection,
        older_than: chrono::Duration,
        limit: i64,
        settings_fingerprint: Option<&str>,
    ) -> Result<Vec<i64>, QueryError> {
        let s = self.spec();
        let before = Utc::now() - older_than;
        let rows: Vec<Id> = diesel::sql_query(format!(
            "SELECT d.id FROM {table} d \
             WHERE d.sunat_status = $1 AND NOT {cancelled} AND d.sunat_sent_at < $2 \
               AND (d.sunat_outcome IS NULL OR d.sunat_outcome <> ALL($3)) \
               AND NOT (d.sunat_code = ANY($4) AND ($5::text IS NULL OR $5 IS NOT DISTINCT FROM \
                    {fingerprint})) \
             ORDER BY d.sunat_sent_at ASC LIMIT $6",
            table = s.table,
            cancelled = s.cancelled,
            fingerprint = s.last_fingerprint,
        ))
        .bind::<Text, _>(SunatStatus::Error)
        .bind::<Timestamptz, _>(before)
        .bind::<Array<Text>, _>(&NOT_AUTO_RETRIED[..])
        .bind::<Array<Text>, _>(&faena_sunat::outcome::CREDENTIAL_CODES[..])
        .bind::<Nullable<Text>, _>(settings_fingerprint)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Gives an ERROR row a new round of retries: its attempt count (the temporary failures the
    /// job allows) restarts. It stays ERROR until the job takes it, so a failed enqueue leaves it
    /// for the next sweep.
    pub async fn requeue_failed(
        self,
        conn: &mut AsyncPgConnection,
        id: i64,
    ) -> Result<bool, QueryError> {
        let s = self.spec();
        let n = diesel::sql_query(format!(
            "UPDATE {table} d SET sunat_attempts = 0, updated_at = now() \
             WHERE d.id = $1 AND d.sunat_status = $2 AND NOT {cancelled}",
            table = s.table,
            cancelled = s.cancelled,
        ))
        .bind::<Int8, _>(id)
        .bind::<Text, _>(SunatStatus::Error)
        .execute(conn)
        .await?;
        Ok(n == 1)
    }
}

// ---- The send bookkeeping (the worker's `send_sale_to_sunat`, `send_credit_note_to_sunat`) ----

/// Why a row cannot be sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSendable {
    /// ACCEPTED or REJECTED (SUNAT has decided), or CONFLICT (a person must look).
    Done(SunatStatus),
    /// A cancelled sale.
    Cancelled,
}

/// A send's bookkeeping that failed.
#[derive(Debug, thiserror::Error)]
pub enum SendableError {
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: i64 },
    #[error(transparent)]
    Db(#[from] QueryError),
}

impl From<diesel::result::Error> for SendableError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

#[derive(QueryableByName)]
struct Attempts {
    #[diesel(sql_type = Int4)]
    sunat_attempts: i32,
}

#[derive(QueryableByName)]
struct StatusOf {
    #[diesel(sql_type = Text)]
    sunat_status: SunatStatus,
    #[diesel(sql_type = Bool)]
    cancelled: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Sendable {
    /// Marks the row SENDING and counts the attempt, if it may be sent: not cancelled and
    /// PENDING, ERROR, or SENDING left behind by a worker that died (the caller holds the row's
    /// send lock, so no one else is sending it). `marker` names the attempt (`task_id:token`, the
    /// lock's holder): only [`Sendable::finish_send`] with the same marker moves the row out of
    /// SENDING. Returns the attempt number.
    pub async fn begin_send(
        self,
        conn: &mut AsyncPgConnection,
        id: i64,
        marker: &str,
    ) -> Result<Result<i32, NotSendable>, SendableError> {
        let s = self.spec();
        let n: Option<Attempts> = diesel::sql_query(format!(
            "UPDATE {table} d SET sunat_status = $1, sunat_send_marker = $2, \
                    sunat_attempts = d.sunat_attempts + 1, sunat_sent_at = now(), updated_at = now() \
             WHERE d.id = $3 AND NOT {cancelled} AND d.sunat_status IN ($4, $5, $1) \
             RETURNING d.sunat_attempts",
            table = s.table,
            cancelled = s.cancelled,
        ))
        .bind::<Text, _>(SunatStatus::Sending)
        .bind::<Text, _>(marker)
        .bind::<Int8, _>(id)
        .bind::<Text, _>(SunatStatus::Pending)
        .bind::<Text, _>(SunatStatus::Error)
        .get_result(conn)
        .await
        .optional()?;
        if let Some(n) = n {
            return Ok(Ok(n.sunat_attempts));
        }
        let now: Option<StatusOf> = diesel::sql_query(format!(
            "SELECT d.sunat_status, {cancelled} AS cancelled FROM {table} d WHERE d.id = $1",
            table = s.table,
            cancelled = s.cancelled,
        ))
        .bind::<Int8, _>(id)
        .get_result(conn)
        .await
        .optional()?;
        match now {
            None => Err(SendableError::NotFound { what: s.what, id }),
            Some(r) if r.cancelled => Ok(Err(NotSendable::Cancelled)),
            Some(r) => Ok(Err(NotSendable::Done(r.sunat_status))),
        }
    }

    /// Whether the row is still SENDING under this attempt's `marker` (no later attempt took it
    /// over): checked before an answer's files are written.
    pub async fn is_sending(
        self,
        conn: &mut AsyncPgConnection,
        id: i64,
        marker: &str,
    ) -> Result<bool, SendableError> {
        let c: Count = diesel::sql_query(format!(
            "SELECT count(*)::int8 AS n FROM {} \
             WHERE id = $1 AND sunat_status = $2 AND sunat_send_marker = $3",
            self.spec().table
        ))
        .bind::<Int8, _>(id)
        .bind::<Text, _>(SunatStatus::Sending)
        .bind::<Text, _>(marker)
        .get_result(conn)
        .await?;
        Ok(c.n == 1)
    }

    /// Stores the signed document's digest and path, once: a later call keeps the first.
    pub async fn store_signed(
        self,
        conn: &mut AsyncPgConnection,
        id: i64,
        digest_value: &str,
        xml_path: &str,
    ) -> Result<(), SendableError> {
        diesel::sql_query(format!(
            "UPDATE {} SET digest_value = $1, xml_path = $2 WHERE id = $3 AND xml_path IS NULL",
            self.spec().table
        ))
        .bind::<Text, _>(digest_value)
        .bind::<Text, _>(xml_path)
        .bind::<Int8, _>(id)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Leaves SENDING for the result's state in one statement (a reader never sees ACCEPTED
    /// without its files), only if the row is still SENDING under this attempt's `marker` (the
    /// one [`Sendable::begin_send`] stored): a second or late answer changes nothing. A CDR path
    /// is stored with any state (a consult may find the CDR of a rejection), the PDF and QR with
    /// ACCEPTED. `unsure` is the SHA-256 of signed bytes sent with an unknown or in-process
    /// outcome, for a document that keeps it on its row (a credit note; a sale keeps it in
    /// `sunat_submissions`): written first, under the same condition, so a crash in between
    /// leaves it SENDING with the mark, never decided without it. Returns whether it wrote.
    pub async fn finish_send(
        self,
        conn: &mut AsyncPgConnection,
        id: i64,
        marker: &str,
        r: &SendResult,
        unsure: Option<&str>,
    ) -> Result<bool, SendableError> {
        let s = self.spec();
        if let (Some(column), Some(sha)) = (s.unsure, unsure) {
            diesel::sql_query(format!(
                "UPDATE {table} SET {column} = $1 \
                 WHERE id = $2 AND sunat_status = $3 AND sunat_send_marker = $4",
                table = s.table,
            ))
            .bind::<Text, _>(sha)
            .bind::<Int8, _>(id)
            .bind::<Text, _>(SunatStatus::Sending)
            .bind::<Text, _>(marker)
            .execute(conn)
            .await?;
        }
        let n = diesel::sql_query(format!(
            "UPDATE {} SET sunat_status = $1, sunat_outcome = $2, sunat_code = $3, \
                    sunat_description = $4, sunat_notes = $5, updated_at = now(), \
                    accepted_at = CASE WHEN $1 = $6 THEN now() ELSE accepted_at END, \
                    cdr_path = COALESCE($7, cdr_path), \
                    pdf_path = CASE WHEN $1 = $6 THEN $8 ELSE pdf_path END, \
                    qr_path = CASE WHEN $1 = $6 THEN $9 ELSE qr_path END \
             WHERE id = $10 AND sunat_status = $11 AND sunat_send_marker = $12",
            s.table
        ))
        .bind::<Text, _>(r.status)
        .bind::<Text, _>(&r.outcome)
        .bind::<Nullable<Text>, _>(&r.code)
        .bind::<Nullable<Text>, _>(&r.description)
        .bind::<Jsonb, _>(serde_json::json!(r.notes))
        .bind::<Text, _>(SunatStatus::Accepted)
        .bind::<Nullable<Text>, _>(&r.cdr_path)
        .bind::<Nullable<Text>, _>(&r.pdf_path)
        .bind::<Nullable<Text>, _>(&r.qr_path)
        .bind::<Int8, _>(id)
        .bind::<Text, _>(SunatStatus::Sending)
        .bind::<Text, _>(marker)
        .execute(conn)
        .await?;
        Ok(n == 1)
    }
}

/// The state a send leaves the sale in.
#[derive(Debug, Clone, Default)]
pub struct SendResult {
    /// PENDING (a retry is due), ACCEPTED, REJECTED, ERROR or CONFLICT.
    pub status: SunatStatus,
    pub outcome: String,
    pub code: Option<String>,
    pub description: Option<String>,
    pub notes: Vec<String>,
    pub cdr_path: Option<String>,
    pub pdf_path: Option<String>,
    pub qr_path: Option<String>,
}

/// Outcome classes that a retry cannot fix without a person: the document must change, or it
/// must go in a Resumen Diario (which the nightly build sends), or SUNAT refused that summary.
pub const NOT_AUTO_RETRIED: [&str; 3] = ["document_error", "needs_summary", "summary_rejected"];
