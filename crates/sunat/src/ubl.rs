//! The UBL 2.1 `Invoice` XML of a boleta (03) or factura (01), in the element order SUNAT and the
//! OASIS schema expect, with an empty `ext:ExtensionContent` where the signature goes.

use bigdecimal::BigDecimal;
use chrono::{NaiveDate, NaiveTime};

use crate::document::{Company, Customer, DocumentError, DocumentType, Line, Receipt};
use crate::taxation::{self, amount_in_words, DocumentTotals, LineAmounts, FREE_LEGEND};
use crate::xml::Xml;
pub use crate::xml::{decimal, escape_attr, escape_text};

pub const NS_INVOICE: &str = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2";
pub const NS_CAC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2";
pub const NS_CBC: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2";
pub const NS_EXT: &str = "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2";
pub const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The `Id` of `ds:Signature`, referenced from `cac:Signature`.
pub const SIGNATURE_ID: &str = "SignatureSP";

/// Builds the unsigned `Invoice` XML (UTF-8, no BOM) after checking the receipt.
pub fn invoice_xml(receipt: &Receipt) -> Result<String, DocumentError> {
    receipt.validate()?;
    let mut w = Xml::default();
    let cur = receipt.currency.as_str();
    let amounts = receipt.amounts()?;
    let totals = DocumentTotals::of(&amounts);
    let company = &receipt.company;

    write_opening(
        &mut w,
        "Invoice",
        NS_INVOICE,
        &receipt.id(),
        receipt.issue_date,
        receipt.issue_time,
    );
    w.leaf(
        "cbc:InvoiceTypeCode",
        &[("listID", "0101")],
        receipt.doc_type.code(),
    );
    write_legends(&mut w, cur, &totals.total, &amounts);
    w.leaf("cbc:DocumentCurrencyCode", &[], cur);

    // cac:Signature: who signed and where the ds:Signature is.
    signature_reference(&mut w, company);

    write_supplier(&mut w, company);
    write_customer(&mut w, &receipt.customer);

    if receipt.doc_type == DocumentType::Factura {
        w.open("cac:PaymentTerms");
        w.leaf("cbc:ID", &[], "FormaPago");
        w.leaf("cbc:PaymentMeansID", &[], "Contado");
        w.close("cac:PaymentTerms");
    }

    taxation::write_document_taxes(&mut w, cur, &totals, &amounts);

    for (i, (line, a)) in receipt.lines.iter().zip(&amounts).enumerate() {
        w.open("cac:InvoiceLine");
        w.leaf("cbc:ID", &[], &(i + 1).to_string());
        w.leaf(
            "cbc:InvoicedQuantity",
            &[("unitCode", line.unit_code.as_str())],
            &decimal(&line.quantity, 0, taxation::QUANTITY_DECIMALS),
        );
        taxation::write_line_taxes(&mut w, cur, a);
        write_item(&mut w, line);
        w.open("cac:Price");
        w.leaf(
            "cbc:PriceAmount",
            &[("currencyID", cur)],
            &decimal(&a.unit_value, 2, 10),
        );
        w.close("cac:Price");
        w.close("cac:InvoiceLine");
    }
    w.raw("</Invoice>\n");
    Ok(w.out)
}

/// The start of every UBL 2.1 document Faena signs (an `Invoice`, a `CreditNote`): the XML
/// declaration, the root element `root` of namespace `ns` with the prefixes, the empty
/// `ext:ExtensionContent` where the signature goes, then `cbc:UBLVersionID` 2.1,
/// `cbc:CustomizationID` 2.0, `cbc:ID`, `cbc:IssueDate` and `cbc:IssueTime`.
pub(crate) fn write_opening(
    w: &mut Xml,
    root: &str,
    ns: &str,
    id: &str,
    issue_date: NaiveDate,
    issue_time: NaiveTime,
) {
    w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    w.raw(&format!(
        "<{root} xmlns=\"{ns}\" xmlns:cac=\"{NS_CAC}\" xmlns:cbc=\"{NS_CBC}\" xmlns:ds=\"{NS_DS}\" xmlns:ext=\"{NS_EXT}\">\n"
    ));
    w.open("ext:UBLExtensions");
    w.open("ext:UBLExtension");
    w.indent();
    w.raw("<ext:ExtensionContent></ext:ExtensionContent>\n");
    w.close("ext:UBLExtension");
    w.close("ext:UBLExtensions");

    w.leaf("cbc:UBLVersionID", &[], "2.1");
    w.leaf("cbc:CustomizationID", &[], "2.0");
    w.leaf("cbc:ID", &[], id);
    w.leaf(
        "cbc:IssueDate",
        &[],
        &issue_date.format("%Y-%m-%d").to_string(),
    );
    w.leaf(
        "cbc:IssueTime",
        &[],
        &issue_time.format("%H:%M:%S").to_string(),
    );
}

/// The legends (catálogo 52): the amount in words, and the free-transfer legend when a line is
/// free (2416 asks for a free total above 0 with it, which a free line makes).
pub(crate) fn write_legends(w: &mut Xml, cur: &str, total: &BigDecimal, amounts: &[LineAmounts]) {
    w.leaf(
        "cbc:Note",
        &[("languageLocaleID", "1000")],
        &amount_in_words(total, cur),
    );
    if amounts.iter().any(|a| a.is_free()) {
        w.leaf("cbc:Note", &[("languageLocaleID", "1002")], FREE_LEGEND);
    }
}

/// A line's `cac:Item`: its description and its code, left out when SUNAT would observe it
/// (4269; see `Line::sunat_code`).
pub(crate) fn write_item(w: &mut Xml, line: &Line) {
    w.open("cac:Item");
    w.leaf("cbc:Description", &[], &line.description);
    if let Some(code) = line.sunat_code() {
        w.open("cac:SellersItemIdentification");
        w.leaf("cbc:ID", &[], code);
        w.close("cac:SellersItemIdentification");
    }
    w.close("cac:Item");
}

/// `cac:Signature`: who signed (the issuer) and where the `ds:Signature` is. Every document
/// Faena signs carries the same one.
pub(crate) fn signature_reference(w: &mut Xml, company: &Company) {
    w.open("cac:Signature");
    w.leaf("cbc:ID", &[], SIGNATURE_ID);
    w.open("cac:SignatoryParty");
    w.open("cac:PartyIdentification");
    w.leaf("cbc:ID", &[], company.ruc.as_str());
    w.close("cac:PartyIdentification");
    w.open("cac:PartyName");
    w.leaf("cbc:Name", &[], &company.legal_name);
    w.close("cac:PartyName");
    w.close("cac:SignatoryParty");
    w.open("cac:DigitalSignatureAttachment");
    w.open("cac:ExternalReference");
    w.leaf("cbc:URI", &[], &format!("#{SIGNATURE_ID}"));
    w.close("cac:ExternalReference");
    w.close("cac:DigitalSignatureAttachment");
    w.close("cac:Signature");
}

/// `cac:AccountingSupplierParty`: the issuer's RUC, legal name, establishment and address.
pub(crate) fn write_supplier(w: &mut Xml, company: &Company) {
    w.open("cac:AccountingSupplierParty");
    w.open("cac:Party");
    w.open("cac:PartyIdentification");
    w.leaf("cbc:ID", &[("schemeID", "6")], company.ruc.as_str());
    w.close("cac:PartyIdentification");
    w.open("cac:PartyLegalEntity");
    w.leaf("cbc:RegistrationName", &[], &company.legal_name);
    w.open("cac:RegistrationAddress");
    let establishment = if company.establishment_code.trim().is_empty() {
        "0000"
    } else {
        company.establishment_code.trim()
    };
    w.leaf("cbc:AddressTypeCode", &[], establishment);
    if !company.address.trim().is_empty() {
        w.open("cac:AddressLine");
        w.leaf("cbc:Line", &[], company.address.trim());
        w.close("cac:AddressLine");
    }
    w.close("cac:RegistrationAddress");
    w.close("cac:PartyLegalEntity");
    w.close("cac:Party");
    w.close("cac:AccountingSupplierParty");
}

/// `cac:AccountingCustomerParty`: the buyer's document (catálogo 06) and name.
pub(crate) fn write_customer(w: &mut Xml, customer: &Customer) {
    w.open("cac:AccountingCustomerParty");
    w.open("cac:Party");
    w.open("cac:PartyIdentification");
    w.leaf(
        "cbc:ID",
        &[("schemeID", customer.doc_type.code())],
        &customer.doc_number,
    );
    w.close("cac:PartyIdentification");
    w.open("cac:PartyLegalEntity");
    w.leaf("cbc:RegistrationName", &[], &customer.name);
    w.close("cac:PartyLegalEntity");
    w.close("cac:Party");
    w.close("cac:AccountingCustomerParty");
}
