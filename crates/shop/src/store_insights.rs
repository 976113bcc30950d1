//! Insights per store, fanned out: the hourly `generate_insights` starts a group of one
//! `store_insights {store_id, until}` per active store with an `insights_summary` callback
//! ([`fan_out`]); each member stores its store's insight ([`store_store_insights`]), and the
//! callback, which runs once after every member finished (`on_failure: run`), stores the
//! all-stores summary naming the stores whose job failed ([`store_insights_summary`]).
//!
//! Both are stored once per window (`period`), a re-run replacing the data, and only the newest
//! of each store (and the newest summary) stays open. A store that fails does not stop the
//! others: each is its own job, retried on its own.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use faena_catalog::{InsightsSummaryArgs, StoreInsightsArgs};
use faena_core::jobs::{EnqueueRequest, JobArgs};
use faena_core::workflow::{CallbackMember, OnFailure, WorkflowRequest};
use serde::{Deserialize, Serialize};

use crate::deadlines::UNDECIDED;
use crate::insights::{compute_store_sales_summary, summary_period, Insight, SalesSummary};
use crate::reports::ReportError;
use crate::schema::{insights, sale_stores};
use crate::stores::{self, StoreError, StoreKey};

/// The window of a store's insights.
pub const STORE_INSIGHTS_HOURS: u32 = 24;

fn from_store(e: StoreError) -> ReportError {
    match e {
        StoreError::NotFound(m) => ReportError::NotFound(m),
        StoreError::Db(q) => ReportError::Db(q),
        other => ReportError::Corrupt {
            what: "store".into(),
            message: other.to_string(),
        },
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> ReportError {
    ReportError::Corrupt {
        what: what.into(),
        message: e.to_string(),
    }
}

/// The `data` of a `store_insights` insight, and the result of its job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInsights {
    pub store_id: i64,
    pub code: String,
    pub name: String,
    pub establishment_code: String,
    /// The store's sales of the window (no `by_store`).
    pub summary: SalesSummary,
    /// The store's sales, of any day, that SUNAT has not decided (PENDING, SENDING or ERROR) and
    /// that are not cancelled.
    pub sunat_undecided: i64,
}

/// Computes and stores one store's insights of the [`STORE_INSIGHTS_HOURS`] before `until`.
pub async fn store_store_insights(
    conn: &mut AsyncPgConnection,
    store_id: i64,
    until: DateTime<Utc>,
) -> Result<(Insight, StoreInsights), ReportError> {
    let store = stores::get_store(conn, &StoreKey::Id(store_id))
        .await
        .map_err(from_store)?;
    let summary =
        compute_store_sales_summary(conn, until, STORE_INSIGHTS_HOURS, Some(store.id)).await?;
    let sunat_undecided: i64 = sale_stores::table
        .filter(sale_stores::store_id.eq(store.id))
        .filter(sale_stores::is_cancelled.eq(false))
        .filter(sale_stores::sunat_status.eq_any(UNDECIDED))
        .count()
        .get_result(conn)
        .await?;
    let data = StoreInsights {
        store_id: store.id,
        code: store.code,
        name: store.name,
        establishment_code: store.establishment_code,
        summary,
        sunat_undecided,
    };
    let json = serde_json::to_value(&data).map_err(|e| corrupt("store insights", e))?;
    let period = summary_period(until, STORE_INSIGHTS_HOURS);
    let insight = conn
        .transaction::<_, ReportError, _>(async move |conn| {
            diesel::sql_query(
                "INSERT INTO insights (kind, store_id, period, status, data) \
                 VALUES ('store_insights', $1, $2, 'open', $3) \
                 ON CONFLICT (kind, store_id, period) \
                     WHERE period IS NOT NULL AND store_id IS NOT NULL \
                 DO UPDATE SET data = EXCLUDED.data, updated_at = now() \
                 WHERE insights.data IS DISTINCT FROM EXCLUDED.data",
            )
            .bind::<BigInt, _>(store_id)
            .bind::<Text, _>(&period)
            .bind::<Jsonb, _>(&json)
            .execute(conn)
            .await?;
            close_older(conn, "store_insights", Some(store_id)).await?;
            Ok(insights::table
                .filter(insights::kind.eq("store_insights"))
                .filter(insights::store_id.eq(store_id))
                .filter(insights::period.eq(&period))
                .select(Insight::as_select())
                .first(conn)
                .await?)
        })
        .await?;
    Ok((insight, data))
}

/// Closes every open insight of `kind` (of `store`) but the newest window's.
async fn close_older(
    conn: &mut AsyncPgConnection,
    kind: &str,
    store: Option<i64>,
) -> Result<(), ReportError> {
    diesel::sql_query(
        "UPDATE insights SET status = 'closed', closed_at = now(), updated_at = now() \
         WHERE kind = $1 AND status = 'open' AND store_id IS NOT DISTINCT FROM $2 AND id <> ( \
             SELECT id FROM insights WHERE kind = $1 AND status = 'open' \
               AND store_id IS NOT DISTINCT FROM $2 \
             ORDER BY period DESC, id DESC LIMIT 1)",
    )
    .bind::<Text, _>(kind)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(store)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the summary keeps of a store whose job succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreLine {
    pub store_id: i64,
    pub code: String,
    pub sales: i64,
    #[serde(with = "crate::money")]
    pub revenue: BigDecimal,
    pub sunat_undecided: i64,
}

/// A store whose job did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedStore {
    pub store_id: i64,
    /// The store's code and name (absent if the store is gone).
    pub code: Option<String>,
    pub name: Option<String>,
    pub task_id: Option<String>,
    /// DEAD or CANCELLED (or MISSING when the workflow gave no entry).
    pub state: String,
}

/// The `data` of an `insights_summary` insight, and the result of its job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsightsSummary {
    pub until: DateTime<Utc>,
    pub hours: u32,
    /// Stores in the fan-out.
    pub stores: usize,
    /// Stores whose job succeeded, with their numbers, by the group's order.
    pub succeeded: Vec<StoreLine>,
    /// Stores whose job failed.
    pub failed: Vec<FailedStore>,
    /// Sales and revenue of the stores that succeeded.
    pub sales: i64,
    #[serde(with = "crate::money")]
    pub revenue: BigDecimal,
}

/// Stores the all-stores summary of the fan-out: `stores[i]` is the store of `members[i]`.
pub async fn store_insights_summary(
    conn: &mut AsyncPgConnection,
    stores_in_order: &[i64],
    members: &[Option<CallbackMember>],
    until: DateTime<Utc>,
) -> Result<(Insight, InsightsSummary), ReportError> {
    if members.len() != stores_in_order.len() {
        return Err(ReportError::Invalid {
            field: "members",
            message: format!(
                "{} members for {} stores: the callback's `stores` must list the group's stores \
                 in its order",
                members.len(),
                stores_in_order.len()
            ),
        });
    }
    let known = stores::list_stores(conn).await.map_err(from_store)?;
    let mut summary = InsightsSummary {
        until,
        hours: STORE_INSIGHTS_HOURS,
        stores: stores_in_order.len(),
        succeeded: Vec::new(),
        failed: Vec::new(),
        sales: 0,
        revenue: BigDecimal::from(0),
    };
    for (store_id, member) in stores_in_order.iter().zip(members) {
        let result = member
            .as_ref()
            .filter(|m| m.succeeded())
            .and_then(|m| m.result.clone())
            .and_then(|r| serde_json::from_value::<StoreInsights>(r).ok());
        match result {
            Some(r) => {
                summary.sales += r.summary.sales;
                summary.revenue += &r.summary.revenue;
                summary.succeeded.push(StoreLine {
                    store_id: r.store_id,
                    code: r.code,
                    sales: r.summary.sales,
                    revenue: r.summary.revenue,
                    sunat_undecided: r.sunat_undecided,
                });
            }
            None => {
                let store = known.iter().find(|s| s.id == *store_id);
                summary.failed.push(FailedStore {
                    store_id: *store_id,
                    code: store.map(|s| s.code.clone()),
                    name: store.map(|s| s.name.clone()),
                    task_id: member.as_ref().map(|m| m.task_id.clone()),
                    state: member
                        .as_ref()
                        .map_or_else(|| "MISSING".to_owned(), |m| m.state.clone()),
                });
            }
        }
    }
    summary.revenue = summary.revenue.with_scale(2);
    let json = serde_json::to_value(&summary).map_err(|e| corrupt("insights summary", e))?;
    let period = summary_period(until, STORE_INSIGHTS_HOURS);
    let insight = conn
        .transaction::<_, ReportError, _>(async move |conn| {
            diesel::sql_query(
                "INSERT INTO insights (kind, period, status, data) \
                 VALUES ('insights_summary', $1, 'open', $2) \
                 ON CONFLICT (kind, period) WHERE period IS NOT NULL AND store_id IS NULL \
                 DO UPDATE SET data = EXCLUDED.data, updated_at = now() \
                 WHERE insights.data IS DISTINCT FROM EXCLUDED.data",
            )
            .bind::<Text, _>(&period)
            .bind::<Jsonb, _>(&json)
            .execute(conn)
            .await?;
            close_older(conn, "insights_summary", None).await?;
            Ok(insights::table
                .filter(insights::kind.eq("insights_summary"))
                .filter(insights::store_id.is_null())
                .filter(insights::period.eq(&period))
                .select(Insight::as_select())
                .first(conn)
                .await?)
        })
        .await?;
    Ok((insight, summary))
}

/// The hourly fan-out as a workflow: one `store_insights` per active store (a group, in store id
/// order) and the `insights_summary` callback, which runs even when a member failed. `None` when
/// no store is active.
pub async fn fan_out(
    conn: &mut AsyncPgConnection,
    until: DateTime<Utc>,
) -> Result<Option<WorkflowRequest>, ReportError> {
    let active = stores::active_stores(conn).await.map_err(from_store)?;
    if active.is_empty() {
        return Ok(None);
    }
    let step = |kind: &str, args: serde_json::Value| EnqueueRequest {
        kind: kind.into(),
        args,
        ..Default::default()
    };
    let group = active
        .iter()
        .map(|s| {
            serde_json::to_value(StoreInsightsArgs {
                store_id: s.id,
                until: Some(until),
            })
            .map(|a| step(StoreInsightsArgs::KIND, a))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt("fan-out", e))?;
    let callback = serde_json::to_value(InsightsSummaryArgs {
        stores: active.iter().map(|s| s.id).collect(),
        until: Some(until),
        members: None,
    })
    .map_err(|e| corrupt("fan-out", e))?;
    // `members` is the workflow's to fill in: the callback's args must not carry it.
    let callback = match callback {
        serde_json::Value::Object(mut o) => {
            o.remove("members");
            serde_json::Value::Object(o)
        }
        other => other,
    };
    Ok(Some(WorkflowRequest {
        group: Some(group),
        callback: Some(step(InsightsSummaryArgs::KIND, callback)),
        on_failure: Some(OnFailure::Run),
        ..Default::default()
    }))
}
