//! The Resumen Diario (RC) and the Comunicación de Baja (RA) validate against SUNAT's UBL 2.0
//! schemas (xmllint) and their signatures verify with xmlsec1 and with our own `verify`.

mod common;

use std::path::Path;

use chrono::NaiveDate;
use faena_sunat::{
    prepare_summary, prepare_voided, verify, DailySummary, DocumentType, LineStatus,
    ModifiedDocument, Series, SummaryId, SummaryKind, SummaryLine, VoidedDocuments, VoidedLine,
};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test fixture")
}

fn xsd20(root: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/data/xsd/2.0/maindoc/UBL-{root}-2.0.xsd"))
}

/// Two boletas of 2025-03-14: B001-7 voided (status 3), B001-8 added after a 1079 (status 1),
/// and a credit note of B001-7 added after a 1079 (type 07, status 1).
fn daily() -> DailySummary {
    let b7 = common::boleta(7);
    let mut b8 = common::boleta(8);
    b8.customer = faena_sunat::Customer::anonymous();
    DailySummary {
        company: common::company(),
        id: SummaryId::new(SummaryKind::Daily, date(2025, 3, 15), 1).expect("valid test fixture"),
        reference_date: b7.issue_date,
        lines: [(b7, LineStatus::Void), (b8, LineStatus::Add)]
            .into_iter()
            .map(|(r, status)| SummaryLine {
                doc_type: r.doc_type,
                series: r.series.clone(),
                correlative: r.correlative,
                customer: r.customer.clone(),
                status,
                currency: r.currency.clone(),
                totals: r.totals().expect("the test receipts add up"),
                modifies: None,
            })
            .chain(std::iter::once(note_of_b7()))
            .collect(),
    }
}

/// A credit note BC01-3 of boleta B001-7, as a Resumen Diario informs it after 1079.
fn note_of_b7() -> SummaryLine {
    let b7 = common::boleta(7);
    let mut totals = b7.totals().expect("the test receipts add up");
    totals.gravada = "5.00".parse().expect("decimal");
    totals.subtotal = "5.00".parse().expect("decimal");
    totals.igv = "0.90".parse().expect("decimal");
    totals.taxes = "0.90".parse().expect("decimal");
    totals.total = "5.90".parse().expect("decimal");
    SummaryLine {
        doc_type: DocumentType::Boleta,
        series: Series::parse("BC01").expect("valid test fixture"),
        correlative: 3,
        customer: b7.customer.clone(),
        status: LineStatus::Add,
        currency: b7.currency.clone(),
        totals,
        modifies: Some(ModifiedDocument {
            doc_type: DocumentType::Boleta,
            series: b7.series.clone(),
            correlative: b7.correlative,
        }),
    }
}

fn voided() -> VoidedDocuments {
    VoidedDocuments {
        company: common::company(),
        id: SummaryId::new(SummaryKind::Voided, date(2025, 3, 16), 2).expect("valid test fixture"),
        reference_date: date(2025, 3, 14),
        lines: vec![VoidedLine {
            doc_type: DocumentType::Factura,
            series: Series::parse("F001").expect("valid test fixture"),
            correlative: 12,
            reason: "Error en el RUC del cliente & <otros>".into(),
        }],
    }
}

fn check(
    dir: &Path,
    root: &str,
    prepared: &faena_sunat::Prepared,
    cert: &faena_sunat::testcert::TestCert,
) {
    let stem = prepared.file_name.trim_end_matches(".zip");
    let path = dir.join(format!("{stem}.xml"));
    std::fs::write(&path, &prepared.xml).expect("write the XML");
    common::assert_schema_valid(&xsd20(root), &path, stem);
    common::assert_signature_verifies(&cert.cert_pem_path, &path, stem);
    assert_eq!(
        verify(&prepared.xml)
            .expect("signature verifies")
            .digest_value,
        prepared.digest_value
    );
    let (name, content) = faena_sunat::archive::read_single(&prepared.zip).expect("one-file zip");
    assert_eq!(name, format!("{stem}.xml"));
    assert_eq!(content, prepared.xml);
}

#[test]
fn a_daily_summary_validates_and_its_signature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::cert(dir.path());
    let prepared = prepare_summary(&daily(), &common::signer(&cert)).unwrap();
    assert_eq!(prepared.file_name, "20100066603-RC-20250315-1.zip");
    check(dir.path(), "SummaryDocuments", &prepared, &cert);

    let text = String::from_utf8(prepared.xml.clone()).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let texts = |name: &str| -> Vec<String> {
        doc.descendants()
            .filter(|n| n.tag_name().name() == name)
            .filter_map(|n| n.text().map(str::to_owned))
            .collect()
    };
    assert_eq!(texts("ConditionCode"), ["3", "1", "1"]);
    assert_eq!(texts("TotalAmount"), ["10.50", "10.50", "5.90"]);
    // The note's line: type 07, its own number, and the boleta it modifies.
    assert_eq!(texts("DocumentTypeCode"), ["03", "03", "07", "03"]);
    let reference = doc
        .descendants()
        .find(|n| n.tag_name().name() == "InvoiceDocumentReference")
        .expect("the note's BillingReference");
    assert_eq!(
        reference
            .children()
            .filter_map(|n| n.text())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>(),
        ["B001-7", "03"]
    );
    assert_eq!(texts("ReferenceDate"), ["2025-03-14"]);
    assert_eq!(texts("IssueDate"), ["2025-03-15"]);
    assert_eq!(texts("CustomizationID"), ["1.1"]);
    assert_eq!(
        texts("CustomerAssignedAccountID"),
        ["20100066603", "46027897", "00000000", "46027897"]
    );
}

#[test]
fn a_voided_documents_validates_and_its_signature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::cert(dir.path());
    let prepared = prepare_voided(&voided(), &common::signer(&cert)).unwrap();
    assert_eq!(prepared.file_name, "20100066603-RA-20250316-2.zip");
    check(dir.path(), "VoidedDocuments", &prepared, &cert);
    let text = String::from_utf8(prepared.xml).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert!(doc
        .descendants()
        .any(|n| n.text() == Some("Error en el RUC del cliente & <otros>")));
}

#[test]
fn wrong_summaries_are_refused_with_a_stable_code() {
    let mut s = daily();
    s.lines[1].doc_type = DocumentType::Factura;
    assert_eq!(
        s.validate().unwrap_err().code(),
        "summary.wrong_document_type"
    );

    let mut s = daily();
    s.lines[1].correlative = 7;
    assert_eq!(s.validate().unwrap_err().code(), "summary.duplicate");

    // A note of a factura has no place in a Resumen Diario.
    let mut s = daily();
    if let Some(m) = s.lines[2].modifies.as_mut() {
        m.doc_type = DocumentType::Factura;
    }
    assert_eq!(
        s.validate().unwrap_err().code(),
        "summary.wrong_document_type"
    );

    let mut s = daily();
    s.reference_date = date(2025, 3, 16);
    assert_eq!(
        s.validate().unwrap_err().code(),
        "summary.reference_after_issue"
    );

    let mut s = daily();
    s.lines.clear();
    assert_eq!(s.validate().unwrap_err().code(), "summary.no_lines");

    let mut v = voided();
    v.lines[0].reason = "  x ".into();
    assert_eq!(v.validate().unwrap_err().code(), "summary.reason");

    let mut v = voided();
    v.lines[0].doc_type = DocumentType::Boleta;
    assert_eq!(
        v.validate().unwrap_err().code(),
        "summary.wrong_document_type"
    );

    let mut v = voided();
    v.id = daily().id;
    assert_eq!(v.validate().unwrap_err().code(), "summary.invalid_id");
}
