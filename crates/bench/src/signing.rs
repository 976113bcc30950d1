//! The SUNAT signing measurement: build, sign and zip one boleta's UBL XML, on one core.

use std::time::Instant;

use chrono::Utc;

use crate::hist::report;

/// Time to build, sign (RSA-2048, SHA-1) and zip one boleta's UBL XML, on one core.
pub(crate) fn sign_boletas(receipts: usize) -> anyhow::Result<()> {
    use faena_sunat::document::{Company, Customer, DocumentType, Line, Receipt, Ruc, Series};
    if receipts == 0 {
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("faena-bench-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cert = faena_sunat::testcert::generate(&dir, "bench")?;
    let signer = faena_sunat::Signer::from_pkcs12(&cert.p12_path, &"bench".to_owned().into())?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    let t = Instant::now();
    for n in 0..receipts {
        let receipt = Receipt {
            company: Company {
                ruc: Ruc::parse("20100066603")?,
                legal_name: "Bench S.A.C.".into(),
                address: "Lima".into(),
                establishment_code: "0000".into(),
            },
            doc_type: DocumentType::Boleta,
            series: Series::parse("B001")?,
            correlative: n as i64 + 1,
            issue_date: Utc::now().date_naive(),
            issue_time: Utc::now().time(),
            customer: Customer::anonymous(),
            currency: "PEN".into(),
            lines: (0..5)
                .map(|i| {
                    Line::new(
                        &format!("P-{i}"),
                        &format!("Producto {i}"),
                        i + 1,
                        "3.50".parse().unwrap_or_default(),
                    )
                })
                .collect(),
        };
        let s = Instant::now();
        faena_sunat::prepare(&receipt, &signer)?;
        hist.record(s.elapsed().as_micros() as u64)?;
    }
    report(
        "sign + zip a 5-line boleta (one core)",
        &hist,
        t.elapsed().as_secs_f64(),
        "receipts",
    );
    Ok(())
}
