//! SUNAT's summaries: `faena sunat summaries` (the Resumen Diario and Comunicación de Baja
//! documents Faena built, with state, ticket, SUNAT's answer and lines).

use std::io::Write;

use clap::Subcommand;
use faena_shop::states::SummaryState;
use faena_shop::summaries::{self, SummaryFilter, SummaryKind};

use super::common::{pg, print_json, CliSettings, Times};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum SunatCommand {
    /// Resumen Diario (RC) and Comunicación de Baja (RA) documents, newest first, with their lines.
    Summaries {
        /// RC or RA; both when absent.
        #[arg(long)]
        kind: Option<String>,
        /// PENDING, SENT, ACCEPTED, REJECTED or ERROR; any when absent.
        #[arg(long)]
        state: Option<String>,
        /// At most this many (default 100).
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

/// `faena sunat ...`.
pub(crate) async fn run(
    settings: &CliSettings,
    command: SunatCommand,
    json: bool,
    times: &Times,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    let SunatCommand::Summaries { kind, state, limit } = command;
    let kind = match kind.as_deref() {
        None => None,
        Some(k) => {
            match SummaryKind::parse(k) {
                Ok(k) => Some(k),
                Err(_) => {
                    eprintln!("faena: --kind {k}: expected RC (Resumen Diario) or RA (Comunicación de Baja)");
                    return Ok(exit::USAGE);
                }
            }
        }
    };
    let state = match state.as_deref() {
        None => None,
        Some(s) => match s.to_ascii_uppercase().parse::<SummaryState>() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("faena: --state: {e}");
                return Ok(exit::USAGE);
            }
        },
    };
    if !(1..=1000).contains(&limit) {
        eprintln!("faena: --limit {limit} is not from 1 to 1000");
        return Ok(exit::USAGE);
    }
    let mut conn = pg(settings).await?;
    let filter = SummaryFilter {
        kind,
        state,
        limit: Some(limit),
    };
    let list = summaries::list(&mut conn, &filter).await?;
    if json {
        print_json(out, &list)?;
        return Ok(exit::OK);
    }
    if list.is_empty() {
        writeln!(out, "no hay resúmenes ni comunicaciones de baja")?;
        return Ok(exit::OK);
    }
    for s in &list {
        writeln!(
            out,
            "{:<16} {:<8} docs del {}  ticket {}  {} {}  enviado {}  respondido {}",
            s.summary_id,
            s.state,
            s.reference_date,
            s.ticket.as_deref().unwrap_or("-"),
            s.sunat_code.as_deref().unwrap_or("-"),
            s.sunat_description.as_deref().unwrap_or(""),
            times.show(s.sent_at),
            times.show(s.decided_at),
        )?;
        for l in &s.lines {
            writeln!(
                out,
                "  {:>3}. venta {:<6} {}-{:<8} estado {}  total {:>10}  {}",
                l.line_no,
                l.sale_id,
                l.series,
                l.correlative,
                l.condition_code,
                faena_shop::money::format(&l.total),
                l.outcome.as_deref().unwrap_or("sin respuesta"),
            )?;
        }
    }
    Ok(exit::OK)
}
