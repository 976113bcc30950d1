//! The files directory: where a receipt's files live in it ([`ReceiptFiles`]) and atomic writes
//! (a temporary file in the same directory, synced, then renamed over the target), so a reader or
//! a crash never sees half a receipt, CDR or report.

use std::io::Write;
use std::path::Path;

use faena_sunat::credit_note::CreditNote;
use faena_sunat::document::Receipt;
use faena_sunat::{Ruc, SummaryId};

/// Where a receipt's files live under the files directory: the one place that spells the layout.
/// Paths are relative to the files directory and `/`-separated, as the sale row stores them
/// (`xml_path`, `cdr_path`, `pdf_path`, `qr_path`); join them to the directory to read or write.
///
/// | file                          | path                 |
/// |-------------------------------|----------------------|
/// | signed XML                    | `xml/<stem>.xml`     |
/// | its zip, as sent to SUNAT     | `xml/<stem>.zip`     |
/// | CDR (SUNAT's answer)          | `cdr/R-<stem>.zip`   |
/// | printable receipt             | `pdf/<stem>.pdf`     |
/// | its QR code                   | `pdf/<stem>.png`     |
///
/// `<stem>` is the receipt's `RUC-TT-SERIE-CORRELATIVO` ([`Receipt::file_stem`]), e.g.
/// `20100066603-03-B001-42`; a Resumen Diario's or Comunicación de Baja's is `RUC-RC-YYYYMMDD-N`
/// ([`ReceiptFiles::of_summary`]), with the same layout (no PDF); a credit note's is
/// `RUC-07-SERIE-CORRELATIVO` ([`CreditNote::file_stem`]), e.g. `20100066603-07-BC01-3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptFiles {
    stem: String,
}

impl ReceiptFiles {
    /// The files of `receipt`.
    pub fn of(receipt: &Receipt) -> Self {
        Self {
            stem: receipt.file_stem(),
        }
    }

    /// The files of a summary (`RUC-RC-YYYYMMDD-N`): signed XML, its zip and the CDR of its ticket.
    pub fn of_summary(ruc: &Ruc, id: &SummaryId) -> Self {
        Self {
            stem: format!("{ruc}-{id}"),
        }
    }

    /// The files of a credit note (`<stem>` is `RUC-07-SERIE-CORRELATIVO`).
    pub fn of_credit_note(note: &CreditNote) -> Self {
        Self {
            stem: note.file_stem(),
        }
    }

    /// The signed XML's file name, which is also its entry in the zip: `<stem>.xml`.
    pub fn xml_name(&self) -> String {
        format!("{}.xml", self.stem)
    }

    /// The zip's file name, the name SUNAT receives it under: `<stem>.zip`.
    pub fn zip_name(&self) -> String {
        format!("{}.zip", self.stem)
    }

    /// The signed XML.
    pub fn xml(&self) -> String {
        format!("xml/{}", self.xml_name())
    }

    /// The zip sent to SUNAT, beside the signed XML.
    pub fn zip(&self) -> String {
        format!("xml/{}", self.zip_name())
    }

    /// The CDR zip SUNAT answered with.
    pub fn cdr(&self) -> String {
        format!("cdr/R-{}.zip", self.stem)
    }

    /// The printable receipt.
    pub fn pdf(&self) -> String {
        format!("pdf/{}.pdf", self.stem)
    }

    /// The QR code, as a PNG.
    pub fn qr(&self) -> String {
        format!("pdf/{}.png", self.stem)
    }

    /// The zip beside a stored signed XML path (`xml/<stem>.xml` gives `xml/<stem>.zip`); `None`
    /// when the path does not name an XML file.
    pub fn zip_beside(xml: &str) -> Option<String> {
        xml.strip_suffix(".xml").map(|stem| format!("{stem}.zip"))
    }
}

/// Writes `bytes` to `path` atomically, creating its directory when missing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other(format!("{} has no directory", path.display())))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".faena-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Makes the rename durable. Best effort: not every platform can open a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use faena_sunat::document::{Company, Customer, DocumentType, Line};
    use faena_sunat::{Ruc, Series};

    fn receipt() -> Receipt {
        Receipt {
            company: Company {
                ruc: Ruc::parse("20100066603").expect("a valid RUC"),
                legal_name: "Bodega".into(),
                address: "Av. Lima 1".into(),
                establishment_code: "0000".into(),
            },
            doc_type: DocumentType::Boleta,
            series: Series::parse_for("B001", DocumentType::Boleta).expect("a boleta series"),
            correlative: 42,
            issue_date: chrono::NaiveDate::default(),
            issue_time: chrono::NaiveTime::default(),
            customer: Customer::anonymous(),
            currency: "PEN".into(),
            lines: vec![Line::new("A", "a", 1, 1.into())],
        }
    }

    #[test]
    fn a_receipts_files_follow_the_layout() {
        let f = ReceiptFiles::of(&receipt());
        assert_eq!(f.xml_name(), "20100066603-03-B001-42.xml");
        assert_eq!(f.zip_name(), "20100066603-03-B001-42.zip");
        assert_eq!(f.xml(), "xml/20100066603-03-B001-42.xml");
        assert_eq!(f.zip(), "xml/20100066603-03-B001-42.zip");
        assert_eq!(f.cdr(), "cdr/R-20100066603-03-B001-42.zip");
        assert_eq!(f.pdf(), "pdf/20100066603-03-B001-42.pdf");
        assert_eq!(f.qr(), "pdf/20100066603-03-B001-42.png");
        assert_eq!(ReceiptFiles::zip_beside(&f.xml()), Some(f.zip()));
        assert_eq!(ReceiptFiles::zip_beside("pdf/x.pdf"), None);
        let ruc = Ruc::parse("20100066603").expect("a valid RUC");
        let id = SummaryId::parse("RC-20261203-2").expect("a valid summary id");
        let f = ReceiptFiles::of_summary(&ruc, &id);
        assert_eq!(f.zip_name(), "20100066603-RC-20261203-2.zip");
        assert_eq!(f.xml(), "xml/20100066603-RC-20261203-2.xml");
        assert_eq!(f.cdr(), "cdr/R-20100066603-RC-20261203-2.zip");
    }

    #[test]
    fn writes_replace_whole_files_and_leave_no_temporaries() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("a/b/report.csv");
        write_atomic(&path, b"first")?;
        write_atomic(&path, b"second")?;
        assert_eq!(std::fs::read(&path)?, b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        Ok(())
    }
}
