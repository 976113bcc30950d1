//! Summaries and tickets through the real client against the simulator: sendSummary, getStatus
//! (98 while in process, then the CDR), the registry effects of an RC and an RA, and getStatusCdr.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use chrono::NaiveDate;
use faena_sunat::sim::{self, SimConfig, SimHandle, SummaryRequest, SummaryScenario};
use faena_sunat::{
    prepare, prepare_summary, prepare_voided, Client, DailySummary, DocumentType, LineStatus,
    Outcome, Receipt, Signer, SummaryId, SummaryKind, SummaryLine, SunatConfig, TicketStatus,
    VoidedDocuments, VoidedLine,
};
use secrecy::SecretString;

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
        timeout_delay: Duration::from_secs(30),
        ..SimConfig::default()
    };
    let (_, handle) = sim::spawn(config).await.expect("the simulator starts");
    handle
}

fn client(sim: &SimHandle, consult: bool) -> Client {
    let mut config = SunatConfig::beta(common::company().ruc);
    config.endpoint = sim.endpoint();
    config.consult_endpoint = consult.then(|| sim.consult_endpoint());
    config.connect_timeout = Duration::from_secs(2);
    config.read_timeout = Duration::from_secs(5);
    Client::new(config).expect("client")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test fixture")
}

async fn send(client: &Client, receipt: &Receipt) -> Outcome {
    let p = prepare(receipt, signer()).expect("receipt prepares");
    client.send_bill(&p.file_name, &p.zip).await.outcome
}

fn rc(number: u32, issued: NaiveDate, lines: &[(&Receipt, LineStatus)]) -> DailySummary {
    DailySummary {
        company: common::company(),
        id: SummaryId::new(SummaryKind::Daily, issued, number).expect("valid id"),
        reference_date: lines[0].0.issue_date,
        lines: lines
            .iter()
            .map(|(r, status)| SummaryLine {
                doc_type: r.doc_type,
                series: r.series.clone(),
                correlative: r.correlative,
                customer: r.customer.clone(),
                status: *status,
                currency: r.currency.clone(),
                totals: r.totals().expect("the test receipts add up"),
                modifies: None,
            })
            .collect(),
    }
}

fn ra(number: u32, issued: NaiveDate, facturas: &[&Receipt]) -> VoidedDocuments {
    VoidedDocuments {
        company: common::company(),
        id: SummaryId::new(SummaryKind::Voided, issued, number).expect("valid id"),
        reference_date: facturas[0].issue_date,
        lines: facturas
            .iter()
            .map(|r| VoidedLine {
                doc_type: DocumentType::Factura,
                series: r.series.clone(),
                correlative: r.correlative,
                reason: "Error en el RUC del cliente".into(),
            })
            .collect(),
    }
}

/// Sends a prepared summary and polls its ticket until it is done: (polls answered 98, status
/// code, CDR response code, CDR reference id).
async fn send_and_poll(
    client: &Client,
    file_name: &str,
    zip: &[u8],
) -> (u32, String, String, String) {
    let ticket = client
        .send_summary(file_name, zip)
        .await
        .expect("sendSummary answers a ticket");
    let mut in_process = 0;
    for _ in 0..20 {
        match client.get_status(&ticket).await.expect("getStatus answers") {
            TicketStatus::InProcess => in_process += 1,
            TicketStatus::Done {
                status_code, cdr, ..
            } => return (in_process, status_code, cdr.response_code, cdr.reference_id),
        }
    }
    panic!("the ticket {ticket} never left 98");
}

#[tokio::test]
async fn a_boleta_voided_in_a_resumen_diario_answers_98_three_times_then_0() {
    let sim = start().await;
    let client = client(&sim, true);
    let boleta = common::boleta(7);
    assert_eq!(send(&client, &boleta).await.name(), "accepted");

    sim.state.set_summary(SummaryRequest {
        summary_id: "RC-20250315-1".into(),
        pending_polls: 3,
        scenario: None,
    });
    let p = prepare_summary(
        &rc(1, date(2025, 3, 15), &[(&boleta, LineStatus::Void)]),
        signer(),
    )
    .expect("summary prepares");
    let ticket = client
        .send_summary(&p.file_name, &p.zip)
        .await
        .expect("ticket");
    for poll in 1..=3 {
        assert_eq!(
            client.get_status(&ticket).await.expect("getStatus"),
            TicketStatus::InProcess,
            "poll {poll}"
        );
    }
    let TicketStatus::Done {
        status_code,
        cdr,
        cdr_zip,
    } = client.get_status(&ticket).await.expect("getStatus")
    else {
        panic!("the fourth poll is the result");
    };
    assert_eq!(status_code, "0");
    assert_eq!(cdr.response_code, "0");
    assert_eq!(cdr.reference_id, "RC-20250315-1");
    assert!(!cdr_zip.is_empty());
    assert_eq!(sim.state.calls_for(&format!("getStatus:{ticket}")), 4);

    // Voided: SUNAT refuses the number from now on.
    let again = send(&client, &boleta).await;
    assert_eq!(again.code(), Some("1032"), "{again:?}");
    // A second RC voiding it again is processed with errors (2987), and its ID once used is
    // never accepted again (2223).
    let p = prepare_summary(
        &rc(2, date(2025, 3, 15), &[(&boleta, LineStatus::Void)]),
        signer(),
    )
    .expect("summary prepares");
    let (_, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("99", "2987"));
    let (_, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("99", "2223"));

    // An unknown ticket is SUNAT's fault 0127.
    let err = client.get_status("123").await.expect_err("no such ticket");
    assert_eq!(err.code(), Some("0127"), "{err:?}");
    sim.stop().await;
}

#[tokio::test]
async fn a_1079_boleta_reaches_sunat_in_a_resumen_diario_with_status_1() {
    let sim = start().await;
    let client = client(&sim, true);
    let boleta = common::boleta(8);
    let p = prepare_summary(
        &rc(1, date(2025, 3, 20), &[(&boleta, LineStatus::Add)]),
        signer(),
    )
    .expect("summary prepares");
    let (in_process, status, code, reference) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!(in_process, 0);
    assert_eq!((status.as_str(), code.as_str()), ("0", "0"));
    assert_eq!(reference, "RC-20250320-1");
    // Registered: a sendBill of the same number is now 1033.
    assert_eq!(send(&client, &boleta).await.code(), Some("1033"));
    // Informing it again with status 1 is an error (2282).
    let p = prepare_summary(
        &rc(2, date(2025, 3, 20), &[(&boleta, LineStatus::Add)]),
        signer(),
    )
    .expect("summary prepares");
    let (_, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("99", "2282"));
    // Voiding a boleta SUNAT never received is an error (2663); voiding one past 7 days, 2957.
    let never = common::boleta(9);
    let p = prepare_summary(
        &rc(3, date(2025, 3, 20), &[(&never, LineStatus::Void)]),
        signer(),
    )
    .expect("summary prepares");
    let (_, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("99", "2663"));
    let p = prepare_summary(
        &rc(4, date(2025, 3, 22), &[(&boleta, LineStatus::Void)]),
        signer(),
    )
    .expect("summary prepares");
    let (_, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("99", "2957"));
    // The rejection scenario answers 99 and applies nothing.
    sim.state.set_summary(SummaryRequest {
        summary_id: "RC-20250321-1".into(),
        pending_polls: 1,
        scenario: Some(SummaryScenario::Rejection),
    });
    let p = prepare_summary(
        &rc(1, date(2025, 3, 21), &[(&boleta, LineStatus::Void)]),
        signer(),
    )
    .expect("summary prepares");
    let (in_process, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!(
        (in_process, status.as_str(), code.as_str()),
        (1, "99", "2800")
    );
    assert_eq!(
        send(&client, &boleta).await.code(),
        Some("1033"),
        "still registered"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_factura_voided_with_a_comunicacion_de_baja_and_get_status_cdr_follows_it() {
    let sim = start().await;
    let client = client(&sim, true);
    let factura = common::factura(12);
    assert_eq!(send(&client, &factura).await.name(), "accepted");

    let found = client
        .get_status_cdr("01", "F001", 12)
        .await
        .expect("getStatusCdr answers")
        .expect("a consult endpoint is set");
    assert_eq!(found.status_code, "0001");
    assert!(found.exists());
    let cdr = found.cdr.expect("the CDR comes with 0001");
    assert_eq!(
        (cdr.reference_id.as_str(), cdr.response_code.as_str()),
        ("F001-12", "0")
    );

    let p = prepare_voided(&ra(1, date(2025, 3, 16), &[&factura]), signer()).expect("RA prepares");
    let (_, status, code, reference) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("0", "0"));
    assert_eq!(reference, "RA-20250316-1");
    let voided = client
        .get_status_cdr("01", "F001", 12)
        .await
        .expect("getStatusCdr answers")
        .expect("a consult endpoint is set");
    assert_eq!(voided.status_code, "0003");
    assert_eq!(send(&client, &factura).await.code(), Some("1032"));

    // A factura SUNAT does not have (2105), and one past the 7-day window (2957).
    let never = common::factura(13);
    let p = prepare_voided(&ra(2, date(2025, 3, 16), &[&never]), signer()).expect("RA prepares");
    let (_, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("99", "2105"));
    let late = common::factura(14);
    assert_eq!(send(&client, &late).await.name(), "accepted");
    let p = prepare_voided(&ra(1, date(2025, 3, 22), &[&late]), signer()).expect("RA prepares");
    let (_, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("99", "2957"));

    // getStatusCdr: unknown numbers and boletas.
    let none = client
        .get_status_cdr("01", "F001", 999)
        .await
        .expect("answers")
        .expect("set");
    assert_eq!((none.status_code.as_str(), none.exists()), ("0011", false));
    assert!(none.cdr.is_none());
    let boleta = client
        .get_status_cdr("03", "B001", 1)
        .await
        .expect("answers")
        .expect("set");
    assert_eq!(boleta.status_code, "0009");
    let b_series = client
        .get_status_cdr("01", "B001", 1)
        .await
        .expect("answers")
        .expect("set");
    assert_eq!(b_series.status_code, "0010");

    // Without a consult endpoint (SUNAT's beta) there is nothing to ask.
    let beta_like = client_without_consult(&sim);
    assert_eq!(
        beta_like
            .get_status_cdr("01", "F001", 12)
            .await
            .expect("no call"),
        None
    );
    sim.stop().await;
}

fn client_without_consult(sim: &SimHandle) -> Client {
    client(sim, false)
}

#[tokio::test]
async fn a_summary_with_a_wrong_password_or_a_mismatched_id_is_a_fault() {
    let sim = start().await;
    let boleta = common::boleta(7);
    let p = prepare_summary(
        &rc(1, date(2025, 3, 15), &[(&boleta, LineStatus::Add)]),
        signer(),
    )
    .expect("summary prepares");
    let mut config = SunatConfig::beta(common::company().ruc);
    config.endpoint = sim.endpoint();
    config.sol_password = SecretString::from("otra".to_owned());
    let wrong = Client::new(config).expect("client");
    let err = wrong
        .send_summary(&p.file_name, &p.zip)
        .await
        .expect_err("0102");
    assert_eq!((err.name(), err.code()), ("config_error", Some("0102")));

    let client = client(&sim, false);
    let err = client
        .send_summary("20100066603-RC-20250315-2.zip", &p.zip)
        .await
        .expect_err("the zip's entry is named after RC-20250315-1");
    assert_eq!(err.code(), Some("0161"), "{err:?}");
    sim.stop().await;
}

/// A line informing credit note `series-correlative` of `total` that modifies `boleta`.
fn note_line(boleta: &Receipt, series: &str, correlative: i64, total: &str) -> SummaryLine {
    let mut totals = boleta.totals().expect("the test receipts add up");
    let total: bigdecimal::BigDecimal = total.parse().expect("a decimal");
    // All of it gravado at 18%: value = total / 1.18, to the cent.
    let value = (&total / bigdecimal::BigDecimal::from(118) * bigdecimal::BigDecimal::from(100))
        .with_scale_round(2, bigdecimal::RoundingMode::HalfUp);
    totals.igv = &total - &value;
    totals.taxes = totals.igv.clone();
    totals.gravada = value.clone();
    totals.subtotal = value;
    totals.total = total;
    SummaryLine {
        doc_type: DocumentType::Boleta,
        series: faena_sunat::Series::parse(series).expect("valid test fixture"),
        correlative,
        customer: boleta.customer.clone(),
        status: LineStatus::Add,
        currency: boleta.currency.clone(),
        totals,
        modifies: Some(faena_sunat::ModifiedDocument {
            doc_type: DocumentType::Boleta,
            series: boleta.series.clone(),
            correlative: boleta.correlative,
        }),
    }
}

#[tokio::test]
async fn a_1079_credit_note_of_a_boleta_reaches_sunat_in_a_resumen_diario() {
    let sim = start().await;
    let client = client(&sim, true);
    let boleta = common::boleta(9);
    let day = date(2025, 3, 21);
    // A note of a boleta SUNAT does not hold: 2989, nothing registered.
    let mut s = rc(1, day, &[(&boleta, LineStatus::Add)]);
    s.lines = vec![note_line(&boleta, "BC01", 1, "5.00")];
    let p = prepare_summary(&s, signer()).expect("summary prepares");
    let (_, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("99", "2989"));

    // The boleta informed by an earlier line of the same summary: both are taken, and the note
    // above what is left of the boleta is only an observation (4028).
    let mut s = rc(2, day, &[(&boleta, LineStatus::Add)]);
    s.lines.push(note_line(&boleta, "BC01", 1, "5.00"));
    s.lines.push(note_line(&boleta, "BC01", 2, "9.00"));
    let p = prepare_summary(&s, signer()).expect("summary prepares");
    let ticket = client
        .send_summary(&p.file_name, &p.zip)
        .await
        .expect("ticket");
    let TicketStatus::Done {
        status_code, cdr, ..
    } = client.get_status(&ticket).await.expect("getStatus")
    else {
        panic!("no pending polls were asked for");
    };
    assert_eq!(
        (status_code.as_str(), cdr.response_code.as_str()),
        ("0", "0")
    );
    assert!(
        cdr.notes.iter().any(|n| n.starts_with("4028")),
        "{:?}",
        cdr.notes
    );
    // The note is registered: informing it again is 2282.
    let mut s = rc(3, day, &[(&boleta, LineStatus::Add)]);
    s.lines = vec![note_line(&boleta, "BC01", 1, "5.00")];
    let p = prepare_summary(&s, signer()).expect("summary prepares");
    let (_, status, code, _) = send_and_poll(&client, &p.file_name, &p.zip).await;
    assert_eq!((status.as_str(), code.as_str()), ("99", "2282"));
    sim.stop().await;
}
