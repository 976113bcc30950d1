//! A real shop basket (issue 16): one line of each kind — gravado, exonerado, inafecto, a free
//! gift, a discounted line, 1.250 kg of a weighed product and 2 plastic bags — as a boleta and a
//! factura: the XML validates against the UBL 2.1 schema (xmllint), its signature verifies with
//! xmlsec1, its totals equal a computation by hand, sunat-sim accepts it after checking SUNAT's
//! sums, and the PDF shows every line, the ICBPER total and the amount in words (pdftotext).

mod common;

use std::process::Command;
use std::time::Duration;

use bigdecimal::BigDecimal;
use chrono::NaiveDate;
use faena_sunat::sim::{self, SimConfig};
use faena_sunat::{
    prepare, Affectation, Client, Discount, DocumentType, Line, Receipt, SunatConfig, UnitCode,
};
use secrecy::SecretString;

fn d(s: &str) -> BigDecimal {
    s.parse().expect("test decimal")
}

fn basket(doc: DocumentType) -> Receipt {
    let mut r = match doc {
        DocumentType::Boleta => common::boleta(41),
        DocumentType::Factura => common::factura(42),
    };
    // ICBPER 0.50 per bag, IGV 18%.
    r.issue_date = NaiveDate::from_ymd_opt(2026, 12, 2).expect("date");
    let line = |code: &str, desc: &str, qty: &str, price: &str| Line {
        quantity: d(qty),
        ..Line::new(code, desc, 1, d(price))
    };
    r.lines = vec![
        line("ACE-1", "Aceite vegetal 1 L", "1", "10.50"),
        Line {
            affectation: Affectation::EXONERADO,
            ..line("PAP-1", "Papaya fresca", "2", "3.00")
        },
        Line {
            affectation: Affectation::INAFECTO,
            ..line("LIB-1", "Libro escolar de lectura", "1", "25.00")
        },
        Line {
            free: true,
            ..line("LLA-1", "Llavero de regalo", "1", "5.90")
        },
        Line {
            discount: Some(Discount::Percent(d("10"))),
            ..line("INK-15", "Gaseosa Inca Kola 1.5 L", "2", "6.50")
        },
        Line {
            unit_code: UnitCode::parse("KGM").expect("unit"),
            ..line("ARR-G", "Arroz a granel", "1.250", "4.20")
        },
        Line {
            icbper: true,
            ..line("BOL-1", "Bolsa plastica", "2", "0.10")
        },
    ];
    r
}

/// The amounts computed by hand (IGV 18%, half-up to the cent at each line):
/// - aceite 10.50: value 10.50 / 1.18 = 8.898 -> 8.90, IGV 1.60
/// - papaya 2 x 3.00 exonerada: 6.00
/// - libro 25.00 inafecto: 25.00
/// - llavero free (code 15): referential value 5.90 / 1.18 = 5.00, its IGV 0.90 (not charged)
/// - Inca Kola 2 x 6.50 = 13.00 - 10% = 11.70: value 11.70 / 1.18 = 9.915 -> 9.92, IGV 1.78;
///   base before the discount 13.00 / 1.18 = 11.017 -> 11.02, so the discount's value is 1.10
/// - arroz 1.250 kg x 4.20 = 5.25: value 4.449 -> 4.45, IGV 0.80
/// - bolsas 2 x 0.10 = 0.20: value 0.169 -> 0.17, IGV 0.03, ICBPER 2 x 0.50 = 1.00
struct Hand {
    gravada: &'static str,
    exonerada: &'static str,
    inafecta: &'static str,
    gratuita: &'static str,
    igv_gratuita: &'static str,
    igv: &'static str,
    icbper: &'static str,
    subtotal: &'static str,
    taxes: &'static str,
    total: &'static str,
    words: &'static str,
}

const HAND: Hand = Hand {
    gravada: "23.44", // 8.90 + 9.92 + 4.45 + 0.17
    exonerada: "6.00",
    inafecta: "25.00",
    gratuita: "5.00",
    igv_gratuita: "0.90",
    igv: "4.21", // 1.60 + 1.78 + 0.80 + 0.03
    icbper: "1.00",
    subtotal: "54.44", // 23.44 + 6.00 + 25.00
    taxes: "5.21",     // 4.21 + 1.00
    total: "59.65",    // 54.44 + 5.21 = 10.50 + 6.00 + 25.00 + 11.70 + 5.25 + 0.20 + 1.00
    words: "SON CINCUENTA Y NUEVE CON 65/100 SOLES",
};

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, local: &str) -> roxmltree::Node<'a, 'i> {
    n.children()
        .find(|c| c.tag_name().name() == local)
        .unwrap_or_else(|| panic!("no {local} under {:?}", n.tag_name().name()))
}

fn text<'a>(n: roxmltree::Node<'a, '_>, local: &str) -> &'a str {
    child(n, local).text().unwrap_or("")
}

#[tokio::test]
async fn a_mixed_basket_validates_verifies_adds_up_prints_and_is_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = common::cert(dir.path());
    let signer = common::signer(&cert);
    let (_, sim) = sim::spawn(SimConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let mut config = SunatConfig::beta(common::company().ruc);
    config.endpoint = sim.endpoint();
    config.sol_password = SecretString::from("moddatos".to_owned());
    config.read_timeout = Duration::from_secs(10);
    let client = Client::new(config).expect("client");

    for doc in [DocumentType::Boleta, DocumentType::Factura] {
        let receipt = basket(doc);
        let prepared = prepare(&receipt, &signer).expect("the basket prepares");
        let stem = receipt.file_stem();
        let path = dir.path().join(format!("{stem}.xml"));
        std::fs::write(&path, &prepared.xml).expect("write xml");

        common::assert_schema_valid(&common::xsd(), &path, &stem);
        common::assert_signature_verifies(&cert.cert_pem_path, &path, &stem);

        // The totals, as computed by hand.
        let totals = receipt.totals().expect("totals");
        for (got, want) in [
            (&totals.gravada, HAND.gravada),
            (&totals.exonerada, HAND.exonerada),
            (&totals.inafecta, HAND.inafecta),
            (&totals.gratuita, HAND.gratuita),
            (&totals.igv_gratuita, HAND.igv_gratuita),
            (&totals.igv, HAND.igv),
            (&totals.icbper, HAND.icbper),
            (&totals.subtotal, HAND.subtotal),
            (&totals.taxes, HAND.taxes),
            (&totals.total, HAND.total),
        ] {
            assert_eq!(got, &d(want), "{stem}");
        }

        // ... and as the XML states them.
        let xml = String::from_utf8(prepared.xml.clone()).expect("utf-8");
        let doc_xml = roxmltree::Document::parse(&xml).expect("xml parses");
        let root = doc_xml.root_element();
        let notes: Vec<(Option<&str>, &str)> = root
            .children()
            .filter(|n| n.tag_name().name() == "Note")
            .map(|n| (n.attribute("languageLocaleID"), n.text().unwrap_or("")))
            .collect();
        assert_eq!(
            notes,
            [
                (Some("1000"), HAND.words),
                (
                    Some("1002"),
                    "TRANSFERENCIA GRATUITA DE UN BIEN Y/O SERVICIO PRESTADO GRATUITAMENTE"
                ),
            ]
        );
        let tax_total = child(root, "TaxTotal");
        assert_eq!(text(tax_total, "TaxAmount"), HAND.taxes);
        let subtotals: Vec<(String, String, String, String, String)> = tax_total
            .children()
            .filter(|n| n.tag_name().name() == "TaxSubtotal")
            .map(|s| {
                let scheme = child(child(s, "TaxCategory"), "TaxScheme");
                let taxable = s
                    .children()
                    .find(|c| c.tag_name().name() == "TaxableAmount")
                    .and_then(|c| c.text())
                    .unwrap_or("-");
                (
                    text(scheme, "ID").to_owned(),
                    text(scheme, "Name").to_owned(),
                    text(scheme, "TaxTypeCode").to_owned(),
                    taxable.to_owned(),
                    text(s, "TaxAmount").to_owned(),
                )
            })
            .collect();
        let row = |a: &str, b: &str, c: &str, e: &str, f: &str| {
            (
                a.to_owned(),
                b.to_owned(),
                c.to_owned(),
                e.to_owned(),
                f.to_owned(),
            )
        };
        assert_eq!(
            subtotals,
            [
                row("1000", "IGV", "VAT", HAND.gravada, HAND.igv),
                row("9997", "EXO", "VAT", HAND.exonerada, "0.00"),
                row("9998", "INA", "FRE", HAND.inafecta, "0.00"),
                row("9996", "GRA", "FRE", HAND.gratuita, HAND.igv_gratuita),
                row("7152", "ICBPER", "OTH", "-", HAND.icbper),
            ]
        );
        let lmt = child(root, "LegalMonetaryTotal");
        assert_eq!(text(lmt, "LineExtensionAmount"), HAND.subtotal);
        assert_eq!(text(lmt, "TaxInclusiveAmount"), HAND.total);
        assert_eq!(text(lmt, "PayableAmount"), HAND.total);

        // Each line: quantity and unit, value, affectation and scheme.
        let lines: Vec<(String, String, String, String, String)> = root
            .children()
            .filter(|n| n.tag_name().name() == "InvoiceLine")
            .map(|l| {
                let q = child(l, "InvoicedQuantity");
                let sub = child(child(l, "TaxTotal"), "TaxSubtotal");
                let cat = child(sub, "TaxCategory");
                (
                    format!(
                        "{} {}",
                        q.text().unwrap_or(""),
                        q.attribute("unitCode").unwrap_or("")
                    ),
                    text(l, "LineExtensionAmount").to_owned(),
                    text(sub, "TaxAmount").to_owned(),
                    text(cat, "TaxExemptionReasonCode").to_owned(),
                    text(child(cat, "TaxScheme"), "ID").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                row("1 NIU", "8.90", "1.60", "10", "1000"),
                row("2 NIU", "6.00", "0.00", "20", "9997"),
                row("1 NIU", "25.00", "0.00", "30", "9998"),
                row("1 NIU", "5.00", "0.90", "15", "9996"),
                row("2 NIU", "9.92", "1.78", "10", "1000"),
                row("1.25 KGM", "4.45", "0.80", "10", "1000"),
                row("2 NIU", "0.17", "0.03", "10", "1000"),
            ]
        );
        // The discount: catálogo 53 code 00, 1.10 off a base of 11.02.
        let discounted = root
            .children()
            .filter(|n| n.tag_name().name() == "InvoiceLine")
            .nth(4)
            .expect("fifth line");
        let ac = child(discounted, "AllowanceCharge");
        assert_eq!(
            (
                text(ac, "ChargeIndicator"),
                text(ac, "AllowanceChargeReasonCode"),
                text(ac, "Amount"),
                text(ac, "BaseAmount"),
            ),
            ("false", "00", "1.10", "11.02")
        );

        // sunat-sim checks the same sums and accepts it without observations.
        let sub = client.send_bill(&prepared.file_name, &prepared.zip).await;
        assert_eq!(sub.outcome.name(), "accepted", "{stem}: {:?}", sub.outcome);
        assert_eq!(sub.outcome.code(), Some("0000"));
        assert_eq!(sub.cdr.map(|c| c.notes), Some(Vec::new()), "{stem}");

        // The PDF shows every line, the ICBPER total and the amount in words.
        let printed =
            faena_sunat::printable::write_files(dir.path(), &receipt, &prepared.digest_value, &[])
                .expect("the PDF prints");
        let page = printed.pdf_path.with_extension("page");
        let (ok, out) = common::run(
            Command::new("pdftoppm")
                .args(["-png", "-singlefile", "-r", "100"])
                .arg(&printed.pdf_path)
                .arg(&page),
        );
        assert!(ok, "pdftoppm: {out}");
        assert!(page.with_extension("png").is_file());
        let (ok, pdf) = common::run(Command::new("pdftotext").arg(&printed.pdf_path).arg("-"));
        assert!(ok, "pdftotext: {pdf}");
        for l in &receipt.lines {
            assert!(
                pdf.contains(&l.description),
                "{stem}: {:?} missing in\n{pdf}",
                l.description
            );
        }
        for shown in [
            "EXONERADO",
            "INAFECTO",
            "GRATUITO, gravado (valor referencial 5.90)",
            "Descuento 10%",
            "-1.30",
            "1.250 KGM (kilogramo) x 4.20",
            "1.25",
            "ICBPER 2 x 0.50",
            "OP. GRAVADA",
            "OP. EXONERADA",
            "OP. INAFECTA",
            "OP. GRATUITA",
            "DESCUENTOS",
            "IGV 18%",
            "ICBPER",
            "S/ 1.00",
            "S/ 59.65",
            HAND.words,
        ] {
            assert!(pdf.contains(shown), "{stem}: {shown:?} missing in\n{pdf}");
        }
    }
    sim.stop().await;
}

#[test]
fn a_decimal_quantity_with_four_decimals_and_a_discount_on_a_free_line_are_refused() {
    let mut r = basket(DocumentType::Boleta);
    r.lines[5].quantity = d("1.2505");
    let e = r.validate().expect_err("4 decimals");
    assert!(e.to_string().contains("line 5"), "{e}");
    let mut r = basket(DocumentType::Boleta);
    r.lines[3].discount = Some(Discount::Amount(d("1.00")));
    let e = r.validate().expect_err("a free line with a discount");
    assert!(
        e.to_string().contains("a free line cannot have a discount"),
        "{e}"
    );
    let mut r = basket(DocumentType::Boleta);
    r.issue_date = NaiveDate::from_ymd_opt(2019, 7, 31).expect("date");
    let e = r.validate().expect_err("ICBPER before 2019-08-01");
    assert!(e.to_string().contains("2949"), "{e}");
}
