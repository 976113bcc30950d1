//! `faena-worker`: thin entry point; the runtime lives in the library so tests can start it.

use std::process::ExitCode;

use clap::Parser;
use faena_core::settings::parse_queue_list;

/// Runs Faena jobs from Redis until SIGTERM or SIGINT.
#[derive(Debug, Parser)]
#[command(name = "faena-worker", version)]
struct Args {
    /// Comma-separated queues to consume (default: FAENA_WORKER_QUEUES, else every queue).
    #[arg(long, value_parser = parse_queue_list)]
    queues: Option<std::vec::Vec<faena_core::QueueName>>,
    /// Jobs run at once (default: FAENA_WORKER_CONCURRENCY, else 32 per core).
    #[arg(long)]
    concurrency: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match faena_worker::process::run(args.queues, args.concurrency).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("faena-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
