//! The report and cleanup jobs: `sunat_daily_report`, `sales_summary`, `stock_alerts` and
//! `cleanup_old_files`. Each is idempotent (see `faena_shop::reports`, `insights`, `retention`);
//! beat schedules them (seeded in the periodic_tasks migration) and `faena enqueue KIND` starts
//! one by hand.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DurationRound, Utc};
use faena_core::db::PgPool;
use faena_core::jobs::JobError;
use faena_core::settings::RetentionSettings;
use faena_core::Settings;
use faena_shop::jobs::{
    CleanupOldFilesArgs, SalesSummaryArgs, StockAlertsArgs, SunatDailyReportArgs,
};
use faena_shop::reports::ReportError;
use faena_shop::{insights, reports, retention};
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

    /// Registers the four kinds.
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
            async move { jobs.stock_alerts().await }
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
        let until = match a.until {
            Some(u) => u,
            None => Utc::now()
                .duration_trunc(chrono::Duration::hours(1))
                .map_err(|e| JobError::Permanent(e.into()))?,
        };
        let mut conn = self.conn().await?;
        let insight = insights::store_sales_summary(&mut conn, until, a.hours.get())
            .await
            .map_err(job_err)?;
        tracing::info!(period = ?insight.period, "stored the sales summary");
        Ok(serde_json::json!({ "insight_id": insight.id, "summary": insight.data }))
    }

    async fn stock_alerts(&self) -> Result<Value, JobError> {
        let mut conn = self.conn().await?;
        let r = insights::refresh_stock_alerts(&mut conn)
            .await
            .map_err(job_err)?;
        tracing::info!(
            opened = r.opened,
            closed = r.closed,
            open = r.open,
            "refreshed stock alerts"
        );
        to_value(&r)
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
