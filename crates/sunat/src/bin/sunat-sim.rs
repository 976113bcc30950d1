//! `sunat-sim`: a local SUNAT billService (see `faena_sunat::sim`), `sunat-sim cert` to write
//! a throwaway test certificate, and `sunat-sim scenarios` to list the answers it can give.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use faena_sunat::sim::{self, SimConfig};
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(
    name = "sunat-sim",
    about = "A local SUNAT billService for tests and development"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SUNAT_SIM_BIND", default_value = "127.0.0.1:8099")]
    bind: SocketAddr,
    /// SOL user expected after the RUC in the WS-Security user name.
    #[arg(long, env = "SUNAT_SIM_SOL_USER", default_value = "MODDATOS")]
    sol_user: String,
    /// SOL password expected.
    #[arg(
        long,
        env = "SUNAT_SIM_SOL_PASSWORD",
        default_value = "moddatos",
        hide_default_value = true
    )]
    sol_password: String,
    /// Seconds the `timeout` scenarios wait before answering (longer than the client's read timeout).
    #[arg(long, env = "SUNAT_SIM_TIMEOUT_DELAY_SECS", default_value_t = 90)]
    timeout_delay_secs: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new self-signed test certificate: DIR/faena-test-cert.p12 and DIR/faena-test-cert.pem.
    Cert {
        #[arg(long)]
        dir: PathBuf,
        /// Password of the PKCS#12 file.
        #[arg(long, env = "SUNAT_CERT_PASSWORD")]
        password: String,
    },
    /// List the scenarios: name, the correlative that selects it on a first send, the answer.
    Scenarios,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FAENA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(Command::Scenarios) = args.command {
        for s in sim::Scenario::ALL {
            let correlative = s.correlative().map_or("-".into(), |c| c.to_string());
            println!("{:<20} {:>9}  {}", s.name(), correlative, s.describe());
        }
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Cert { dir, password }) = args.command {
        return match faena_sunat::testcert::generate(&dir, &password) {
            Ok(cert) => {
                println!("{}", cert.p12_path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sunat-sim cert: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = SimConfig {
        bind: args.bind,
        sol_user: args.sol_user,
        sol_password: SecretString::from(args.sol_password),
        timeout_delay: Duration::from_secs(args.timeout_delay_secs),
    };
    match sim::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sunat-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
