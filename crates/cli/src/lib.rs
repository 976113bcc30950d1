//! The `faena` CLI: the clap types and `run`, which hands each command to its module under
//! `commands/`; a library so tests can call it, while `main.rs` only parses and exits.

mod commands;
pub mod exit;

use std::io::Write;

use clap::{Parser, Subcommand};

use commands::common::{CliSettings, Times};
pub use commands::periodic::PeriodicCommand;
pub use commands::products::ProductsCommand;
pub use commands::queues::{InspectCommand, QueueCommand};
pub use commands::reports::ReportCommand;
pub use commands::sales::SalesCommand;
pub use commands::stores::StoresCommand;
pub use commands::sunat::SunatCommand;
pub use commands::tasks::{EnqueueArgs, TasksCommand, WorkflowsCommand};
pub use commands::users::UsersCommand;
use commands::{infra, periodic, products, queues, reports, sales, stores, sunat, tasks, users};

/// Faena's operator CLI: migrate, check infrastructure, enqueue and inspect jobs.
#[derive(Debug, Parser)]
#[command(name = "faena", version, about)]
pub struct Cli {
    /// Print JSON instead of tables and sentences (every command).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print times in UTC instead of the business zone `TZ` (a schedule's runs: instead of its own
    /// zone). JSON times are always UTC (RFC 3339).
    #[arg(long, global = true)]
    pub utc: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (idempotent).
    Migrate,
    /// Check PostgreSQL and Redis; exits 1 when one is down.
    CheckInfra,
    /// Enqueue a job (or --count copies, in batches).
    Enqueue(EnqueueArgs),
    /// Inspect or act on tasks.
    Tasks {
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// Inspect workflows (chains and groups; start one with `faena enqueue KIND --then KIND`).
    Workflows {
        #[command(subcommand)]
        command: WorkflowsCommand,
    },
    /// Queue statistics.
    Queues,
    /// Pause or resume a queue.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Live workers.
    Workers,
    /// The job kinds this build knows.
    Kinds,
    /// Celery-style inspection: running tasks, scheduled tasks, stats.
    Inspect {
        #[command(subcommand)]
        what: InspectCommand,
    },
    /// Remove waiting (pending and scheduled) or DEAD jobs of a queue.
    Purge {
        queue: String,
        #[arg(long, value_parser = ["pending", "dead"], default_value = "pending")]
        state: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Print shell completions: `faena completions bash > /etc/bash_completion.d/faena`.
    Completions { shell: clap_complete::Shell },
    /// Periodic schedules (beat applies changes within a second).
    Periodic {
        #[command(subcommand)]
        command: PeriodicCommand,
    },
    /// Products: list, add, change (taxation, unit, decimal quantities), as the api checks them.
    Products {
        #[command(subcommand)]
        command: ProductsCommand,
    },
    /// Sales and their SUNAT receipts.
    Sales {
        #[command(subcommand)]
        command: SalesCommand,
    },
    /// The shop's stores: each a SUNAT establishment with its own series.
    Stores {
        #[command(subcommand)]
        command: StoresCommand,
    },
    /// SUNAT's Resumen Diario and Comunicación de Baja documents.
    Sunat {
        #[command(subcommand)]
        command: SunatCommand,
    },
    /// Users of the api. Passwords are read from a prompt, or from the first line of stdin when
    /// it is not a terminal; never from the command line.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Stored reports (the worker's report jobs make them).
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

/// What a command connects to: it requires the settings of those and no others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uses {
    /// Neither (`kinds`, `completions`): no settings are read.
    Nothing,
    /// Redis only: `REDIS_URL`.
    Redis,
    /// PostgreSQL only: `DATABASE_URL`.
    Database,
    /// Both.
    Both,
}

impl Command {
    /// What the command connects to, with its words for a message (`periodic run`).
    pub fn uses(&self) -> (Uses, &'static str) {
        match self {
            Self::Kinds => (Uses::Nothing, "kinds"),
            Self::Completions { .. } => (Uses::Nothing, "completions"),
            Self::Migrate => (Uses::Database, "migrate"),
            Self::CheckInfra => (Uses::Both, "check-infra"),
            Self::Enqueue(_) => (Uses::Redis, "enqueue"),
            Self::Tasks { .. } => (Uses::Redis, "tasks"),
            Self::Workflows { .. } => (Uses::Redis, "workflows"),
            Self::Queues => (Uses::Redis, "queues"),
            Self::Queue { .. } => (Uses::Redis, "queue"),
            Self::Workers => (Uses::Redis, "workers"),
            Self::Inspect { .. } => (Uses::Redis, "inspect"),
            Self::Purge { .. } => (Uses::Redis, "purge"),
            Self::Periodic {
                command: PeriodicCommand::Run { .. },
            } => (Uses::Both, "periodic run"),
            Self::Periodic { .. } => (Uses::Database, "periodic"),
            Self::Sales {
                command: SalesCommand::Send { .. },
            } => (Uses::Both, "sales send"),
            Self::Sales { .. } => (Uses::Database, "sales"),
            Self::Sunat { .. } => (Uses::Database, "sunat"),
            Self::Users { .. } => (Uses::Database, "users"),
            Self::Stores { .. } => (Uses::Database, "stores"),
            Self::Products { .. } => (Uses::Database, "products"),
            Self::Report { .. } => (Uses::Database, "report"),
        }
    }
}

/// Fails unless the URLs `uses` needs are set, naming each missing one and what needs it.
fn require(settings: &CliSettings, uses: Uses, words: &str) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if matches!(uses, Uses::Database | Uses::Both) {
        if let Err(e) = settings.database_url() {
            missing.push(format!("`faena {words}` uses PostgreSQL: {e}"));
        }
    }
    if matches!(uses, Uses::Redis | Uses::Both) {
        if let Err(e) = settings.redis_url() {
            missing.push(format!("`faena {words}` uses Redis: {e}"));
        }
    }
    anyhow::ensure!(missing.is_empty(), "{}", missing.join("\n"));
    Ok(())
}

/// Runs a command, writing to `out`; returns the exit code.
pub async fn run(cli: Cli, out: &mut (impl Write + Send)) -> anyhow::Result<u8> {
    let json = cli.json;
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "faena", &mut buf);
            out.write_all(&buf)?;
            return Ok(exit::OK);
        }
        Command::Kinds => return tasks::kinds(json, out),
        _ => {}
    }
    let settings = CliSettings::from_env_with_optional_urls()?;
    let (uses, words) = cli.command.uses();
    require(&settings, uses, words)?;
    let times = Times::new(settings.tz, cli.utc);
    match cli.command {
        Command::Migrate => infra::migrate(&settings, json, out).await,
        Command::CheckInfra => infra::check_infra(&settings, json, out).await,
        Command::Enqueue(args) => tasks::enqueue(&settings, args, json, out).await,
        Command::Tasks { command } => tasks::run(&settings, command, json, &times, out).await,
        Command::Workflows { command } => tasks::workflows(&settings, command, json, out).await,
        Command::Queues => queues::queues(&settings, json, out).await,
        Command::Queue { command } => queues::pause_resume(&settings, command, json, out).await,
        Command::Workers => queues::workers(&settings, json, &times, out).await,
        Command::Inspect { what } => queues::inspect(&settings, what, json, &times, out).await,
        Command::Purge { queue, state, yes } => {
            queues::purge(&settings, &queue, &state, yes, json, out).await
        }
        Command::Periodic { command } => periodic::run(&settings, command, json, &times, out).await,
        Command::Users { command } => users::run(&settings, command, json, &times, out).await,
        Command::Stores { command } => stores::run(&settings, command, json, out).await,
        Command::Sales { command } => sales::run(&settings, command, json, &times, out).await,
        Command::Sunat { command } => sunat::run(&settings, command, json, &times, out).await,
        Command::Products { command } => products::run(&settings, command, json, out).await,
        Command::Report { command } => reports::run(&settings, command, json, &times, out).await,
        Command::Completions { .. } | Command::Kinds => {
            anyhow::bail!("completions and kinds run before settings are read")
        }
    }
}
