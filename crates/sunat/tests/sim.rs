//! Every simulator scenario through the real client, down to the classified outcome.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use faena_sunat::sim::{self, Scenario, ScenarioRequest, SimConfig, SimHandle};
use faena_sunat::{prepare, Client, Prepared, Receipt, Signer, SunatConfig};
use secrecy::SecretString;

const READ_TIMEOUT: Duration = Duration::from_millis(400);

fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let (p12, _) =
            faena_sunat::testcert::generate_der(common::CERT_PASSWORD).expect("test certificate");
        Signer::from_pkcs12_der(&p12, &SecretString::from(common::CERT_PASSWORD))
            .expect("test certificate opens")
    })
}

async fn start() -> SimHandle {
    let config = SimConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        // Far longer than the client's read timeout: the client always gives up first.
        timeout_delay: Duration::from_secs(30),
        ..SimConfig::default()
    };
    let (_, handle) = sim::spawn(config).await.expect("the simulator starts");
    handle
}

fn client(sim: &SimHandle, password: &str) -> Client {
    let mut config = SunatConfig::beta(common::company().ruc);
    config.endpoint = sim.endpoint();
    config.sol_password = SecretString::from(password.to_owned());
    config.connect_timeout = Duration::from_secs(2);
    config.read_timeout = READ_TIMEOUT;
    Client::new(config).expect("client")
}

fn prepared(receipt: &Receipt) -> Prepared {
    prepare(receipt, signer()).expect("receipt prepares")
}

async fn set(sim: &SimHandle, series: &str, correlative: i64, scenario: &str, times: u32) {
    let url = format!("http://{}/control/scenario", sim.addr);
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"series": series, "correlative": correlative, "scenario": scenario, "times": times})
                .to_string(),
        )
        .send()
        .await
        .expect("control endpoint answers");
    assert_eq!(resp.status(), 200, "{}", resp.text().await.expect("body"));
}

async fn calls(sim: &SimHandle, file_name: &str) -> u64 {
    let url = format!("http://{}/control/calls", sim.addr);
    let text = reqwest::Client::new()
        .get(url)
        .send()
        .await
        .expect("calls endpoint answers")
        .text()
        .await
        .expect("body");
    let calls: sim::Calls = serde_json::from_str(&text).expect("calls JSON");
    calls.calls.get(file_name).copied().unwrap_or(0)
}

#[tokio::test]
async fn accepted_then_a_resend_answers_1033() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    let p = prepared(&common::boleta(1));
    let sub = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(sub.outcome.name(), "accepted", "{:?}", sub.outcome);
    assert_eq!(sub.outcome.code(), Some("0000"));
    assert_eq!(sub.http_status, Some(200));
    let cdr = sub.cdr.unwrap();
    assert_eq!(cdr.reference_id, "B001-1");
    assert_eq!(calls(&sim, &p.file_name).await, 1);

    // The CDR is an UBL 2.1 ApplicationResponse.
    let (name, cdr_xml) = faena_sunat::archive::first_xml(&sub.cdr_zip.unwrap()).unwrap();
    assert_eq!(name, format!("R-{}", p.file_name.replace(".zip", ".xml")));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(&name);
    std::fs::write(&path, cdr_xml).unwrap();
    let xsd = common::xsd().with_file_name("UBL-ApplicationResponse-2.1.xsd");
    let (ok, out) = common::run(
        std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(xsd)
            .arg(&path),
    );
    assert!(ok, "{out}");

    // Read alone, 1033 says the number is taken; only our own unsure first send makes it ours.
    let again = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(again.outcome.name(), "conflict");
    assert_eq!(again.outcome.code(), Some("1033"));
    assert_eq!(again.http_status, Some(500));
    assert_eq!(again.outcome.on_resend().name(), "already_registered");
    assert_eq!(calls(&sim, &p.file_name).await, 2);
}

#[tokio::test]
async fn factura_accepted() {
    let sim = start().await;
    let p = prepared(&common::factura(3));
    let sub = client(&sim, "moddatos")
        .send_bill(&p.file_name, &p.zip)
        .await;
    assert_eq!(sub.outcome.name(), "accepted", "{:?}", sub.outcome);
}

#[tokio::test]
async fn observations_are_kept() {
    let sim = start().await;
    set(&sim, "B001", 2, "observations", 1).await;
    let p = prepared(&common::boleta(2));
    let sub = client(&sim, "moddatos")
        .send_bill(&p.file_name, &p.zip)
        .await;
    assert_eq!(sub.outcome.name(), "observed", "{:?}", sub.outcome);
    let faena_sunat::Outcome::AcceptedWithObservations { notes, .. } = &sub.outcome else {
        panic!("{:?}", sub.outcome)
    };
    // The CDR is ISO-8859-1: the accents survive.
    assert!(
        notes[0].starts_with("4287 - ") && notes[0].contains("operación"),
        "{notes:?}"
    );
    assert!(sub.outcome.is_accepted());
}

#[tokio::test]
async fn rejection_uses_up_the_number() {
    let sim = start().await;
    let p = prepared(&common::boleta(99_999_902));
    let client = client(&sim, "moddatos");
    let sub = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(
        (sub.outcome.name(), sub.outcome.code()),
        ("rejected", Some("2800"))
    );
    // A rejected number answers 1032 "ya esta informado y se encuentra con estado anulado o
    // rechazado" on any later send.
    let again = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(
        (again.outcome.name(), again.outcome.code()),
        ("conflict", Some("1032"))
    );
    assert_eq!(again.outcome.on_resend().name(), "rejected");
}

#[tokio::test]
async fn faults_0109_and_0130_are_retryable_then_accepted() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    for (n, scenario, code) in [(4, "fault_0109", "0109"), (5, "fault_0130", "0130")] {
        set(&sim, "B001", n, scenario, 1).await;
        let p = prepared(&common::boleta(n));
        let sub = client.send_bill(&p.file_name, &p.zip).await;
        assert_eq!(
            (sub.outcome.name(), sub.outcome.code()),
            ("retryable", Some(code))
        );
        assert_eq!(sub.http_status, Some(500));
        let retry = client.send_bill(&p.file_name, &p.zip).await;
        assert_eq!(retry.outcome.name(), "accepted", "{:?}", retry.outcome);
        assert_eq!(calls(&sim, &p.file_name).await, 2);
    }
}

#[tokio::test]
async fn http_503_twice_then_accepted() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    set(&sim, "B001", 6, "http_503", 2).await;
    let p = prepared(&common::boleta(6));
    for _ in 0..2 {
        let sub = client.send_bill(&p.file_name, &p.zip).await;
        assert_eq!(sub.outcome.name(), "retryable", "{:?}", sub.outcome);
        assert_eq!(sub.http_status, Some(503));
    }
    let sub = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(sub.outcome.name(), "accepted");
}

#[tokio::test]
async fn timeout_is_unknown_and_the_resend_is_accepted() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    let p = prepared(&common::boleta(99_999_906));
    let sub = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(sub.outcome.name(), "unknown", "{:?}", sub.outcome);
    assert_eq!(sub.http_status, None);
    assert!(sub.duration >= READ_TIMEOUT, "{:?}", sub.duration);
    // The convention applies to the first send only; it was not registered.
    let resend = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(resend.outcome.on_resend().name(), "accepted");
}

#[tokio::test]
async fn empty_200_is_unknown() {
    let sim = start().await;
    set(&sim, "B001", 8, "empty_200", 1).await;
    let p = prepared(&common::boleta(8));
    let sub = client(&sim, "moddatos")
        .send_bill(&p.file_name, &p.zip)
        .await;
    assert_eq!(sub.outcome.name(), "unknown");
    assert_eq!(sub.http_status, Some(200));
}

#[tokio::test]
async fn a_first_send_answered_1033_or_1032_is_a_conflict() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    for (n, code) in [(99_999_908, "1033"), (99_999_910, "1032")] {
        let p = prepared(&common::boleta(n));
        let sub = client.send_bill(&p.file_name, &p.zip).await;
        assert_eq!(
            (sub.outcome.name(), sub.outcome.code()),
            ("conflict", Some(code))
        );
        // The number stays taken: a later send answers the same.
        let again = client.send_bill(&p.file_name, &p.zip).await;
        assert_eq!(again.outcome.code(), Some(code));
        assert_eq!(calls(&sim, &p.file_name).await, 2);
    }
}

#[tokio::test]
async fn fault_1078_is_a_config_error_and_registers_nothing() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    let p = prepared(&common::boleta(99_999_911));
    let sub = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(
        (sub.outcome.name(), sub.outcome.code()),
        ("config_error", Some("1078"))
    );
    assert!(!sub.outcome.is_credential_error());
    let again = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(again.outcome.name(), "accepted", "{:?}", again.outcome);
}

#[tokio::test]
async fn unknown_then_1032_on_resend_means_rejected() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    let p = prepared(&common::boleta(99_999_912));
    let first = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(first.outcome.name(), "unknown", "{:?}", first.outcome);
    let resend = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(resend.outcome.code(), Some("1032"));
    assert_eq!(resend.outcome.on_resend().name(), "rejected");
    assert_eq!(calls(&sim, &p.file_name).await, 2);
}

#[tokio::test]
async fn fault_0125_is_unknown_and_the_resend_answers_1033() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    let p = prepared(&common::boleta(99_999_913));
    let first = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(
        (first.outcome.name(), first.outcome.code()),
        ("unknown", None)
    );
    assert_eq!(first.http_status, Some(500));
    let resend = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(resend.outcome.on_resend().name(), "already_registered");
}

#[tokio::test]
async fn an_anonymous_boleta_is_accepted_without_observation() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    // What Faena sends: type 0, eight zeros.
    let mut receipt = common::boleta(20);
    receipt.customer = faena_sunat::Customer::anonymous();
    let p = prepared(&receipt);
    let sub = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(sub.outcome.name(), "accepted", "{:?}", sub.outcome);
    assert_eq!(sub.cdr.map(|c| c.notes), Some(Vec::new()));
    // What it sent before: type 0 with "-", observed 4208 like SUNAT.
    let mut old = common::boleta(21);
    old.customer = faena_sunat::Customer {
        doc_type: faena_sunat::CustomerDocType::None,
        doc_number: "-".into(),
        name: "CLIENTES VARIOS".into(),
    };
    let p = prepared(&old);
    let sub = client.send_bill(&p.file_name, &p.zip).await;
    let faena_sunat::Outcome::AcceptedWithObservations { notes, .. } = &sub.outcome else {
        panic!("{:?}", sub.outcome)
    };
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].starts_with("4208 - "), "{notes:?}");
}

#[tokio::test]
async fn a_product_code_over_30_characters_is_not_observed() {
    let sim = start().await;
    let mut receipt = common::boleta(22);
    receipt.lines[0].code = "CODIGO-DE-PRODUCTO-DEMASIADO-LARGO-40CH".into();
    let p = prepared(&receipt);
    let sub = client(&sim, "moddatos")
        .send_bill(&p.file_name, &p.zip)
        .await;
    assert_eq!(sub.outcome.name(), "accepted", "{:?}", sub.outcome);
}

#[tokio::test]
async fn unknown_then_1033_on_resend_of_the_stored_bytes() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    set(&sim, "F001", 9, "unknown_then_1033", 1).await;
    let p = prepared(&common::factura(9));
    let first = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(first.outcome.name(), "unknown", "{:?}", first.outcome);
    let resend = client.send_bill(&p.file_name, &p.zip).await;
    assert_eq!(resend.outcome.on_resend().name(), "already_registered");
    assert_eq!(calls(&sim, &p.file_name).await, 2);
}

#[tokio::test]
async fn a_tampered_document_is_rejected_with_2335() {
    let sim = start().await;
    let p = prepared(&common::boleta(10));
    let xml = String::from_utf8(p.xml.clone()).unwrap();
    let tampered = xml.replacen("Inca Kola 500 ml", "Inca Kola 600 ml", 1);
    assert_ne!(xml, tampered);
    let stem = p.file_name.trim_end_matches(".zip");
    let zip =
        faena_sunat::archive::zip_single(&format!("{stem}.xml"), tampered.as_bytes()).unwrap();
    let sub = client(&sim, "moddatos").send_bill(&p.file_name, &zip).await;
    assert_eq!(
        (sub.outcome.name(), sub.outcome.code()),
        ("document_error", Some("2335"))
    );
}

#[tokio::test]
async fn wrong_password_is_a_config_error() {
    let sim = start().await;
    let p = prepared(&common::boleta(11));
    let sub = client(&sim, "not-the-password")
        .send_bill(&p.file_name, &p.zip)
        .await;
    assert_eq!(
        (sub.outcome.name(), sub.outcome.code()),
        ("config_error", Some("0102"))
    );
}

#[tokio::test]
async fn a_file_of_another_ruc_is_a_config_error() {
    let sim = start().await;
    let mut receipt = common::boleta(12);
    receipt.company.ruc = faena_sunat::Ruc::parse("20000000001").unwrap();
    let p = prepared(&receipt);
    let sub = client(&sim, "moddatos")
        .send_bill(&p.file_name, &p.zip)
        .await;
    assert_eq!(
        (sub.outcome.name(), sub.outcome.code()),
        ("config_error", Some("0154"))
    );
}

#[tokio::test]
async fn names_that_do_not_match_are_document_errors() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    let p13 = prepared(&common::boleta(13));
    let p14 = prepared(&common::boleta(14));
    // The zip entry is named after another document.
    let sub = client.send_bill(&p14.file_name, &p13.zip).await;
    assert_eq!(
        (sub.outcome.name(), sub.outcome.code()),
        ("document_error", Some("0161"))
    );
    // The entry is named right but the XML is document 13.
    let zip =
        faena_sunat::archive::zip_single(&p14.file_name.replace(".zip", ".xml"), &p13.xml).unwrap();
    let sub = client.send_bill(&p14.file_name, &zip).await;
    assert_eq!(
        (sub.outcome.name(), sub.outcome.code()),
        ("document_error", Some("1036"))
    );
    // Two entries.
    let two = faena_sunat::archive::zip_entries(&[
        (&p14.file_name.replace(".zip", ".xml"), p14.xml.as_slice()),
        ("other.xml", b"<x/>"),
    ])
    .unwrap();
    let sub = client.send_bill(&p14.file_name, &two).await;
    assert_eq!(
        (sub.outcome.name(), sub.outcome.code()),
        ("document_error", Some("0157"))
    );
    // Nothing above registered document 14.
    let sub = client.send_bill(&p14.file_name, &p14.zip).await;
    assert_eq!(sub.outcome.name(), "accepted", "{:?}", sub.outcome);
}

#[tokio::test]
async fn nothing_listening_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = SunatConfig::beta(common::company().ruc);
    config.endpoint = format!("http://{addr}/billService");
    config.read_timeout = READ_TIMEOUT;
    let p = prepared(&common::boleta(15));
    let sub = Client::new(config)
        .unwrap()
        .send_bill(&p.file_name, &p.zip)
        .await;
    assert_eq!(sub.outcome.name(), "retryable", "{:?}", sub.outcome);
    assert_eq!(sub.http_status, None);
}

#[tokio::test]
async fn reset_forgets_calls_and_documents() {
    let sim = start().await;
    let client = client(&sim, "moddatos");
    let p = prepared(&common::boleta(16));
    assert_eq!(
        client.send_bill(&p.file_name, &p.zip).await.outcome.name(),
        "accepted"
    );
    let url = format!("http://{}/control/reset", sim.addr);
    assert_eq!(
        reqwest::Client::new()
            .post(url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(calls(&sim, &p.file_name).await, 0);
    assert_eq!(
        client.send_bill(&p.file_name, &p.zip).await.outcome.name(),
        "accepted"
    );
    // The in-process handle sees the same state.
    assert_eq!(sim.state.calls_for(&p.file_name), 1);
    sim.state.set_scenario(ScenarioRequest {
        series: "B001".into(),
        correlative: 17,
        scenario: Scenario::Http503,
        times: 1,
    });
    let p17 = prepared(&common::boleta(17));
    assert_eq!(
        client
            .send_bill(&p17.file_name, &p17.zip)
            .await
            .outcome
            .name(),
        "retryable"
    );
    sim.stop().await;
}
