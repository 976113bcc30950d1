//! `cleanup_old_files`: deletes receipt files past their retention and clears their paths in
//! the sale, credit note and summary rows.
//!
//! Rules: only sales SUNAT has decided (ACCEPTED, REJECTED or VOIDED) are touched, never one that
//! may still be sent. The XML (with the zip beside it), the CDR and the QR of a sale issued more than
//! `xml_days` ago go; the PDF of a cancelled sale cancelled (or, without a cancellation time,
//! issued) more than `cancelled_pdf_days` ago goes. A file is deleted before its path is
//! cleared, so a crash in between leaves a path to a missing file, which the next run clears
//! (counted as `missing`). A dry run deletes and clears nothing and reports what it would free.
//!
//! Summaries (Resumen Diario, Comunicación de Baja) are treated like the receipts they speak of:
//! their signed XML (with its zip) and the CDR of their ticket go once the summary is decided
//! (ACCEPTED or REJECTED) and its issue date is more than `xml_days` ago. The same age as the
//! receipts because a summary is the evidence of what happened to those receipts (voided, or
//! informed after 1079): kept as long as they are, and never less, since a summary is always
//! issued on or after the documents it carries. A summary SUNAT has not answered, or one in
//! ERROR (a person must look), keeps its files.
//!
//! Credit notes are receipts too (type 07, with their own XML, zip, CDR, PDF and QR), and follow
//! the receipts' rules with the note's own dates: a note SUNAT decided (ACCEPTED or REJECTED)
//! loses its XML (with its zip), CDR and QR once it was issued more than `xml_days` ago; its PDF
//! goes with its sale's PDF, when the sale was cancelled more than `cancelled_pdf_days` ago (a
//! note is a document of that sale: of a cancellation past the voiding window, or of a return;
//! the PDFs of a sale that stands are kept). A note SUNAT has not decided keeps its files.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::files::ReceiptFiles;
use crate::reports::{under, ReportError};
use crate::schema::{credit_notes, sales, sunat_summaries};
use crate::states::{SummaryState, SunatStatus};
use faena_core::settings::RetentionSettings;

/// Sales looked at per query.
const PAGE: i64 = 500;

/// Files and bytes of one kind of file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FileTally {
    pub files: u64,
    pub bytes: u64,
}

/// What a cleanup did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    /// Sales whose paths were (would be) cleared.
    pub sales: u64,
    /// Summaries whose paths were (would be) cleared.
    pub summaries: u64,
    /// Credit notes whose paths were (would be) cleared.
    pub credit_notes: u64,
    /// Files deleted (that would be deleted).
    pub files: u64,
    /// Bytes freed (that would be freed).
    pub bytes: u64,
    /// Paths whose file was already gone (cleared all the same).
    pub missing: u64,
    /// Paths left alone because they point outside the files directory.
    pub unsafe_paths: u64,
    /// By kind of file: xml (with its zip), cdr, qr, pdf.
    pub by_kind: BTreeMap<&'static str, FileTally>,
}

/// A receipt's (a sale's or a credit note's) row: id, issued at, whether its sale is cancelled
/// and since when, then its xml, cdr, qr and pdf paths.
type Candidate = (
    i64,
    DateTime<Utc>,
    bool,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// What [`remove_receipt_files`] did to one receipt's files.
#[derive(Debug, Clone, Copy, Default)]
struct Removed {
    /// Its XML (and zip), CDR and QR went: clear those paths.
    xml: bool,
    /// Its PDF went: clear that path.
    pdf: bool,
}

/// Deletes (or counts) the files of one decided receipt that are past their retention: the XML
/// with its zip, the CDR and the QR once it was issued before `xml_before`; the PDF once its sale
/// was cancelled (or, without a cancellation time, the receipt issued) before `pdf_before`.
async fn remove_receipt_files(
    files_dir: &Path,
    c: &Candidate,
    xml_before: DateTime<Utc>,
    pdf_before: DateTime<Utc>,
    dry_run: bool,
    report: &mut CleanupReport,
) -> Result<Removed, ReportError> {
    let (_, issued_at, is_cancelled, cancelled_at, xml, cdr, qr, pdf) = c;
    let mut done = Removed::default();
    if *issued_at < xml_before && (xml.is_some() || cdr.is_some() || qr.is_some()) {
        if let Some(xml) = xml {
            remove(files_dir, xml, "xml", dry_run, report).await?;
            if let Some(zip) = ReceiptFiles::zip_beside(xml) {
                // The zip sent to SUNAT; a missing one is not worth counting.
                let before = report.missing;
                remove(files_dir, &zip, "xml", dry_run, report).await?;
                report.missing = before;
            }
        }
        if let Some(cdr) = cdr {
            remove(files_dir, cdr, "cdr", dry_run, report).await?;
        }
        if let Some(qr) = qr {
            remove(files_dir, qr, "qr", dry_run, report).await?;
        }
        done.xml = true;
    }
    let pdf_old = cancelled_at.map_or(*issued_at < pdf_before, |c| c < pdf_before);
    if *is_cancelled && pdf_old {
        if let Some(pdf) = pdf {
            remove(files_dir, pdf, "pdf", dry_run, report).await?;
            done.pdf = true;
        }
    }
    Ok(done)
}

/// Deletes (or counts, with `dry_run`) one file; `Ok(false)` when it was missing.
async fn remove(
    files_dir: &Path,
    rel: &str,
    kind: &'static str,
    dry_run: bool,
    report: &mut CleanupReport,
) -> Result<bool, ReportError> {
    let Some(path) = under(files_dir, rel) else {
        tracing::warn!(
            path = rel,
            "a sale's file path points outside the files directory; left alone"
        );
        report.unsafe_paths += 1;
        return Ok(false);
    };
    let io = |e: std::io::Error| ReportError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let size = match tokio::fs::metadata(&path).await {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.missing += 1;
            return Ok(false);
        }
        Err(e) => return Err(io(e)),
    };
    if !dry_run {
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.missing += 1;
                return Ok(false);
            }
            Err(e) => return Err(io(e)),
        }
    }
    report.files += 1;
    report.bytes += size;
    let t = report.by_kind.entry(kind).or_default();
    t.files += 1;
    t.bytes += size;
    Ok(true)
}

/// Runs the cleanup at `now` (see the module's rules).
pub async fn cleanup_old_files(
    conn: &mut AsyncPgConnection,
    files_dir: &Path,
    retention: RetentionSettings,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<CleanupReport, ReportError> {
    let xml_before = now - chrono::Duration::days(i64::from(retention.xml_days));
    let pdf_before = now - chrono::Duration::days(i64::from(retention.cancelled_pdf_days));
    let mut report = CleanupReport {
        dry_run,
        by_kind: ["xml", "cdr", "qr", "pdf"]
            .into_iter()
            .map(|k| (k, FileTally::default()))
            .collect(),
        ..Default::default()
    };
    let mut last_id = 0i64;
    loop {
        let xml_due = sales::issued_at.lt(xml_before).and(
            sales::xml_path
                .is_not_null()
                .or(sales::cdr_path.is_not_null())
                .or(sales::qr_path.is_not_null()),
        );
        let pdf_due = sales::is_cancelled
            .eq(true)
            .and(sales::pdf_path.is_not_null())
            .and(
                sales::cancelled_at.lt(pdf_before).or(sales::cancelled_at
                    .is_null()
                    .and(sales::issued_at.lt(pdf_before))),
            );
        let page: Vec<Candidate> = sales::table
            .filter(sales::sunat_status.eq_any(SunatStatus::DECIDED))
            .filter(sales::id.gt(last_id))
            .filter(xml_due.or(pdf_due))
            .order(sales::id.asc())
            .limit(PAGE)
            .select((
                sales::id,
                sales::issued_at,
                sales::is_cancelled,
                sales::cancelled_at,
                sales::xml_path,
                sales::cdr_path,
                sales::qr_path,
                sales::pdf_path,
            ))
            .load(conn)
            .await?;
        let Some(last) = page.last() else { break };
        last_id = last.0;
        for c in page {
            let id = c.0;
            let done =
                remove_receipt_files(files_dir, &c, xml_before, pdf_before, dry_run, &mut report)
                    .await?;
            if done.xml && !dry_run {
                diesel::update(
                    sales::table
                        .find(id)
                        .filter(sales::sunat_status.eq_any(SunatStatus::DECIDED)),
                )
                .set((
                    sales::xml_path.eq(None::<String>),
                    sales::cdr_path.eq(None::<String>),
                    sales::qr_path.eq(None::<String>),
                    sales::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            }
            if done.pdf && !dry_run {
                diesel::update(
                    sales::table
                        .find(id)
                        .filter(sales::sunat_status.eq_any(SunatStatus::DECIDED)),
                )
                .set((
                    sales::pdf_path.eq(None::<String>),
                    sales::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            }
            if done.xml || done.pdf {
                report.sales += 1;
            }
        }
    }
    cleanup_credit_notes(
        conn,
        files_dir,
        xml_before,
        pdf_before,
        dry_run,
        &mut report,
    )
    .await?;
    cleanup_summaries(conn, files_dir, xml_before, dry_run, &mut report).await?;
    Ok(report)
}

/// The credit notes' part of the cleanup (see the module's rules): the receipts' rules, with
/// the note's issue time and its sale's cancellation.
async fn cleanup_credit_notes(
    conn: &mut AsyncPgConnection,
    files_dir: &Path,
    xml_before: DateTime<Utc>,
    pdf_before: DateTime<Utc>,
    dry_run: bool,
    report: &mut CleanupReport,
) -> Result<(), ReportError> {
    let decided = [SunatStatus::Accepted, SunatStatus::Rejected];
    let mut last_id = 0i64;
    loop {
        let xml_due = credit_notes::issued_at.lt(xml_before).and(
            credit_notes::xml_path
                .is_not_null()
                .or(credit_notes::cdr_path.is_not_null())
                .or(credit_notes::qr_path.is_not_null()),
        );
        let pdf_due = sales::is_cancelled
            .eq(true)
            .and(credit_notes::pdf_path.is_not_null())
            .and(
                sales::cancelled_at.lt(pdf_before).or(sales::cancelled_at
                    .is_null()
                    .and(credit_notes::issued_at.lt(pdf_before))),
            );
        let page: Vec<Candidate> = credit_notes::table
            .inner_join(sales::table)
            .filter(credit_notes::sunat_status.eq_any(decided))
            .filter(credit_notes::id.gt(last_id))
            .filter(xml_due.or(pdf_due))
            .order(credit_notes::id.asc())
            .limit(PAGE)
            .select((
                credit_notes::id,
                credit_notes::issued_at,
                sales::is_cancelled,
                sales::cancelled_at,
                credit_notes::xml_path,
                credit_notes::cdr_path,
                credit_notes::qr_path,
                credit_notes::pdf_path,
            ))
            .load(conn)
            .await?;
        let Some(last) = page.last() else { break };
        last_id = last.0;
        for c in page {
            let id = c.0;
            let done = remove_receipt_files(files_dir, &c, xml_before, pdf_before, dry_run, report)
                .await?;
            let ours = || {
                credit_notes::table
                    .find(id)
                    .filter(credit_notes::sunat_status.eq_any(decided))
            };
            if done.xml && !dry_run {
                diesel::update(ours())
                    .set((
                        credit_notes::xml_path.eq(None::<String>),
                        credit_notes::cdr_path.eq(None::<String>),
                        credit_notes::qr_path.eq(None::<String>),
                        credit_notes::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)
                    .await?;
            }
            if done.pdf && !dry_run {
                diesel::update(ours())
                    .set((
                        credit_notes::pdf_path.eq(None::<String>),
                        credit_notes::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(conn)
                    .await?;
            }
            if done.xml || done.pdf {
                report.credit_notes += 1;
            }
        }
    }
    Ok(())
}

/// The summaries' part of the cleanup (see the module's rules).
async fn cleanup_summaries(
    conn: &mut AsyncPgConnection,
    files_dir: &Path,
    xml_before: DateTime<Utc>,
    dry_run: bool,
    report: &mut CleanupReport,
) -> Result<(), ReportError> {
    let decided = [SummaryState::Accepted, SummaryState::Rejected];
    let before = xml_before.date_naive();
    let mut last_id = 0i64;
    loop {
        let page: Vec<(i64, Option<String>, Option<String>)> = sunat_summaries::table
            .filter(sunat_summaries::state.eq_any(decided))
            .filter(sunat_summaries::id.gt(last_id))
            .filter(sunat_summaries::issue_date.lt(before))
            .filter(
                sunat_summaries::xml_path
                    .is_not_null()
                    .or(sunat_summaries::cdr_path.is_not_null()),
            )
            .order(sunat_summaries::id.asc())
            .limit(PAGE)
            .select((
                sunat_summaries::id,
                sunat_summaries::xml_path,
                sunat_summaries::cdr_path,
            ))
            .load(conn)
            .await?;
        let Some(last) = page.last() else { break };
        last_id = last.0;
        for (id, xml, cdr) in page {
            if let Some(xml) = &xml {
                remove(files_dir, xml, "xml", dry_run, report).await?;
                if let Some(zip) = ReceiptFiles::zip_beside(xml) {
                    let before = report.missing;
                    remove(files_dir, &zip, "xml", dry_run, report).await?;
                    report.missing = before;
                }
            }
            if let Some(cdr) = &cdr {
                remove(files_dir, cdr, "cdr", dry_run, report).await?;
            }
            if !dry_run {
                diesel::update(
                    sunat_summaries::table
                        .find(id)
                        .filter(sunat_summaries::state.eq_any(decided)),
                )
                .set((
                    sunat_summaries::xml_path.eq(None::<String>),
                    sunat_summaries::cdr_path.eq(None::<String>),
                    sunat_summaries::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
            }
            report.summaries += 1;
        }
    }
    Ok(())
}
