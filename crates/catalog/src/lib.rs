//! faena-catalog: the application's job kinds: their typed args and the catalog ([`KINDS`]).
//!
//! A crate of its own, depending only on the kernel, so that beat and the broker's users can know
//! every kind without linking the back office (SUNAT, PDF, RSA). `faena-shop` re-exports it as
//! `faena_shop::jobs`. The contract the kinds follow (`KindSpec`, `JobArgs`, `Catalog`) is the
//! kernel's, in `faena_core::jobs`; the handlers that run them are in `faena-worker`'s `jobs/`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use faena_core::jobs::{Catalog, JobArgs, KindSpec, FAIL, NOOP, SLEEP};
use serde::{Deserialize, Serialize};

/// `release_expired_reservations {batch_size?}`: returns the stock of expired checkout reservations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseExpiredArgs {
    #[serde(default)]
    pub batch_size: Option<u32>,
}
impl JobArgs for ReleaseExpiredArgs {
    const KIND: &'static str = "release_expired_reservations";
}

/// `send_sale_to_sunat {sale_id}`: signs (once), sends and records a sale's receipt at SUNAT.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendSaleArgs {
    pub sale_id: i64,
}
impl JobArgs for SendSaleArgs {
    const KIND: &'static str = "send_sale_to_sunat";
}

/// `send_credit_note_to_sunat {credit_note_id}`: signs (once), sends and records a credit note
/// at SUNAT with `sendBill`, as `send_sale_to_sunat` does a sale.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendCreditNoteArgs {
    pub credit_note_id: i64,
}
impl JobArgs for SendCreditNoteArgs {
    const KIND: &'static str = "send_credit_note_to_sunat";
}

/// `retry_failed_sunat_sends {limit?, older_than_secs?}`: re-enqueues sales in ERROR.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFailedSendsArgs {
    /// At most this many sales per run (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only sales whose last attempt is older than this (default 3600).
    #[serde(default)]
    pub older_than_secs: Option<u64>,
}
impl JobArgs for RetryFailedSendsArgs {
    const KIND: &'static str = "retry_failed_sunat_sends";
}

/// `rescue_unsent_sales {older_than_secs?, limit?}`: sends PENDING sales no job is sending and
/// takes back SENDING sales whose send stopped without an outcome (beat, every 10 minutes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescueUnsentArgs {
    /// Only sales older than this: created (PENDING) or last sent (SENDING) (default 600).
    #[serde(default)]
    pub older_than_secs: Option<u64>,
    /// At most this many sales of each state per run (default 200).
    #[serde(default)]
    pub limit: Option<u32>,
}
impl JobArgs for RescueUnsentArgs {
    const KIND: &'static str = "rescue_unsent_sales";
}

/// `cleanup_expired_tokens {}`: deletes expired and revoked refresh tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupTokensArgs {}
impl JobArgs for CleanupTokensArgs {
    const KIND: &'static str = "cleanup_expired_tokens";
}

/// `sunat_daily_report {date?}`: the report of one day's SUNAT sends (default: today in the
/// business time zone), stored in `reports` and as CSV; a re-run for a date replaces it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SunatDailyReportArgs {
    /// A `YYYY-MM-DD` date.
    #[serde(default)]
    pub date: Option<chrono::NaiveDate>,
}
impl JobArgs for SunatDailyReportArgs {
    const KIND: &'static str = "sunat_daily_report";
}

/// A number of hours from 1 to 8784 (a leap year).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Hours(u32);

impl Hours {
    pub const MAX: u32 = 8784;

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Hours {
    fn default() -> Self {
        Self(24)
    }
}

impl TryFrom<u32> for Hours {
    type Error = String;

    fn try_from(h: u32) -> Result<Self, String> {
        if (1..=Self::MAX).contains(&h) {
            Ok(Self(h))
        } else {
            Err(format!(
                "{h} is not a number of hours from 1 to {}",
                Self::MAX
            ))
        }
    }
}

impl From<Hours> for u32 {
    fn from(h: Hours) -> u32 {
        h.0
    }
}

/// `sales_summary {hours?, until?}`: sales of the `hours` (default 24) before `until` (default:
/// the start of the current hour), stored as a `sales_summary` insight; a re-run replaces it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesSummaryArgs {
    #[serde(default)]
    pub hours: Hours,
    /// The end of the window (RFC 3339).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}
impl JobArgs for SalesSummaryArgs {
    const KIND: &'static str = "sales_summary";
}

/// `stock_alerts {}`: one open alert per product and store whose stock there is at or below the
/// product's threshold; closes recovered ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockAlertsArgs {}
impl JobArgs for StockAlertsArgs {
    const KIND: &'static str = "stock_alerts";
}

/// `out_of_stock_alerts {}`: opens an `out_of_stock` alert for each product and store that ran out
/// (closing its low-stock one) and closes those that came back; beat, every 15 minutes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutOfStockAlertsArgs {}
impl JobArgs for OutOfStockAlertsArgs {
    const KIND: &'static str = "out_of_stock_alerts";
}

/// `generate_insights {until?}`: the hourly fan-out. Starts a group of one `store_insights` per
/// active store with an `insights_summary` callback (`on_failure: run`), all in the `default` queue.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateInsightsArgs {
    /// The end of the window the stores' insights cover (RFC 3339; default: the start of the
    /// current hour).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}
impl JobArgs for GenerateInsightsArgs {
    const KIND: &'static str = "generate_insights";
}

/// `store_insights {store_id, until?}`: one store's insights (its sales of the 24 hours before
/// `until`, top products, sales SUNAT has not decided), stored as a `store_insights` insight of
/// that store; a re-run for the same window replaces it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreInsightsArgs {
    pub store_id: i64,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}
impl JobArgs for StoreInsightsArgs {
    const KIND: &'static str = "store_insights";
}

/// `insights_summary {stores, until?, members}`: the fan-out's callback. `stores` are the group's
/// store ids in its order, so `members[i]` (added by the workflow) is the job of `stores[i]`;
/// writes the all-stores `insights_summary` insight, naming the stores whose job failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsightsSummaryArgs {
    pub stores: Vec<i64>,
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Filled in by the workflow: each member's id, state and result, in the group's order.
    #[serde(default)]
    pub members: Option<Vec<Option<faena_core::workflow::CallbackMember>>>,
}
impl JobArgs for InsightsSummaryArgs {
    const KIND: &'static str = "insights_summary";
}

/// `cleanup_old_files {dry_run?}`: deletes receipt files past their retention.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupOldFilesArgs {
    /// Count what would be deleted without deleting anything.
    #[serde(default)]
    pub dry_run: bool,
}
impl JobArgs for CleanupOldFilesArgs {
    const KIND: &'static str = "cleanup_old_files";
}

/// `build_sunat_summaries {date?}`: the Resumen Diario and Comunicación de Baja of what waited
/// until the end of `date` (default: yesterday in the business time zone): cancellations to void
/// and boletas answered 1079; each summary queued for `send_sunat_summary`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSunatSummariesArgs {
    /// A `YYYY-MM-DD` date.
    #[serde(default)]
    pub date: Option<chrono::NaiveDate>,
}
impl JobArgs for BuildSunatSummariesArgs {
    const KIND: &'static str = "build_sunat_summaries";
}

/// `send_sunat_summary {summary_id}`: signs a summary once, sends it with `sendSummary` and
/// stores SUNAT's ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendSunatSummaryArgs {
    /// The summary's row id (`faena sunat summaries`).
    pub summary_id: i64,
}
impl JobArgs for SendSunatSummaryArgs {
    const KIND: &'static str = "send_sunat_summary";
}

/// `poll_sunat_ticket {summary_id}`: asks SUNAT for a summary's ticket (getStatus), snoozing
/// while it answers 98, then applies the CDR to every document the summary carried.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollSunatTicketArgs {
    pub summary_id: i64,
}
impl JobArgs for PollSunatTicketArgs {
    const KIND: &'static str = "poll_sunat_ticket";
}

/// The application's kinds: the kernel's diagnostic kinds and the back office's jobs. The
/// worker's handlers register exactly these (a test checks both sets are equal).
pub const KINDS: &[KindSpec] = &[
    NOOP,
    SLEEP,
    FAIL,
    KindSpec::new::<ReleaseExpiredArgs>(
        "default",
        "Releases ACTIVE checkout reservations past their expiry and returns their stock: {released, units}.",
    )
    .max_attempts(5)
    .time_limit(Duration::from_secs(120)),
    // SUNAT's own retries (3, 5 minutes apart by default) are counted on the sale and done with
    // snoozes; the task's attempts only cover crashes and database trouble.
    KindSpec::new::<SendSaleArgs>(
        "sunat",
        "Sends a sale's signed receipt to SUNAT, retrying what SUNAT says is temporary; stores CDR, PDF and QR.",
    )
    .max_attempts(10)
    .time_limit(Duration::from_secs(600)),
    KindSpec::new::<SendCreditNoteArgs>(
        "sunat",
        "Sends a credit note's signed XML to SUNAT (sendBill), retrying what SUNAT says is temporary; stores CDR, PDF and QR.",
    )
    .max_attempts(10)
    .time_limit(Duration::from_secs(600)),
    KindSpec::new::<RetryFailedSendsArgs>(
        "default",
        "Re-enqueues sales in ERROR whose last attempt is older than an hour (50 per run).",
    )
    .max_attempts(5)
    .time_limit(Duration::from_secs(120)),
    KindSpec::new::<RescueUnsentArgs>(
        "default",
        "Sends PENDING sales nobody is sending and takes back SENDING sales whose send stopped.",
    )
    .max_attempts(5)
    .time_limit(Duration::from_secs(120)),
    KindSpec::new::<CleanupTokensArgs>(
        "default",
        "Deletes expired and revoked refresh tokens: {deleted}.",
    )
    .max_attempts(5)
    .time_limit(Duration::from_secs(120)),
    KindSpec::new::<SunatDailyReportArgs>(
        "default",
        "Report of a day's SUNAT sends (default today, Lima): stored in `reports` and as CSV; replaces the day's report.",
    )
    .max_attempts(5),
    KindSpec::new::<SalesSummaryArgs>(
        "default",
        "Sales, revenue and top products of the last `hours` (default 24), stored as a sales_summary insight.",
    )
    .max_attempts(5),
    KindSpec::new::<StockAlertsArgs>(
        "default",
        "Opens one alert per product and store at or below the threshold (or out of stock), closes recovered ones.",
    )
    .max_attempts(5)
    .time_limit(Duration::from_secs(120)),
    KindSpec::new::<OutOfStockAlertsArgs>(
        "default",
        "Opens an out_of_stock alert per product and store that ran out, closes those that came back.",
    )
    .max_attempts(5)
    .time_limit(Duration::from_secs(120)),
    // The fan-out and its members share the `default` queue: a workflow lives in one queue.
    KindSpec::new::<GenerateInsightsArgs>(
        "default",
        "Starts one store_insights per active store as a group, with an insights_summary callback: {workflow_id, stores}.",
    )
    .max_attempts(5)
    .time_limit(Duration::from_secs(120)),
    KindSpec::new::<StoreInsightsArgs>(
        "default",
        "One store's insights of the last 24 hours, stored as its store_insights insight.",
    )
    .max_attempts(3)
    .time_limit(Duration::from_secs(300)),
    KindSpec::new::<InsightsSummaryArgs>(
        "default",
        "The fan-out's callback: the all-stores insights_summary, naming the stores whose job failed.",
    )
    .max_attempts(5)
    .time_limit(Duration::from_secs(120)),
    KindSpec::new::<BuildSunatSummariesArgs>(
        "default",
        "Builds the Resumen Diario and Comunicación de Baja of what waits (voids, 1079 boletas) and queues their sends; beat runs it nightly.",
    )
    .max_attempts(5)
    .time_limit(Duration::from_secs(300)),
    // Like a sale's send: SUNAT's temporary failures are snoozes, the attempts cover crashes.
    KindSpec::new::<SendSunatSummaryArgs>(
        "sunat",
        "Signs a summary once, sends it with sendSummary and stores SUNAT's ticket; queues its poll.",
    )
    .max_attempts(10)
    .time_limit(Duration::from_secs(600)),
    KindSpec::new::<PollSunatTicketArgs>(
        "sunat",
        "Asks SUNAT for a summary's ticket, snoozing while it answers 98; applies the CDR to every document it carried.",
    )
    .max_attempts(10)
    .time_limit(Duration::from_secs(600)),
    KindSpec::new::<CleanupOldFilesArgs>(
        "default",
        "Deletes old XML/CDR/QR files and cancelled sales' PDFs of decided sales: {files, bytes, ...}.",
    )
    .max_attempts(3)
    .time_limit(Duration::from_secs(1800)),
];

/// The application's catalog, for the processes to hand to the broker, beat and the api.
pub const fn catalog() -> Catalog {
    Catalog::new(KINDS)
}
