//! The UBL XML of a boleta and a factura validates against the UBL 2.1 schema (xmllint), and its
//! signature verifies with xmlsec1 and with our own `verify`.

mod common;

use std::process::Command;

use faena_sunat::{prepare, verify, VerifyError};

/// A boleta to an anonymous buyer, one of whose products has a code SUNAT would observe.
fn anonymous_boleta(correlative: i64) -> faena_sunat::Receipt {
    let mut r = common::boleta(correlative);
    r.customer = faena_sunat::Customer::anonymous();
    r.lines[0].code = "X".repeat(31);
    r
}

#[test]
fn boleta_and_factura_validate_and_their_signatures_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::cert(dir.path());
    let signer = common::signer(&cert);
    for receipt in [common::boleta(7), common::factura(12), anonymous_boleta(8)] {
        let prepared = prepare(&receipt, &signer).unwrap();
        let stem = receipt.file_stem();
        assert_eq!(prepared.file_name, format!("{stem}.zip"));
        let path = dir.path().join(format!("{stem}.xml"));
        std::fs::write(&path, &prepared.xml).unwrap();

        common::assert_schema_valid(&common::xsd(), &path, &stem);

        common::assert_signature_verifies(&cert.cert_pem_path, &path, &stem);

        let verified = verify(&prepared.xml).unwrap();
        assert_eq!(verified.digest_value, prepared.digest_value);
        let (name, content) = faena_sunat::archive::read_single(&prepared.zip).unwrap();
        assert_eq!(name, format!("{stem}.xml"));
        assert_eq!(content, prepared.xml);

        // The text was escaped, so the values read back intact.
        let text = String::from_utf8(prepared.xml.clone()).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        assert!(doc
            .descendants()
            .any(|n| n.text() == Some("Pan francés <unidad> & más")));

        // The buyer as SUNAT reads it without observation (4208), and item codes of 1 to 30
        // characters only (4269).
        let buyer = doc
            .descendants()
            .find(|n| n.tag_name().name() == "AccountingCustomerParty")
            .and_then(|p| p.descendants().find(|n| n.tag_name().name() == "ID"))
            .unwrap();
        let codes: Vec<_> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "SellersItemIdentification")
            .filter_map(|n| n.first_element_child().and_then(|id| id.text()))
            .collect();
        if receipt.customer.doc_type == faena_sunat::CustomerDocType::None {
            assert_eq!(buyer.attribute("schemeID"), Some("0"));
            assert_eq!(buyer.text(), Some("00000000"));
            assert_eq!(codes, ["PAN-01"], "the 31-character code is left out");
        } else {
            assert_eq!(codes, ["INKA-500", "PAN-01"]);
        }
    }
}

#[test]
fn a_tampered_document_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::cert(dir.path());
    let prepared = prepare(&common::boleta(1), &common::signer(&cert)).unwrap();
    let text = String::from_utf8(prepared.xml).unwrap();
    let tampered = text.replacen(
        "<cbc:PayableAmount currencyID=\"PEN\">10.50",
        "<cbc:PayableAmount currencyID=\"PEN\">1.50",
        1,
    );
    assert_ne!(tampered, text);
    assert_eq!(
        verify(tampered.as_bytes()),
        Err(VerifyError::DigestMismatch)
    );
    assert_eq!(VerifyError::DigestMismatch.sunat_code(), "2335");
    let path = dir.path().join("tampered.xml");
    std::fs::write(&path, &tampered).unwrap();
    let (ok, _) = common::run(
        Command::new("xmlsec1")
            .args([
                "--verify",
                "--enabled-reference-uris",
                "empty",
                "--pubkey-cert-pem",
            ])
            .arg(&cert.cert_pem_path)
            .arg(&path),
    );
    assert!(!ok, "xmlsec1 accepted a tampered document");
}

#[test]
fn a_wrong_certificate_password_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::cert(dir.path());
    let err =
        faena_sunat::Signer::from_pkcs12(&cert.p12_path, &"wrong".to_string().into()).unwrap_err();
    assert_eq!(err.code(), "sign.pkcs12");
}

#[test]
fn a_self_closed_extension_content_is_signed_too() {
    let dir = tempfile::tempdir().unwrap();
    let cert = common::cert(dir.path());
    let signer = common::signer(&cert);
    let xml = faena_sunat::ubl::invoice_xml(&common::factura(5)).unwrap();
    let self_closed = xml.replace(
        "<ext:ExtensionContent></ext:ExtensionContent>",
        "<ext:ExtensionContent/>",
    );
    assert_ne!(xml, self_closed);
    let signed = signer.sign(&self_closed).unwrap();
    assert_eq!(
        verify(&signed.xml).unwrap().digest_value,
        signed.digest_value
    );
    // The same document, however its empty slot is written, has the same digest.
    assert_eq!(signer.sign(&xml).unwrap().digest_value, signed.digest_value);
    let path = dir.path().join("self-closed.xml");
    std::fs::write(&path, &signed.xml).unwrap();
    let (ok, out) = common::run(
        Command::new("xmlsec1")
            .args([
                "--verify",
                "--enabled-reference-uris",
                "empty",
                "--pubkey-cert-pem",
            ])
            .arg(&cert.cert_pem_path)
            .arg(&path),
    );
    assert!(ok, "{out}");
}
