//! Peru's SUNAT electronic receipts: the document model, UBL 2.1 XML, signature, SOAP client,
//! outcome classification, a local simulator, and the printable PDF with its QR code.
//!
//! The path of a receipt: [`prepare`] turns a [`Receipt`] into the signed XML, its zip and the
//! digest value (`ubl` -> `sign` -> `archive`); the caller stores those bytes, then
//! [`Client::send_bill`] sends the zip and answers a [`Submission`] whose [`Outcome`] says what to
//! do next. A resend after an unknown outcome sends the *stored* zip again, never a new one.

pub mod archive;
mod c14n;
pub mod client;
pub mod credit_note;
pub mod document;
pub mod outcome;
pub mod prepare;
pub mod printable;
pub mod sign;
#[cfg(feature = "sim")]
pub mod sim;
pub mod summary;
pub mod taxation;
pub mod testcert;
pub mod ubl;
pub mod xml;

pub use client::{Cdr, Client, ClientError, ConsultAnswer, Submission, SunatConfig, TicketStatus};
pub use credit_note::{CreditLine, CreditNote, CreditReason, OriginalDocument};
pub use document::{
    Company, Customer, CustomerDocType, DocumentError, DocumentType, Line, Receipt, Ruc, Series,
};

pub use outcome::Outcome;
pub use prepare::{
    prepare, prepare_credit_note, prepare_summary, prepare_voided, signed_sha256, PrepareError,
    Prepared,
};
pub use sign::{verify, SignError, Signed, Signer, Verified, VerifyError};
pub use summary::{
    DailySummary, LineStatus, ModifiedDocument, SummaryError, SummaryId, SummaryKind, SummaryLine,
    VoidedDocuments, VoidedLine,
};
pub use taxation::{Affectation, Discount, TaxError, TaxScheme, UnitCode};
