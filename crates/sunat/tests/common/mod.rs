//! Helpers shared by the integration tests: sample receipts and a test certificate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{NaiveDate, NaiveTime};
use faena_sunat::{Company, Customer, CustomerDocType, DocumentType, Line, Receipt, Ruc, Series};

pub const CERT_PASSWORD: &str = "clave de prueba";

pub fn company() -> Company {
    Company {
        ruc: Ruc::parse("20100066603").expect("valid test fixture"),
        legal_name: "Bodega Doña Rosa & Hijos S.A.C.".into(),
        address: "Av. Los Próceres 123 <Lima>".into(),
        establishment_code: "0000".into(),
    }
}

pub fn boleta(correlative: i64) -> Receipt {
    Receipt {
        company: company(),
        doc_type: DocumentType::Boleta,
        series: Series::parse("B001").expect("valid test fixture"),
        correlative,
        issue_date: NaiveDate::from_ymd_opt(2025, 3, 14).expect("valid test fixture"),
        issue_time: NaiveTime::from_hms_opt(10, 30, 0).expect("valid test fixture"),
        customer: Customer::new(CustomerDocType::Dni, "46027897", "José Pérez \"Pepe\"")
            .expect("valid test fixture"),
        currency: "PEN".into(),
        lines: vec![
            Line::new(
                "INKA-500",
                "Inca Kola 500 ml",
                3,
                "2.50".parse().expect("valid test fixture"),
            ),
            Line::new(
                "PAN-01",
                "Pan francés <unidad> & más",
                10,
                "0.30".parse().expect("valid test fixture"),
            ),
        ],
    }
}

pub fn factura(correlative: i64) -> Receipt {
    Receipt {
        doc_type: DocumentType::Factura,
        series: Series::parse("F001").expect("valid test fixture"),
        customer: Customer::new(CustomerDocType::Ruc, "20131312955", "SUNAT")
            .expect("valid test fixture"),
        ..boleta(correlative)
    }
}

/// A fresh test certificate in `dir`.
pub fn cert(dir: &Path) -> faena_sunat::testcert::TestCert {
    faena_sunat::testcert::generate(dir, CERT_PASSWORD).expect("valid test fixture")
}

pub fn signer(cert: &faena_sunat::testcert::TestCert) -> faena_sunat::Signer {
    faena_sunat::Signer::from_pkcs12(&cert.p12_path, &CERT_PASSWORD.to_string().into())
        .expect("valid test fixture")
}

pub fn xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xsd/2.1/maindoc/UBL-Invoice-2.1.xsd")
}

/// Runs a command and returns (success, stdout + stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run scripts/test-deps.sh)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Asserts that `path` validates against the schema `xsd` (xmllint), naming `stem` if not.
#[allow(dead_code)] // each test binary uses its own part of the helpers
pub fn assert_schema_valid(xsd: &Path, path: &Path, stem: &str) {
    let (ok, out) = run(Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(xsd)
        .arg(path));
    assert!(ok, "xmllint rejected {stem}:\n{out}");
}

/// Asserts that the enveloped signature of `path` verifies with `cert_pem` (xmlsec1).
#[allow(dead_code)]
pub fn assert_signature_verifies(cert_pem: &Path, path: &Path, stem: &str) {
    let (ok, out) = run(Command::new("xmlsec1")
        .args([
            "--verify",
            "--enabled-reference-uris",
            "empty",
            "--pubkey-cert-pem",
        ])
        .arg(cert_pem)
        .arg(path));
    assert!(ok, "xmlsec1 did not verify {stem}:\n{out}");
}

/// A credit note of `original` with `series`: `lines` are (line index, units credited before,
/// units credited now).
pub fn credit_note(
    original: &Receipt,
    series: &str,
    correlative: i64,
    reason: faena_sunat::CreditReason,
    lines: &[(usize, i64, i64)],
) -> faena_sunat::CreditNote {
    faena_sunat::CreditNote {
        company: original.company.clone(),
        series: Series::parse(series).expect("valid test fixture"),
        correlative,
        issue_date: original.issue_date,
        issue_time: NaiveTime::from_hms_opt(18, 5, 0).expect("valid test fixture"),
        customer: original.customer.clone(),
        currency: original.currency.clone(),
        reason,
        description: "Devolución del cliente: producto vencido".into(),
        original: faena_sunat::OriginalDocument {
            doc_type: original.doc_type,
            series: original.series.clone(),
            correlative: original.correlative,
            issue_date: original.issue_date,
        },
        lines: lines
            .iter()
            .map(|(i, before, now)| faena_sunat::CreditLine {
                line: original.lines[*i].clone(),
                credited_before: (*before).into(),
                quantity: (*now).into(),
            })
            .collect(),
    }
}

pub fn credit_note_xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xsd/2.1/maindoc/UBL-CreditNote-2.1.xsd")
}
