//! Stored reports: `faena report daily` (the daily report of SUNAT sends, as a table).

use std::io::Write;

use chrono::Utc;
use clap::Subcommand;

use super::common::{pg, print_json, CliSettings, Times};
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The daily report of SUNAT sends of a date, as a table.
    Daily {
        /// The business date, YYYY-MM-DD (default: today in TZ).
        #[arg(long)]
        date: Option<String>,
        /// Generate (or regenerate) it now instead of reading the stored one.
        #[arg(long)]
        generate: bool,
    },
}

/// `faena report ...`.
pub(crate) async fn run(
    settings: &CliSettings,
    command: ReportCommand,
    json: bool,
    times: &Times,
    out: &mut (impl Write + Send),
) -> anyhow::Result<u8> {
    use faena_shop::money;
    use faena_shop::reports::{self, ReceiptCounts};
    let ReportCommand::Daily { date, generate } = command;
    let date = match date {
        Some(d) => reports::parse_date("--date", &d)?,
        None => Utc::now().with_timezone(&settings.tz).date_naive(),
    };
    let mut conn = pg(settings).await?;
    let view = if generate {
        reports::generate_daily_report(&mut conn, date, settings.tz, &settings.files_dir).await?
    } else {
        match reports::get_daily_report(&mut conn, date).await? {
            Some(v) => v,
            None => {
                eprintln!(
                    "faena: no daily SUNAT report for {date} yet. Generate it with \
                     `faena report daily --date {date} --generate`, or let a worker do it: \
                     `faena enqueue sunat_daily_report --args '{{\"date\":\"{date}\"}}'`"
                );
                return Ok(exit::FAILED);
            }
        }
    };
    if json {
        print_json(out, &view)?;
        return Ok(exit::OK);
    }
    let r = &view.report;
    writeln!(
        out,
        "SUNAT daily report {} ({}), generated {}",
        r.date,
        r.timezone,
        times.show(Some(view.generated_at))
    )?;
    writeln!(
        out,
        "{:<28} {:>6} {:>8} {:>8} {:>6} {:>7} {:>9} {:>9} {:>14} {:>14} {:>7} {:>14}",
        "",
        "issued",
        "accepted",
        "rejected",
        "error",
        "pending",
        "cancelled",
        "success%",
        "billed PEN",
        "accepted PEN",
        "voided",
        "voided PEN"
    )?;
    let mut line = |label: &str, c: &ReceiptCounts| {
        writeln!(
            out,
            "{:<28} {:>6} {:>8} {:>8} {:>6} {:>7} {:>9} {:>9} {:>14} {:>14} {:>7} {:>14}",
            label,
            c.issued,
            c.accepted,
            c.rejected,
            c.error,
            c.pending,
            c.cancelled,
            c.success_pct,
            money::format(&c.total_billed),
            money::format(&c.total_accepted),
            c.voided,
            money::format(&c.total_voided)
        )
    };
    line("all", &r.totals)?;
    for s in &r.by_seller {
        let label = match &s.seller_name {
            Some(n) => format!("seller {} ({n})", s.seller_id),
            None => format!("seller {}", s.seller_id),
        };
        line(&label, &s.counts)?;
    }
    for d in &r.by_doc_type {
        line(&format!("{} ({})", d.name, d.doc_type), &d.counts)?;
    }
    line("notas de crédito (07)", &r.credit_notes)?;
    // The day's bases as the receipts print them, and the ICBPER collected.
    let t = &r.by_affectation;
    writeln!(
        out,
        "bases PEN: OP. GRAVADA {}  OP. EXONERADA {}  OP. INAFECTA {}  OP. GRATUITA {}  IGV {}  \
         ICBPER {}",
        money::format(&t.gravado),
        money::format(&t.exonerado),
        money::format(&t.inafecto),
        money::format(&t.gratuito),
        money::format(&t.igv),
        money::format(&t.icbper)
    )?;
    if let Some(csv) = &view.csv_path {
        writeln!(out, "csv: {}", settings.files_dir.join(csv).display())?;
    }
    Ok(exit::OK)
}
