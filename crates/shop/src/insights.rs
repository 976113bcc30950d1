//! Insights: stock alerts (`low_stock`, `out_of_stock`) and sales summaries (`sales_summary`,
//! for all stores with a line per store), stored in the `insights` table. One store's insights
//! (`store_insights`) and the all-stores summary of the hourly fan-out (`insights_summary`) are
//! made by `store_insights.rs` and stored here too, with their `store_id`.
//!
//! Stock alerts are per product and store (stock is per store): a product has at most one open
//! alert per store, whatever its kind: the partial unique index `insights_one_open_per_product`
//! on (product, store) guarantees it even when two workers run `stock_alerts` at once (inserts
//! use `ON CONFLICT DO NOTHING` on it). The threshold is the product's, compared with each
//! store's stock. An alert stays open while its condition lasts, is closed when the store's
//! stock recovers, and a low-stock alert is closed and an out-of-stock one opened when the store
//! runs out. A summary is stored once per period (a re-run replaces it);
//! only the newest summary stays open.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Numeric, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::reports::ReportError;
use crate::schema::{insights, sales};

/// The kind of an insight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsightKind {
    LowStock,
    OutOfStock,
    SalesSummary,
    /// A sale not yet decided by SUNAT within 24 hours of its sendBill deadline (`deadlines.rs`).
    SunatDeadline,
    /// One store's insights of a window (`store_insights.rs`), with its `store_id`.
    StoreInsights,
    /// The all-stores summary of the hourly fan-out, naming the stores whose job failed.
    InsightsSummary,
}

impl InsightKind {
    pub const ALL: [Self; 6] = [
        Self::LowStock,
        Self::OutOfStock,
        Self::SalesSummary,
        Self::SunatDeadline,
        Self::StoreInsights,
        Self::InsightsSummary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LowStock => "low_stock",
            Self::OutOfStock => "out_of_stock",
            Self::SalesSummary => "sales_summary",
            Self::SunatDeadline => "sunat_deadline",
            Self::StoreInsights => "store_insights",
            Self::InsightsSummary => "insights_summary",
        }
    }

    /// Parses a kind name; the error lists the valid ones.
    pub fn parse(s: &str) -> Result<Self, ReportError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ReportError::Invalid {
                field: "kind",
                message: format!(
                    "`{s}` is not an insight kind: give low_stock, out_of_stock, sales_summary, \
                     sunat_deadline, store_insights or insights_summary"
                ),
            })
    }
}

/// Whether an insight is still current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsightStatus {
    Open,
    Closed,
}

impl InsightStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }

    /// Parses `open` or `closed`.
    pub fn parse(s: &str) -> Result<Self, ReportError> {
        match s {
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            _ => Err(ReportError::Invalid {
                field: "status",
                message: format!("`{s}` is not an insight status: give open or closed"),
            }),
        }
    }
}

/// An insight as stored.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, utoipa::ToSchema)]
#[diesel(table_name = insights, check_for_backend(diesel::pg::Pg))]
pub struct Insight {
    pub id: i64,
    /// low_stock, out_of_stock, sales_summary, sunat_deadline, store_insights or insights_summary.
    pub kind: String,
    /// The product of an alert.
    pub product_id: Option<i64>,
    /// The sale of a `sunat_deadline` insight.
    pub sale_id: Option<i64>,
    /// The period of a summary, e.g. `2026-11-25T01:00:00Z/24h`.
    pub period: Option<String>,
    /// open or closed.
    pub status: String,
    /// An alert: sku, name, store (its code), stock (the store's), threshold (and closed_stock
    /// once closed). A summary: see
    /// [`SalesSummary`].
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// The store of a `store_insights` insight or of a stock alert (`low_stock`,
    /// `out_of_stock`); none for the others (all stores).
    pub store_id: Option<i64>,
}

/// Which insights to list.
#[derive(Debug, Clone, Default)]
pub struct InsightFilter {
    pub status: Option<InsightStatus>,
    pub kind: Option<InsightKind>,
    /// Only this store's insights.
    pub store_id: Option<i64>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Insights matching `filter`, newest first.
pub async fn list_insights(
    conn: &mut AsyncPgConnection,
    filter: &InsightFilter,
) -> Result<Vec<Insight>, ReportError> {
    let mut q = insights::table.into_boxed();
    if let Some(s) = filter.status {
        q = q.filter(insights::status.eq(s.as_str()));
    }
    if let Some(k) = filter.kind {
        q = q.filter(insights::kind.eq(k.as_str()));
    }
    if let Some(id) = filter.store_id {
        q = q.filter(insights::store_id.eq(id));
    }
    Ok(q.order((insights::opened_at.desc(), insights::id.desc()))
        .limit(filter.limit.unwrap_or(100).clamp(1, 1000))
        .select(Insight::as_select())
        .load(conn)
        .await?)
}

/// What a `stock_alerts` run changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StockAlertsReport {
    /// Alerts opened by this run.
    pub opened: u64,
    /// Alerts closed by this run (stock recovered, or a low-stock alert became out-of-stock).
    pub closed: u64,
    /// Open alerts whose recorded stock changed.
    pub updated: u64,
    /// Open alerts after the run.
    pub open: i64,
}

/// The alert a store's stock of a product calls for, in SQL (`s` is the stock row, `p` the
/// product: the threshold is the product's).
const WANTED: &str = "CASE WHEN s.quantity = 0 THEN 'out_of_stock' \
    WHEN s.quantity <= p.low_stock_threshold THEN 'low_stock' END";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Which stock alerts a run looks after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertScope {
    /// Low stock and out of stock (`stock_alerts`, every 30 minutes).
    All,
    /// Only running out and coming back (`out_of_stock_alerts`, every 15 minutes): a product at 0
    /// gets its `out_of_stock` alert (its low-stock one closed), and the out-of-stock alert of a
    /// product back above 0 is closed; low-stock alerts are left to the full run.
    OutOfStock,
}

/// Opens an alert for each product and store whose stock there is at or below the product's
/// threshold (out of stock when at 0), closes alerts whose stock recovered, and refreshes the
/// stock recorded in open ones. A store that holds no row for a product (it never stocked it)
/// gets no alert. Running it again without stock changes changes nothing.
pub async fn refresh_stock_alerts(
    conn: &mut AsyncPgConnection,
) -> Result<StockAlertsReport, ReportError> {
    refresh_alerts(conn, AlertScope::All).await
}

/// The stock row of an alert (`i`), with its product (`s`, `p`).
const ALERT_STOCK: &str = "FROM product_stock s JOIN products p ON p.id = s.product_id \
    WHERE i.product_id = s.product_id AND i.store_id = s.store_id AND i.status = 'open' \
      AND i.kind IN ('low_stock', 'out_of_stock')";

/// [`refresh_stock_alerts`] within `scope`.
pub async fn refresh_alerts(
    conn: &mut AsyncPgConnection,
    scope: AlertScope,
) -> Result<StockAlertsReport, ReportError> {
    // The stock predicate of each statement under the scope (`s` the stock row, `i` the alert).
    let (close_only, open_only) = match scope {
        AlertScope::All => ("", ""),
        AlertScope::OutOfStock => (
            " AND (s.quantity = 0 OR i.kind = 'out_of_stock')",
            " AND s.quantity = 0",
        ),
    };
    conn.transaction::<_, ReportError, _>(async |conn| {
        // Alerts the store's stock no longer calls for (recovered, or now out of stock).
        let closed = diesel::sql_query(format!(
            "UPDATE insights i SET status = 'closed', closed_at = now(), updated_at = now(), \
                 data = i.data || jsonb_build_object('closed_stock', trim_scale(s.quantity)) \
             {ALERT_STOCK} AND i.kind IS DISTINCT FROM ({WANTED}){close_only}"
        ))
        .execute(conn)
        .await? as u64;
        let updated = diesel::sql_query(format!(
            "UPDATE insights i SET data = jsonb_set(i.data, '{{stock}}', to_jsonb(trim_scale(s.quantity))), \
                 updated_at = now() \
             {ALERT_STOCK} AND i.data -> 'stock' IS DISTINCT FROM to_jsonb(trim_scale(s.quantity))"
        ))
        .execute(conn)
        .await? as u64;
        let opened = diesel::sql_query(format!(
            "INSERT INTO insights (kind, product_id, store_id, status, data) \
             SELECT {WANTED}, p.id, s.store_id, 'open', jsonb_build_object('sku', p.sku, \
                 'name', p.name, 'store', st.code, 'stock', trim_scale(s.quantity), \
                 'threshold', trim_scale(p.low_stock_threshold)) \
             FROM product_stock s JOIN products p ON p.id = s.product_id \
                 JOIN stores st ON st.id = s.store_id \
             WHERE s.quantity <= p.low_stock_threshold{open_only} \
             ORDER BY p.id, s.store_id \
             ON CONFLICT (product_id, store_id) WHERE status = 'open' AND product_id IS NOT NULL \
             DO NOTHING"
        ))
        .execute(conn)
        .await? as u64;
        let open: Vec<Count> = diesel::sql_query(
            "SELECT count(*)::int8 AS n FROM insights \
             WHERE status = 'open' AND kind IN ('low_stock', 'out_of_stock')",
        )
        .load(conn)
        .await?;
        Ok(StockAlertsReport {
            opened,
            closed,
            updated,
            open: open.into_iter().next().map_or(0, |c| c.n),
        })
    })
    .await
}

/// A product among the best sellers of a summary.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, QueryableByName, utoipa::ToSchema,
)]
pub struct TopProduct {
    #[diesel(sql_type = Text)]
    pub sku: String,
    #[diesel(sql_type = Text)]
    pub description: String,
    /// Quantities sold, summed (a JSON number: `12`, `3.75` for goods sold by weight).
    #[diesel(sql_type = Numeric)]
    #[serde(with = "crate::quantity::number")]
    #[schema(value_type = f64, example = 12)]
    pub units: BigDecimal,
    #[diesel(sql_type = Numeric)]
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "125.00")]
    pub revenue: BigDecimal,
}

/// The sales of a window of hours (the `data` of a `sales_summary` insight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SalesSummary {
    /// The window is `[from, until)`, by the time each sale was issued.
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub hours: u32,
    /// Sales that are not cancelled.
    pub sales: i64,
    /// Cancelled sales (not counted in `sales` or `revenue`).
    pub cancelled: i64,
    /// Sum of the sales' totals, in PEN.
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "1234.50")]
    pub revenue: BigDecimal,
    pub currency: String,
    /// Up to 5 products by units sold (then revenue, then sku).
    pub top_products: Vec<TopProduct>,
    /// The same counts per store (every store that sold in the window, and every active one), by
    /// store id; empty in a summary of one store and in summaries made before stores existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_store: Vec<StoreSales>,
}

/// One store's sales in a summary's window.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, QueryableByName, utoipa::ToSchema,
)]
pub struct StoreSales {
    #[diesel(sql_type = BigInt)]
    pub store_id: i64,
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub sales: i64,
    #[diesel(sql_type = BigInt)]
    pub cancelled: i64,
    #[diesel(sql_type = Numeric)]
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "400.00")]
    pub revenue: BigDecimal,
}

#[derive(QueryableByName)]
struct Totals {
    #[diesel(sql_type = BigInt)]
    sales: i64,
    #[diesel(sql_type = BigInt)]
    cancelled: i64,
    #[diesel(sql_type = Numeric)]
    revenue: BigDecimal,
}

/// The period key of a summary window.
pub fn summary_period(until: DateTime<Utc>, hours: u32) -> String {
    format!(
        "{}/{hours}h",
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// Computes the summary of the `hours` before `until`, for all stores (with a line per store).
pub async fn compute_sales_summary(
    conn: &mut AsyncPgConnection,
    until: DateTime<Utc>,
    hours: u32,
) -> Result<SalesSummary, ReportError> {
    let mut summary = compute_store_sales_summary(conn, until, hours, None).await?;
    let from = summary.from;
    let by_store: Vec<StoreSales> = diesel::sql_query(
        "SELECT st.id AS store_id, st.code, st.name, \
                count(s.id) FILTER (WHERE NOT s.is_cancelled)::int8 AS sales, \
                count(s.id) FILTER (WHERE s.is_cancelled)::int8 AS cancelled, \
                COALESCE(sum(s.total) FILTER (WHERE NOT s.is_cancelled), 0) AS revenue \
         FROM stores st \
         LEFT JOIN sales s ON s.store_id = st.id AND s.issued_at >= $1 AND s.issued_at < $2 \
         GROUP BY st.id HAVING st.active OR count(s.id) > 0 ORDER BY st.id",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(until)
    .load(conn)
    .await?;
    summary.by_store = by_store
        .into_iter()
        .map(|s| StoreSales {
            revenue: s.revenue.with_scale(2),
            ..s
        })
        .collect();
    Ok(summary)
}

/// Computes the summary of the `hours` before `until` of one store (`store_id`), or of all
/// stores together (`None`, without the per-store lines).
pub async fn compute_store_sales_summary(
    conn: &mut AsyncPgConnection,
    until: DateTime<Utc>,
    hours: u32,
    store_id: Option<i64>,
) -> Result<SalesSummary, ReportError> {
    use diesel::sql_types::Nullable;
    let from = until - chrono::Duration::hours(i64::from(hours));
    let totals: Vec<Totals> = diesel::sql_query(
        "SELECT count(*) FILTER (WHERE NOT is_cancelled)::int8 AS sales, \
                count(*) FILTER (WHERE is_cancelled)::int8 AS cancelled, \
                COALESCE(sum(total) FILTER (WHERE NOT is_cancelled), 0) AS revenue \
         FROM sales WHERE issued_at >= $1 AND issued_at < $2 \
           AND ($3::int8 IS NULL OR store_id = $3)",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(until)
    .bind::<Nullable<BigInt>, _>(store_id)
    .load(conn)
    .await?;
    let top_products: Vec<TopProduct> = diesel::sql_query(
        "SELECT i.sku, max(i.description) AS description, sum(i.quantity) AS units, \
                sum(i.line_total) AS revenue \
         FROM sale_items i JOIN sales s ON s.id = i.sale_id \
         WHERE NOT s.is_cancelled AND s.issued_at >= $1 AND s.issued_at < $2 \
           AND ($4::int8 IS NULL OR s.store_id = $4) \
         GROUP BY i.sku ORDER BY units DESC, revenue DESC, i.sku LIMIT $3",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(until)
    .bind::<Integer, _>(5)
    .bind::<Nullable<BigInt>, _>(store_id)
    .load(conn)
    .await?;
    let t = totals.into_iter().next().unwrap_or(Totals {
        sales: 0,
        cancelled: 0,
        revenue: BigDecimal::from(0),
    });
    Ok(SalesSummary {
        from,
        until,
        hours,
        sales: t.sales,
        cancelled: t.cancelled,
        revenue: t.revenue.with_scale(2),
        currency: "PEN".into(),
        top_products: top_products
            .into_iter()
            .map(|p| TopProduct {
                revenue: p.revenue.with_scale(2),
                ..p
            })
            .collect(),
        by_store: Vec::new(),
    })
}

/// Computes and stores the summary of the `hours` before `until` as a `sales_summary` insight:
/// one per period (a re-run replaces its data), and only the newest period's of the same length
/// stays open (the daily and the weekly summaries each keep their newest).
pub async fn store_sales_summary(
    conn: &mut AsyncPgConnection,
    until: DateTime<Utc>,
    hours: u32,
) -> Result<Insight, ReportError> {
    let summary = compute_sales_summary(conn, until, hours).await?;
    let data = serde_json::to_value(&summary).map_err(|e| ReportError::Corrupt {
        what: "sales summary".into(),
        message: e.to_string(),
    })?;
    let period = summary_period(until, hours);
    conn.transaction::<_, ReportError, _>(async move |conn| {
        diesel::sql_query(
            "INSERT INTO insights (kind, period, status, data) \
             VALUES ('sales_summary', $1, 'open', $2) \
             ON CONFLICT (kind, period) WHERE period IS NOT NULL AND store_id IS NULL \
             DO UPDATE SET data = EXCLUDED.data, updated_at = now() \
             WHERE insights.data IS DISTINCT FROM EXCLUDED.data",
        )
        .bind::<Text, _>(&period)
        .bind::<Jsonb, _>(&data)
        .execute(conn)
        .await?;
        // Only the summary of the latest window of this length stays open.
        diesel::sql_query(
            "UPDATE insights SET status = 'closed', closed_at = now(), updated_at = now() \
             WHERE kind = 'sales_summary' AND status = 'open' AND data -> 'hours' = $1 \
               AND id <> ( \
                 SELECT id FROM insights WHERE kind = 'sales_summary' AND status = 'open' \
                   AND data -> 'hours' = $1 \
                 ORDER BY (data ->> 'until')::timestamptz DESC, id DESC LIMIT 1)",
        )
        .bind::<Jsonb, _>(serde_json::json!(hours))
        .execute(conn)
        .await?;
        Ok(insights::table
            .filter(insights::kind.eq("sales_summary"))
            .filter(insights::period.eq(&period))
            .select(Insight::as_select())
            .first(conn)
            .await?)
    })
    .await
}

/// What a refresh of the deadline insights changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeadlineInsights {
    pub opened: u64,
    pub closed: u64,
}

/// Opens a `sunat_deadline` insight for each undecided sale within 24 hours of its SUNAT deadline
/// (or past it), at most one open per sale, and closes those whose sale SUNAT decided or that were
/// cancelled. Running it again changes nothing.
pub async fn refresh_deadline_insights(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<DeadlineInsights, faena_core::db::QueryError> {
    let kind = InsightKind::SunatDeadline.as_str();
    let settled: Vec<i64> = sales::table
        .inner_join(insights::table.on(insights::sale_id.eq(sales::id.nullable())))
        .filter(insights::kind.eq(kind))
        .filter(insights::status.eq("open"))
        .filter(
            sales::is_cancelled
                .eq(true)
                .or(sales::sunat_status.ne_all(crate::deadlines::UNDECIDED)),
        )
        .select(sales::id)
        .load(conn)
        .await?;
    let closed = diesel::update(
        insights::table
            .filter(insights::kind.eq(kind))
            .filter(insights::status.eq("open"))
            .filter(insights::sale_id.eq_any(settled.iter().map(|id| Some(*id)))),
    )
    .set((
        insights::status.eq("closed"),
        insights::closed_at.eq(Some(now)),
        insights::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await? as u64;
    let mut opened = 0;
    for s in crate::deadlines::undecided_due_before(conn, now + crate::deadlines::WARN_BEFORE, tz)
        .await?
    {
        let data = serde_json::json!({
            "number": s.number, "doc_type": s.doc_type, "issue_date": s.issue_date,
            "sunat_status": s.sunat_status, "sunat_deadline": s.sunat_deadline,
            "seller_id": s.seller_id,
        });
        opened += diesel::sql_query(
            "INSERT INTO insights (kind, sale_id, status, data) VALUES ($1, $2, 'open', $3) \
             ON CONFLICT (sale_id) WHERE status = 'open' AND sale_id IS NOT NULL DO NOTHING",
        )
        .bind::<Text, _>(kind)
        .bind::<BigInt, _>(s.sale_id)
        .bind::<Jsonb, _>(data)
        .execute(conn)
        .await? as u64;
    }
    Ok(DeadlineInsights { opened, closed })
}
