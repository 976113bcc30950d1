//! The report and cleanup jobs: `sunat_daily_report`, `sales_summary`, `stock_alerts`,
//! `out_of_stock_alerts` and `cleanup_old_files`, and the per-store insights fanned out as a
//! workflow: `generate_insights` starts a group of `store_insights` (one per active store) with an
//! `insights_summary` callback. Each is idempotent (see `faena_shop::reports`, `insights`,
//! `store_insights`, `retention`); beat schedules them (seeded by migrations) and
//! `faena enqueue KIND` starts one by hand.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DurationRound, Utc};
use faena_core::db::PgPool;
use faena_core::jobs::JobError;
use faena_core::settings::RetentionSettings;
use faena_core::Settings;
use faena_shop::insights::AlertScope;
use faena_shop::jobs::{
    CleanupOldFilesArgs, GenerateInsightsArgs, InsightsSummaryArgs, OutOfStockAlertsArgs,
    SalesSummaryArgs, StockAlertsArgs, StoreInsightsArgs, SunatDailyReportArgs,
};
use faena_shop::reports::ReportError;
use faena_shop::{insights, reports, retention, store_insights};
use serde_json::Value;

use crate::handlers::{Handlers, JobContext};

/// What the report jobs share.
#[derive(Clone)]
pub struct ReportJobs {
    db: PgPool,
    files_dir: PathBuf,
    tz: chrono_tz::Tz,
    retention: RetentionSettings,
}

impl std::fmt::Debug for ReportJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportJobs")
            .field("files_dir", &self.files_dir)
            .field("tz", &self.tz)
            .field("retention", &self.retention)
            .finish()
    }
}

/// A database or disk problem is worth a retry; anything else is not.
fn job_err(e: ReportError) -> JobError {
    match e {
        ReportError::Db(_) | ReportError::Io { .. } => JobError::Retry(anyhow::anyhow!(e)),
        ReportError::Invalid { .. } | ReportError::NotFound(_) | ReportError::Corrupt { .. } => {
            JobError::Permanent(anyhow::anyhow!(e))
        }
    }
}

/// `until`, or the start of the current hour.
fn this_hour(until: Option<chrono::DateTime<Utc>>) -> Result<chrono::DateTime<Utc>, JobError> {
    match until {
        Some(u) => Ok(u),
        None => Utc::now()
            .duration_trunc(chrono::Duration::hours(1))
            .map_err(|e| JobError::Permanent(e.into())),
    }
}

fn to_value(v: &impl serde::Serialize) -> Result<Value, JobError> {
    serde_json::to_value(v).map_err(|e| JobError::Permanent(e.into()))
}

impl ReportJobs {
    pub fn from_settings(db: PgPool, settings: &Settings) -> Self {
        Self {
            db,
            files_dir: settings.files_dir.clone(),
            tz: settings.tz,
            retention: settings.retention,
        }
    }

    /// Registers its kinds.
    pub fn register(self: Arc<Self>, h: &mut Handlers) {
        let jobs = Arc::clone(&self);
        h.register(move |a: SunatDailyReportArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.daily_report(a).await }
        });
        let jobs = Arc::clone(&self);
        h.register(move |a: SalesSummaryArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.sales_summary(a).await }
        });
        let jobs = Arc::clone(&self);
        h.register(move |_: StockAlertsArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.stock_alerts(AlertScope::All).await }
        });
        let jobs = Arc::clone(&self);
        h.register(move |_: OutOfStockAlertsArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.stock_alerts(AlertScope::OutOfStock).await }
        });
        let jobs = Arc::clone(&self);
        h.register(move |a: GenerateInsightsArgs, ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.generate_insights(a, &ctx).await }
        });
        let jobs = Arc::clone(&self);
        h.register(move |a: StoreInsightsArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.store_insights(a).await }
        });
        let jobs = Arc::clone(&self);
        h.register(move |a: InsightsSummaryArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.insights_summary(a).await }
        });
        let jobs = self;
        h.register(move |a: CleanupOldFilesArgs, _ctx: JobContext| {
            let jobs = Arc::clone(&jobs);
            async move { jobs.cleanup(a).await }
        });
    }

    async fn conn(&self) -> Result<faena_core::db::PooledConnection, JobError> {
        super::shop::connection(&self.db).await
    }

    async fn daily_report(&self, a: SunatDailyReportArgs) -> Result<Value, JobError> {
        let date = a
            .date
            .unwrap_or_else(|| Utc::now().with_timezone(&self.tz).date_naive());
        let mut conn = self.conn().await?;
        let view = reports::generate_daily_report(&mut conn, date, self.tz, &self.files_dir)
            .await
            .map_err(job_err)?;
        let t = &view.report.totals;
        tracing::info!(%date, issued = t.issued, accepted = t.accepted, "stored the daily SUNAT report");
        Ok(serde_json::json!({
            "date": date,
            "issued": t.issued,
            "accepted": t.accepted,
            "rejected": t.rejected,
            "error": t.error,
            "pending": t.pending,
            "success_pct": t.success_pct,
            "total_billed": faena_shop::money::format(&t.total_billed),
            "csv_path": view.csv_path,
        }))
    }

    async fn sales_summary(&self, a: SalesSummaryArgs) -> Result<Value, JobError> {
        let until = this_hour(a.until)?;
        let mut conn = self.conn().await?;
        let insight = insights::store_sales_summary(&mut conn, until, a.hours.get())
            .await
            .map_err(job_err)?;
        tracing::info!(period = ?insight.period, "stored the sales summary");
        Ok(serde_json::json!({ "insight_id": insight.id, "summary": insight.data }))
    }

    async fn stock_alerts(&self, scope: AlertScope) -> Result<Value, JobError> {
        let mut conn = self.conn().await?;
        let r = insights::refresh_alerts(&mut conn, scope)
            .await
            .map_err(job_err)?;
        tracing::info!(
            ?scope,
            opened = r.opened,
            closed = r.closed,
            open = r.open,
            "refreshed stock alerts"
        );
        to_value(&r)
    }

    /// Starts the fan-out: one `store_insights` per active store, then `insights_summary`. A
    /// retry after the start would start a second workflow over the same window; its members and
    /// summary replace the same insights, so the stored result is the same.
    async fn generate_insights(
        &self,
        a: GenerateInsightsArgs,
        ctx: &JobContext,
    ) -> Result<Value, JobError> {
        let until = this_hour(a.until)?;
        let mut conn = self.conn().await?;
        let Some(req) = store_insights::fan_out(&mut conn, until)
            .await
            .map_err(job_err)?
        else {
            tracing::info!("no active store: no insights to generate");
            return Ok(serde_json::json!({ "stores": 0, "workflow_id": null }));
        };
        let stores = req.group.as_ref().map_or(0, Vec::len);
        let started = ctx
            .broker
            .start_workflow(req, None)
            .await
            .map_err(|e| JobError::Retry(anyhow::anyhow!("cannot start the fan-out: {e}")))?;
        tracing::info!(workflow_id = %started.workflow_id, stores, "started the stores' insights");
        Ok(serde_json::json!({
            "workflow_id": started.workflow_id,
            "stores": stores,
            "until": until,
        }))
    }

    async fn store_insights(&self, a: StoreInsightsArgs) -> Result<Value, JobError> {
        let until = this_hour(a.until)?;
        let mut conn = self.conn().await?;
        let (insight, data) = store_insights::store_store_insights(&mut conn, a.store_id, until)
            .await
            .map_err(job_err)?;
        tracing::info!(
            store_id = a.store_id,
            insight_id = insight.id,
            "stored a store's insights"
        );
        to_value(&data)
    }

    async fn insights_summary(&self, a: InsightsSummaryArgs) -> Result<Value, JobError> {
        let until = this_hour(a.until)?;
        let members = a.members.unwrap_or_default();
        let mut conn = self.conn().await?;
        let (insight, summary) =
            store_insights::store_insights_summary(&mut conn, &a.stores, &members, until)
                .await
                .map_err(job_err)?;
        if !summary.failed.is_empty() {
            tracing::warn!(
                failed = ?summary.failed.iter().map(|f| f.store_id).collect::<Vec<_>>(),
                "the insights of some stores failed; the summary names them"
            );
        }
        tracing::info!(
            insight_id = insight.id,
            stores = summary.stores,
            "stored the insights summary"
        );
        to_value(&summary)
    }

    async fn cleanup(&self, a: CleanupOldFilesArgs) -> Result<Value, JobError> {
        let mut conn = self.conn().await?;
        let r = retention::cleanup_old_files(
            &mut conn,
            &self.files_dir,
            self.retention,
            a.dry_run,
            Utc::now(),
        )
        .await
        .map_err(job_err)?;
        tracing::info!(
            dry_run = r.dry_run,
            files = r.files,
            bytes = r.bytes,
            sales = r.sales,
            summaries = r.summaries,
            "cleaned up old receipt files"
        );
        to_value(&r)
    }
}
