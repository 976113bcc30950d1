//! Credit notes through the real client against sunat-sim: a note of an accepted boleta or
//! factura is accepted and counts against what is left of it; a note above what is left is
//! rejected with 3286 (factura) or observed with 4028 (boleta); a note of a document SUNAT does
//! not have (2119) or rejected (2121), of the wrong type for its series (2116, 2399), without a
//! valid reason (2172, 2135) or with a broken signature (2335) is refused with SUNAT's code; the
//! invoice scenarios apply to notes by their series and number; getStatusCdr finds an F note.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use faena_sunat::sim::{self, Scenario, ScenarioRequest, SimConfig, SimHandle};
use faena_sunat::{
    prepare, prepare_credit_note, Client, CreditNote, CreditReason, Outcome, Prepared, Receipt,
    Signer, SunatConfig,
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

async fn start() -> (SimHandle, Client) {
    let config = SimConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        timeout_delay: Duration::from_secs(30),
        ..SimConfig::default()
    };
    let (_, sim) = sim::spawn(config).await.expect("the simulator starts");
    let mut c = SunatConfig::beta(common::company().ruc);
    c.endpoint = sim.endpoint();
    c.consult_endpoint = Some(sim.consult_endpoint());
    c.read_timeout = Duration::from_secs(5);
    let client = Client::new(c).expect("client");
    (sim, client)
}

async fn send_receipt(client: &Client, r: &Receipt) -> Outcome {
    let p = prepare(r, signer()).expect("receipt prepares");
    client.send_bill(&p.file_name, &p.zip).await.outcome
}

async fn send_note(client: &Client, n: &CreditNote) -> Outcome {
    let p = prepare_credit_note(n, signer()).expect("note prepares");
    client.send_bill(&p.file_name, &p.zip).await.outcome
}

/// Signs and zips a hand-edited note: what Faena's builder would refuse to write.
fn edited(n: &CreditNote, edit: impl Fn(String) -> String) -> Prepared {
    let xml = faena_sunat::credit_note::credit_note_xml(n).expect("note builds");
    let xml = edit(xml);
    let signed = signer().sign(&xml).expect("signs");
    let stem = n.file_stem();
    let zip = faena_sunat::archive::zip_single(&format!("{stem}.xml"), &signed.xml).expect("zip");
    Prepared {
        file_name: format!("{stem}.zip"),
        xml: signed.xml,
        zip,
        digest_value: signed.digest_value,
    }
}

/// A change to a note's XML before it is signed.
type Edit = Box<dyn Fn(String) -> String>;

fn rejected_with(o: &Outcome) -> Option<&str> {
    matches!(o, Outcome::Rejected { .. })
        .then(|| o.code())
        .flatten()
}

#[tokio::test]
async fn notes_count_against_what_is_left_of_the_original() {
    let (_sim, client) = start().await;
    // B001-7: 3 x 2.50 + 10 x 0.30 = 10.50.
    let boleta = common::boleta(7);
    assert!(send_receipt(&client, &boleta).await.is_accepted());
    // 2 Inca Kolas back: 5.00.
    let n1 = common::credit_note(&boleta, "BC01", 1, CreditReason::ItemReturn, &[(0, 0, 2)]);
    let o = send_note(&client, &n1).await;
    assert_eq!(o.name(), "accepted", "{o:?}");
    // 5.50 left: a note of 10.50 is observed (4028) on a boleta, and still accepted.
    let n2 = common::credit_note(
        &boleta,
        "BC01",
        2,
        CreditReason::Cancellation,
        &[(0, 0, 3), (1, 0, 10)],
    );
    let o = send_note(&client, &n2).await;
    let Outcome::AcceptedWithObservations { notes, .. } = &o else {
        panic!("{o:?}")
    };
    assert!(notes.iter().any(|n| n.starts_with("4028 - ")), "{notes:?}");

    // F001-12 (10.50): its whole is accepted, a second note of 5.00 is rejected with 3286.
    let factura = common::factura(12);
    assert!(send_receipt(&client, &factura).await.is_accepted());
    let whole = common::credit_note(
        &factura,
        "FC01",
        1,
        CreditReason::Cancellation,
        &[(0, 0, 3), (1, 0, 10)],
    );
    assert_eq!(send_note(&client, &whole).await.name(), "accepted");
    let again = common::credit_note(&factura, "FC01", 2, CreditReason::ItemReturn, &[(0, 0, 2)]);
    let o = send_note(&client, &again).await;
    assert_eq!(rejected_with(&o), Some("3286"), "{o:?}");
    // A rejected note took nothing: the registry still holds what the whole note left (0).
    let again = common::credit_note(&factura, "FC01", 3, CreditReason::ItemReturn, &[(1, 0, 1)]);
    assert_eq!(
        rejected_with(&send_note(&client, &again).await),
        Some("3286")
    );

    // getStatusCdr knows the accepted F note, with its CDR.
    let answer = client
        .get_status_cdr("07", "FC01", 1)
        .await
        .expect("answers")
        .expect("consult endpoint set");
    assert_eq!(answer.status_code, "0001");
    assert!(answer.cdr_zip.is_some());
}

#[tokio::test]
async fn a_note_of_a_document_sunat_does_not_hold_as_accepted_is_rejected() {
    let (sim, client) = start().await;
    // Never sent: 2119.
    let unsent = common::boleta(20);
    let n = common::credit_note(&unsent, "BC01", 1, CreditReason::ItemReturn, &[(0, 0, 1)]);
    assert_eq!(rejected_with(&send_note(&client, &n).await), Some("2119"));
    // Rejected by SUNAT: 2121.
    let rejected = common::boleta(21);
    sim.state.set_scenario(ScenarioRequest {
        series: "B001".into(),
        correlative: 21,
        scenario: Scenario::Rejection,
        times: 1,
    });
    assert_eq!(send_receipt(&client, &rejected).await.name(), "rejected");
    let n = common::credit_note(&rejected, "BC01", 2, CreditReason::ItemReturn, &[(0, 0, 1)]);
    assert_eq!(rejected_with(&send_note(&client, &n).await), Some("2121"));
}

#[tokio::test]
async fn a_broken_reference_reason_or_signature_gets_sunats_code() {
    let (_sim, client) = start().await;
    let boleta = common::boleta(30);
    assert!(send_receipt(&client, &boleta).await.is_accepted());
    let n = common::credit_note(&boleta, "BC01", 1, CreditReason::ItemReturn, &[(0, 0, 1)]);
    let cases: [(&str, Edit); 5] = [
        // A B note that modifies a factura.
        (
            "2399",
            Box::new(|x| {
                x.replace(
                    "<cbc:DocumentTypeCode>03</cbc:DocumentTypeCode>",
                    "<cbc:DocumentTypeCode>01</cbc:DocumentTypeCode>",
                )
            }),
        ),
        // A reason outside catálogo 09.
        (
            "2172",
            Box::new(|x| {
                x.replace(
                    "<cbc:ResponseCode>07</cbc:ResponseCode>",
                    "<cbc:ResponseCode>99</cbc:ResponseCode>",
                )
            }),
        ),
        // A description with a tab.
        (
            "2135",
            Box::new(|x| x.replace("Devolución del cliente:", "Devolución\tdel cliente:")),
        ),
        // No reference.
        (
            "2524",
            Box::new(|x| {
                let a = x.find("<cac:BillingReference>").expect("reference");
                let b = x.find("</cac:BillingReference>").expect("reference end");
                format!("{}{}", &x[..a], &x[b + "</cac:BillingReference>".len()..])
            }),
        ),
        // A reference that does not fit its type.
        (
            "2117",
            Box::new(|x| x.replace("<cbc:ID>B001-30</cbc:ID>", "<cbc:ID>B001-x30</cbc:ID>")),
        ),
    ];
    for (i, (code, edit)) in cases.iter().enumerate() {
        let mut note = n.clone();
        note.correlative = i as i64 + 1;
        let p = edited(&note, edit);
        let o = client.send_bill(&p.file_name, &p.zip).await.outcome;
        assert_eq!(rejected_with(&o), Some(*code), "{o:?}");
    }
    // An F note of a boleta (2116): Faena's builder refuses it (credit_note.rs), so the XML of a
    // B note is renamed.
    let b = edited(
        &common::credit_note(&boleta, "BC01", 9, CreditReason::ItemReturn, &[(0, 0, 1)]),
        |x| x.replace("<cbc:ID>BC01-9</cbc:ID>", "<cbc:ID>FC01-9</cbc:ID>"),
    );
    let name = b.file_name.replace("BC01", "FC01");
    let zip = faena_sunat::archive::zip_single(&name.replace(".zip", ".xml"), &b.xml).expect("zip");
    let o = client.send_bill(&name, &zip).await.outcome;
    assert_eq!(rejected_with(&o), Some("2116"), "{o:?}");

    // A note edited after it was signed: 2335, like any document.
    let p = prepare_credit_note(
        &common::credit_note(&boleta, "BC01", 10, CreditReason::ItemReturn, &[(0, 0, 1)]),
        signer(),
    )
    .expect("prepares");
    let text = String::from_utf8(p.xml).expect("utf-8").replace(
        "<cbc:PayableAmount currencyID=\"PEN\">2.50",
        "<cbc:PayableAmount currencyID=\"PEN\">1.50",
    );
    let zip =
        faena_sunat::archive::zip_single(&p.file_name.replace(".zip", ".xml"), text.as_bytes())
            .expect("zip");
    let o = client.send_bill(&p.file_name, &zip).await.outcome;
    assert_eq!(o.code(), Some("2335"), "{o:?}");
}

#[tokio::test]
async fn the_invoice_scenarios_apply_to_notes() {
    let (sim, client) = start().await;
    let factura = common::factura(40);
    assert!(send_receipt(&client, &factura).await.is_accepted());
    let n = common::credit_note(&factura, "FC01", 5, CreditReason::ItemReturn, &[(0, 0, 1)]);
    sim.state.set_scenario(ScenarioRequest {
        series: "FC01".into(),
        correlative: 5,
        scenario: Scenario::Http503,
        times: 1,
    });
    assert_eq!(send_note(&client, &n).await.name(), "retryable");
    assert_eq!(send_note(&client, &n).await.name(), "accepted");
    // Registered: a resend of the same number answers 1033.
    assert_eq!(send_note(&client, &n).await.code(), Some("1033"));
    assert_eq!(sim.state.calls_for(&format!("{}.zip", n.file_stem())), 3);
}
