//! A throwaway self-signed RSA certificate in a password-protected PKCS#12 file, made at run time
//! for tests, the simulator and local development (`sunat-sim cert`). No private key is ever
//! committed: each call makes a new one.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::PrivateKey;
use sha2::Sha256;
use x509_cert::builder::{profile, Builder, CertificateBuilder};
use x509_cert::der::{Decode, Encode};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

/// Key size of the test certificate: what SUNAT's CAs issue.
pub const KEY_BITS: usize = 2048;

/// Files written by [`generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCert {
    /// The PKCS#12 file (key + certificate), protected by the password given.
    pub p12_path: PathBuf,
    /// The certificate alone, PEM (for `xmlsec1 --pubkey-cert-pem` and friends).
    pub cert_pem_path: PathBuf,
}

/// Why a test certificate could not be made. `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum TestCertError {
    #[error("RSA key generation failed: {0}")]
    Key(String),
    #[error("building the certificate failed: {0}")]
    Certificate(String),
    #[error("writing the PKCS#12 file failed: {0}")]
    Pkcs12(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl TestCertError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Key(_) => "testcert.key",
            Self::Certificate(_) => "testcert.certificate",
            Self::Pkcs12(_) => "testcert.pkcs12",
            Self::Write { .. } => "testcert.write",
        }
    }
}

/// Writes `faena-test-cert.p12` (protected by `password`) and `faena-test-cert.pem` into `dir`
/// (created if missing): a new 2048-bit RSA key and a self-signed certificate valid for a year.
pub fn generate(dir: &Path, password: &str) -> Result<TestCert, TestCertError> {
    let (p12, cert_der) = generate_der(password)?;
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).map_err(|source| TestCertError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    std::fs::create_dir_all(dir).map_err(|source| TestCertError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let p12_path = dir.join("faena-test-cert.p12");
    let cert_pem_path = dir.join("faena-test-cert.pem");
    write(&p12_path, &p12)?;
    write(
        &cert_pem_path,
        crate::sign::certificate_pem(&cert_der).as_bytes(),
    )?;
    Ok(TestCert {
        p12_path,
        cert_pem_path,
    })
}

/// The PKCS#12 bytes and the certificate (DER), without touching the disk.
pub fn generate_der(password: &str) -> Result<(Vec<u8>, Vec<u8>), TestCertError> {
    let key = PrivateKey::new(&mut getrandom::SysRng, KEY_BITS)
        .map_err(|e| TestCertError::Key(e.to_string()))?;
    let cert_err = |e: &dyn std::fmt::Display| TestCertError::Certificate(e.to_string());
    let spki_der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| cert_err(&e))?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).map_err(|e| cert_err(&e))?;
    let subject =
        Name::from_str("CN=Faena test signer,O=Faena pruebas,C=PE").map_err(|e| cert_err(&e))?;
    let profile = profile::cabf::Root::new(true, subject).map_err(|e| cert_err(&e))?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| cert_err(&e))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let serial = SerialNumber::new(&serial).map_err(|e| cert_err(&e))?;
    let validity =
        Validity::from_now(Duration::from_secs(365 * 86_400)).map_err(|e| cert_err(&e))?;
    let builder =
        CertificateBuilder::new(profile, serial, validity, spki).map_err(|e| cert_err(&e))?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    let cert = builder.build(&signer).map_err(|e| cert_err(&e))?;
    let cert_der = cert.to_der().map_err(|e| cert_err(&e))?;

    let key_der = key
        .to_pkcs8_der()
        .map_err(|e| TestCertError::Pkcs12(e.to_string()))?;
    let p12_err = |e: &dyn std::fmt::Display| TestCertError::Pkcs12(e.to_string());
    let p12_key =
        p12_keystore::PrivateKey::from_der(key_der.as_bytes()).map_err(|e| p12_err(&e))?;
    let p12_cert = p12_keystore::Certificate::from_der(&cert_der).map_err(|e| p12_err(&e))?;
    let chain = p12_keystore::PrivateKeyChain::new(serial_id(&cert_der), p12_key, [p12_cert]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry("faena", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    let p12 = store.writer(password).write().map_err(|e| p12_err(&e))?;
    Ok((p12, cert_der))
}

/// A local key id for the PKCS#12 bags: the first bytes of the certificate's SHA-1.
fn serial_id(cert_der: &[u8]) -> Vec<u8> {
    use sha1::Digest;
    sha1::Sha1::digest(cert_der).to_vec()
}
