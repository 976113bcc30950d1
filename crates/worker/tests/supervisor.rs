//! Under a real supervisord (programs configured like `supervisor/faena.conf`), a worker killed with
//! `kill -9` is restarted with a new pid, and every enqueued job still succeeds; beat runs alongside.
//!
//! Needs `supervisord` and `supervisorctl` on PATH (`scripts/test-deps.sh` installs them; `just test`
//! runs it) and the `faena-beat` binary next to `faena-worker` (`cargo test --workspace` builds it).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use faena_broker::TaskState;
use faena_core::jobs::EnqueueRequest;
use faena_core::QueueName;
use faena_testkit::{wait_for, TestDb, TestRedis};
use serde_json::json;

/// Jobs of 50 ms: half enqueued before the kill, half right after it (so the restarted worker has
/// work whatever the timing).
const JOBS: u64 = 200;
/// Small, so the first 100 jobs take a few seconds and the kill lands while jobs run.
const CONCURRENCY: usize = 4;
/// Short, so the jobs the killed worker held come back quickly (default 30 s).
const LEASE_SECS: u64 = 5;

/// `name` on PATH, or a failure saying how to install it.
fn require_on_path(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`{name}` is not on PATH: this test needs supervisord. Install it with \
                 `scripts/test-deps.sh` (Debian package `supervisor`; `just test` runs it first)"
            )
        })
}

/// A value for supervisord's `environment=` / `command=`: `%` is doubled (the config is
/// %-interpolated) and the value is double-quoted.
fn quoted(value: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !value.contains(['"', '\n', '\\']),
        "a value for the supervisord config holds a quote, backslash or newline \
         (not shown: it may be a URL with a password)"
    );
    Ok(format!("\"{}\"", value.replace('%', "%%")))
}

fn plain(value: &str) -> String {
    value.replace('%', "%%")
}

/// One program's state and pid as `supervisorctl status NAME` reports them.
#[derive(Debug, Clone, PartialEq)]
struct ProgramStatus {
    state: String,
    pid: Option<u32>,
}

/// A supervisord of our own, running in the foreground as our child, with its socket, pid file,
/// config and logs in a private directory. Dropping it shuts it down (and kills what is left).
struct Supervisord {
    dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
    keep_dir: bool,
}

impl Supervisord {
    fn start(
        supervisord: &Path,
        worker: &Path,
        beat: &Path,
        db: &TestDb,
        r: &TestRedis,
    ) -> anyhow::Result<Self> {
        let mut dir = std::env::temp_dir().join(faena_testkit::unique("supervisor"));
        // A Unix socket path is limited to about 107 bytes.
        if dir.join("supervisor.sock").as_os_str().len() > 100 {
            dir = PathBuf::from("/tmp").join(faena_testkit::unique("supervisor"));
        }
        std::fs::create_dir_all(&dir)?;
        let d = plain(&dir.to_string_lossy());
        let environment = [
            ("DATABASE_URL", db.url.as_str()),
            ("REDIS_URL", r.url.as_str()),
            ("FAENA_REDIS_PREFIX", r.prefix.as_str()),
            ("FAENA_LOG", "warn"),
            ("FAENA_LEASE_SECS", &LEASE_SECS.to_string()),
        ]
        .iter()
        .map(|(k, v)| Ok(format!("{k}={}", quoted(v)?)))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(",");
        let program = |name: &str, command: String, log: &str| {
            format!(
                "[program:{name}]\n\
                 command={command}\n\
                 directory={d}\n\
                 autostart=true\n\
                 autorestart=true\n\
                 startsecs=1\n\
                 stopsignal=TERM\n\
                 stopwaitsecs=600\n\
                 redirect_stderr=true\n\
                 stdout_logfile={d}/{log}\n\
                 environment={environment}\n\n"
            )
        };
        let mut conf_text = format!(
            "[unix_http_server]\n\
             file={d}/supervisor.sock\n\
             chmod=0700\n\n\
             [supervisord]\n\
             nodaemon=true\n\
             logfile={d}/supervisord.log\n\
             pidfile={d}/supervisord.pid\n\
             childlogdir={d}\n\
             identifier=faena-test\n\n\
             [rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\n\
             serverurl=unix://{d}/supervisor.sock\n\n"
        );
        conf_text += &program(
            "faena-worker",
            format!(
                "{} --concurrency {CONCURRENCY}",
                quoted(&worker.to_string_lossy())?
            ),
            "worker.log",
        );
        conf_text += &program("faena-beat", quoted(&beat.to_string_lossy())?, "beat.log");
        let conf = dir.join("supervisord.conf");
        std::fs::write(&conf, conf_text)?;
        // A clean environment: the programs get only what the config gives them (plus PATH), not
        // the FAENA_* settings of whoever runs the tests. Their working directory holds no .env.
        let child = Command::new(supervisord)
            .arg("-c")
            .arg(&conf)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self {
            dir,
            conf,
            child: Some(child),
            keep_dir: false,
        })
    }

    fn ctl(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new("supervisorctl")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::null())
            .output()?)
    }

    /// Fails when supervisord itself has exited (a bad config, a port or socket clash...).
    fn ensure_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                anyhow::bail!("supervisord exited ({status}); see {}", self.dir.display());
            }
        }
        Ok(())
    }

    /// The program's state, or `None` while supervisord does not answer yet.
    fn status(&mut self, name: &str) -> anyhow::Result<Option<ProgramStatus>> {
        self.ensure_alive()?;
        // supervisorctl exits non-zero for any state but RUNNING: read the output, not the status.
        let out = self.ctl(&["status", name])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find(|l| l.starts_with(name)) else {
            return Ok(None);
        };
        let mut words = line.split_whitespace().skip(1);
        let state = words.next().unwrap_or_default().to_owned();
        let pid = line
            .split_once("pid ")
            .and_then(|(_, rest)| rest.split(',').next())
            .and_then(|p| p.trim().parse().ok());
        Ok(Some(ProgramStatus { state, pid }))
    }

    /// Waits until `name` is RUNNING with a pid other than `not`, and returns that pid.
    async fn wait_running(
        &mut self,
        name: &str,
        not: Option<u32>,
        deadline: Duration,
    ) -> anyhow::Result<u32> {
        let what = match not {
            Some(old) => format!("{name} RUNNING again with a pid other than {old}"),
            None => format!("{name} RUNNING"),
        };
        wait_for(&what, deadline, || {
            // supervisorctl runs synchronously here; the future only inspects its answer.
            let status = self.status(name);
            async move {
                Ok(status?.and_then(|s| match s.pid {
                    Some(pid) if s.state == "RUNNING" && Some(pid) != not && pid != 0 => Some(pid),
                    _ => None,
                }))
            }
        })
        .await
    }

    /// `supervisorctl shutdown`, then waits for supervisord to exit (it stops the programs with
    /// SIGTERM first). Kills what is left after `grace`.
    fn shutdown(&mut self, grace: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pids: Vec<u32> = self
            .ctl(&["pid", "all"])
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .filter(|&p| p != 0)
                    .collect()
            })
            .unwrap_or_default();
        let _ = self.ctl(&["shutdown"]);
        let start = Instant::now();
        while start.elapsed() < grace {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            // Bounded cleanup polling; the test's own synchronisation uses wait_for.
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in pids {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("supervisord did not shut down within {grace:?}: killed it and its programs")
    }

    /// The tail of every log in the directory, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["supervisord.log", "worker.log", "beat.log"] {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(self.dir.join(name)) {
                let _ = f.read_to_string(&mut text);
            }
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            out += &format!("----- {name} (last {} lines)\n", tail.len());
            for l in tail {
                out += l;
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.keep_dir {
            // An assertion failed: keep the evidence.
            self.keep_dir = true;
            eprintln!("{}", self.logs());
        }
        if let Err(e) = self.shutdown(Duration::from_secs(60)) {
            eprintln!("supervisor test cleanup: {e:#}");
        }
        if self.keep_dir {
            eprintln!(
                "supervisor test: config and logs kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn kill_nine(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -9 {pid} failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisord_restarts_a_killed_worker_and_every_job_succeeds() -> anyhow::Result<()> {
    let supervisord = require_on_path("supervisord")?;
    require_on_path("supervisorctl")?;
    let worker = PathBuf::from(env!("CARGO_BIN_EXE_faena-worker"));
    let beat = worker.with_file_name("faena-beat");
    anyhow::ensure!(
        beat.is_file(),
        "{} is missing: build it first with `cargo build -p faena-beat` \
         (`cargo test --workspace` builds every binary)",
        beat.display()
    );

    let db = TestDb::new("supervisor").await?;
    let r = TestRedis::new("supervisor")?;
    // Declared after db and r, so it is dropped (and supervisord shut down) before they are.
    let mut sup = Supervisord::start(&supervisord, &worker, &beat, &db, &r)?;
    let result = scenario(&mut sup, &r).await;
    if let Err(e) = &result {
        sup.keep_dir = true;
        eprintln!("supervisor test failed: {e:#}\n{}", sup.logs());
        return result;
    }
    sup.shutdown(Duration::from_secs(60))?;
    Ok(())
}

async fn scenario(sup: &mut Supervisord, r: &TestRedis) -> anyhow::Result<()> {
    let q = QueueName::default_queue();
    let worker_pid = sup
        .wait_running("faena-worker", None, Duration::from_secs(30))
        .await?;
    let beat_pid = sup
        .wait_running("faena-beat", None, Duration::from_secs(30))
        .await?;

    let sleeps = |n: u64| {
        (0..n)
            .map(|_| EnqueueRequest {
                kind: "sleep".into(),
                args: json!({"ms": 50}),
                ..Default::default()
            })
            .collect::<Vec<_>>()
    };
    let mut ids = r.broker.enqueue_many(sleeps(JOBS / 2)).await?;

    // Kill the worker while it works: once it has finished some jobs, with most still to run.
    wait_for(
        "the supervised worker to finish its first job",
        Duration::from_secs(30),
        || async { Ok((r.broker.stats(&q).await?.succeeded > 0).then_some(())) },
    )
    .await?;
    // The pid supervisorctl reports, as an operator would look it up.
    let out = sup.ctl(&["pid", "faena-worker"])?;
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    assert_eq!(pid, worker_pid, "supervisorctl pid and status agree");
    kill_nine(pid)?;
    let at_kill = r.broker.stats(&q).await?;
    // Jobs enqueued after the kill: only the restarted worker can run them.
    ids.extend(r.broker.enqueue_many(sleeps(JOBS - JOBS / 2)).await?);

    let new_pid = sup
        .wait_running("faena-worker", Some(pid), Duration::from_secs(30))
        .await?;
    assert_ne!(new_pid, pid);

    // The restarted worker runs the rest, and the jobs the killed one held once their lease
    // expires. Beat may enqueue a periodic job of its own, so check our ids, not only counters.
    let ids = ids.to_vec();
    wait_for(
        "all jobs to succeed after the restart",
        Duration::from_secs(LEASE_SECS * 3 + 30),
        || async {
            if r.broker.stats(&q).await?.succeeded < JOBS {
                return Ok(None);
            }
            for id in &ids {
                match r.broker.task(id).await? {
                    Some(t) if t.state == TaskState::Succeeded => {}
                    _ => return Ok(None),
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    let stats = r.broker.stats(&q).await?;
    assert_eq!(stats.dead, 0, "no job died: {stats:?}");
    // The jobs the killed worker held ran again: their killed attempt counts.
    let mut rerun = 0;
    for id in &ids {
        if r.broker.task(id).await?.is_some_and(|t| t.attempts >= 2) {
            rerun += 1;
        }
    }
    eprintln!(
        "supervisor test: at the kill {} of the first {} done and {} running; {rerun} ran twice",
        at_kill.succeeded,
        JOBS / 2,
        at_kill.running
    );
    if at_kill.running > 0 {
        assert!(rerun >= 1, "the jobs held by the killed worker ran again");
    }

    // Beat ran the whole time under supervisord without being restarted.
    let beat_now = sup
        .status("faena-beat")?
        .ok_or_else(|| anyhow::anyhow!("supervisorctl status faena-beat gave no answer"))?;
    assert_eq!(beat_now.state, "RUNNING", "{beat_now:?}");
    assert_eq!(beat_now.pid, Some(beat_pid), "beat was not restarted");
    // And the restarted worker is the one still running.
    let worker_now = sup.status("faena-worker")?;
    assert_eq!(
        worker_now.and_then(|s| s.pid),
        Some(new_pid),
        "the worker stayed up after its restart"
    );
    Ok(())
}
