//! `faena`: thin entry point of the operator CLI.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = faena_cli::Cli::parse();
    let mut out = std::io::stdout();
    match faena_cli::run(cli, &mut out).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("faena: {e:#}");
            ExitCode::from(faena_cli::exit::USAGE)
        }
    }
}
