//! The UBL 2.1 CreditNote of a boleta and of a factura: it validates against the OASIS schema
//! (xmllint), its signature verifies with xmlsec1, it carries the original's reference and the
//! reason, and notes that credit a line in parts add up to the line to the cent.

mod common;

use bigdecimal::BigDecimal;
use faena_sunat::{
    prepare_credit_note, printable, verify, CreditReason, DocumentError, Line, Series,
};

fn d(s: &str) -> BigDecimal {
    s.parse().expect("a decimal")
}

/// `cbc:<name>` texts anywhere under the element `parent` (by local name).
fn texts(xml: &str, parent: &str, name: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.tag_name().name() == parent)
        .flat_map(|p| {
            p.children()
                .filter(|c| c.tag_name().name() == name)
                .filter_map(|c| c.text().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn notes_of_a_boleta_and_a_factura_validate_and_their_signatures_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::cert(dir.path());
    let signer = common::signer(&cert);
    let boleta = common::boleta(7);
    let factura = common::factura(12);
    let notes = [
        // 2 of the 3 Inca Kolas of B001-7.
        common::credit_note(&boleta, "BC01", 1, CreditReason::ItemReturn, &[(0, 0, 2)]),
        // The whole of F001-12.
        common::credit_note(
            &factura,
            "FC01",
            4,
            CreditReason::Cancellation,
            &[(0, 0, 3), (1, 0, 10)],
        ),
    ];
    for note in &notes {
        let prepared = prepare_credit_note(note, &signer).unwrap();
        let stem = note.file_stem();
        assert_eq!(
            stem,
            format!("20100066603-07-{}-{}", note.series, note.correlative)
        );
        assert_eq!(prepared.file_name, format!("{stem}.zip"));
        let path = dir.path().join(format!("{stem}.xml"));
        std::fs::write(&path, &prepared.xml).unwrap();
        common::assert_schema_valid(&common::credit_note_xsd(), &path, &stem);
        common::assert_signature_verifies(&cert.cert_pem_path, &path, &stem);
        assert_eq!(
            verify(&prepared.xml).unwrap().digest_value,
            prepared.digest_value
        );

        let xml = String::from_utf8(prepared.xml.clone()).unwrap();
        let original = note.original.id();
        assert_eq!(
            texts(&xml, "DiscrepancyResponse", "ReferenceID"),
            std::slice::from_ref(&original)
        );
        assert_eq!(
            texts(&xml, "DiscrepancyResponse", "ResponseCode"),
            [note.reason.code()]
        );
        assert_eq!(
            texts(&xml, "DiscrepancyResponse", "Description"),
            ["Devolución del cliente: producto vencido"]
        );
        assert_eq!(texts(&xml, "InvoiceDocumentReference", "ID"), [original]);
        assert_eq!(
            texts(&xml, "InvoiceDocumentReference", "DocumentTypeCode"),
            [note.original.doc_type.code()]
        );
    }
    let boleta_note =
        String::from_utf8(prepare_credit_note(&notes[0], &signer).unwrap().xml).unwrap();
    // 2 x 2.50 = 5.00 with IGV: value 4.24, IGV 0.76.
    assert_eq!(
        texts(&boleta_note, "LegalMonetaryTotal", "PayableAmount"),
        ["5.00"]
    );
    assert_eq!(
        texts(&boleta_note, "CreditNoteLine", "CreditedQuantity"),
        ["2"]
    );
    assert_eq!(
        texts(&boleta_note, "CreditNoteLine", "LineExtensionAmount"),
        ["4.24"]
    );
    // The whole factura: 7.50 + 3.00 = 10.50, what the factura itself says.
    let whole = notes[1].totals().unwrap();
    assert_eq!(whole.total, factura.totals().unwrap().total);
    assert_eq!(whole.total, d("10.50"));
}

#[test]
fn parts_of_a_line_add_up_to_the_line_to_the_cent() {
    let mut sale = common::boleta(9);
    // 7 units at 0.33 with 15% off: 2.31 gross, 0.35 off (0.3465 half-up), 1.96 net.
    sale.lines = vec![Line {
        discount: Some(faena_sunat::Discount::Percent(d("15"))),
        ..Line::new("CARAMELO", "Caramelo de limón", 7, d("0.33"))
    }];
    let whole = sale.totals().unwrap();
    // Credited as 3 + 2 + 2 units by three notes.
    let mut sum = BigDecimal::from(0);
    let mut igv = BigDecimal::from(0);
    for (i, (before, now)) in [(0, 3), (3, 2), (5, 2)].into_iter().enumerate() {
        let n = common::credit_note(
            &sale,
            "BC01",
            i as i64 + 1,
            CreditReason::ItemReturn,
            &[(0, before, now)],
        );
        let t = n.totals().unwrap();
        sum += t.total;
        igv += t.igv;
    }
    assert_eq!(sum, whole.total);
    assert_eq!(igv, whole.igv);
}

#[test]
fn a_note_sunat_would_refuse_is_not_built() {
    let boleta = common::boleta(7);
    let ok = common::credit_note(&boleta, "BC01", 1, CreditReason::ItemReturn, &[(0, 0, 1)]);
    assert!(ok.validate().is_ok());
    // An F series for a boleta's note (SUNAT 2399).
    let mut wrong_series = ok.clone();
    wrong_series.series = Series::parse("FC01").unwrap();
    let e = wrong_series.validate().unwrap_err();
    assert!(
        matches!(&e, DocumentError::InvalidNote(m) if m.contains("2399")),
        "{e}"
    );
    // More units than are left of the line.
    let too_many = common::credit_note(&boleta, "BC01", 1, CreditReason::ItemReturn, &[(0, 2, 2)]);
    assert!(matches!(
        too_many.validate(),
        Err(DocumentError::Tax { index: 0, .. })
    ));
    // A description with a line break (2135), an empty one (2136).
    for bad in ["dos\nlíneas", ""] {
        let mut n = ok.clone();
        n.description = bad.into();
        assert!(
            matches!(n.validate(), Err(DocumentError::InvalidNote(_))),
            "{bad:?}"
        );
    }
    // Older than the original (2885).
    let mut early = ok.clone();
    early.issue_date = boleta.issue_date.pred_opt().unwrap();
    assert!(matches!(early.validate(), Err(DocumentError::InvalidNote(m)) if m.contains("2885")));
}

#[test]
fn the_printed_note_names_the_original_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let boleta = common::boleta(7);
    let note = common::credit_note(&boleta, "BC01", 3, CreditReason::ItemReturn, &[(1, 0, 4)]);
    let pdf = printable::credit_note_pdf(&note, "abc123=", &[]).unwrap();
    let path = dir.path().join("note.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let (ok, text) = common::run(
        std::process::Command::new("pdftotext")
            .arg("-layout")
            .arg(&path)
            .arg("-"),
    );
    assert!(ok, "{text}");
    for expected in [
        "NOTA DE CRÉDITO ELECTRÓNICA",
        "BC01-3",
        "BOLETA DE VENTA ELECTRÓNICA B001-7",
        "07 Devolución por ítem",
        "Devolución del cliente: producto vencido",
        "S/ 1.20",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let png = printable::credit_note_qr_png(&note, "abc123=").unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    assert_eq!(
        note.qr_content("abc123=").unwrap(),
        "20100066603|07|BC01|3|0.18|1.20|2025-03-14|1|46027897|abc123=|"
    );
}
