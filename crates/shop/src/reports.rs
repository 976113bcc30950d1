//! Reports stored in the `reports` table: the daily report of SUNAT sends (one per Lima date,
//! replaced when generated again) with its CSV copy under the files directory.
//!
//! Definitions (also in `docs/operations.md`): the receipts of a day are its sales (by
//! `issue_date`, the business date) that are not cancelled; each is in exactly one of accepted,
//! rejected, error (ERROR or CONFLICT) or pending (PENDING or SENDING). `cancelled` counts the
//! day's cancelled sales apart (`total_cancelled` their amount), and `voided` those of them SUNAT
//! voided (`total_voided`). `total_billed` sums the receipts' totals, `total_accepted` only
//! the ACCEPTED ones; money is exact (`NUMERIC` to [`BigDecimal`]). `success_pct` is accepted / receipts * 100,
//! rounded half up to 2 decimals ("0.00" for a day without receipts). The day's credit notes
//! (by their own issue date) are counted apart the same way, their totals being what they credit,
//! and split by base like the sales, from their own lines' amounts.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use bigdecimal::{BigDecimal, RoundingMode};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Nullable, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use faena_core::db::QueryError;
use serde::{Deserialize, Serialize};

use crate::schema::reports;
use crate::states::SunatStatus;

/// The `kind` of the daily SUNAT report in the `reports` table.
pub const SUNAT_DAILY: &str = "sunat_daily";

/// A report that cannot be made, stored or found. Each variant has a stable [`ReportError::code`].
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("field `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("cannot write or delete {path}: {message}")]
    Io { path: String, message: String },
    #[error("the stored {what} cannot be read: {message}")]
    Corrupt { what: String, message: String },
    /// The database refused the data, or could not answer; the text is ours, never PostgreSQL's.
    #[error(transparent)]
    Db(#[from] QueryError),
}

impl ReportError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_field",
            Self::NotFound(_) => "not_found",
            Self::Io { .. } => "io_error",
            Self::Corrupt { .. } => "internal",
            Self::Db(QueryError::Refused(r)) => r.code(),
            Self::Db(QueryError::Unavailable) => "database_unavailable",
        }
    }
}

impl From<diesel::result::Error> for ReportError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Parses a `YYYY-MM-DD` date; the error names `field` and shows the value.
pub fn parse_date(field: &'static str, value: &str) -> Result<NaiveDate, ReportError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|e| ReportError::Invalid {
        field,
        message: format!("`{value}` is not a date like 2026-11-24 ({e})"),
    })
}

/// Counts and totals of a set of receipts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiptCounts {
    /// Receipts issued: sales of the day that are not cancelled.
    pub issued: i64,
    pub accepted: i64,
    pub rejected: i64,
    /// In ERROR or CONFLICT: retries used up, or a problem that needs a person.
    pub error: i64,
    /// Not decided yet: PENDING or SENDING.
    pub pending: i64,
    /// Cancelled sales of the day (not counted in `issued`).
    pub cancelled: i64,
    /// accepted / issued * 100, 2 decimals.
    #[schema(example = "66.67")]
    pub success_pct: String,
    /// Sum of the receipts' totals, in PEN.
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "1234.50")]
    pub total_billed: BigDecimal,
    /// Sum of the ACCEPTED receipts' totals, in PEN.
    #[serde(with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "1000.00")]
    pub total_accepted: BigDecimal,
    /// Cancelled sales SUNAT voided (a Comunicación de Baja or a Resumen Diario line with
    /// status 3 it accepted); among `cancelled`.
    #[serde(default)]
    pub voided: i64,
    /// Sum of the cancelled sales' totals, in PEN.
    #[serde(default, with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "25.00")]
    pub total_cancelled: BigDecimal,
    /// Sum of the voided sales' totals, in PEN.
    #[serde(default, with = "crate::money")]
    #[schema(value_type = String, pattern = r"^-?[0-9]+\.[0-9]{2}$", example = "20.00")]
    pub total_voided: BigDecimal,
}

impl ReceiptCounts {
    fn add(&mut self, g: &Group) {
        // A voided sale is always a cancelled one.
        if g.is_cancelled || g.sunat_status == SunatStatus::Voided {
            self.cancelled += g.n;
            self.total_cancelled += &g.total;
            if g.sunat_status == SunatStatus::Voided {
                self.voided += g.n;
                self.total_voided += &g.total;
            }
            return;
        }
        self.count(g.sunat_status, g.n, &g.total);
    }

    /// `n` documents in `status` whose totals add up to `total`.
    fn count(&mut self, status: SunatStatus, n: i64, total: &BigDecimal) {
        self.issued += n;
        match status {
            SunatStatus::Accepted => {
                self.accepted += n;
                self.total_accepted += total;
            }
            SunatStatus::Rejected => self.rejected += n,
            // A conflict needs a person, like the errors that do.
            SunatStatus::Error | SunatStatus::Conflict => self.error += n,
            SunatStatus::Pending | SunatStatus::Sending => self.pending += n,
            // A voided sale is counted with the cancelled ones (`add`); a note is never VOIDED.
            SunatStatus::Voided => {}
        }
        self.total_billed += total;
    }

    fn finish(mut self) -> Self {
        self.success_pct = if self.issued == 0 {
            "0.00".into()
        } else {
            (BigDecimal::from(self.accepted * 100) / BigDecimal::from(self.issued))
                .with_scale_round(2, RoundingMode::HalfUp)
                // Not `to_string`: it writes a zero without its scale ("0").
                .to_plain_string()
        };
        self.total_billed = self.total_billed.with_scale(2);
        self.total_accepted = self.total_accepted.with_scale(2);
        self.total_cancelled = self.total_cancelled.with_scale(2);
        self.total_voided = self.total_voided.with_scale(2);
        self
    }
}

/// One seller's receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SellerLine {
    pub seller_id: String,
    /// The seller's username, when the user still exists.
    pub seller_name: Option<String>,
    #[serde(flatten)]
    pub counts: ReceiptCounts,
    /// The seller's sales that are not cancelled, by base, with IGV and ICBPER. Absent (zeros)
    /// in reports made before it existed.
    #[serde(default)]
    pub by_affectation: TaxSplit,
}

/// One document type's receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocTypeLine {
    /// SUNAT's code: 01 (factura) or 03 (boleta).
    pub doc_type: String,
    /// factura or boleta.
    pub name: String,
    #[serde(flatten)]
    pub counts: ReceiptCounts,
    /// The document type's sales that are not cancelled, by base, with IGV and ICBPER. Absent
    /// (zeros) in reports made before it existed.
    #[serde(default)]
    pub by_affectation: TaxSplit,
}

/// One store's receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreLine {
    pub store_id: i64,
    pub code: String,
    pub name: String,
    /// The SUNAT establishment its receipts carry.
    pub establishment_code: String,
    #[serde(flatten)]
    pub counts: ReceiptCounts,
    /// The store's sales that are not cancelled, by base, with IGV and ICBPER. Absent (zeros) in
    /// reports made before it existed.
    #[serde(default)]
    pub by_affectation: TaxSplit,
}

/// The report of one day's SUNAT sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DailyReport {
    /// The business date (in `timezone`).
    pub date: NaiveDate,
    pub timezone: String,
    pub currency: String,
    pub totals: ReceiptCounts,
    /// By seller, in seller id order.
    pub by_seller: Vec<SellerLine>,
    /// Facturas (01) and boletas (03), both always present.
    pub by_doc_type: Vec<DocTypeLine>,
    /// By store, in store id order: every store with receipts that day and every active store.
    /// Absent (empty) in reports made before stores existed.
    #[serde(default)]
    pub by_store: Vec<StoreLine>,
    /// Sales of any day not decided by SUNAT when the report was made: due within 24 hours, and
    /// past their sendBill deadline (`deadlines.rs`). Absent in reports made before it existed.
    #[serde(default)]
    pub sunat_deadlines: crate::deadlines::DeadlineCounts,
    /// The day's sales that are not cancelled, split by how their lines were taxed, and the
    /// ICBPER collected. Absent (zeros) in reports made before it existed.
    #[serde(default)]
    pub by_affectation: TaxSplit,
    /// The credit notes issued that day (by their issue date), counted like receipts:
    /// `total_billed` is what they credit, `total_accepted` what the ACCEPTED ones credit.
    /// Absent (zeros) in reports made before credit notes existed.
    #[serde(default)]
    pub credit_notes: ReceiptCounts,
    /// What the day's credit notes credit (every note counted in `credit_notes.total_billed`),
    /// split by the base of the sale lines they credit, from the notes' own line amounts.
    /// Absent (zeros) in reports made before it existed.
    #[serde(default)]
    pub credit_notes_by_affectation: TaxSplit,
}

#[derive(QueryableByName)]
struct NoteGroup {
    #[diesel(sql_type = Text)]
    sunat_status: SunatStatus,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Numeric)]
    total: BigDecimal,
}

/// The credit notes issued on `date`, by SUNAT state, with what they credit.
async fn credit_note_counts(
    conn: &mut AsyncPgConnection,
    date: NaiveDate,
) -> Result<ReceiptCounts, ReportError> {
    let groups: Vec<NoteGroup> = diesel::sql_query(
        "SELECT sunat_status, count(*)::int8 AS n, COALESCE(sum(total), 0) AS total \
         FROM credit_notes WHERE issue_date = $1 GROUP BY 1",
    )
    .bind::<Date, _>(date)
    .load(conn)
    .await?;
    let mut counts = ReceiptCounts::default();
    for g in &groups {
        counts.count(g.sunat_status, g.n, &g.total);
    }
    Ok(counts.finish())
}

/// Values without taxes by base (catálogo 07: gravado 10, exonerado 20, inafecto 30, and the free
/// lines' referential values), the IGV charged and the ICBPER collected, as exact decimal strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaxSplit {
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "23.44")]
    pub gravado: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "6.00")]
    pub exonerado: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "25.00")]
    pub inafecto: BigDecimal,
    /// Free lines, at their referential value (not charged).
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "5.00")]
    pub gratuito: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "4.21")]
    pub igv: BigDecimal,
    #[serde(with = "crate::money")]
    #[schema(value_type = String, example = "1.00")]
    pub icbper: BigDecimal,
}

impl TaxSplit {
    fn add(&mut self, b: &BaseSum) {
        match b.base.as_str() {
            "gravado" => {
                self.gravado += &b.value;
                self.igv += &b.igv;
            }
            "exonerado" => self.exonerado += &b.value,
            "inafecto" => self.inafecto += &b.value,
            _ => self.gratuito += &b.value,
        }
        self.icbper += &b.icbper;
    }

    /// Its columns in the CSV, two decimals each.
    fn csv(&self) -> [String; 6] {
        [
            &self.gravado,
            &self.exonerado,
            &self.inafecto,
            &self.gratuito,
            &self.igv,
            &self.icbper,
        ]
        .map(crate::money::format)
    }
}

/// The CSV header of a [`TaxSplit`]'s columns.
const SPLIT_COLUMNS: [&str; 6] = [
    "gravado",
    "exonerado",
    "inafecto",
    "gratuito",
    "igv",
    "icbper",
];

#[derive(QueryableByName)]
struct BaseSum {
    #[diesel(sql_type = BigInt)]
    store_id: i64,
    #[diesel(sql_type = Text)]
    seller_id: String,
    #[diesel(sql_type = Text)]
    doc_type: String,
    #[diesel(sql_type = Text)]
    base: String,
    #[diesel(sql_type = Numeric)]
    value: BigDecimal,
    #[diesel(sql_type = Numeric)]
    igv: BigDecimal,
    #[diesel(sql_type = Numeric)]
    icbper: BigDecimal,
}

/// The split of `date`'s sales that are not cancelled by base, from their stored line amounts:
/// for the day, by seller id, by document type and by store.
struct Splits {
    day: TaxSplit,
    by_seller: BTreeMap<String, TaxSplit>,
    by_doc_type: BTreeMap<String, TaxSplit>,
    by_store: BTreeMap<i64, TaxSplit>,
}

/// The base of a sale line `i` ([`TaxSplit`]'s fields), in SQL: free, else by its IGV
/// affectation (catálogo 07: 1x gravado, 2x exonerado, 3x inafecto).
const BASE_OF_LINE: &str = "CASE WHEN i.free THEN 'gratuito' \
                                 WHEN i.igv_affectation LIKE '1%' THEN 'gravado' \
                                 WHEN i.igv_affectation LIKE '2%' THEN 'exonerado' \
                                 ELSE 'inafecto' END";

async fn tax_split(conn: &mut AsyncPgConnection, date: NaiveDate) -> Result<Splits, ReportError> {
    let sums: Vec<BaseSum> = diesel::sql_query(format!(
        "SELECT s.store_id, s.seller_id, s.doc_type, {BASE_OF_LINE} AS base, \
                COALESCE(sum(i.value), 0) AS value, COALESCE(sum(i.igv), 0) AS igv, \
                COALESCE(sum(i.icbper_amount), 0) AS icbper \
         FROM sale_items i JOIN sales s ON s.id = i.sale_id \
         WHERE s.issue_date = $1 AND NOT s.is_cancelled \
         GROUP BY 1, 2, 3, 4"
    ))
    .bind::<Date, _>(date)
    .load(conn)
    .await?;
    let mut splits = Splits {
        day: TaxSplit::default(),
        by_seller: BTreeMap::new(),
        by_doc_type: BTreeMap::new(),
        by_store: BTreeMap::new(),
    };
    for b in &sums {
        splits.day.add(b);
        splits.by_store.entry(b.store_id).or_default().add(b);
        splits
            .by_seller
            .entry(b.seller_id.clone())
            .or_default()
            .add(b);
        splits
            .by_doc_type
            .entry(b.doc_type.clone())
            .or_default()
            .add(b);
    }
    Ok(splits)
}

/// What the credit notes issued on `date` credit, split by the base of the sale lines they
/// credit: each credited line's stored value, IGV and ICBPER (its share of the sale line, the
/// amounts its XML states), so the split adds up to the notes' totals.
async fn credit_note_split(
    conn: &mut AsyncPgConnection,
    date: NaiveDate,
) -> Result<TaxSplit, ReportError> {
    let sums: Vec<BaseSum> = diesel::sql_query(format!(
        "SELECT 0::int8 AS store_id, '' AS seller_id, '' AS doc_type, {BASE_OF_LINE} AS base, \
                COALESCE(sum(c.value), 0) AS value, COALESCE(sum(c.igv), 0) AS igv, \
                COALESCE(sum(c.icbper_amount), 0) AS icbper \
         FROM credit_note_items c JOIN credit_notes n ON n.id = c.credit_note_id \
              JOIN sale_items i ON i.id = c.sale_item_id \
         WHERE n.issue_date = $1 \
         GROUP BY 4"
    ))
    .bind::<Date, _>(date)
    .load(conn)
    .await?;
    let mut split = TaxSplit::default();
    for b in &sums {
        split.add(b);
    }
    Ok(split)
}

/// A stored daily report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DailyReportView {
    #[serde(flatten)]
    pub report: DailyReport,
    /// The CSV copy, relative to the files directory.
    pub csv_path: Option<String>,
    /// When it was (last) generated.
    pub generated_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Group {
    #[diesel(sql_type = BigInt)]
    store_id: i64,
    #[diesel(sql_type = Text)]
    seller_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    seller_name: Option<String>,
    #[diesel(sql_type = Text)]
    doc_type: String,
    #[diesel(sql_type = Text)]
    sunat_status: SunatStatus,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    is_cancelled: bool,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Numeric)]
    total: BigDecimal,
}

fn doc_type_name(code: &str) -> &'static str {
    match code {
        "01" => "factura",
        "03" => "boleta",
        _ => "other",
    }
}

/// Computes the report of `date` from the sales table (nothing is stored).
pub async fn compute_daily_report(
    conn: &mut AsyncPgConnection,
    date: NaiveDate,
    tz: chrono_tz::Tz,
) -> Result<DailyReport, ReportError> {
    let groups: Vec<Group> = diesel::sql_query(
        "SELECT s.store_id, s.seller_id, u.username AS seller_name, s.doc_type, s.sunat_status, \
                s.is_cancelled, count(*)::int8 AS n, COALESCE(sum(s.total), 0) AS total \
         FROM sales s LEFT JOIN users u ON u.id::text = s.seller_id \
         WHERE s.issue_date = $1 \
         GROUP BY 1, 2, 3, 4, 5, 6",
    )
    .bind::<Date, _>(date)
    .load(conn)
    .await?;
    let mut totals = ReceiptCounts::default();
    let mut sellers: BTreeMap<(usize, String), (Option<String>, ReceiptCounts)> = BTreeMap::new();
    let mut docs: BTreeMap<String, ReceiptCounts> = ["01", "03"]
        .into_iter()
        .map(|d| (d.to_owned(), ReceiptCounts::default()))
        .collect();
    let mut by_store: BTreeMap<i64, ReceiptCounts> = BTreeMap::new();
    for g in &groups {
        totals.add(g);
        by_store.entry(g.store_id).or_default().add(g);
        // Numeric ids sort as numbers: shorter first, then by text.
        let seller = sellers
            .entry((g.seller_id.len(), g.seller_id.clone()))
            .or_default();
        seller.0 = seller.0.take().or_else(|| g.seller_name.clone());
        seller.1.add(g);
        docs.entry(g.doc_type.clone()).or_default().add(g);
    }
    let sunat_deadlines = crate::deadlines::count_at_risk(conn, Utc::now(), tz).await?;
    let mut splits = tax_split(conn, date).await?;
    let by_store = crate::stores::list_stores(conn)
        .await
        .map_err(|e| match e {
            crate::stores::StoreError::Db(q) => ReportError::Db(q),
            other => ReportError::Corrupt {
                what: "stores".into(),
                message: other.to_string(),
            },
        })?
        .into_iter()
        .filter_map(|st| {
            let counts = by_store.remove(&st.id);
            (st.active || counts.is_some()).then(|| StoreLine {
                store_id: st.id,
                code: st.code,
                name: st.name,
                establishment_code: st.establishment_code,
                counts: counts.unwrap_or_default().finish(),
                by_affectation: splits.by_store.remove(&st.id).unwrap_or_default(),
            })
        })
        .collect();
    let credit_notes = credit_note_counts(conn, date).await?;
    let credit_notes_by_affectation = credit_note_split(conn, date).await?;
    Ok(DailyReport {
        by_store,
        credit_notes,
        credit_notes_by_affectation,
        sunat_deadlines,
        by_affectation: splits.day,
        date,
        timezone: tz.name().to_owned(),
        currency: "PEN".into(),
        totals: totals.finish(),
        by_seller: sellers
            .into_iter()
            .map(|((_, seller_id), (seller_name, counts))| SellerLine {
                by_affectation: splits.by_seller.remove(&seller_id).unwrap_or_default(),
                seller_id,
                seller_name,
                counts: counts.finish(),
            })
            .collect(),
        by_doc_type: docs
            .into_iter()
            .map(|(doc_type, counts)| DocTypeLine {
                name: doc_type_name(&doc_type).into(),
                by_affectation: splits.by_doc_type.remove(&doc_type).unwrap_or_default(),
                doc_type,
                counts: counts.finish(),
            })
            .collect(),
    })
}

impl DailyReport {
    /// The report as CSV: a header, then one row for the day, one per seller, one per
    /// document type, one per store; each row ends with its voided count, cancelled and voided
    /// amounts, then its split by base, its IGV and the ICBPER collected (`gravado`, `exonerado`,
    /// `inafecto`, `gratuito`, `igv`, `icbper`, two decimals).
    pub fn to_csv(&self) -> Result<String, ReportError> {
        let corrupt = |e: csv::Error| ReportError::Corrupt {
            what: format!("CSV of the report of {}", self.date),
            message: e.to_string(),
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = [
            "section",
            "key",
            "name",
            "issued",
            "accepted",
            "rejected",
            "error",
            "pending",
            "cancelled",
            "success_pct",
            "total_billed",
            "total_accepted",
            "voided",
            "total_cancelled",
            "total_voided",
        ];
        w.write_record(header.iter().chain(&SPLIT_COLUMNS))
            .map_err(corrupt)?;
        let mut row = |section: &str, key: &str, name: &str, c: &ReceiptCounts, t: &TaxSplit| {
            let counts = [
                section.to_owned(),
                key.to_owned(),
                name.to_owned(),
                c.issued.to_string(),
                c.accepted.to_string(),
                c.rejected.to_string(),
                c.error.to_string(),
                c.pending.to_string(),
                c.cancelled.to_string(),
                c.success_pct.clone(),
                crate::money::format(&c.total_billed),
                crate::money::format(&c.total_accepted),
                c.voided.to_string(),
                crate::money::format(&c.total_cancelled),
                crate::money::format(&c.total_voided),
            ];
            w.write_record(counts.iter().chain(&t.csv()))
        };
        row(
            "total",
            &self.date.to_string(),
            "",
            &self.totals,
            &self.by_affectation,
        )
        .map_err(corrupt)?;
        for s in &self.by_seller {
            row(
                "seller",
                &s.seller_id,
                s.seller_name.as_deref().unwrap_or(""),
                &s.counts,
                &s.by_affectation,
            )
            .map_err(corrupt)?;
        }
        for d in &self.by_doc_type {
            row(
                "doc_type",
                &d.doc_type,
                &d.name,
                &d.counts,
                &d.by_affectation,
            )
            .map_err(corrupt)?;
        }
        for st in &self.by_store {
            row("store", &st.code, &st.name, &st.counts, &st.by_affectation).map_err(corrupt)?;
        }
        // What the day's credit notes credit: total_billed issued, total_accepted accepted, and
        // its split by the base of the lines they credit.
        row(
            "credit_notes",
            "07",
            "nota de crédito",
            &self.credit_notes,
            &self.credit_notes_by_affectation,
        )
        .map_err(corrupt)?;
        let bytes = w.into_inner().map_err(|e| ReportError::Corrupt {
            what: format!("CSV of the report of {}", self.date),
            message: e.to_string(),
        })?;
        String::from_utf8(bytes).map_err(|e| ReportError::Corrupt {
            what: format!("CSV of the report of {}", self.date),
            message: e.to_string(),
        })
    }
}

/// The CSV copy's path, relative to the files directory.
pub fn daily_csv_path(date: NaiveDate) -> String {
    format!("reports/sunat-daily-{date}.csv")
}

/// `rel` under `dir`, or `None` when `rel` is absolute or climbs out (`..`).
pub fn under(dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(dir.join(p))
}

/// Writes a file atomically: a temporary file beside it, then a rename.
pub async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let (owned, data) = (path.to_owned(), bytes.to_owned());
    let res = tokio::task::spawn_blocking(move || crate::files::write_atomic(&owned, &data))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
    res.map_err(|e| ReportError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Computes the report of `date`, writes its CSV under `files_dir` and stores both, replacing a
/// report of the same date.
pub async fn generate_daily_report(
    conn: &mut AsyncPgConnection,
    date: NaiveDate,
    tz: chrono_tz::Tz,
    files_dir: &Path,
) -> Result<DailyReportView, ReportError> {
    let report = compute_daily_report(conn, date, tz).await?;
    let csv_rel = daily_csv_path(date);
    let csv_file = under(files_dir, &csv_rel).ok_or_else(|| ReportError::Io {
        path: csv_rel.clone(),
        message: "not a relative path".into(),
    })?;
    write_atomic(&csv_file, report.to_csv()?.as_bytes()).await?;
    let data = serde_json::to_value(&report).map_err(|e| ReportError::Corrupt {
        what: format!("report of {date}"),
        message: e.to_string(),
    })?;
    let generated_at: DateTime<Utc> = diesel::insert_into(reports::table)
        .values((
            reports::kind.eq(SUNAT_DAILY),
            reports::period.eq(date.to_string()),
            reports::data.eq(&data),
            reports::csv_path.eq(&csv_rel),
        ))
        .on_conflict((reports::kind, reports::period))
        .do_update()
        .set((
            reports::data.eq(&data),
            reports::csv_path.eq(&csv_rel),
            reports::updated_at.eq(diesel::dsl::now),
        ))
        .returning(reports::updated_at)
        .get_result(conn)
        .await?;
    Ok(DailyReportView {
        report,
        csv_path: Some(csv_rel),
        generated_at,
    })
}

/// The stored report of `date`, or `None` when it was not generated yet.
pub async fn get_daily_report(
    conn: &mut AsyncPgConnection,
    date: NaiveDate,
) -> Result<Option<DailyReportView>, ReportError> {
    let row: Option<(serde_json::Value, Option<String>, DateTime<Utc>)> = reports::table
        .filter(reports::kind.eq(SUNAT_DAILY))
        .filter(reports::period.eq(date.to_string()))
        .select((reports::data, reports::csv_path, reports::updated_at))
        .first(conn)
        .await
        .optional()?;
    let Some((data, csv_path, generated_at)) = row else {
        return Ok(None);
    };
    let report = serde_json::from_value(data).map_err(|e| ReportError::Corrupt {
        what: format!("report of {date}"),
        message: e.to_string(),
    })?;
    Ok(Some(DailyReportView {
        report,
        csv_path,
        generated_at,
    }))
}

/// How many reports of `kind` are stored (for tests and the CLI).
pub async fn count_reports(conn: &mut AsyncPgConnection, kind: &str) -> Result<i64, ReportError> {
    Ok(reports::table
        .filter(reports::kind.eq(kind))
        .count()
        .get_result(conn)
        .await?)
}
