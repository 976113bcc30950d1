//! `faena-bench`: thin entry point of the load generator; the measurements are in the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    faena_bench::run(faena_bench::Args::parse()).await
}
