//! SUNAT's sendBill deadlines and the sales that risk missing them.
//!
//! The rule (see `docs/decisions.md`; sources in `sunat-lifecycle.md` section 5): SUNAT takes a
//! factura (01) by `sendBill` until the end of the 3rd calendar day after its issue date, and a
//! boleta (03) until the end of the 5th, in Lima time. Later, a factura is rejected with 2108 (its
//! number is lost) and a boleta answered 1079 (it must go in a Resumen Diario, which takes it up to
//! 7 days). A sale not yet decided (PENDING, SENDING or ERROR, not cancelled) 24 hours before its
//! deadline opens one `sunat_deadline` insight (`insights::refresh_deadline_insights`), closed once
//! SUNAT decides or the sale is cancelled.

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::schema::sales;
use crate::states::SunatStatus;
use faena_core::db::QueryError;

/// How long before its deadline an undecided sale opens an insight.
pub const WARN_BEFORE: chrono::Duration = chrono::Duration::hours(24);

/// The states of a sale SUNAT has not decided (and that is not cancelled): it still has to be sent.
pub const UNDECIDED: [SunatStatus; 3] = [
    SunatStatus::Pending,
    SunatStatus::Sending,
    SunatStatus::Error,
];

/// Calendar days after the issue date SUNAT takes a document of this type by `sendBill`.
pub fn days_allowed(doc_type: &str) -> u64 {
    match doc_type {
        // Factura and F-series notes: RS 000003-2023/SUNAT.
        "01" => 3,
        // Boleta and B-series notes (and anything else sent by sendBill): 5 days.
        _ => 5,
    }
}

/// The last instant SUNAT takes the document: the end of the last allowed day in `tz`.
pub fn deadline(doc_type: &str, issue_date: NaiveDate, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let after = issue_date
        .checked_add_days(Days::new(days_allowed(doc_type) + 1))
        .unwrap_or(NaiveDate::MAX);
    let midnight = after.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Lima has no daylight saving; in a zone with a gap at midnight take the first valid instant.
    tz.from_local_datetime(&midnight)
        .earliest()
        .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
}

/// A sale with its SUNAT deadline, as `GET /api/sales` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SaleDue {
    pub sale_id: i64,
    /// SERIES-CORRELATIVE.
    pub number: String,
    /// 01 (factura) or 03 (boleta).
    pub doc_type: String,
    pub issue_date: NaiveDate,
    pub seller_id: String,
    pub sunat_status: SunatStatus,
    pub is_cancelled: bool,
    /// The last instant SUNAT takes it by sendBill.
    pub sunat_deadline: DateTime<Utc>,
}

/// Which sales to list.
#[derive(Debug, Clone, Default)]
pub struct SaleFilter {
    pub sunat_status: Option<SunatStatus>,
    /// Only sales whose deadline is before this instant.
    pub due_before: Option<DateTime<Utc>>,
    /// Only this seller's sales.
    pub seller_id: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

type Row = (
    i64,
    String,
    i64,
    String,
    NaiveDate,
    String,
    SunatStatus,
    bool,
);

fn due(r: Row, tz: chrono_tz::Tz) -> SaleDue {
    let (sale_id, series, correlative, doc_type, issue_date, seller_id, sunat_status, is_cancelled) =
        r;
    SaleDue {
        sale_id,
        number: format!("{series}-{correlative}"),
        sunat_deadline: deadline(&doc_type, issue_date, tz),
        doc_type,
        issue_date,
        seller_id,
        sunat_status,
        is_cancelled,
    }
}

/// The columns of a [`Row`].
const DUE_COLUMNS: (
    sales::id,
    sales::series,
    sales::correlative,
    sales::doc_type,
    sales::issue_date,
    sales::seller_id,
    sales::sunat_status,
    sales::is_cancelled,
) = (
    sales::id,
    sales::series,
    sales::correlative,
    sales::doc_type,
    sales::issue_date,
    sales::seller_id,
    sales::sunat_status,
    sales::is_cancelled,
);

/// The latest issue date whose deadline can fall before `before`: a factura's allowance (the
/// shortest) earlier. The database narrows to those; [`by_deadline`] applies the exact rule.
fn latest_issue_date(before: DateTime<Utc>, tz: chrono_tz::Tz) -> NaiveDate {
    before
        .with_timezone(&tz)
        .date_naive()
        .checked_sub_days(Days::new(days_allowed("01")))
        .unwrap_or(NaiveDate::MIN)
}

/// The rows with their deadlines, those before `before` if given, earliest deadline first.
fn by_deadline(rows: Vec<Row>, tz: chrono_tz::Tz, before: Option<DateTime<Utc>>) -> Vec<SaleDue> {
    let mut out: Vec<SaleDue> = rows
        .into_iter()
        .map(|r| due(r, tz))
        .filter(|s| before.is_none_or(|b| s.sunat_deadline < b))
        .collect();
    out.sort_by_key(|s| (s.sunat_deadline, s.sale_id));
    out
}

/// Sales matching `filter`, earliest deadline first.
pub async fn list_sales(
    conn: &mut AsyncPgConnection,
    filter: &SaleFilter,
    tz: chrono_tz::Tz,
) -> Result<Vec<SaleDue>, QueryError> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let mut q = sales::table.into_boxed();
    if let Some(s) = filter.sunat_status {
        q = q.filter(sales::sunat_status.eq(s));
    }
    if let Some(seller) = &filter.seller_id {
        q = q.filter(sales::seller_id.eq(seller.clone()));
    }
    if let Some(before) = filter.due_before {
        q = q.filter(sales::issue_date.le(latest_issue_date(before, tz)));
    }
    let rows: Vec<Row> = q
        .order((sales::issue_date.asc(), sales::id.asc()))
        .limit(20_000)
        .select(DUE_COLUMNS)
        .load(conn)
        .await?;
    let mut out = by_deadline(rows, tz, filter.due_before);
    out.truncate(limit);
    Ok(out)
}

/// Undecided sales (not cancelled) whose deadline is before `before`, earliest first.
pub async fn undecided_due_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<Vec<SaleDue>, QueryError> {
    let rows: Vec<Row> = sales::table
        .filter(sales::sunat_status.eq_any(UNDECIDED))
        .filter(sales::is_cancelled.eq(false))
        .filter(sales::issue_date.le(latest_issue_date(before, tz)))
        .order((sales::issue_date.asc(), sales::id.asc()))
        .select(DUE_COLUMNS)
        .load(conn)
        .await?;
    Ok(by_deadline(rows, tz, Some(before)))
}

/// Undecided sales at the moment `now`: due within [`WARN_BEFORE`], and past their deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadlineCounts {
    /// Not decided, deadline within the next 24 hours.
    pub due_within_24h: i64,
    /// Not decided, deadline passed (a factura's number is lost; a boleta goes in a Resumen Diario).
    pub past_deadline: i64,
}

/// [`DeadlineCounts`] at `now`.
pub async fn count_at_risk(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<DeadlineCounts, QueryError> {
    let mut c = DeadlineCounts::default();
    for s in undecided_due_before(conn, now + WARN_BEFORE, tz).await? {
        if s.sunat_deadline <= now {
            c.past_deadline += 1;
        } else {
            c.due_within_24h += 1;
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lima(s: &str) -> DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn a_factura_has_three_days_and_a_boleta_five_in_lima() {
        let tz = chrono_tz::America::Lima;
        let issued = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
        // Factura of Dec 1: sendBill until the end of Dec 4, Lima (UTC-5).
        assert_eq!(
            deadline("01", issued, tz),
            lima("2026-12-05T00:00:00-05:00")
        );
        assert_eq!(
            deadline("03", issued, tz),
            lima("2026-12-07T00:00:00-05:00")
        );
        assert_eq!(deadline("03", issued, tz), lima("2026-12-07T05:00:00Z"));
    }
}
