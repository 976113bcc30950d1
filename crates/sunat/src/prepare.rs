//! From a receipt to the bytes to store and send: the signed XML, its zip, the file name and the
//! digest value. Store all of them before the first send: a resend uses these bytes, never new ones.

use std::fmt;

use crate::archive::{self, ArchiveError};
use crate::credit_note::{self, CreditNote};
use crate::document::{DocumentError, Receipt};
use crate::sign::{SignError, Signer};
use crate::summary::{self, DailySummary, VoidedDocuments};
use crate::ubl;

/// A signed, zipped receipt ready for `sendBill`.
#[derive(Clone, PartialEq, Eq)]
pub struct Prepared {
    /// `RUC-TT-SERIE-CORRELATIVO.zip`, the `fileName` of `sendBill`.
    pub file_name: String,
    /// The signed XML, byte for byte what was signed.
    pub xml: Vec<u8>,
    /// The zip holding `RUC-TT-SERIE-CORRELATIVO.xml`.
    pub zip: Vec<u8>,
    /// `ds:DigestValue`, the "valor resumen" printed on the receipt and in its QR code.
    pub digest_value: String,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("file_name", &self.file_name)
            .field("xml_len", &self.xml.len())
            .field("zip_len", &self.zip.len())
            .field("digest_value", &self.digest_value)
            .finish()
    }
}

/// Why a receipt could not be prepared. `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Summary(#[from] crate::summary::SummaryError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl PrepareError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Document(_) => "prepare.document",
            Self::Summary(e) => e.code(),
            Self::Sign(e) => e.code(),
            Self::Archive(e) => e.code(),
        }
    }
}

impl Prepared {
    /// [`signed_sha256`] of the signed XML.
    pub fn signed_sha256(&self) -> String {
        signed_sha256(&self.xml)
    }
}

/// The SHA-256 (hex) of a signed XML: recorded with each send, so a later answer can be tied to
/// the exact bytes an earlier send carried (whatever zip wrapped them).
pub fn signed_sha256(xml: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    crate::client::hex(&Sha256::digest(xml))
}

/// Builds, signs and zips the receipt.
pub fn prepare(receipt: &Receipt, signer: &Signer) -> Result<Prepared, PrepareError> {
    let xml = ubl::invoice_xml(receipt)?;
    sign_and_zip(&xml, &receipt.file_stem(), signer)
}

/// Builds, signs and zips a credit note for `sendBill`.
pub fn prepare_credit_note(note: &CreditNote, signer: &Signer) -> Result<Prepared, PrepareError> {
    let xml = credit_note::credit_note_xml(note)?;
    sign_and_zip(&xml, &note.file_stem(), signer)
}

/// Builds, signs and zips a Resumen Diario for `sendSummary`.
pub fn prepare_summary(s: &DailySummary, signer: &Signer) -> Result<Prepared, PrepareError> {
    let xml = summary::summary_xml(s)?;
    sign_and_zip(&xml, &s.file_stem(), signer)
}

/// Builds, signs and zips a Comunicación de Baja for `sendSummary`.
pub fn prepare_voided(v: &VoidedDocuments, signer: &Signer) -> Result<Prepared, PrepareError> {
    let xml = summary::voided_xml(v)?;
    sign_and_zip(&xml, &v.file_stem(), signer)
}

/// Signs `xml` and zips it as `stem.xml` into `stem.zip`.
fn sign_and_zip(xml: &str, stem: &str, signer: &Signer) -> Result<Prepared, PrepareError> {
    let signed = signer.sign(xml)?;
    let zip = archive::zip_single(&format!("{stem}.xml"), &signed.xml)?;
    Ok(Prepared {
        file_name: format!("{stem}.zip"),
        xml: signed.xml,
        zip,
        digest_value: signed.digest_value,
    })
}
