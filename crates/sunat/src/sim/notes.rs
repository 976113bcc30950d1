//! The simulator's checks of a credit note against what it modifies, with the codes of SUNAT's
//! sheet `NotaCredito2_0` (`/work/shared/sunat/rules/AjustesValidacionesCPE_NotaCredito2_0.md`,
//! rows 6, 7, 18 and 19):
//!
//! | code | kind | rule |
//! |---|---|---|
//! | 2128 | error | no `cac:DiscrepancyResponse/cbc:ResponseCode` |
//! | 2172 | error | the ResponseCode is not in catálogo 09 |
//! | 3203 | error | more than one ResponseCode ("El tipo de nota es un dato único") |
//! | 2136 | error | no `cac:DiscrepancyResponse/cbc:Description` |
//! | 2135 | error | the Description is not 1 to 500 characters without line breaks or tabs |
//! | 2524 | error | no `cac:BillingReference/cac:InvoiceDocumentReference` (a type other than 10) |
//! | 2116 | error | an F series note that does not modify a factura (01) |
//! | 2399 | error | a B series note that does not modify a boleta (03) |
//! | 2117 | error | the modified document's ID does not fit its type (F... for 01, B... for 03) |
//! | 2119 | error | the modified document is not registered |
//! | 2120 | error | the modified document is voided (de baja) |
//! | 2121 | error | the modified document was rejected |
//! | 2885 | error | the note is dated before the document it modifies |
//! | 3209 | error | a note of a factura in another currency than the factura's |
//! | 4368 | observation | a note of a boleta in another currency than the boleta's |
//! | 3286 | error | a note of a factura for more than what is left of it |
//! | 4028 | observation | a note of a boleta for more than what is left of it |
//!
//! SUNAT's 3286 and 4028 compare the note's `PayableAmount` with the total of the modified
//! document; the simulator compares it with what is left of it (its total less the credit notes
//! it accepted before), so a back office that credits the same sale twice hears it. A document
//! the simulator knows only from a Resumen Diario has no total here: its notes skip the amount
//! and currency checks.

use bigdecimal::BigDecimal;
use chrono::NaiveDate;
use roxmltree::Node;

use super::{cbc_text, FileName, Registry, SimState, NS_CAC, NS_CBC};
use crate::credit_note::{is_note_description, CreditReason};
use crate::document::{DocumentType, Series};

/// What the registry keeps of an accepted document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Facts {
    pub total: BigDecimal,
    pub currency: String,
    pub issue_date: NaiveDate,
}

impl Facts {
    /// `LegalMonetaryTotal/PayableAmount`, `DocumentCurrencyCode` and `IssueDate`, when all three
    /// read.
    pub(super) fn of(root: Node<'_, '_>) -> Option<Self> {
        let total = root
            .children()
            .find(|n| n.has_tag_name((NS_CAC, "LegalMonetaryTotal")))
            .and_then(|t| cbc_text(t, "PayableAmount"))
            .and_then(|t| t.parse().ok())?;
        Some(Self {
            total,
            currency: cbc_text(root, "DocumentCurrencyCode")?.to_owned(),
            issue_date: cbc_text(root, "IssueDate")?.parse().ok()?,
        })
    }
}

/// What the checks found: a rejection, observations, and the amount to credit once accepted.
#[derive(Debug, Default)]
pub(super) struct NoteCheck {
    pub rejection: Option<(&'static str, String)>,
    pub notes: Vec<String>,
    /// The original's registry key and the note's total.
    pub credit: Option<(String, BigDecimal)>,
}

fn reject(code: &'static str, text: &str) -> NoteCheck {
    NoteCheck {
        rejection: Some((code, text.to_owned())),
        ..NoteCheck::default()
    }
}

/// The credit note's reason, reference and amount against the registry.
pub(super) fn check(root: Node<'_, '_>, name: &FileName, state: &SimState) -> NoteCheck {
    let responses: Vec<Node<'_, '_>> = root
        .children()
        .filter(|n| n.has_tag_name((NS_CAC, "DiscrepancyResponse")))
        .collect();
    let codes: Vec<&str> = responses
        .iter()
        .filter_map(|r| cbc_text(*r, "ResponseCode"))
        .filter(|c| !c.is_empty())
        .collect();
    let reason = match codes.as_slice() {
        [] => {
            return reject(
                "2128",
                "El XML no contiene el tag o no existe informacion de ResponseCode",
            )
        }
        [code] => match CreditReason::parse(code) {
            Ok(r) if r.code() == *code => r,
            _ => {
                return reject(
                    "2172",
                    "ResponseCode - El dato ingresado no cumple con la estructura",
                )
            }
        },
        _ => return reject("3203", "El tipo de nota es un dato único"),
    };
    let description = responses
        .first()
        .and_then(|r| {
            r.children()
                .find(|n| n.has_tag_name((NS_CBC, "Description")))
        })
        .and_then(|n| n.text())
        .unwrap_or("");
    if description.is_empty() {
        return reject(
            "2136",
            "El XML no contiene el tag o no existe informacion de cac:DiscrepancyResponse/cbc:Description",
        );
    }
    if !is_note_description(description) {
        return reject(
            "2135",
            "cac:DiscrepancyResponse/cbc:Description - El dato ingresado no cumple con la estructura",
        );
    }
    let reference = root
        .children()
        .filter(|n| n.has_tag_name((NS_CAC, "BillingReference")))
        .flat_map(|b| b.children())
        .find(|n| n.has_tag_name((NS_CAC, "InvoiceDocumentReference")));
    let Some(reference) = reference else {
        if reason == CreditReason::Other {
            return NoteCheck::default();
        }
        return reject("2524", "Debe indicar el documento afectado por la nota");
    };
    let tt = cbc_text(reference, "DocumentTypeCode").unwrap_or("");
    let id = cbc_text(reference, "ID").unwrap_or("");
    // The note's series letter names the type it may modify (2116, 2399).
    let expected = name.doc_type;
    if tt != expected.code() {
        return match expected {
            DocumentType::Factura => reject(
                "2116",
                "El tipo de documento modificado por la Nota de credito debe ser factura electronica o ticket",
            ),
            DocumentType::Boleta => reject(
                "2399",
                "El tipo de documento modificado por la Nota de credito debe ser boleta electronica",
            ),
        };
    }
    let (series, number) = id.split_once('-').unwrap_or((id, ""));
    let number_ok = (1..=8).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit());
    if Series::parse_for(series, expected).is_err() || !number_ok || series != series.trim() {
        return reject(
            "2117",
            "La serie o numero del documento modificado por la Nota de Credito no cumple con el formato establecido",
        );
    }
    let number = number.trim_start_matches('0');
    let key = super::doc_key(&name.ruc, tt, series, number);
    let s = state.lock();
    let registered = s.registered.get(&key).copied();
    let facts = s.facts.get(&key).cloned();
    let credited = s.credited.get(&key).cloned().unwrap_or_default();
    drop(s);
    match registered {
        None => {
            return reject(
                "2119",
                "El documento modificado en la Nota de credito no esta registrada.",
            )
        }
        Some(Registry::Voided) => {
            return reject(
                "2120",
                "El documento modificado en la Nota de credito se encuentra de baja",
            )
        }
        Some(Registry::Rejected) => {
            return reject(
                "2121",
                "El documento modificado en la Nota de credito esta registrada como rechazada",
            )
        }
        Some(Registry::Accepted) => {}
    }
    let mut out = NoteCheck::default();
    let Some(note) = Facts::of(root) else {
        return out;
    };
    if let Some(original) = facts {
        if note.issue_date < original.issue_date {
            return reject(
                "2885",
                "La fecha de emisión de la nota debe ser mayor o igual a la fecha de emisión de los documentos que modifica",
            );
        }
        if note.currency != original.currency {
            let text = "El tipo de moneda de la nota debe ser el mismo que el declarado en el documento que modifica";
            match expected {
                DocumentType::Factura => return reject("3209", text),
                DocumentType::Boleta => out.notes.push(format!("4368 - {text}")),
            }
        }
        let left = &original.total - &credited;
        if reason != CreditReason::Other && note.total > left {
            let text = "El monto total de la nota de credito debe ser menor o igual al monto de la factura";
            match expected {
                DocumentType::Factura => return reject("3286", text),
                DocumentType::Boleta => out.notes.push(format!("4028 - {text}")),
            }
        }
    }
    out.credit = Some((key, note.total));
    out
}
