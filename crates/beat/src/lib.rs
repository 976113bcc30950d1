//! faena-beat: the only process that schedules periodic jobs, exactly once per tick with any number
//! of beat processes running.
//!
//! - Leadership: a lease in Redis, renewed every TTL/3. Only the holder enqueues, and it stops as soon
//!   as it cannot prove it still holds the lease (its last renewal is older than the TTL minus a margin).
//! - Schedules live in PostgreSQL (`periodic_tasks`) and are reloaded every second, so edits made through
//!   the api or the CLI apply within that.
//! - Every tick is enqueued with the idempotency key `periodic:<name>:<tick ms>`: a failover, a restart
//!   or a second leader during a split can never enqueue a tick twice.
//! - Missed ticks (downtime): a schedule enqueues its latest missed tick once if it is within one period
//!   (the grace); otherwise it skips them and says so in the log.
//!
//! Beat only enqueues, through the same `Broker::enqueue` as the api; it does not depend on the worker
//! crate and never runs job code.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use faena_broker::{Broker, BrokerError};
use faena_core::db::PgPool;
use faena_core::periodic::{self, PeriodicTask};
use faena_core::schedule::Schedule;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The leader role name in Redis.
pub const ROLE: &str = "beat";

/// How beat runs.
#[derive(Debug, Clone)]
pub struct BeatConfig {
    /// The leadership lease: a dead leader is replaced within it.
    pub lease_ttl: Duration,
    /// How often schedules are re-read from PostgreSQL.
    pub reload_every: Duration,
}

impl Default for BeatConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(10),
            reload_every: Duration::from_secs(1),
        }
    }
}

/// What a beat did while it ran.
#[derive(Debug, Clone, Default)]
pub struct BeatReport {
    /// Times this instance became leader.
    pub terms: u64,
    /// Ticks it enqueued.
    pub enqueued: u64,
    /// Delay from each tick's time to the end of its enqueue, in microseconds.
    pub delays_us: Vec<u64>,
}

struct Entry {
    task: PeriodicTask,
    schedule: Schedule,
    tz: Tz,
    next: Option<DateTime<Utc>>,
    /// After a failed enqueue, when to try the same tick again.
    retry_at: Option<Instant>,
}

impl Entry {
    /// True when the stored definition differs in a way that changes the ticks.
    fn same_definition(&self, row: &PeriodicTask) -> bool {
        self.task.cron == row.cron
            && self.task.interval_secs == row.interval_secs
            && self.task.timezone == row.timezone
    }
}

/// True while the last successful lease renewal still covers now.
fn leading(until: Option<Instant>) -> bool {
    until.is_some_and(|u| Instant::now() < u)
}

fn instant_of(t: DateTime<Utc>) -> Instant {
    let now = Utc::now();
    Instant::now() + (t - now).to_std().unwrap_or(Duration::ZERO)
}

/// Runs until `stop` turns true.
pub async fn run(
    broker: Broker,
    db: PgPool,
    config: BeatConfig,
    mut stop: watch::Receiver<bool>,
) -> BeatReport {
    let instance = format!("beat:{}:{}", std::process::id(), ulid::Ulid::new());
    let mut report = BeatReport::default();
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut warned: HashSet<String> = HashSet::new();
    // The last tick this beat enqueued per schedule: the database learns it a moment later (recorded in
    // the background), so a schedule reloaded meanwhile must not fire that tick again.
    let mut fired: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut recording = tokio::task::JoinSet::new();
    let mut leader_until: Option<Instant> = None;
    let mut next_renew = Instant::now();
    // Schedules are read by a task of their own, so a slow database never delays a tick or a renewal.
    let (rows_tx, mut rows_rx) = watch::channel::<Option<Vec<PeriodicTask>>>(None);
    let reader = tokio::spawn(read_schedules(db.clone(), config.reload_every, rows_tx));
    // Stop enqueuing a little before the lease could have expired in Redis.
    let margin = (config.lease_ttl / 5).min(Duration::from_secs(1));
    info!(instance = %instance, "beat started");
    loop {
        let is_leader = leading(leader_until);
        let mut wake = next_renew;
        if is_leader {
            for e in entries.values() {
                if let Some(n) = e.next {
                    wake = wake.min(e.retry_at.unwrap_or_else(|| instant_of(n)));
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep_until(wake) => {}
            changed = rows_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                // Always mark the rows seen: an unseen value would wake this loop again at once.
                let rows = rows_rx.borrow_and_update().clone();
                if leading(leader_until) {
                    if let Some(rows) = rows {
                        apply(&db, &broker, rows, &mut entries, &mut warned, &fired);
                    }
                }
            }
        }
        if Instant::now() >= next_renew {
            let asked = Instant::now();
            match broker
                .acquire_leadership(ROLE, &instance, config.lease_ttl)
                .await
            {
                Ok(true) => {
                    if leader_until.is_none_or(|u| asked >= u) {
                        report.terms += 1;
                        faena_core::metrics::beat_leader(true);
                        info!(instance = %instance, "became the leader: scheduling");
                        // Entries kept from an earlier term resume where they were (a tick another
                        // leader already enqueued is deduplicated by its key); new ones catch up.
                        let rows = rows_rx.borrow_and_update().clone();
                        if let Some(rows) = rows {
                            apply(&db, &broker, rows, &mut entries, &mut warned, &fired);
                        }
                    }
                    leader_until = Some(asked + config.lease_ttl - margin);
                }
                Ok(false) => {
                    if leader_until.take().is_some() {
                        faena_core::metrics::beat_leader(false);
                        warn!(instance = %instance, "lost leadership: not scheduling");
                    }
                    // Another beat leads: whatever we knew of the schedules is stale now.
                    entries.clear();
                }
                Err(e) => {
                    warn!(error = %e, "cannot renew leadership; scheduling stops when the lease runs out")
                }
            }
            next_renew = Instant::now() + config.lease_ttl / 3;
        }
        if !leading(leader_until) {
            continue;
        }
        fire_due(
            &broker,
            &db,
            &mut entries,
            &mut report,
            leader_until,
            &mut fired,
            &mut recording,
        )
        .await;
        while recording.try_join_next().is_some() {}
    }
    reader.abort();
    // Let the runs already enqueued reach the database.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while recording.join_next().await.is_some() {}
    })
    .await;
    if leader_until.is_some() {
        if let Err(e) = broker.release_leadership(ROLE, &instance).await {
            warn!(error = %e, "could not give up leadership; it expires by itself");
        }
    }
    info!(instance = %instance, enqueued = report.enqueued, "beat stopped");
    report
}

/// Reads the schedules every `every` and publishes them.
async fn read_schedules(db: PgPool, every: Duration, tx: watch::Sender<Option<Vec<PeriodicTask>>>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rows = async {
            let mut conn = db.get().await?;
            Ok::<_, anyhow::Error>(periodic::list(&mut conn).await?)
        }
        .await;
        match rows {
            Ok(rows) => {
                if tx.send(Some(rows)).is_err() {
                    return;
                }
            }
            Err(e) => warn!(error = %e, "cannot read schedules; keeping the ones loaded"),
        }
    }
}

/// Brings the in-memory schedules in line with the stored rows.
fn apply(
    db: &PgPool,
    broker: &Broker,
    rows: Vec<PeriodicTask>,
    entries: &mut HashMap<String, Entry>,
    warned: &mut HashSet<String>,
    fired: &HashMap<String, DateTime<Utc>>,
) {
    let now = Utc::now();
    let mut seen = HashSet::new();
    for row in rows {
        if !row.enabled || row.expires_at.is_some_and(|e| e <= now) {
            continue;
        }
        if broker.catalog().get(&row.kind).is_none() {
            if warned.insert(row.name.clone()) {
                warn!(schedule = %row.name, kind = %row.kind, "skipping schedule: its kind is not registered in this build");
            }
            continue;
        }
        let (schedule, tz) = match (row.schedule(), row.tz()) {
            (Ok(s), Ok(tz)) => (s, tz),
            (Err(e), _) | (_, Err(e)) => {
                if warned.insert(row.name.clone()) {
                    warn!(schedule = %row.name, error = %e, "skipping schedule: it does not parse");
                }
                continue;
            }
        };
        warned.remove(&row.name);
        seen.insert(row.name.clone());
        if let Some(e) = entries.get_mut(&row.name) {
            if e.same_definition(&row) {
                e.task = row;
                continue;
            }
            // The schedule was edited: its next tick counts from now, with no catch-up.
            let next = schedule.next_after(tz, now.max(row.last_run_at.unwrap_or(now)));
            info!(schedule = %row.name, new = %schedule, next = ?next, "schedule changed");
            *e = Entry {
                task: row,
                schedule,
                tz,
                next,
                retry_at: None,
            };
            continue;
        }
        let next = first_tick(db, &row, fired.get(&row.name).copied(), &schedule, tz, now);
        debug!(schedule = %row.name, next = ?next, "loaded schedule");
        entries.insert(
            row.name.clone(),
            Entry {
                task: row,
                schedule,
                tz,
                next,
                retry_at: None,
            },
        );
    }
    entries.retain(|name, _| seen.contains(name));
}

/// The first tick to fire for a schedule just loaded: its latest missed tick when that is within the
/// grace (one period), else the next one.
fn first_tick(
    db: &PgPool,
    row: &PeriodicTask,
    fired: Option<DateTime<Utc>>,
    schedule: &Schedule,
    tz: Tz,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let Some(last) = row.last_run_at.max(fired) else {
        return schedule.next_after(tz, now);
    };
    let (latest, missed) = schedule.missed(tz, last, now);
    let Some(latest) = latest else {
        return schedule.next_after(tz, last);
    };
    let grace = schedule.period_after(tz, latest);
    if now - latest <= grace {
        if missed > 1 {
            info!(schedule = %row.name, missed, tick = %latest, "missed ticks while down: enqueuing the latest once");
        }
        return Some(latest);
    }
    warn!(schedule = %row.name, missed, last_missed = %latest, "missed ticks older than the grace period: skipped");
    let (db, name) = (db.clone(), row.name.clone());
    tokio::spawn(async move {
        let result = async {
            let mut conn = db.get().await?;
            periodic::skip_to(&mut conn, &name, latest).await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        if let Err(e) = result {
            warn!(schedule = %name, error = %e, "could not record the skipped ticks");
        }
    });
    schedule.next_after(tz, now)
}

async fn fire_due(
    broker: &Broker,
    db: &PgPool,
    entries: &mut HashMap<String, Entry>,
    report: &mut BeatReport,
    leader_until: Option<Instant>,
    fired: &mut HashMap<String, DateTime<Utc>>,
    recording: &mut tokio::task::JoinSet<()>,
) {
    let now = Utc::now();
    let mut done_one_off = Vec::new();
    for (name, e) in entries.iter_mut() {
        let Some(tick) = e.next.filter(|t| *t <= now) else {
            continue;
        };
        if e.retry_at.is_some_and(|r| Instant::now() < r) {
            continue;
        }
        if !leading(leader_until) {
            return;
        }
        match broker.enqueue(e.task.request(tick)).await {
            Ok(id) => {
                let delay = (Utc::now() - tick).num_microseconds().unwrap_or(0).max(0) as u64;
                report.enqueued += 1;
                fired.insert(name.clone(), tick);
                faena_core::metrics::beat_tick(name);
                if report.delays_us.len() < 1_000_000 {
                    report.delays_us.push(delay);
                }
                info!(schedule = %name, task_id = %id, kind = %e.task.kind, tick = %tick, delay_ms = delay as f64 / 1000.0, "enqueued periodic job");
                let (pool, schedule_name) = (db.clone(), name.clone());
                recording.spawn(async move {
                    let result = async {
                        let mut conn = pool.get().await?;
                        periodic::record_run(&mut conn, &schedule_name, tick).await?;
                        Ok::<_, anyhow::Error>(())
                    }
                    .await;
                    if let Err(e) = result {
                        warn!(schedule = %schedule_name, error = %e, "could not record the run (the tick is enqueued)");
                    }
                });
                e.retry_at = None;
                e.next = e.schedule.next_after(e.tz, tick);
                if e.task.one_off {
                    done_one_off.push(name.clone());
                }
            }
            Err(BrokerError::Enqueue(err)) => {
                warn!(schedule = %name, error = %err, "schedule cannot be enqueued; skipping this tick");
                e.next = e.schedule.next_after(e.tz, tick);
            }
            Err(err) => {
                warn!(schedule = %name, tick = %tick, error = %err, "enqueue failed; retrying the same tick");
                e.retry_at = Some(Instant::now() + Duration::from_millis(500));
            }
        }
    }
    for name in done_one_off {
        entries.remove(&name);
    }
}
