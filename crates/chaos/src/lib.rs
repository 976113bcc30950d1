//! Harness of the fault-injection suite: starts Faena's real binaries with their logs in files,
//! signals them (`kill -9`, `SIGSTOP`, `SIGCONT`, `SIGTERM`), and reads back every attempt's start
//! and end from the workers' `faena::attempt` log lines, so a test counts executions exactly.
//!
//! The binaries are the ones `cargo test --workspace` builds next to the test executables
//! (`target/<profile>/faena-worker`, `faena-api`, `faena-beat`).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use faena_testkit::wait_for;

/// The log filter of every process the suite starts: warnings, plus each attempt's life.
pub const LOG_FILTER: &str = "warn,faena::attempt=debug";

/// The path of one of the workspace's binaries, built by `cargo test --workspace`.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test>-<hash>  ->  target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("cannot place {} in a target directory", exe.display()))?;
    let path = dir.join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build the binaries first (`cargo build --bins`, or run the whole \
         workspace's tests with `just test`)",
        path.display()
    );
    Ok(path)
}

/// A directory for one test's logs, removed on drop unless the test panicked or
/// `FAENA_CHAOS_KEEP_LOGS` is set (then kept, and named on stderr, to read the processes' logs).
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(faena_testkit::unique(&format!("chaos-{label}")));
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("FAENA_CHAOS_KEEP_LOGS").is_some() {
            eprintln!("logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One of the binaries, running as our child with its stderr (the logs) in a file. Killed on drop.
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
    pid: u32,
}

impl Proc {
    /// Starts `binary` with `args` and `env` (on top of this process's environment), logging JSON
    /// lines at [`LOG_FILTER`] into `<dir>/<name>.log`.
    pub fn start(
        dir: &Path,
        name: &str,
        binary: &Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("FAENA_LOG", LOG_FILTER)
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
        Ok(Self {
            name: name.to_owned(),
            log,
            pid: child.id(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-TERM`, `-9`) with kill(1).
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_some(), "{} is not running", self.name);
        let status = Command::new("kill")
            .args([signal, &self.pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {signal} {} failed", self.name);
        Ok(())
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.signal("-9")?;
        if let Some(mut c) = self.child.take() {
            c.wait()?;
        }
        Ok(())
    }

    /// Waits until it exits by itself, at most `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        let name = self.name.clone();
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("{name} is not running"))?;
        let status = wait_for(&format!("{name} to exit"), deadline, || {
            let polled = child.try_wait();
            async move { Ok(polled?) }
        })
        .await?;
        self.child = None;
        Ok(status)
    }

    /// Fails if it has exited (a crash the test did not cause), naming its log.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait()? {
                anyhow::bail!(
                    "{} exited by itself ({status}); its log: {}",
                    self.name,
                    self.log.display()
                );
            }
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What happened to an attempt, from a worker's `faena::attempt` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Started,
    /// Ended with this outcome (`succeeded`, `retry`, `dead`, `snoozed`).
    Ended(String),
    /// Stopped without an outcome (lease lost, or stop timeout).
    Stopped,
}

/// One `faena::attempt` line.
#[derive(Debug, Clone)]
pub struct AttemptEvent {
    /// The process (its [`Proc::name`]) that logged it.
    pub process: String,
    pub task_id: String,
    pub attempt: u32,
    pub token: u64,
    pub step: Step,
    pub at: DateTime<Utc>,
}

/// Every attempt line of these processes' logs, in time order.
pub fn attempts(procs: &[&Proc]) -> anyhow::Result<Vec<AttemptEvent>> {
    let mut out = Vec::new();
    for p in procs {
        let file = std::fs::File::open(&p.log)?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            // A process killed mid-write can leave half a line: it is no attempt line.
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["target"] != "faena::attempt" {
                continue;
            }
            let step = match v["message"].as_str() {
                Some("attempt started") => Step::Started,
                Some("attempt ended") => Step::Ended(v["outcome"].as_str().unwrap_or("").into()),
                Some("attempt stopped") => Step::Stopped,
                _ => continue,
            };
            let at = v["timestamp"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .ok_or_else(|| anyhow::anyhow!("an attempt line without a timestamp: {line}"))?;
            out.push(AttemptEvent {
                process: p.name.clone(),
                task_id: v["task_id"].as_str().unwrap_or("").to_owned(),
                attempt: v["attempt"].as_u64().unwrap_or(0) as u32,
                token: v["token"].as_u64().unwrap_or(0),
                step,
                at: at.with_timezone(&Utc),
            });
        }
    }
    out.sort_by_key(|e| e.at);
    Ok(out)
}

/// Per task: how many attempts started, ended with `succeeded`, ended otherwise, were stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub started: u32,
    pub succeeded: u32,
    pub other_end: u32,
    pub stopped: u32,
}

/// [`Counts`] by task id.
pub fn counts(events: &[AttemptEvent]) -> BTreeMap<String, Counts> {
    let mut out: BTreeMap<String, Counts> = BTreeMap::new();
    for e in events {
        let c = out.entry(e.task_id.clone()).or_default();
        match &e.step {
            Step::Started => c.started += 1,
            Step::Ended(o) if o == "succeeded" => c.succeeded += 1,
            Step::Ended(_) => c.other_end += 1,
            Step::Stopped => c.stopped += 1,
        }
    }
    out
}

/// Tasks two of whose attempts ran at the same time, by the logs: an attempt runs from its start
/// to its end or stop line (or for ever, if its process died before writing one).
pub fn overlapping(events: &[AttemptEvent]) -> Vec<String> {
    type Span = (DateTime<Utc>, Option<DateTime<Utc>>);
    let mut spans: BTreeMap<(String, u64), Span> = BTreeMap::new();
    for e in events {
        let key = (e.task_id.clone(), e.token);
        match e.step {
            Step::Started => {
                spans.insert(key, (e.at, None));
            }
            Step::Ended(_) | Step::Stopped => {
                if let Some(s) = spans.get_mut(&key) {
                    s.1 = Some(e.at);
                }
            }
        }
    }
    let mut by_task: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for ((task, _), span) in &spans {
        by_task.entry(task.as_str()).or_default().push(*span);
    }
    by_task
        .into_iter()
        .filter(|(_, s)| {
            s.iter().enumerate().any(|(i, a)| {
                s.iter().skip(i + 1).any(|b| {
                    let a_end = a.1.unwrap_or(DateTime::<Utc>::MAX_UTC);
                    let b_end = b.1.unwrap_or(DateTime::<Utc>::MAX_UTC);
                    a.0 < b_end && b.0 < a_end
                })
            })
        })
        .map(|(t, _)| t.to_owned())
        .collect()
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(task: &str, token: u64, step: Step, secs: i64) -> AttemptEvent {
        AttemptEvent {
            process: "w".into(),
            task_id: task.into(),
            attempt: token as u32,
            token,
            step,
            at: DateTime::from_timestamp(secs, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn overlaps_are_found_and_sequential_attempts_are_not() {
        let events = vec![
            ev("a", 1, Step::Started, 0),
            ev("a", 1, Step::Stopped, 5),
            ev("a", 2, Step::Started, 6),
            ev("a", 2, Step::Ended("succeeded".into()), 7),
            ev("b", 3, Step::Started, 0),
            ev("b", 4, Step::Started, 2),
            ev("b", 4, Step::Ended("succeeded".into()), 3),
        ];
        assert_eq!(overlapping(&events), vec!["b".to_owned()]);
        let c = counts(&events);
        assert_eq!(
            c["a"],
            Counts {
                started: 2,
                succeeded: 1,
                other_end: 0,
                stopped: 1
            }
        );
        assert_eq!(c["b"].started, 2);
    }
}
