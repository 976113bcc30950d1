//! Enveloped XMLDSig of a UBL document as SUNAT wants it (inclusive C14N 1.0, rsa-sha1, sha1
//! digest, `Reference URI=""` with the enveloped-signature transform, the certificate in
//! `KeyInfo`), and the verification the simulator runs on what it receives.
//!
//! The signed bytes are built once, by inserting the `ds:Signature` into the empty
//! `ext:ExtensionContent` of the unsigned text: nothing is re-serialized afterwards, so what was
//! digested is what is stored and sent.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{PrivateKey, PublicKey};
use secrecy::{ExposeSecret, SecretString};
use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::c14n;
use crate::ubl::{NS_DS, NS_EXT, SIGNATURE_ID};

pub const ALG_C14N: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
pub const ALG_RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
pub const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const ALG_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
pub const ALG_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const ALG_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Why a document could not be signed. `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read the certificate file {path}: {source}")]
    ReadCertificate {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "cannot open the PKCS#12 certificate: {0} (wrong password, or not a PKCS#12/.pfx file)"
    )]
    Pkcs12(String),
    #[error("the PKCS#12 file holds no private key with its certificate")]
    NoPrivateKey,
    #[error("the certificate's key is not an RSA key SUNAT accepts: {0}")]
    NotRsa(String),
    #[error("the XML to sign does not parse: {0}")]
    Xml(String),
    #[error("the XML has no empty ext:ExtensionContent to hold the signature")]
    NoExtensionContent,
    #[error("RSA signing failed: {0}")]
    Rsa(String),
}

impl SignError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::ReadCertificate { .. } => "sign.read_certificate",
            Self::Pkcs12(_) => "sign.pkcs12",
            Self::NoPrivateKey => "sign.no_private_key",
            Self::NotRsa(_) => "sign.not_rsa",
            Self::Xml(_) => "sign.xml",
            Self::NoExtensionContent => "sign.no_extension_content",
            Self::Rsa(_) => "sign.rsa",
        }
    }
}

/// Why a signed document does not verify. `code()` is stable; `sunat_code()` is the error code
/// SUNAT would answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the XML does not parse: {0}")]
    Xml(String),
    #[error("the XML starts with a byte order mark")]
    Bom,
    #[error("the document has no ds:Signature")]
    NoSignature,
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    #[error("the embedded certificate is unreadable or not RSA: {0}")]
    Certificate(String),
    #[error("the digest does not match: the document was altered after signing")]
    DigestMismatch,
    #[error("the signature value does not match SignedInfo and the certificate")]
    BadSignature,
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Xml(_) => "verify.xml",
            Self::Bom => "verify.bom",
            Self::NoSignature => "verify.no_signature",
            Self::Malformed(_) => "verify.malformed",
            Self::UnsupportedAlgorithm(_) => "verify.unsupported_algorithm",
            Self::Certificate(_) => "verify.certificate",
            Self::DigestMismatch => "verify.digest_mismatch",
            Self::BadSignature => "verify.bad_signature",
        }
    }

    /// SUNAT's code: 2335 "documento alterado" for a digest or signature mismatch, 2336 for a
    /// signature it cannot process, 0306 for XML it cannot read.
    pub fn sunat_code(&self) -> &'static str {
        match self {
            Self::DigestMismatch | Self::BadSignature => "2335",
            Self::Xml(_) | Self::Bom => "0306",
            _ => "2336",
        }
    }
}

/// The signed document: the exact bytes to store and send, and the digest value ("valor
/// resumen") printed on the receipt and in its QR code.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    pub xml: Vec<u8>,
    pub digest_value: String,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("xml_len", &self.xml.len())
            .field("digest_value", &self.digest_value)
            .finish()
    }
}

/// What a valid signature carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub digest_value: String,
    /// The signer's certificate (DER).
    pub certificate_der: Vec<u8>,
}

/// The company's signing key and certificate, read from its PKCS#12 file.
#[derive(Clone)]
pub struct Signer {
    key: PrivateKey,
    certificate_der: Vec<u8>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("certificate_der_len", &self.certificate_der.len())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads a PKCS#12 (.p12/.pfx) file protected by `password`.
    pub fn from_pkcs12(path: &Path, password: &SecretString) -> Result<Self, SignError> {
        let bytes = std::fs::read(path).map_err(|source| SignError::ReadCertificate {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pkcs12_der(&bytes, password)
    }

    /// Same as [`Signer::from_pkcs12`] from the file's bytes.
    pub fn from_pkcs12_der(bytes: &[u8], password: &SecretString) -> Result<Self, SignError> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            bytes,
            password.expose_secret(),
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .map_err(|e| SignError::Pkcs12(e.to_string()))?;
        let (_, chain) = store.private_key_chain().ok_or(SignError::NoPrivateKey)?;
        let cert = chain.certs().first().ok_or(SignError::NoPrivateKey)?;
        let key = PrivateKey::from_pkcs8_der(chain.key().as_der())
            .map_err(|e| SignError::NotRsa(e.to_string()))?;
        Ok(Self {
            key,
            certificate_der: cert.as_der().to_vec(),
        })
    }

    /// The certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// Signs an unsigned UBL document that has an empty `ext:ExtensionContent`.
    pub fn sign(&self, xml: &str) -> Result<Signed, SignError> {
        let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
        // 1. Where the signature goes, and the digest of the document without it (what the
        //    enveloped-signature transform leaves).
        let (insert_at, close_tag, needs_ds_decl) = {
            let doc = roxmltree::Document::parse(xml).map_err(|e| SignError::Xml(e.to_string()))?;
            let slot = doc
                .descendants()
                .find(|n| n.has_tag_name((NS_EXT, "ExtensionContent")) && !has_element_child(*n))
                .ok_or(SignError::NoExtensionContent)?;
            let range = slot.range();
            let src = xml
                .get(range.clone())
                .ok_or(SignError::NoExtensionContent)?;
            let needs_ds = slot.lookup_prefix(NS_DS) != Some("ds");
            if src.ends_with("/>") {
                // `<ext:ExtensionContent/>`: write it open and closed around the signature.
                let qname = src[1..]
                    .split(|c: char| c.is_whitespace() || c == '/' || c == '>')
                    .next()
                    .unwrap_or("ext:ExtensionContent");
                (range.end - 2, Some(format!("</{qname}>")), needs_ds)
            } else {
                let end_tag = src.rfind("</").ok_or(SignError::NoExtensionContent)?;
                (range.start + end_tag, None, needs_ds)
            }
        };
        let digest_value = {
            let doc = roxmltree::Document::parse(xml).map_err(|e| SignError::Xml(e.to_string()))?;
            B64.encode(Sha1::digest(c14n::document(&doc, None).as_bytes()))
        };

        // 2. The signature with an empty SignatureValue, in place.
        let ds_decl = if needs_ds_decl {
            format!(" xmlns:ds=\"{NS_DS}\"")
        } else {
            String::new()
        };
        let head = format!(
            "<ds:Signature Id=\"{SIGNATURE_ID}\"{ds_decl}><ds:SignedInfo>\
<ds:CanonicalizationMethod Algorithm=\"{ALG_C14N}\"/>\
<ds:SignatureMethod Algorithm=\"{ALG_RSA_SHA1}\"/>\
<ds:Reference URI=\"\"><ds:Transforms><ds:Transform Algorithm=\"{ALG_ENVELOPED}\"/></ds:Transforms>\
<ds:DigestMethod Algorithm=\"{ALG_SHA1}\"/><ds:DigestValue>{digest_value}</ds:DigestValue></ds:Reference>\
</ds:SignedInfo><ds:SignatureValue>"
        );
        let tail = format!(
            "</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate>\
</ds:X509Data></ds:KeyInfo></ds:Signature>",
            B64.encode(&self.certificate_der)
        );
        let (before, after) = xml.split_at(insert_at);
        // A self-closed slot is opened before the signature and closed after it.
        let (open, close, after) = match &close_tag {
            Some(close) => (">", close.as_str(), after.get(2..).unwrap_or("")),
            None => ("", "", after),
        };
        let value_at = before.len() + open.len() + head.len();
        let mut signed = String::with_capacity(xml.len() + head.len() + tail.len() + 400);
        signed.push_str(before);
        signed.push_str(open);
        signed.push_str(&head);
        signed.push_str(&tail);
        signed.push_str(close);
        signed.push_str(after);

        // 3. Sign the canonical SignedInfo, read in the context of the document.
        let signature_value = {
            let doc =
                roxmltree::Document::parse(&signed).map_err(|e| SignError::Xml(e.to_string()))?;
            let signed_info = doc
                .descendants()
                .find(|n| n.has_tag_name((NS_DS, "SignedInfo")))
                .ok_or(SignError::NoExtensionContent)?;
            let canonical = c14n::subtree(signed_info);
            let sig = self
                .key
                .pkcs1v15_sign::<Sha1>(canonical.as_bytes())
                .map_err(|e| SignError::Rsa(e.to_string()))?;
            B64.encode(sig)
        };
        signed.insert_str(value_at, &signature_value);
        Ok(Signed {
            xml: signed.into_bytes(),
            digest_value,
        })
    }
}

fn has_element_child(n: roxmltree::Node<'_, '_>) -> bool {
    n.children().any(|c| c.is_element())
}

fn ds_child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name((NS_DS, name)))
}

fn b64_text(n: roxmltree::Node<'_, '_>) -> Result<Vec<u8>, VerifyError> {
    let text: String = n
        .text()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    B64.decode(text)
        .map_err(|e| VerifyError::Malformed(format!("base64 in ds:{}: {e}", n.tag_name().name())))
}

/// Checks the enveloped signature of a signed document: the digest of the document without its
/// signature, then the signature of `SignedInfo` against the embedded certificate's key. The
/// certificate itself is not checked against any authority.
pub fn verify(xml: &[u8]) -> Result<Verified, VerifyError> {
    if xml.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(VerifyError::Bom);
    }
    let text = std::str::from_utf8(xml).map_err(|e| VerifyError::Xml(e.to_string()))?;
    let doc = roxmltree::Document::parse(text).map_err(|e| VerifyError::Xml(e.to_string()))?;
    let signature = doc
        .descendants()
        .find(|n| n.has_tag_name((NS_DS, "Signature")))
        .ok_or(VerifyError::NoSignature)?;
    let malformed = |what: &str| VerifyError::Malformed(format!("missing {what}"));
    let signed_info = ds_child(signature, "SignedInfo").ok_or_else(|| malformed("SignedInfo"))?;
    let c14n_alg = ds_child(signed_info, "CanonicalizationMethod")
        .and_then(|n| n.attribute("Algorithm"))
        .ok_or_else(|| malformed("CanonicalizationMethod"))?;
    if c14n_alg != ALG_C14N {
        return Err(VerifyError::UnsupportedAlgorithm(c14n_alg.to_owned()));
    }
    let sig_alg = ds_child(signed_info, "SignatureMethod")
        .and_then(|n| n.attribute("Algorithm"))
        .ok_or_else(|| malformed("SignatureMethod"))?;
    let references: Vec<_> = signed_info
        .children()
        .filter(|c| c.has_tag_name((NS_DS, "Reference")))
        .collect();
    let [reference] = references.as_slice() else {
        return Err(VerifyError::Malformed(format!(
            "expected one ds:Reference, found {}",
            references.len()
        )));
    };
    if reference.attribute("URI") != Some("") {
        return Err(VerifyError::Malformed(
            "the ds:Reference must have URI=\"\" (the whole document)".into(),
        ));
    }
    let transforms: Vec<&str> = ds_child(*reference, "Transforms")
        .map(|t| {
            t.children()
                .filter(|c| c.has_tag_name((NS_DS, "Transform")))
                .filter_map(|c| c.attribute("Algorithm"))
                .collect()
        })
        .unwrap_or_default();
    if !transforms.contains(&ALG_ENVELOPED) {
        return Err(VerifyError::Malformed(
            "the ds:Reference lacks the enveloped-signature transform".into(),
        ));
    }
    if let Some(other) = transforms
        .iter()
        .find(|t| **t != ALG_ENVELOPED && **t != ALG_C14N)
    {
        return Err(VerifyError::UnsupportedAlgorithm((*other).to_owned()));
    }
    let digest_alg = ds_child(*reference, "DigestMethod")
        .and_then(|n| n.attribute("Algorithm"))
        .ok_or_else(|| malformed("DigestMethod"))?;
    let digest_node =
        ds_child(*reference, "DigestValue").ok_or_else(|| malformed("DigestValue"))?;
    let expected_digest = b64_text(digest_node)?;

    let canonical = c14n::document(&doc, Some(signature.id()));
    let actual_digest = match digest_alg {
        ALG_SHA1 => Sha1::digest(canonical.as_bytes()).to_vec(),
        ALG_SHA256 => Sha256::digest(canonical.as_bytes()).to_vec(),
        other => return Err(VerifyError::UnsupportedAlgorithm(other.to_owned())),
    };
    if actual_digest != expected_digest {
        return Err(VerifyError::DigestMismatch);
    }

    let cert_node = signature
        .descendants()
        .find(|n| n.has_tag_name((NS_DS, "X509Certificate")))
        .ok_or_else(|| malformed("KeyInfo/X509Data/X509Certificate"))?;
    let certificate_der = b64_text(cert_node)?;
    let public_key = public_key_of(&certificate_der)?;
    let signature_value = b64_text(
        ds_child(signature, "SignatureValue").ok_or_else(|| malformed("SignatureValue"))?,
    )?;
    let signed_info_c14n = c14n::subtree(signed_info);
    let ok = match sig_alg {
        ALG_RSA_SHA1 => {
            public_key.pkcs1v15_verify::<Sha1>(signed_info_c14n.as_bytes(), &signature_value)
        }
        ALG_RSA_SHA256 => {
            public_key.pkcs1v15_verify::<Sha256>(signed_info_c14n.as_bytes(), &signature_value)
        }
        other => return Err(VerifyError::UnsupportedAlgorithm(other.to_owned())),
    };
    ok.map_err(|_| VerifyError::BadSignature)?;
    Ok(Verified {
        digest_value: B64.encode(actual_digest),
        certificate_der,
    })
}

fn public_key_of(certificate_der: &[u8]) -> Result<PublicKey, VerifyError> {
    use x509_cert::der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(certificate_der)
        .map_err(|e| VerifyError::Certificate(e.to_string()))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| VerifyError::Certificate(e.to_string()))?;
    PublicKey::from_public_key_der(&spki).map_err(|e| VerifyError::Certificate(e.to_string()))
}

/// The certificate as PEM text, e.g. for `xmlsec1 --pubkey-cert-pem`.
pub fn certificate_pem(certificate_der: &[u8]) -> String {
    let b64 = B64.encode(certificate_der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
