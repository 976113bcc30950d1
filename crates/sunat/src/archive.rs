//! The zip SUNAT exchanges: `RUC-TT-SERIE-CORRELATIVO.zip` holding exactly one `.xml` entry of the
//! same name, and the CDR zip (`R-<name>.zip`) that comes back.

use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// Largest entry read from a zip (SUNAT's limit for a document is far below).
pub const MAX_ENTRY_BYTES: u64 = 16 * 1024 * 1024;

/// Why a zip could not be written or read. `code()` is stable; `sunat_code()` is SUNAT's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot write the zip: {0}")]
    Write(String),
    #[error("the zip is corrupt or not a zip: {0}")]
    Corrupt(String),
    #[error("the zip is empty")]
    Empty,
    #[error("the zip holds {0} files, expected exactly one")]
    TooManyFiles(usize),
    #[error("the zip entry {0:?} is larger than {MAX_ENTRY_BYTES} bytes")]
    TooLarge(String),
    #[error("the zip holds no .xml file")]
    NoXml,
}

impl ArchiveError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Write(_) => "archive.write",
            Self::Corrupt(_) => "archive.corrupt",
            Self::Empty => "archive.empty",
            Self::TooManyFiles(_) => "archive.too_many_files",
            Self::TooLarge(_) => "archive.too_large",
            Self::NoXml => "archive.no_xml",
        }
    }

    /// The fault code SUNAT answers for this problem.
    pub fn sunat_code(&self) -> &'static str {
        match self {
            Self::Empty | Self::NoXml => "0155",
            Self::Corrupt(_) | Self::Write(_) | Self::TooLarge(_) => "0156",
            Self::TooManyFiles(_) => "0157",
        }
    }
}

/// A deflated zip with one entry `entry_name` holding `content`.
pub fn zip_single(entry_name: &str, content: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    zip_entries(&[(entry_name, content)])
}

/// A deflated zip with the given entries, in order; a name ending in `/` is a folder.
pub fn zip_entries(entries: &[(&str, &[u8])]) -> Result<Vec<u8>, ArchiveError> {
    let err = |e: &dyn std::fmt::Display| ArchiveError::Write(e.to_string());
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, content) in entries {
        if name.ends_with('/') {
            w.add_directory(*name, options).map_err(|e| err(&e))?;
        } else {
            w.start_file(*name, options).map_err(|e| err(&e))?;
            w.write_all(content).map_err(|e| err(&e))?;
        }
    }
    Ok(w.finish().map_err(|e| err(&e))?.into_inner())
}

/// The only file of a zip that must hold exactly one (folders are not counted): its name and
/// content. This is how SUNAT reads a sent document.
pub fn read_single(zip: &[u8]) -> Result<(String, Vec<u8>), ArchiveError> {
    let mut archive =
        ZipArchive::new(Cursor::new(zip)).map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    let files: Vec<usize> = (0..archive.len())
        .filter(|i| {
            archive
                .by_index_raw(*i)
                .map(|f| !f.is_dir())
                .unwrap_or(true)
        })
        .collect();
    match files.as_slice() {
        [] => Err(ArchiveError::Empty),
        [i] => read_entry(&mut archive, *i),
        many => Err(ArchiveError::TooManyFiles(many.len())),
    }
}

/// The first `*.xml` file of a zip, skipping folders such as `dummy/`: how a CDR is read.
pub fn first_xml(zip: &[u8]) -> Result<(String, Vec<u8>), ArchiveError> {
    let mut archive =
        ZipArchive::new(Cursor::new(zip)).map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    for i in 0..archive.len() {
        let is_xml = archive
            .by_index_raw(i)
            .map(|f| !f.is_dir() && f.name().to_ascii_lowercase().ends_with(".xml"))
            .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        if is_xml {
            return read_entry(&mut archive, i);
        }
    }
    Err(ArchiveError::NoXml)
}

fn read_entry(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    i: usize,
) -> Result<(String, Vec<u8>), ArchiveError> {
    let file = archive
        .by_index(i)
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    let name = file.name().to_owned();
    let mut content = Vec::new();
    file.take(MAX_ENTRY_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    if content.len() as u64 > MAX_ENTRY_BYTES {
        return Err(ArchiveError::TooLarge(name));
    }
    Ok((name, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_round_trips() {
        let zip = zip_single("20100066603-03-B001-1.xml", b"<Invoice/>").unwrap();
        let (name, content) = read_single(&zip).unwrap();
        assert_eq!(name, "20100066603-03-B001-1.xml");
        assert_eq!(content, b"<Invoice/>");
    }

    #[test]
    fn cdr_skips_folders_and_single_rejects_many() {
        let zip = zip_entries(&[("dummy/", b""), ("R-x.xml", b"<a/>")]).unwrap();
        assert_eq!(first_xml(&zip).unwrap().0, "R-x.xml");
        let two = zip_entries(&[("a.xml", b"<a/>"), ("b.xml", b"<b/>")]).unwrap();
        assert_eq!(read_single(&two), Err(ArchiveError::TooManyFiles(2)));
        assert!(matches!(
            read_single(b"nope"),
            Err(ArchiveError::Corrupt(_))
        ));
        let empty = zip_entries(&[]).unwrap();
        assert_eq!(read_single(&empty), Err(ArchiveError::Empty));
    }
}
