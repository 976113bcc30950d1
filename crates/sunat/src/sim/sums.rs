//! The sums SUNAT checks on an Invoice's lines and totals (`AjustesValidacionesCPE_Factura2_0`
//! and `_Boleta2_0` in `/work/shared/sunat/rules`), with SUNAT's tolerance of ± 1 where the rule
//! states it, and the consistency of each line's tax scheme (catálogo 05) with its affectation
//! (catálogo 07). Each rule cites its code and SUNAT's text.

use bigdecimal::{BigDecimal, Zero};
use chrono::NaiveDate;
use roxmltree::Node;

use crate::taxation::{icbper_on, igv_rate_on, round2, Affectation, TaxBase, TaxScheme};
use crate::ubl::{NS_CAC, NS_CBC};

/// What the checks found: a rejection (code and text) or observations.
#[derive(Debug, Default)]
pub(super) struct Sums {
    pub rejection: Option<(&'static str, String)>,
    pub notes: Vec<String>,
}

fn cac<'a, 'i: 'a>(n: Node<'a, 'i>, local: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    n.children()
        .filter(move |c| c.has_tag_name((NS_CAC, local)))
}

fn cbc<'a, 'i>(n: Node<'a, 'i>, local: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name((NS_CBC, local)))
}

fn text<'a>(n: Node<'a, '_>, local: &str) -> Option<&'a str> {
    cbc(n, local).and_then(|c| c.text()).map(str::trim)
}

fn amount(n: Node<'_, '_>, local: &str) -> Option<BigDecimal> {
    text(n, local).and_then(|t| t.parse().ok())
}

/// SUNAT's "con una tolerancia + - 1".
fn within_one(a: &BigDecimal, b: &BigDecimal) -> bool {
    (a - b).abs() <= 1
}

/// One line's subtotal, as read.
struct LineSubtotal {
    scheme: TaxScheme,
    tax: BigDecimal,
    affectation: Option<Affectation>,
}

/// Where a document keeps its lines and their quantities.
#[derive(Debug, Clone, Copy)]
pub(super) struct LineTags {
    line: &'static str,
    quantity: &'static str,
}

/// An Invoice's `cac:InvoiceLine` and `cbc:InvoicedQuantity`.
pub(super) const INVOICE_LINES: LineTags = LineTags {
    line: "InvoiceLine",
    quantity: "InvoicedQuantity",
};

/// A CreditNote's `cac:CreditNoteLine` and `cbc:CreditedQuantity`: the same sums apply (the
/// sheet `NotaCredito2_0` has the rules of the invoice sheets by the same codes).
pub(super) const CREDIT_NOTE_LINES: LineTags = LineTags {
    line: "CreditNoteLine",
    quantity: "CreditedQuantity",
};

/// Checks the lines, then the document's totals; the first rule broken rejects.
pub(super) fn check(root: Node<'_, '_>, tags: LineTags) -> Sums {
    let mut sums = Sums::default();
    if let Err(rejection) = check_all(root, tags, &mut sums.notes) {
        sums.rejection = Some(rejection);
    }
    sums
}

type Rejection = (&'static str, String);

fn reject(code: &'static str, text: &str) -> Result<(), Rejection> {
    Err((code, text.to_owned()))
}

fn check_all(root: Node<'_, '_>, tags: LineTags, notes: &mut Vec<String>) -> Result<(), Rejection> {
    let issue_date = text(root, "IssueDate").and_then(|d| d.parse::<NaiveDate>().ok());
    let rate = issue_date.map_or_else(|| BigDecimal::new(18.into(), 2), igv_rate_on);
    let zero = BigDecimal::zero();
    // Sums of the lines, per scheme: values (LineExtensionAmount) and taxes.
    let mut values: [BigDecimal; 5] = Default::default();
    let mut taxes: [BigDecimal; 5] = Default::default();
    let idx = |s: TaxScheme| TaxScheme::ALL.iter().position(|x| *x == s).unwrap_or(0);

    for line in cac(root, tags.line) {
        let value = amount(line, "LineExtensionAmount").unwrap_or_default();
        let quantity = amount(line, tags.quantity).unwrap_or_default();
        let Some(tax_total) = cac(line, "TaxTotal").next() else {
            return reject("3195", "El XML no contiene el tag cac:TaxTotal de la linea");
        };
        let mut subs = Vec::new();
        for sub in cac(tax_total, "TaxSubtotal") {
            let category = cac(sub, "TaxCategory").next();
            let scheme_node = category.and_then(|c| cac(c, "TaxScheme").next());
            let id = scheme_node.and_then(|s| text(s, "ID")).unwrap_or("");
            let Some(scheme) = TaxScheme::from_id(id) else {
                return reject("2036", "El codigo del tributo es invalido");
            };
            if scheme_node.and_then(|s| text(s, "Name")) != Some(scheme.name()) {
                return reject(
                    "3051",
                    "Nombre de tributo no corresponde al código de tributo de la linea.",
                );
            }
            if scheme_node.and_then(|s| text(s, "TaxTypeCode")) != Some(scheme.type_code()) {
                return reject(
                    "2377",
                    "El Name o TaxTypeCode debe corresponder con el Id para el IGV",
                );
            }
            let tax = amount(sub, "TaxAmount").unwrap_or_default();
            let taxable = amount(sub, "TaxableAmount").unwrap_or_default();
            let mut affectation = None;
            if scheme == TaxScheme::Icbper {
                let bags = amount(sub, "BaseUnitMeasure").unwrap_or_default();
                let per_unit = category
                    .and_then(|c| amount(c, "PerUnitAmount"))
                    .unwrap_or_default();
                if bags > zero && bags != quantity {
                    return reject("3236", "El valor ingresado en el campo cac:TaxSubtotal/cbc:BaseUnitMeasure no corresponde al valor esperado");
                }
                if round2(&(&bags * &per_unit)) != tax {
                    notes.push("4318 - El monto del tributo ICBPER de la linea no corresponde al monto unitario por la cantidad de bolsas".to_owned());
                }
                if issue_date
                    .and_then(icbper_on)
                    .is_some_and(|r| r != per_unit)
                {
                    notes.push("4237 - El monto unitario de ICBPER no corresponde a la tasa vigente a la fecha de emision".to_owned());
                }
            } else {
                let code = category
                    .and_then(|c| text(c, "TaxExemptionReasonCode"))
                    .unwrap_or("");
                let a = match Affectation::parse(code) {
                    Ok(a) if a.scheme() == scheme => a,
                    _ => return reject("2040", "El tipo de afectacion del IGV es incorrecto"),
                };
                affectation = Some(a);
                let taxed = a.base() == TaxBase::Gravado;
                let percent = category
                    .and_then(|c| amount(c, "Percent"))
                    .unwrap_or_default();
                if taxed && taxable > zero {
                    if percent.is_zero() {
                        return reject(
                            "2993",
                            "El factor de afectación de IGV por linea debe ser diferente a 0.00.",
                        );
                    }
                    let expected = round2(&(&taxable * &percent / BigDecimal::from(100)));
                    if !within_one(&tax, &expected) {
                        return reject("3103", "El producto del factor y monto base de la afectación del IGV/IVAP no corresponde al monto de afectacion de linea.");
                    }
                } else if !taxed && !tax.is_zero() {
                    return reject("3110", "El monto de afectacion de IGV por linea debe ser igual a 0.00 para Exoneradas, Inafectas, Exportación, Gratuitas de exoneradas o Gratuitas de inafectas.");
                }
            }
            if subs.iter().any(|s: &LineSubtotal| s.scheme == scheme) {
                return reject(
                    "3067",
                    "El código de tributo no debe repetirse a nivel de item",
                );
            }
            subs.push(LineSubtotal {
                scheme,
                tax,
                affectation,
            });
        }
        let Some(main) = subs.iter().find(|s| s.affectation.is_some()) else {
            return reject(
                "3105",
                "El XML debe contener al menos un tributo por linea de afectacion por IGV",
            );
        };
        // 3292: the line's TaxAmount is the sum of its 1000, 1016, 2000, 7152 and 9999 taxes.
        let counted: BigDecimal = subs
            .iter()
            .filter(|s| matches!(s.scheme, TaxScheme::Igv | TaxScheme::Icbper))
            .map(|s| s.tax.clone())
            .sum();
        if !within_one(
            &amount(tax_total, "TaxAmount").unwrap_or_default(),
            &counted,
        ) {
            return reject("3292", "El importe total de impuestos por línea no coincide con la sumatoria de los impuestos por línea.");
        }
        // 3271: value = unit value (referential for a free line) x quantity - discounts 00.
        let free = main.scheme == TaxScheme::Gra;
        let unit = if free {
            cac(line, "PricingReference")
                .flat_map(|p| cac(p, "AlternativeConditionPrice"))
                .find(|a| text(*a, "PriceTypeCode") == Some("02"))
                .and_then(|a| amount(a, "PriceAmount"))
        } else {
            cac(line, "Price")
                .next()
                .and_then(|p| amount(p, "PriceAmount"))
        }
        .unwrap_or_default();
        let mut discounts = BigDecimal::zero();
        for ac in cac(line, "AllowanceCharge") {
            let a = amount(ac, "Amount").unwrap_or_default();
            let base = amount(ac, "BaseAmount").unwrap_or_default();
            if let Some(factor) = amount(ac, "MultiplierFactorNumeric") {
                if factor > zero && !within_one(&a, &round2(&(&base * &factor))) {
                    return reject(
                        "3290",
                        "El valor de cargo/descuento por ítem difiere de los importes consignados.",
                    );
                }
            }
            if text(ac, "AllowanceChargeReasonCode") == Some("00") {
                discounts += a;
            }
        }
        if !within_one(&value, &(&unit * &quantity - &discounts)) {
            return reject(
                "3271",
                "El valor de venta por ítem difiere de los importes consignados.",
            );
        }
        if free
            && cac(line, "Price")
                .next()
                .and_then(|p| amount(p, "PriceAmount"))
                > Some(zero.clone())
        {
            return reject(
                "2640",
                "Operacion gratuita, solo debe consignar un monto referencial",
            );
        }
        for s in &subs {
            let i = idx(s.scheme);
            values[i] += if s.scheme == TaxScheme::Icbper {
                BigDecimal::zero()
            } else {
                value.clone()
            };
            taxes[i] += &s.tax;
        }
    }

    // The document's TaxTotal.
    let Some(tax_total) = cac(root, "TaxTotal").next() else {
        return reject("2956", "El Monto total de impuestos es obligatorio");
    };
    let mut doc: [Option<(BigDecimal, BigDecimal)>; 5] = Default::default();
    for sub in cac(tax_total, "TaxSubtotal") {
        let scheme_node = cac(sub, "TaxCategory")
            .flat_map(|c| cac(c, "TaxScheme"))
            .next();
        let Some(scheme) = scheme_node
            .and_then(|s| text(s, "ID"))
            .and_then(TaxScheme::from_id)
        else {
            return reject(
                "3007",
                "El dato ingresado como codigo de tributo global no corresponde al valor esperado.",
            );
        };
        if scheme_node.and_then(|s| text(s, "Name")) != Some(scheme.name()) {
            return reject(
                "2964",
                "El valor del tag nombre del tributo no corresponde al esperado.",
            );
        }
        if scheme_node.and_then(|s| text(s, "TaxTypeCode")) != Some(scheme.type_code()) {
            return reject(
                "2961",
                "El valor del tag codigo de tributo internacional no corresponde al esperado.",
            );
        }
        let slot = &mut doc[idx(scheme)];
        if slot.is_some() {
            return reject(
                "3068",
                "El código de tributo no debe repetirse a nivel de totales",
            );
        }
        *slot = Some((
            amount(sub, "TaxableAmount").unwrap_or_default(),
            amount(sub, "TaxAmount").unwrap_or_default(),
        ));
    }
    for scheme in TaxScheme::ALL {
        let i = idx(scheme);
        let used = values[i] > zero || (scheme == TaxScheme::Icbper && taxes[i] > zero);
        let Some((taxable, tax)) = &doc[i] else {
            if used {
                return reject("2638", "Si tiene operaciones de un tributo en alguna línea, debe consignar el tag del total del tributo");
            }
            continue;
        };
        let (code, text) = match scheme {
            TaxScheme::Igv => ("3277", "La sumatoria del total valor de venta - operaciones gravadas de línea no corresponden al total"),
            TaxScheme::Exo => ("3275", "La sumatoria del total valor de venta - operaciones exoneradas de línea no corresponden al total"),
            TaxScheme::Ina => ("3274", "La sumatoria del total valor de venta - operaciones inafectas de línea no corresponden al total"),
            TaxScheme::Gra => ("3276", "La sumatoria del total valor de venta - operaciones gratuitas de línea no corresponden al total"),
            TaxScheme::Icbper => ("3306", "La sumatoria del total del importe del tributo ICBPER de línea no corresponden al total"),
        };
        match scheme {
            TaxScheme::Icbper if *tax != taxes[i] => return reject(code, text),
            TaxScheme::Icbper => {}
            _ if !within_one(taxable, &values[i]) => return reject(code, text),
            TaxScheme::Igv if !within_one(tax, &round2(&(taxable * &rate))) => {
                return reject("3291", "El cálculo del IGV es Incorrecto")
            }
            TaxScheme::Exo | TaxScheme::Ina if !tax.is_zero() => {
                return reject("3000", "El monto total del impuestos sobre el valor de venta de operaciones gratuitas/inafectas/exoneradas debe ser igual a 0.00")
            }
            TaxScheme::Gra if !within_one(tax, &taxes[i]) => {
                return reject("3302", "La sumatoria de los IGV de operaciones gratuitas de la línea (codigo tributo 9996) no corresponden al total")
            }
            _ => {}
        }
    }
    let doc_tax = |s: TaxScheme| {
        doc[idx(s)]
            .as_ref()
            .map_or_else(BigDecimal::zero, |d| d.1.clone())
    };
    let global_taxes = doc_tax(TaxScheme::Igv) + doc_tax(TaxScheme::Icbper);
    if !within_one(
        &amount(tax_total, "TaxAmount").unwrap_or_default(),
        &global_taxes,
    ) {
        return reject(
            "3294",
            "La sumatoria de impuestos globales no corresponde al monto total de impuestos.",
        );
    }
    let free_legend = root
        .children()
        .filter(|n| n.has_tag_name((NS_CBC, "Note")))
        .any(|n| n.attribute("languageLocaleID") == Some("1002"));
    let free_total = doc[idx(TaxScheme::Gra)].as_ref().map(|d| d.0.clone());
    if free_legend && free_total.is_none_or(|t| t.is_zero()) {
        return reject("2416", "Si existe leyenda Transferencia Gratuita debe consignar Total Valor de Venta de Operaciones Gratuitas");
    }

    // LegalMonetaryTotal.
    let Some(lmt) = cac(root, "LegalMonetaryTotal").next() else {
        return reject("3288", "Debe consignar el Total Valor de Venta");
    };
    let onerous =
        &values[idx(TaxScheme::Igv)] + &values[idx(TaxScheme::Exo)] + &values[idx(TaxScheme::Ina)];
    let line_extension = amount(lmt, "LineExtensionAmount").unwrap_or_default();
    if !within_one(&line_extension, &onerous) {
        return reject(
            "3278",
            "La sumatoria de valor de venta no corresponde a los importes consignados",
        );
    }
    let inclusive = amount(lmt, "TaxInclusiveAmount").unwrap_or_default();
    if !within_one(&inclusive, &(&line_extension + &global_taxes)) {
        return reject("3279", "La sumatoria del Total del valor de venta más los impuestos no concuerda con la base imponible");
    }
    let allowances = amount(lmt, "AllowanceTotalAmount").unwrap_or_default();
    let charges = amount(lmt, "ChargeTotalAmount").unwrap_or_default();
    let payable = amount(lmt, "PayableAmount").unwrap_or_default();
    if !within_one(&payable, &(&inclusive - &allowances + &charges)) {
        return reject(
            "3280",
            "El importe total del comprobante no coincide con el valor calculado",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;
    use crate::document::{Company, Customer, DocumentType, Line, Receipt, Ruc, Series};
    use crate::taxation::Discount;

    fn receipt() -> Receipt {
        let d = |s: &str| s.parse::<BigDecimal>().unwrap();
        Receipt {
            company: Company {
                ruc: Ruc::parse("20100066603").unwrap(),
                legal_name: "Bodega".into(),
                address: String::new(),
                establishment_code: "0000".into(),
            },
            doc_type: DocumentType::Boleta,
            series: Series::parse("B001").unwrap(),
            correlative: 1,
            issue_date: NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
            issue_time: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            customer: Customer::anonymous(),
            currency: "PEN".into(),
            lines: vec![
                Line {
                    discount: Some(Discount::Amount(d("1.00"))),
                    ..Line::new("A", "Aceite", 2, d("10.50"))
                },
                Line {
                    affectation: Affectation::EXONERADO,
                    ..Line::new("P", "Papaya", 1, d("3.00"))
                },
                Line {
                    icbper: true,
                    ..Line::new("B", "Bolsa", 3, d("0.10"))
                },
            ],
        }
    }

    fn sums(xml: &str) -> Sums {
        let doc = roxmltree::Document::parse(xml).unwrap();
        check(doc.root_element(), INVOICE_LINES)
    }

    fn code(xml: &str) -> Option<&'static str> {
        sums(xml).rejection.map(|r| r.0)
    }

    #[test]
    fn what_faena_writes_passes() {
        let xml = crate::ubl::invoice_xml(&receipt()).unwrap();
        let s = sums(&xml);
        assert_eq!(s.rejection, None);
        assert!(s.notes.is_empty(), "{:?}", s.notes);
    }

    #[test]
    fn a_total_off_by_more_than_one_is_rejected_and_within_one_is_tolerated() {
        let xml = crate::ubl::invoice_xml(&receipt()).unwrap();
        let total = receipt().totals().unwrap().total;
        let payable = format!("<cbc:PayableAmount currencyID=\"PEN\">{total}</cbc:PayableAmount>");
        assert!(xml.contains(&payable), "{xml}");
        let off = |by: &str| {
            let v = &total + by.parse::<BigDecimal>().unwrap();
            xml.replace(
                &payable,
                &format!("<cbc:PayableAmount currencyID=\"PEN\">{v}</cbc:PayableAmount>"),
            )
        };
        assert_eq!(code(&off("1.00")), None);
        assert_eq!(code(&off("1.01")), Some("3280"));
        assert_eq!(code(&off("-1.01")), Some("3280"));
    }

    #[test]
    fn a_scheme_that_does_not_fit_the_affectation_is_rejected() {
        let xml = crate::ubl::invoice_xml(&receipt()).unwrap();
        // The exonerated line (20) under IGV's scheme.
        let bad = xml.replacen(
            "<cbc:TaxExemptionReasonCode>20</cbc:TaxExemptionReasonCode>",
            "<cbc:TaxExemptionReasonCode>10</cbc:TaxExemptionReasonCode>",
            1,
        );
        assert_ne!(bad, xml);
        assert_eq!(code(&bad), Some("2040"));
        // EXO named INA: in the document's TaxTotal (written first, 2964), then in the line's
        // (3051).
        let bad = xml.replacen("<cbc:Name>EXO</cbc:Name>", "<cbc:Name>INA</cbc:Name>", 1);
        assert_eq!(code(&bad), Some("2964"));
        let at = xml.find("<cac:InvoiceLine>").unwrap();
        let bad = format!(
            "{}{}",
            &xml[..at],
            xml[at..].replacen("<cbc:Name>EXO</cbc:Name>", "<cbc:Name>INA</cbc:Name>", 1)
        );
        assert_eq!(code(&bad), Some("3051"));
    }

    #[test]
    fn icbper_sums_are_exact() {
        let xml = crate::ubl::invoice_xml(&receipt()).unwrap();
        // The document's 7152 subtotal is the last TaxSubtotal before LegalMonetaryTotal.
        let at = xml.find("<cac:LegalMonetaryTotal>").unwrap();
        let head = &xml[..at];
        let sub = head
            .rfind("<cbc:TaxAmount currencyID=\"PEN\">1.50</cbc:TaxAmount>")
            .unwrap();
        let bad = format!(
            "{}<cbc:TaxAmount currencyID=\"PEN\">1.40</cbc:TaxAmount>{}",
            &xml[..sub],
            &xml[sub + "<cbc:TaxAmount currencyID=\"PEN\">1.50</cbc:TaxAmount>".len()..]
        );
        assert_eq!(code(&bad), Some("3306"));
    }
}
