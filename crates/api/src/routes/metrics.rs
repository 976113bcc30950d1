//! `GET /metrics`: Prometheus text format. Queue depths are read from the broker at each scrape.
//! `GET /api/metrics/history`: the queues' per-minute history (`faena_broker::history`), for the
//! console's graphs and anyone else.

use actix_web::{get, web, HttpResponse};
use faena_broker::history::{HistoryQuery, MAX_MINUTES};
use faena_core::QueueName;

use crate::auth::AdminCaller;
use crate::error::ApiError;
use crate::responses::{BadInput, NeedsAdmin, Unavailable};
use crate::AppState;

/// Prometheus metrics.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
            content_type = "text/plain"),
    )
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let stats =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.broker.all_stats()).await;
    if let Ok(Ok(stats)) = stats {
        for s in stats {
            faena_core::metrics::queue_depth(
                &s.queue,
                s.pending,
                s.scheduled,
                s.running,
                s.dead,
                s.paused,
            );
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(faena_core::metrics::recorder().render())
}

/// Filters of `GET /api/metrics/history`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// One queue (`default`, `sunat`...); every known queue summed when absent.
    pub queue: Option<String>,
    /// One kind of job (`sunat.send_sale`...); every kind summed when absent.
    pub kind: Option<String>,
    /// The first instant, RFC 3339 (`2026-12-02T09:00:00-05:00`); an hour before `to` when absent.
    pub from: Option<String>,
    /// The end (exclusive), RFC 3339; now when absent. At most 7 days after `from`.
    pub to: Option<String>,
    /// The width of one point: minutes (`5`) or with a unit (`5m`, `1h`, `1d`); from 1 minute to
    /// 1 day. When absent, the smallest whole minutes that give at most 360 points.
    pub step: Option<String>,
}

/// The history of a queue (or of all), one point per step.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct History {
    pub queue: Option<String>,
    pub kind: Option<String>,
    pub from: chrono::DateTime<chrono::Utc>,
    pub to: chrono::DateTime<chrono::Utc>,
    pub step_minutes: u32,
    pub points: Vec<faena_broker::history::HistoryPoint>,
}

fn bad_query(field: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_query", message, Some(field.to_owned()))
}

fn parse_instant(field: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| {
            bad_query(
                field,
                format!(
                    "`{field}` is not an RFC 3339 instant: {s:?}; write it as \
                     2026-12-02T09:00:00-05:00 (or ...Z for UTC)"
                ),
            )
        })
}

/// `5`, `5m`, `2h`, `1d` as minutes, from 1 to 1440.
fn parse_step(s: &str) -> Result<u32, ApiError> {
    let bad = || {
        bad_query(
            "step",
            format!(
                "`step` is not a duration of 1 minute to 1 day: {s:?}; write minutes (`5`) or a \
                 number with m, h or d (`15m`, `1h`, `1d`)"
            ),
        )
    };
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 'm'),
    };
    let n: u32 = digits.parse().map_err(|_| bad())?;
    let minutes = match unit {
        'm' => Some(n),
        'h' => n.checked_mul(60),
        'd' => n.checked_mul(1440),
        _ => None,
    }
    .ok_or_else(bad)?;
    if (1..=1440).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(bad())
    }
}

/// Per-minute counters of outcomes (succeeded, failed, retried, dead) and enqueue-to-start latency
/// percentiles, kept 7 days, summed over `step`. Admins only.
#[utoipa::path(
    tag = "health",
    security(("bearer" = [])),
    params(HistoryParams),
    responses(
        (status = 200, description = "One point per step from `from` to `to`", body = History),
        BadInput,
        NeedsAdmin,
        Unavailable,
    )
)]
#[get("/api/metrics/history")]
pub async fn history(
    _admin: AdminCaller,
    state: web::Data<AppState>,
    params: web::Query<HistoryParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    let queue = match p.queue.as_deref() {
        None | Some("") => None,
        Some(q) => Some(
            QueueName::parse(q)
                .map_err(|e| bad_query("queue", format!("`queue` is not a queue name: {e}")))?,
        ),
    };
    let kind = p.kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind {
        if state.broker.catalog().get(k).is_none() {
            return Err(bad_query(
                "kind",
                format!("`kind` {k:?} is not a kind of job this application knows"),
            ));
        }
    }
    let to = match p.to.as_deref() {
        Some(s) => parse_instant("to", s)?,
        None => chrono::Utc::now(),
    };
    let from = match p.from.as_deref() {
        Some(s) => parse_instant("from", s)?,
        None => to - chrono::Duration::hours(1),
    };
    if from >= to {
        return Err(bad_query(
            "from",
            format!("`from` ({from}) must be before `to` ({to})"),
        ));
    }
    let minutes = (to - from).num_minutes() + 1;
    if minutes > MAX_MINUTES {
        return Err(bad_query(
            "from",
            format!(
                "the history keeps 7 days: `from` ({from}) is more than 7 days before `to` ({to})"
            ),
        ));
    }
    let step_minutes = match p.step.as_deref() {
        Some(s) => parse_step(s)?,
        None => u32::try_from((minutes + 359) / 360).unwrap_or(1440).max(1),
    };
    let points = state
        .broker
        .history(&HistoryQuery {
            queue: queue.clone(),
            kind: kind.clone(),
            from,
            to,
            step_minutes,
        })
        .await?;
    Ok(HttpResponse::Ok().json(History {
        queue: queue.map(|q| q.to_string()),
        kind,
        from,
        to,
        step_minutes,
        points,
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_step;

    #[test]
    fn a_step_reads_minutes_hours_and_days_within_a_day() {
        assert_eq!(parse_step("5").ok(), Some(5));
        assert_eq!(parse_step("15m").ok(), Some(15));
        assert_eq!(parse_step("2h").ok(), Some(120));
        assert_eq!(parse_step("1d").ok(), Some(1440));
        for bad in ["0", "2d", "", "m", "5s", "-1", "1441", "99999999999d", "é"] {
            assert!(parse_step(bad).is_err(), "{bad}");
        }
    }
}
