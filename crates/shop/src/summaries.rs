//! The Resumen Diario (RC) and Comunicación de Baja (RA) in PostgreSQL: which documents wait for
//! one, the nightly build that puts them in summaries (one per kind and issue date of the
//! documents, with SUNAT's correlative, never two for the same document and purpose), the state
//! changes of the send and ticket jobs, the application of SUNAT's answer to every document a
//! summary carried, and what the api and the CLI show of them.
//!
//! What waits: cancellations QUEUED for a baja (facturas) or an RC line with status 3 (boletas),
//! and boletas and credit notes of boletas answered 1079 (past their sendBill window: only an RC
//! line with status 1 takes them; a note's line is of type 07 and names its boleta). The jobs
//! that sign, send and poll are the worker's (`jobs/summaries.rs`).

use std::collections::BTreeMap;

use bigdecimal::BigDecimal;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Int8, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_catalog::{PollSunatTicketArgs, SendSunatSummaryArgs};
use faena_core::db::QueryError;
use faena_core::jobs::{EnqueueRequest, JobArgs};
use faena_sunat::summary::MAX_LINES;
pub use faena_sunat::{SummaryId, SummaryKind};
use serde::Serialize;

use crate::schema::{
    credit_notes, sale_cancellations, sales, summary_counters, sunat_summaries, sunat_summary_lines,
};
use crate::states::{SummaryState, SunatStatus, VoidRoute, VoidState};

/// SUNAT's window to void a document, in calendar days after its issue date (RA and RC status
/// 3: error 2957 later).
pub const VOID_WINDOW_DAYS: i64 = 7;

/// The `sunat_outcome` of a boleta answered 1079: it waits for a Resumen Diario.
pub const NEEDS_SUMMARY: &str = "needs_summary";

/// The `sunat_outcome` of a 1079 boleta whose Resumen Diario SUNAT refused: a person looks.
pub const SUMMARY_REJECTED: &str = "summary_rejected";

/// A summary that cannot be found or changed. Each variant has a stable [`SummaryError::code`].
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("no summary with id {0}")]
    NotFound(i64),
    #[error("field `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A stored value this version cannot read (a summary id that does not parse).
    #[error("the stored summary {id} cannot be read: {message}")]
    Corrupt { id: i64, message: String },
    #[error(transparent)]
    Db(#[from] QueryError),
}

impl SummaryError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Invalid { .. } => "invalid_query",
            Self::Corrupt { .. } => "internal",
            Self::Db(QueryError::Refused(r)) => r.code(),
            Self::Db(QueryError::Unavailable) => "database_unavailable",
        }
    }
}

impl From<diesel::result::Error> for SummaryError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// A stored summary.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sunat_summaries, check_for_backend(diesel::pg::Pg))]
pub struct SummaryRow {
    pub id: i64,
    pub kind: String,
    pub issue_date: NaiveDate,
    pub number: i32,
    pub reference_date: NaiveDate,
    pub state: SummaryState,
    pub ticket: Option<String>,
    pub sunat_code: Option<String>,
    pub sunat_description: Option<String>,
    pub last_outcome: Option<String>,
    pub xml_path: Option<String>,
    pub cdr_path: Option<String>,
    pub signed_sha256: Option<String>,
    pub attempts: i32,
    pub polls: i32,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl SummaryRow {
    /// `RC-YYYYMMDD-N` / `RA-YYYYMMDD-N`.
    pub fn summary_id(&self) -> Result<SummaryId, SummaryError> {
        let corrupt = |message: String| SummaryError::Corrupt {
            id: self.id,
            message,
        };
        let kind = SummaryKind::parse(&self.kind).map_err(|e| corrupt(e.to_string()))?;
        let number = u32::try_from(self.number).map_err(|e| corrupt(e.to_string()))?;
        SummaryId::new(kind, self.issue_date, number).map_err(|e| corrupt(e.to_string()))
    }

    /// The ID as text, or `#<row id>` when it cannot be read.
    pub fn name(&self) -> String {
        self.summary_id()
            .map_or_else(|_| format!("#{}", self.id), |s| s.to_string())
    }
}

/// One document in a stored summary.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = sunat_summary_lines, check_for_backend(diesel::pg::Pg))]
pub struct LineRow {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub summary_id: i64,
    pub line_no: i32,
    /// The sale, or for a credit note's line the boleta the note modifies.
    pub sale_id: i64,
    /// 1 (inform a document SUNAT does not have) or 3 (void).
    pub condition_code: String,
    /// 01 (factura), 03 (boleta) or 07 (credit note of a boleta).
    pub doc_type: String,
    pub series: String,
    pub correlative: i64,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "100.00")]
    pub subtotal: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "18.00")]
    pub igv: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "118.00")]
    pub total: BigDecimal,
    /// accepted or rejected once SUNAT answered the summary; null before.
    pub outcome: Option<String>,
    /// The credit note a line of type 07 informs; null for a sale's line.
    pub credit_note_id: Option<i64>,
}

/// A summary as the api lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SummaryView {
    /// The row's id (`faena sunat summaries`, the jobs' args).
    pub id: i64,
    /// `RC-YYYYMMDD-N` or `RA-YYYYMMDD-N`.
    #[schema(example = "RC-20261203-1")]
    pub summary_id: String,
    /// RC (Resumen Diario) or RA (Comunicación de Baja).
    #[schema(example = "RC")]
    pub kind: String,
    /// The generation date (the date in the ID).
    pub issue_date: NaiveDate,
    /// The issue date of every document it carries.
    pub reference_date: NaiveDate,
    pub state: SummaryState,
    pub ticket: Option<String>,
    pub sunat_code: Option<String>,
    pub sunat_description: Option<String>,
    pub last_outcome: Option<String>,
    pub attempts: i32,
    /// getStatus answers of 98 (in process).
    pub polls: i32,
    pub xml_path: Option<String>,
    pub cdr_path: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub lines: Vec<LineRow>,
}

fn view(row: SummaryRow, lines: Vec<LineRow>) -> SummaryView {
    SummaryView {
        summary_id: row.name(),
        id: row.id,
        kind: row.kind,
        issue_date: row.issue_date,
        reference_date: row.reference_date,
        state: row.state,
        ticket: row.ticket,
        sunat_code: row.sunat_code,
        sunat_description: row.sunat_description,
        last_outcome: row.last_outcome,
        attempts: row.attempts,
        polls: row.polls,
        xml_path: row.xml_path,
        cdr_path: row.cdr_path,
        created_at: row.created_at,
        sent_at: row.sent_at,
        decided_at: row.decided_at,
        lines,
    }
}

/// A summary that carried a sale, as the sale's view shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CarriedView {
    #[schema(example = "RA-20261203-1")]
    pub summary_id: String,
    /// RC or RA.
    pub kind: String,
    /// 1 (informed after 1079) or 3 (voided).
    pub condition_code: String,
    pub state: SummaryState,
    pub ticket: Option<String>,
    pub sunat_code: Option<String>,
    pub sunat_description: Option<String>,
    /// The line's outcome: accepted, rejected, or null while SUNAT has not answered.
    pub outcome: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// A sale's cancellation, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = sale_cancellations, check_for_backend(diesel::pg::Pg))]
pub struct CancellationRow {
    pub sale_id: i64,
    pub reason: String,
    pub cancelled_by: String,
    pub sunat_action: VoidRoute,
    pub sunat_state: VoidState,
    pub sunat_code: Option<String>,
    pub sunat_description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub credit_note_id: Option<i64>,
}

/// The credit note that carries a cancellation past the voiding window, as its cancellation
/// shows it (the whole note is in the sale's `credit_notes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CancellationNote {
    pub id: i64,
    /// SERIES-CORRELATIVE, as printed.
    #[schema(example = "BC01-1")]
    pub number: String,
    /// The note's SUNAT state.
    pub status: SunatStatus,
}

/// A sale's cancellation, as the api and the CLI show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CancellationView {
    pub sale_id: i64,
    /// Why (3 to 100 characters; the text of a Comunicación de Baja line).
    pub reason: String,
    /// The user id of who cancelled it (`cli` for `faena sales cancel`).
    pub cancelled_by: String,
    pub cancelled_at: DateTime<Utc>,
    /// How SUNAT learns of it: NONE (it holds nothing to void), BAJA, RESUMEN, or CREDIT_NOTE
    /// (a whole credit note, past the voiding window).
    pub sunat_action: VoidRoute,
    /// NONE, QUEUED (waits for the nightly summary), CARRIED, VOIDED or FAILED; NONE for
    /// CREDIT_NOTE, whose note has its own state (`credit_note.status`).
    pub sunat_state: VoidState,
    /// The state in Spanish, for the shop's staff.
    #[schema(example = "Anulada; la baja sale con el resumen de esta noche")]
    pub sunat_label: &'static str,
    /// SUNAT's code and text once it answered (or 2957 when it was too late).
    pub sunat_code: Option<String>,
    pub sunat_description: Option<String>,
    /// The credit note that carries it (route CREDIT_NOTE), with the note's SUNAT state.
    pub credit_note: Option<CancellationNote>,
}

impl CancellationView {
    fn of(r: CancellationRow, credit_note: Option<CancellationNote>) -> Self {
        let sunat_label = match &credit_note {
            Some(n) => VoidRoute::credit_note_label(n.status),
            None => r.sunat_state.label(),
        };
        Self {
            sale_id: r.sale_id,
            reason: r.reason,
            cancelled_by: r.cancelled_by,
            cancelled_at: r.created_at,
            sunat_action: r.sunat_action,
            sunat_label,
            sunat_state: r.sunat_state,
            sunat_code: r.sunat_code,
            sunat_description: r.sunat_description,
            credit_note,
        }
    }
}

/// The cancellation of a sale, if any, with its credit note's state.
pub async fn cancellation_of(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
) -> Result<Option<CancellationView>, diesel::result::Error> {
    let Some(row) = sale_cancellations::table
        .find(sale_id)
        .select(CancellationRow::as_select())
        .first(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let note = match row.credit_note_id {
        Some(id) => {
            let (series, correlative, status): (String, i64, SunatStatus) = credit_notes::table
                .find(id)
                .select((
                    credit_notes::series,
                    credit_notes::correlative,
                    credit_notes::sunat_status,
                ))
                .first(conn)
                .await?;
            Some(CancellationNote {
                id,
                number: format!("{series}-{correlative}"),
                status,
            })
        }
        None => None,
    };
    Ok(Some(CancellationView::of(row, note)))
}

/// Every summary that carried the sale, oldest first.
pub async fn carried(
    conn: &mut AsyncPgConnection,
    sale_id: i64,
) -> Result<Vec<CarriedView>, diesel::result::Error> {
    let rows: Vec<(SummaryRow, String, Option<String>)> = sunat_summary_lines::table
        .inner_join(sunat_summaries::table)
        .filter(sunat_summary_lines::sale_id.eq(sale_id))
        .filter(sunat_summary_lines::credit_note_id.is_null())
        .order(sunat_summaries::id.asc())
        .select((
            SummaryRow::as_select(),
            sunat_summary_lines::condition_code,
            sunat_summary_lines::outcome,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(s, condition_code, outcome)| CarriedView {
            summary_id: s.name(),
            kind: s.kind,
            condition_code,
            state: s.state,
            ticket: s.ticket,
            sunat_code: s.sunat_code,
            sunat_description: s.sunat_description,
            outcome,
            sent_at: s.sent_at,
            decided_at: s.decided_at,
        })
        .collect())
}

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct SummaryFilter {
    pub kind: Option<SummaryKind>,
    pub state: Option<SummaryState>,
    /// At most this many, newest first (default 100).
    pub limit: Option<i64>,
}

/// Summaries with their lines, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &SummaryFilter,
) -> Result<Vec<SummaryView>, SummaryError> {
    let mut q = sunat_summaries::table
        .select(SummaryRow::as_select())
        .order(sunat_summaries::id.desc())
        .limit(filter.limit.unwrap_or(100))
        .into_boxed();
    if let Some(k) = filter.kind {
        q = q.filter(sunat_summaries::kind.eq(k.code()));
    }
    if let Some(s) = filter.state {
        q = q.filter(sunat_summaries::state.eq(s));
    }
    let rows: Vec<SummaryRow> = q.load(conn).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut lines: BTreeMap<i64, Vec<LineRow>> = BTreeMap::new();
    for l in sunat_summary_lines::table
        .filter(sunat_summary_lines::summary_id.eq_any(&ids))
        .order((
            sunat_summary_lines::summary_id,
            sunat_summary_lines::line_no,
        ))
        .select(LineRow::as_select())
        .load::<LineRow>(conn)
        .await?
    {
        lines.entry(l.summary_id).or_default().push(l);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let l = lines.remove(&r.id).unwrap_or_default();
            view(r, l)
        })
        .collect())
}

/// A stored summary.
pub async fn summary(conn: &mut AsyncPgConnection, id: i64) -> Result<SummaryRow, SummaryError> {
    sunat_summaries::table
        .find(id)
        .select(SummaryRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(SummaryError::NotFound(id))
}

/// A summary's lines, in line order.
pub async fn lines(conn: &mut AsyncPgConnection, id: i64) -> Result<Vec<LineRow>, SummaryError> {
    Ok(sunat_summary_lines::table
        .filter(sunat_summary_lines::summary_id.eq(id))
        .order(sunat_summary_lines::line_no)
        .select(LineRow::as_select())
        .load(conn)
        .await?)
}

/// The void reasons of an RA's sales, by sale id.
pub async fn reasons(
    conn: &mut AsyncPgConnection,
    sale_ids: &[i64],
) -> Result<BTreeMap<i64, String>, SummaryError> {
    let rows: Vec<(i64, String)> = sale_cancellations::table
        .filter(sale_cancellations::sale_id.eq_any(sale_ids))
        .select((sale_cancellations::sale_id, sale_cancellations::reason))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// One summary the build made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Built {
    pub id: i64,
    pub summary_id: String,
    pub reference_date: NaiveDate,
    pub lines: usize,
    /// The `send_sunat_summary` job queued with it.
    pub task_id: String,
}

/// What [`build`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BuildReport {
    pub built: Vec<Built>,
    /// Cancellations past SUNAT's 7 days, now FAILED (a credit note is needed).
    pub late: Vec<i64>,
    /// Summaries left PENDING (or SENT) for over an hour whose send (or poll) was queued again.
    pub resent: Vec<i64>,
    pub repolled: Vec<i64>,
}

#[derive(QueryableByName)]
struct Candidate {
    #[diesel(sql_type = Int8)]
    sale_id: i64,
    /// RESUMEN, BAJA, ADD (a 1079 boleta) or NOTE (a 1079 credit note of a boleta).
    #[diesel(sql_type = Text)]
    purpose: String,
    #[diesel(sql_type = Text)]
    doc_type: String,
    #[diesel(sql_type = Text)]
    series: String,
    #[diesel(sql_type = Int8)]
    correlative: i64,
    #[diesel(sql_type = Date)]
    issue_date: NaiveDate,
    #[diesel(sql_type = diesel::sql_types::Numeric)]
    subtotal: BigDecimal,
    #[diesel(sql_type = diesel::sql_types::Numeric)]
    igv: BigDecimal,
    #[diesel(sql_type = diesel::sql_types::Numeric)]
    total: BigDecimal,
    #[diesel(sql_type = diesel::sql_types::Nullable<Int8>)]
    credit_note_id: Option<i64>,
}

/// The purpose of a candidate that is a credit note (an RC line of type 07, status 1).
const NOTE: &str = "NOTE";
/// The purpose of a candidate that is a 1079 boleta (an RC line of type 03, status 1).
const ADD: &str = "ADD";

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Int8)]
    id: i64,
}

/// Serializes builds: two at once (a manual run during beat's) would otherwise race for the same
/// documents (the partial unique index would refuse the second, after work).
const BUILD_LOCK: i64 = 0x0066_6165_6e61_3135; // "faena15"

/// Builds the summaries of what waits, into summaries generated `today` (the date in their IDs):
/// every cancellation QUEUED before `through`, every boleta answered 1079 before it and every
/// credit note of a boleta answered 1079 before it (a line of type 07 naming its boleta). Voids
/// past SUNAT's 7 days (counted from the document's issue date to `today`) become FAILED instead.
/// One summary per kind and issue date of the documents (SUNAT wants one `ReferenceDate`), at
/// most [`MAX_LINES`] lines each, numbered from `summary_counters`; each is queued for
/// `send_sunat_summary` through the outbox in the same transaction. Summaries left PENDING or
/// SENT for over an hour get their send or poll queued again. Run twice, the second run finds
/// nothing new: one summary per document and purpose (the partial unique index backs it).
pub async fn build(
    conn: &mut AsyncPgConnection,
    today: NaiveDate,
    through: DateTime<Utc>,
) -> Result<BuildReport, SummaryError> {
    let report = conn
        .transaction::<BuildReport, SummaryError, _>(async move |conn| {
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(BUILD_LOCK)
                .execute(conn)
                .await?;
            let mut report = BuildReport::default();
            let late_before = today - chrono::Duration::days(VOID_WINDOW_DAYS);
            let late: Vec<IdRow> = diesel::sql_query(
                "UPDATE sale_cancellations c SET sunat_state = $1, sunat_code = '2957', \
                   sunat_description = $2, updated_at = now() \
                 FROM sales s WHERE s.id = c.sale_id AND c.sunat_state = $3 \
                   AND c.created_at < $4 AND s.issue_date < $5 \
                 RETURNING c.sale_id AS id",
            )
            .bind::<Text, _>(VoidState::Failed)
            .bind::<Text, _>(
                "Pasó el plazo de 7 días de SUNAT para dar de baja este comprobante (2957): \
                 emita una nota de crédito",
            )
            .bind::<Text, _>(VoidState::Queued)
            .bind::<Timestamptz, _>(through)
            .bind::<Date, _>(late_before)
            .load(conn)
            .await?;
            report.late = late.into_iter().map(|r| r.id).collect();

            let candidates: Vec<Candidate> = diesel::sql_query(
                "SELECT s.id AS sale_id, c.sunat_action AS purpose, s.doc_type, s.series, \
                        s.correlative, s.issue_date, s.subtotal, s.igv, s.total, \
                        NULL::BIGINT AS credit_note_id \
                 FROM sale_cancellations c JOIN sales s ON s.id = c.sale_id \
                 WHERE c.sunat_state = $1 AND c.created_at < $2 AND s.sunat_status = $3 \
                 UNION ALL \
                 SELECT s.id, 'ADD', s.doc_type, s.series, s.correlative, s.issue_date, \
                        s.subtotal, s.igv, s.total, NULL::BIGINT \
                 FROM sales s \
                 WHERE s.doc_type = '03' AND s.sunat_status = $4 AND s.sunat_outcome = $5 \
                   AND NOT s.is_cancelled AND s.sunat_sent_at < $2 \
                   AND NOT EXISTS (SELECT 1 FROM sunat_summary_lines l WHERE l.sale_id = s.id \
                       AND l.credit_note_id IS NULL \
                       AND l.condition_code = '1' AND l.outcome IS DISTINCT FROM 'rejected') \
                 UNION ALL \
                 SELECT n.sale_id, 'NOTE', '07', n.series, n.correlative, n.issue_date, \
                        n.subtotal, n.igv, n.total, n.id \
                 FROM credit_notes n JOIN sales s ON s.id = n.sale_id \
                 WHERE s.doc_type = '03' AND n.sunat_status = $4 AND n.sunat_outcome = $5 \
                   AND n.sunat_sent_at < $2 \
                   AND NOT EXISTS (SELECT 1 FROM sunat_summary_lines l \
                       WHERE l.credit_note_id = n.id \
                       AND l.condition_code = '1' AND l.outcome IS DISTINCT FROM 'rejected') \
                 ORDER BY 6, 3, 1, 10",
            )
            .bind::<Text, _>(VoidState::Queued)
            .bind::<Timestamptz, _>(through)
            .bind::<Text, _>(SunatStatus::Accepted)
            .bind::<Text, _>(SunatStatus::Error)
            .bind::<Text, _>(NEEDS_SUMMARY)
            .load(conn)
            .await?;
            // (kind, reference date) -> lines, in issue-date then sale-id order.
            let mut groups: BTreeMap<(&'static str, NaiveDate), Vec<Candidate>> = BTreeMap::new();
            for c in candidates {
                let kind = if c.purpose == VoidRoute::Baja.as_str() {
                    SummaryKind::Voided.code()
                } else {
                    SummaryKind::Daily.code()
                };
                groups.entry((kind, c.issue_date)).or_default().push(c);
            }
            for ((kind, reference_date), all) in groups {
                let mut all = all.into_iter().peekable();
                while all.peek().is_some() {
                    let chunk: Vec<Candidate> = all.by_ref().take(MAX_LINES).collect();
                    report
                        .built
                        .push(insert_summary(conn, kind, today, reference_date, chunk).await?);
                }
            }

            // Sends and polls that stopped (a job that died, a poll that gave up): once more.
            let stale = Utc::now() - chrono::Duration::hours(1);
            let stuck: Vec<(i64, SummaryState)> = sunat_summaries::table
                .filter(sunat_summaries::state.eq_any([SummaryState::Pending, SummaryState::Sent]))
                .filter(sunat_summaries::updated_at.lt(stale))
                .select((sunat_summaries::id, sunat_summaries::state))
                .load(conn)
                .await?;
            for (id, state) in stuck {
                if state == SummaryState::Pending {
                    queue_send_in_tx(conn, id).await?;
                    report.resent.push(id);
                } else {
                    queue_poll_in_tx(conn, id, None).await?;
                    report.repolled.push(id);
                }
            }
            Ok(report)
        })
        .await?;
    if !report.built.is_empty() || !report.resent.is_empty() || !report.repolled.is_empty() {
        faena_core::outbox::committed();
    }
    Ok(report)
}

async fn insert_summary(
    conn: &mut AsyncPgConnection,
    kind: &'static str,
    today: NaiveDate,
    reference_date: NaiveDate,
    lines: Vec<Candidate>,
) -> Result<Built, SummaryError> {
    let number: i32 = diesel::insert_into(summary_counters::table)
        .values((
            summary_counters::kind.eq(kind),
            summary_counters::issue_date.eq(today),
            summary_counters::last_number.eq(1),
        ))
        .on_conflict((summary_counters::kind, summary_counters::issue_date))
        .do_update()
        .set(summary_counters::last_number.eq(summary_counters::last_number + 1))
        .returning(summary_counters::last_number)
        .get_result(conn)
        .await?;
    let id: i64 = diesel::insert_into(sunat_summaries::table)
        .values((
            sunat_summaries::kind.eq(kind),
            sunat_summaries::issue_date.eq(today),
            sunat_summaries::number.eq(number),
            sunat_summaries::reference_date.eq(reference_date),
            sunat_summaries::state.eq(SummaryState::Pending),
        ))
        .returning(sunat_summaries::id)
        .get_result(conn)
        .await?;
    let rows: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                sunat_summary_lines::summary_id.eq(id),
                sunat_summary_lines::line_no.eq(i32::try_from(i + 1).unwrap_or(i32::MAX)),
                sunat_summary_lines::sale_id.eq(c.sale_id),
                sunat_summary_lines::condition_code.eq(if c.purpose == ADD || c.purpose == NOTE {
                    "1"
                } else {
                    "3"
                }),
                sunat_summary_lines::doc_type.eq(&c.doc_type),
                sunat_summary_lines::series.eq(&c.series),
                sunat_summary_lines::correlative.eq(c.correlative),
                sunat_summary_lines::subtotal.eq(&c.subtotal),
                sunat_summary_lines::igv.eq(&c.igv),
                sunat_summary_lines::total.eq(&c.total),
                sunat_summary_lines::credit_note_id.eq(c.credit_note_id),
            )
        })
        .collect();
    diesel::insert_into(sunat_summary_lines::table)
        .values(rows)
        .execute(conn)
        .await?;
    let voids: Vec<i64> = lines
        .iter()
        .filter(|c| c.purpose != ADD && c.purpose != NOTE)
        .map(|c| c.sale_id)
        .collect();
    diesel::update(
        sale_cancellations::table
            .filter(sale_cancellations::sale_id.eq_any(&voids))
            .filter(sale_cancellations::sunat_state.eq(VoidState::Queued)),
    )
    .set((
        sale_cancellations::sunat_state.eq(VoidState::Carried),
        sale_cancellations::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    let task = queue_send_in_tx(conn, id).await?;
    let kind = SummaryKind::parse(kind).map_err(|e| SummaryError::Corrupt {
        id,
        message: e.to_string(),
    })?;
    let name = SummaryId::new(kind, today, u32::try_from(number).unwrap_or(0))
        .map_or_else(|_| format!("#{id}"), |s| s.to_string());
    Ok(Built {
        id,
        summary_id: name,
        reference_date,
        lines: lines.len(),
        task_id: task,
    })
}

async fn enqueue_in_tx(
    conn: &mut AsyncPgConnection,
    req: EnqueueRequest,
) -> Result<String, SummaryError> {
    faena_core::outbox::enqueue_in_tx(conn, &faena_catalog::catalog(), req, None)
        .await
        .map(|t| t.to_string())
        .map_err(|e| match e {
            faena_core::outbox::OutboxError::Db(e) => SummaryError::from(e),
            other => {
                // Our own request: a catalog without the kind is a build defect.
                tracing::error!(error = %other, "cannot queue a summary job");
                SummaryError::Db(QueryError::Unavailable)
            }
        })
}

/// Queues `send_sunat_summary` for the summary through the outbox, in the caller's transaction.
pub async fn queue_send_in_tx(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> Result<String, SummaryError> {
    let req = EnqueueRequest {
        kind: SendSunatSummaryArgs::KIND.into(),
        args: serde_json::json!({ "summary_id": id }),
        ..Default::default()
    };
    enqueue_in_tx(conn, req).await
}

/// Queues `poll_sunat_ticket` for the summary through the outbox, after `countdown` seconds.
pub async fn queue_poll_in_tx(
    conn: &mut AsyncPgConnection,
    id: i64,
    countdown: Option<u64>,
) -> Result<String, SummaryError> {
    let req = EnqueueRequest {
        kind: PollSunatTicketArgs::KIND.into(),
        args: serde_json::json!({ "summary_id": id }),
        countdown: countdown.map(|s| s as f64),
        ..Default::default()
    };
    enqueue_in_tx(conn, req).await
}

/// Counts a sendSummary call of a PENDING summary before it is made. `None` when the summary
/// is not PENDING (sent or decided by another attempt); else the attempts and the last outcome
/// before this one (an earlier call that did not surely fail may have reached SUNAT).
pub async fn begin_send(
    conn: &mut AsyncPgConnection,
    id: i64,
) -> Result<Option<(i32, Option<String>)>, SummaryError> {
    let before: Option<(i32, Option<String>)> = sunat_summaries::table
        .find(id)
        .filter(sunat_summaries::state.eq(SummaryState::Pending))
        .select((sunat_summaries::attempts, sunat_summaries::last_outcome))
        .for_update()
        .first(conn)
        .await
        .optional()?;
    if before.is_some() {
        diesel::update(sunat_summaries::table.find(id))
            .set((
                sunat_summaries::attempts.eq(sunat_summaries::attempts + 1),
                sunat_summaries::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    Ok(before)
}

/// Stores where the signed summary is and its SHA-256, once.
pub async fn store_signed(
    conn: &mut AsyncPgConnection,
    id: i64,
    xml_path: &str,
    signed_sha256: &str,
) -> Result<(), SummaryError> {
    diesel::update(
        sunat_summaries::table
            .find(id)
            .filter(sunat_summaries::xml_path.is_null()),
    )
    .set((
        sunat_summaries::xml_path.eq(xml_path),
        sunat_summaries::signed_sha256.eq(signed_sha256),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the class of an answer that left the summary PENDING (a retry is due).
pub async fn record_outcome(
    conn: &mut AsyncPgConnection,
    id: i64,
    outcome: &str,
    code: Option<&str>,
    description: &str,
) -> Result<(), SummaryError> {
    diesel::update(sunat_summaries::table.find(id))
        .set((
            sunat_summaries::last_outcome.eq(outcome),
            sunat_summaries::sunat_code.eq(code),
            sunat_summaries::sunat_description.eq(description),
            sunat_summaries::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The `last_outcome` of a summary SENT after an earlier call that may have reached SUNAT: a
/// later 2223/2324 ("already presented") may then be our own first send.
pub const TICKET_AFTER_UNSURE: &str = "ticket_after_unsure";

/// PENDING -> SENT with SUNAT's ticket, and the first poll queued after `poll_after` seconds, in
/// one transaction. `unsure`: an earlier call may have reached SUNAT. False when the summary was
/// no longer PENDING.
pub async fn record_ticket(
    conn: &mut AsyncPgConnection,
    id: i64,
    ticket: &str,
    poll_after: u64,
    unsure: bool,
) -> Result<bool, SummaryError> {
    let ticket = ticket.to_owned();
    let wrote = conn
        .transaction::<bool, SummaryError, _>(async move |conn| {
            let n = diesel::update(
                sunat_summaries::table
                    .find(id)
                    .filter(sunat_summaries::state.eq(SummaryState::Pending)),
            )
            .set((
                sunat_summaries::state.eq(SummaryState::Sent),
                sunat_summaries::ticket.eq(&ticket),
                sunat_summaries::last_outcome.eq(if unsure {
                    TICKET_AFTER_UNSURE
                } else {
                    "ticket"
                }),
                sunat_summaries::sunat_code.eq(None::<String>),
                sunat_summaries::sunat_description.eq(None::<String>),
                sunat_summaries::sent_at.eq(diesel::dsl::now),
                sunat_summaries::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
            if n == 1 {
                queue_poll_in_tx(conn, id, Some(poll_after)).await?;
            }
            Ok(n == 1)
        })
        .await?;
    if wrote {
        faena_core::outbox::committed();
    }
    Ok(wrote)
}

/// Counts a getStatus answer of 98 on a SENT summary; returns the polls so far.
pub async fn count_poll(conn: &mut AsyncPgConnection, id: i64) -> Result<i32, SummaryError> {
    let n: Option<i32> = diesel::update(
        sunat_summaries::table
            .find(id)
            .filter(sunat_summaries::state.eq(SummaryState::Sent)),
    )
    .set((
        sunat_summaries::polls.eq(sunat_summaries::polls + 1),
        sunat_summaries::last_outcome.eq("in_process"),
        sunat_summaries::updated_at.eq(diesel::dsl::now),
    ))
    .returning(sunat_summaries::polls)
    .get_result(conn)
    .await
    .optional()?;
    Ok(n.unwrap_or(0))
}

/// A 1079 boleta's or credit note's printed files, when its Resumen Diario is accepted.
#[derive(Debug, Clone, Default)]
pub struct Printed {
    pub pdf_path: Option<String>,
    pub qr_path: Option<String>,
}

/// What the worker printed for an accepted Resumen Diario: its 1079 boletas by sale id and its
/// 1079 credit notes by note id.
#[derive(Debug, Clone, Default)]
pub struct Prints {
    pub sales: BTreeMap<i64, Printed>,
    pub notes: BTreeMap<i64, Printed>,
}

/// SUNAT's last word on a summary.
#[derive(Debug, Clone)]
pub enum Decision {
    /// The ticket answered 0 with CDR code 0: every line applies.
    Accepted {
        code: String,
        description: String,
        cdr_path: Option<String>,
    },
    /// 99 (or a fault that refused the file): no line applies.
    Rejected {
        code: Option<String>,
        description: String,
        cdr_path: Option<String>,
    },
    /// A person must look; the lines stay as they are.
    Error {
        code: Option<String>,
        description: String,
    },
}

/// What [`decide`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// False when the summary was already decided (nothing changed).
    pub decided: bool,
    pub voided: Vec<i64>,
    pub accepted: Vec<i64>,
    pub failed: Vec<i64>,
    /// Credit notes of boletas the summary informed: ACCEPTED, or `summary_rejected`.
    pub accepted_notes: Vec<i64>,
    pub failed_notes: Vec<i64>,
}

/// Applies SUNAT's answer to the summary and to every document it carried, in one transaction,
/// once (only from PENDING or SENT): accepted, its voided sales become VOIDED and their
/// cancellations VOIDED, its 1079 boletas and credit notes ACCEPTED (with the summary's CDR and
/// `printed`); rejected, its cancellations become FAILED and its 1079 boletas and notes
/// `summary_rejected`.
pub async fn decide(
    conn: &mut AsyncPgConnection,
    id: i64,
    decision: &Decision,
    printed: &Prints,
) -> Result<Applied, SummaryError> {
    let decision = decision.clone();
    let printed = printed.clone();
    conn.transaction::<Applied, SummaryError, _>(async move |conn| {
        let (state, code, description, cdr_path) = match &decision {
            Decision::Accepted {
                code,
                description,
                cdr_path,
            } => (
                SummaryState::Accepted,
                Some(code.clone()),
                description.clone(),
                cdr_path.clone(),
            ),
            Decision::Rejected {
                code,
                description,
                cdr_path,
            } => (
                SummaryState::Rejected,
                code.clone(),
                description.clone(),
                cdr_path.clone(),
            ),
            Decision::Error { code, description } => {
                (SummaryState::Error, code.clone(), description.clone(), None)
            }
        };
        let n =
            diesel::update(sunat_summaries::table.find(id).filter(
                sunat_summaries::state.eq_any([SummaryState::Pending, SummaryState::Sent]),
            ))
            .set((
                sunat_summaries::state.eq(state),
                sunat_summaries::sunat_code.eq(&code),
                sunat_summaries::sunat_description.eq(&description),
                sunat_summaries::cdr_path.eq(&cdr_path),
                sunat_summaries::decided_at.eq(diesel::dsl::now),
                sunat_summaries::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        let mut applied = Applied {
            decided: n == 1,
            ..Default::default()
        };
        if n == 0 || state == SummaryState::Error {
            return Ok(applied);
        }
        let outcome = if state == SummaryState::Accepted {
            "accepted"
        } else {
            "rejected"
        };
        let lines: Vec<(i64, String, Option<i64>)> = diesel::update(
            sunat_summary_lines::table.filter(sunat_summary_lines::summary_id.eq(id)),
        )
        .set(sunat_summary_lines::outcome.eq(outcome))
        .returning((
            sunat_summary_lines::sale_id,
            sunat_summary_lines::condition_code,
            sunat_summary_lines::credit_note_id,
        ))
        .get_results(conn)
        .await?;
        let voids: Vec<i64> = lines
            .iter()
            .filter(|(_, c, n)| c == "3" && n.is_none())
            .map(|(s, _, _)| *s)
            .collect();
        let adds: Vec<i64> = lines
            .iter()
            .filter(|(_, c, n)| c == "1" && n.is_none())
            .map(|(s, _, _)| *s)
            .collect();
        let notes: Vec<i64> = lines
            .iter()
            .filter(|(_, c, _)| c == "1")
            .filter_map(|(_, _, n)| *n)
            .collect();
        let cancellation_state = if state == SummaryState::Accepted {
            VoidState::Voided
        } else {
            VoidState::Failed
        };
        diesel::update(
            sale_cancellations::table
                .filter(sale_cancellations::sale_id.eq_any(&voids))
                .filter(sale_cancellations::sunat_state.eq(VoidState::Carried)),
        )
        .set((
            sale_cancellations::sunat_state.eq(cancellation_state),
            sale_cancellations::sunat_code.eq(&code),
            sale_cancellations::sunat_description.eq(&description),
            sale_cancellations::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
        if state == SummaryState::Accepted {
            applied.voided = diesel::update(
                sales::table
                    .filter(sales::id.eq_any(&voids))
                    .filter(sales::sunat_status.eq(SunatStatus::Accepted)),
            )
            .set((
                sales::sunat_status.eq(SunatStatus::Voided),
                sales::updated_at.eq(diesel::dsl::now),
            ))
            .returning(sales::id)
            .get_results(conn)
            .await?;
            for note_id in notes {
                let p = printed.notes.get(&note_id).cloned().unwrap_or_default();
                let n = diesel::update(
                    credit_notes::table
                        .find(note_id)
                        .filter(credit_notes::sunat_status.eq(SunatStatus::Error))
                        .filter(credit_notes::sunat_outcome.eq(NEEDS_SUMMARY)),
                )
                .set((
                    credit_notes::sunat_status.eq(SunatStatus::Accepted),
                    credit_notes::sunat_outcome.eq("accepted"),
                    credit_notes::sunat_code.eq(&code),
                    credit_notes::sunat_description.eq(&description),
                    credit_notes::accepted_at.eq(Some(Utc::now())),
                    credit_notes::cdr_path.eq(&cdr_path),
                    credit_notes::pdf_path.eq(&p.pdf_path),
                    credit_notes::qr_path.eq(&p.qr_path),
                    credit_notes::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
                if n == 1 {
                    applied.accepted_notes.push(note_id);
                }
            }
            for sale_id in adds {
                let p = printed.sales.get(&sale_id).cloned().unwrap_or_default();
                let n = diesel::update(
                    sales::table
                        .find(sale_id)
                        .filter(sales::sunat_status.eq(SunatStatus::Error))
                        .filter(sales::sunat_outcome.eq(NEEDS_SUMMARY)),
                )
                .set((
                    sales::sunat_status.eq(SunatStatus::Accepted),
                    sales::sunat_outcome.eq("accepted"),
                    sales::sunat_code.eq(&code),
                    sales::sunat_description.eq(&description),
                    sales::accepted_at.eq(Some(Utc::now())),
                    sales::cdr_path.eq(&cdr_path),
                    sales::pdf_path.eq(&p.pdf_path),
                    sales::qr_path.eq(&p.qr_path),
                    sales::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
                if n == 1 {
                    applied.accepted.push(sale_id);
                }
            }
        } else {
            applied.failed = voids;
            let failed_adds: Vec<i64> = diesel::update(
                sales::table
                    .filter(sales::id.eq_any(&adds))
                    .filter(sales::sunat_status.eq(SunatStatus::Error))
                    .filter(sales::sunat_outcome.eq(NEEDS_SUMMARY)),
            )
            .set((
                sales::sunat_outcome.eq(SUMMARY_REJECTED),
                sales::sunat_code.eq(&code),
                sales::sunat_description.eq(&description),
                sales::updated_at.eq(diesel::dsl::now),
            ))
            .returning(sales::id)
            .get_results(conn)
            .await?;
            applied.failed.extend(failed_adds);
            applied.failed_notes = diesel::update(
                credit_notes::table
                    .filter(credit_notes::id.eq_any(&notes))
                    .filter(credit_notes::sunat_status.eq(SunatStatus::Error))
                    .filter(credit_notes::sunat_outcome.eq(NEEDS_SUMMARY)),
            )
            .set((
                credit_notes::sunat_outcome.eq(SUMMARY_REJECTED),
                credit_notes::sunat_code.eq(&code),
                credit_notes::sunat_description.eq(&description),
                credit_notes::updated_at.eq(diesel::dsl::now),
            ))
            .returning(credit_notes::id)
            .get_results(conn)
            .await?;
        }
        Ok(applied)
    })
    .await
}

/// The name of beat's schedule of `build_sunat_summaries` (seeded by the migration).
pub const SCHEDULE: &str = "build-sunat-summaries";

/// Writes `at` (`FAENA_SUNAT_SUMMARY_TIME`) into the `build-sunat-summaries` schedule when it says
/// another time; true when it changed it. A deleted schedule stays deleted.
pub async fn apply_schedule_time(
    conn: &mut AsyncPgConnection,
    at: chrono::NaiveTime,
) -> Result<bool, SummaryError> {
    use chrono::Timelike;
    use faena_core::schema::periodic_tasks;
    let cron = format!("0 {} {} * * *", at.minute(), at.hour());
    let n = diesel::update(
        periodic_tasks::table
            .filter(periodic_tasks::name.eq(SCHEDULE))
            .filter(periodic_tasks::cron.is_distinct_from(&cron)),
    )
    .set((
        periodic_tasks::cron.eq(&cron),
        periodic_tasks::interval_secs.eq(None::<i64>),
        periodic_tasks::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}
