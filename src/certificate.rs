//! Keys bound to a client certificate (mutual TLS, RFC 8705): what a key is bound to
//! ([`CertificateBinding`]), and the certificate a request's TLS connection presented
//! ([`ClientCertificate`]).
//!
//! A bound key verifies only on a connection that presented a matching client
//! certificate, so a key copied out of a log, a repository or a proxy is useless without the
//! certificate's private key, which never crosses the network. Two kinds of binding:
//!
//! * [`CertificateBinding::X5tS256`]: RFC 8705's `x5t#S256`, the SHA-256 of the whole DER
//!   certificate. Exact: any other certificate fails, including a renewal of the same one
//!   with the same key pair, so each renewal needs the key updated (list the old and the new
//!   certificate during a roll-out: a key holds up to [`MAX_BINDINGS`]).
//! * [`CertificateBinding::SpkiS256`]: the SHA-256 of the certificate's
//!   SubjectPublicKeyInfo (its public key and algorithm), the value HPKP pins and DANE
//!   `TLSA 1 1` records hold. It survives renewal with the same key pair, and any
//!   certificate for that key pair that the TLS server accepts (its CA decides which) matches.
//!   Choose it when certificates are short-lived and renewed automatically; choose
//!   `x5t#S256` when a binding must also end when the certificate is replaced (a new key
//!   pair, or a certificate reissued after a compromise of the CA's records).
//!
//! The binding only proves possession of the private key if the TLS server asked for the
//! certificate and checked the handshake's signature, as every TLS stack does for a client
//! certificate it accepts; whether the certificate chains to a CA is the TLS server's
//! configuration, not the key's.
//!
//! ```
//! use keymint::{CertificateBinding, ClientCertificate};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let key_pair = rcgen::KeyPair::generate()?;
//! # let mut params = rcgen::CertificateParams::new(["ci.example.com".to_owned()])?;
//! # let cert = params.self_signed(&key_pair)?;
//! # params.serial_number = Some(rcgen::SerialNumber::from_slice(&[2]));
//! # let renewed = params.self_signed(&key_pair)?;
//! // On issue: bind the key to the client's certificate, or to its public key.
//! let exact = CertificateBinding::certificate(cert.der())?;
//! let same_key = CertificateBinding::public_key_of(cert.der())?;
//!
//! // On each TLS connection: the certificate the client presented.
//! let presented = ClientCertificate::from_der(cert.der())?;
//! assert!(exact.matches(&presented) && same_key.matches(&presented));
//!
//! // A renewal with the same key pair matches only the public-key binding.
//! let after_renewal = ClientCertificate::from_der(renewed.der())?;
//! assert!(!exact.matches(&after_renewal) && same_key.matches(&after_renewal));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};

use base64ct::{Base64UrlUnpadded, Encoding as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

/// Largest DER certificate accepted, in bytes (real client certificates are 0.5 to 2 KiB;
/// TLS stacks cap whole chains at about this).
pub const MAX_CERTIFICATE_LEN: usize = 64 * 1024;

/// Most bindings on one key (room for certificates of several machines, or the old and the
/// new one during a renewal).
pub const MAX_BINDINGS: usize = 16;

/// Why a certificate, public key or thumbprint was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// Empty, or longer than [`MAX_CERTIFICATE_LEN`].
    #[error("a certificate must be 1 to 65536 bytes of DER")]
    Size,
    /// PEM text where DER bytes were expected.
    #[error(
        "expected a DER certificate, got PEM text: decode the base64 between the BEGIN and END lines first"
    )]
    Pem,
    /// Not a DER X.509 v3 certificate.
    #[error("not a DER X.509 v3 certificate")]
    NotACertificate,
    /// Not a DER SubjectPublicKeyInfo (a SEQUENCE of the whole input).
    #[error("not a DER SubjectPublicKeyInfo")]
    NotAPublicKey,
    /// Not a SHA-256 thumbprint: 43 characters of unpadded base64url.
    #[error(
        "a thumbprint is the SHA-256 digest in unpadded base64url: 43 characters of A-Z a-z 0-9 - _"
    )]
    Thumbprint,
}

/// What a key is bound to: a certificate (RFC 8705 `x5t#S256`) or the public key in it
/// (`spki#S256`). See the [module docs](self) for which to choose.
///
/// Stored as a one-member JSON object, the confirmation method's name to the base64url
/// (unpadded) SHA-256 digest, as in an RFC 8705 `cnf` claim:
/// `{"x5t#S256": "HvhhKkvRIc9DmaMbUZcnqqV4mYpuOV4crgR5kpVrYEk"}` or
/// `{"spki#S256": "..."}` (`spki#S256` is keymint's name: RFC 8705 defines only
/// `x5t#S256`). `Display` writes `x5t#S256:<digest>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CertificateBinding {
    /// The SHA-256 of the DER certificate.
    #[serde(rename = "x5t#S256")]
    X5tS256(#[serde(with = "digest_text")] [u8; 32]),
    /// The SHA-256 of the certificate's DER SubjectPublicKeyInfo.
    #[serde(rename = "spki#S256")]
    SpkiS256(#[serde(with = "digest_text")] [u8; 32]),
}

impl CertificateBinding {
    /// Binds to exactly this certificate (DER): its `x5t#S256`.
    ///
    /// # Errors
    /// [`CertificateError`] for an oversized input, PEM text, or anything that is not an
    /// X.509 v3 certificate (which would silently never match).
    pub fn certificate(der: &[u8]) -> Result<Self, CertificateError> {
        check_size(der)?;
        spki_of(der)?;
        Ok(Self::X5tS256(Sha256::digest(der).into()))
    }

    /// Binds to the public key of this certificate (DER), whichever certificate later
    /// carries it: its `spki#S256`.
    ///
    /// # Errors
    /// As [`certificate`](Self::certificate).
    pub fn public_key_of(der: &[u8]) -> Result<Self, CertificateError> {
        check_size(der)?;
        Ok(Self::SpkiS256(Sha256::digest(spki_of(der)?).into()))
    }

    /// Binds to a public key given as a DER SubjectPublicKeyInfo (from a certificate
    /// signing request, or the key pair itself), before any certificate for it exists.
    ///
    /// # Errors
    /// [`CertificateError::NotAPublicKey`] when `spki` is not one DER SEQUENCE,
    /// [`CertificateError::Size`] when it is empty or oversized.
    pub fn public_key(spki: &[u8]) -> Result<Self, CertificateError> {
        check_size(spki)?;
        if !is_one_der_sequence(spki) {
            return Err(CertificateError::NotAPublicKey);
        }
        Ok(Self::SpkiS256(Sha256::digest(spki).into()))
    }

    /// An `x5t#S256` thumbprint as RFC 8705 writes it (base64url without padding), for
    /// example from `openssl x509 -outform DER | openssl dgst -sha256 -binary | basenc --base64url`
    /// with the `=` removed.
    ///
    /// # Errors
    /// [`CertificateError::Thumbprint`] for anything but the 43 characters of base64url
    /// that encode a 32-byte digest (the unused low bits of the last one zero, as every
    /// encoder writes them).
    pub fn from_x5t_s256(thumbprint: &str) -> Result<Self, CertificateError> {
        decode_digest(thumbprint).map(Self::X5tS256)
    }

    /// An `spki#S256` digest in base64url without padding.
    ///
    /// # Errors
    /// As [`from_x5t_s256`](Self::from_x5t_s256).
    pub fn from_spki_s256(digest: &str) -> Result<Self, CertificateError> {
        decode_digest(digest).map(Self::SpkiS256)
    }

    /// The confirmation method's name: `x5t#S256` or `spki#S256`.
    pub fn method(&self) -> &'static str {
        match self {
            Self::X5tS256(_) => "x5t#S256",
            Self::SpkiS256(_) => "spki#S256",
        }
    }

    /// The digest in base64url without padding.
    pub fn thumbprint(&self) -> String {
        Base64UrlUnpadded::encode_string(self.digest())
    }

    fn digest(&self) -> &[u8; 32] {
        match self {
            Self::X5tS256(d) | Self::SpkiS256(d) => d,
        }
    }

    /// Whether `presented` matches this binding (compared in constant time). A
    /// certificate whose public key cannot be read never matches a `spki#S256` binding.
    pub fn matches(&self, presented: &ClientCertificate) -> bool {
        self.matches_ct(presented).into()
    }

    fn matches_ct(&self, presented: &ClientCertificate) -> Choice {
        match self {
            Self::X5tS256(d) => d.ct_eq(&presented.0.x5t),
            Self::SpkiS256(d) => presented
                .spki_digest()
                .map_or(Choice::from(0), |spki| d.ct_eq(spki)),
        }
    }
}

/// Whether `presented` matches any of `bindings`; every binding is compared, whichever
/// matches.
pub(crate) fn any_matches(bindings: &[CertificateBinding], presented: &ClientCertificate) -> bool {
    bindings
        .iter()
        .fold(Choice::from(0), |found, b| found | b.matches_ct(presented))
        .into()
}

impl fmt::Display for CertificateBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.method(), self.thumbprint())
    }
}

impl fmt::Debug for CertificateBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateBinding({self})")
    }
}

/// The certificate a client presented on its TLS connection (the end-entity certificate,
/// DER), with its digests computed once: make one per connection and hand each request a
/// clone (cheap: one `Arc`). With the HTTP layer, insert it into the request's extensions
/// from your TLS acceptor (the guide page `keymint::guide::client_certificates` shows it
/// with axum and tokio-rustls); without the layer, give it to
/// [`VerifyContext::client_certificate`](crate::VerifyContext::client_certificate).
///
/// Make it only from a certificate your TLS stack accepted on this connection, which
/// proves the client holds its private key; its `Debug` shows the thumbprint, not the
/// bytes.
#[derive(Clone)]
pub struct ClientCertificate(Arc<Presented>);

struct Presented {
    der: Box<[u8]>,
    x5t: [u8; 32],
    /// Read on first need (only `spki#S256` bindings need it); `None`: unreadable.
    spki: OnceLock<Option<[u8; 32]>>,
}

impl ClientCertificate {
    /// The peer's end-entity certificate in DER (rustls: the first of
    /// `ServerConnection::peer_certificates()`).
    ///
    /// # Errors
    /// [`CertificateError::Size`] for an empty or oversized input. The bytes are not parsed
    /// here: `x5t#S256` needs only their digest, and the public key is read when a
    /// `spki#S256` binding first asks for it.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        check_size(der)?;
        Ok(Self(Arc::new(Presented {
            der: der.into(),
            x5t: Sha256::digest(der).into(),
            spki: OnceLock::new(),
        })))
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.0.der
    }

    /// Its RFC 8705 `x5t#S256` thumbprint (base64url, unpadded).
    pub fn x5t_s256(&self) -> String {
        Base64UrlUnpadded::encode_string(&self.0.x5t)
    }

    fn spki_digest(&self) -> Option<&[u8; 32]> {
        self.0
            .spki
            .get_or_init(|| {
                spki_of(&self.0.der)
                    .ok()
                    .map(|spki| Sha256::digest(spki).into())
            })
            .as_ref()
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.x5t_s256())
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.0.der == other.0.der
    }
}

impl Eq for ClientCertificate {}

fn check_size(der: &[u8]) -> Result<(), CertificateError> {
    if der.is_empty() || der.len() > MAX_CERTIFICATE_LEN {
        return Err(CertificateError::Size);
    }
    Ok(())
}

/// The DER SubjectPublicKeyInfo (outer SEQUENCE included) of a DER certificate, read by
/// rustls-webpki's parser (the one a rustls server has already run on it).
fn spki_of(der: &[u8]) -> Result<Vec<u8>, CertificateError> {
    if der.trim_ascii_start().starts_with(b"-----BEGIN") {
        return Err(CertificateError::Pem);
    }
    let der = rustls_pki_types::CertificateDer::from(der);
    let cert =
        webpki::EndEntityCert::try_from(&der).map_err(|_| CertificateError::NotACertificate)?;
    Ok(cert.subject_public_key_info().as_ref().to_vec())
}

/// Whether `der` is exactly one DER SEQUENCE (tag, minimal definite length, contents).
fn is_one_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, contents) = match *first {
        short @ 0..=0x7f => (usize::from(short), rest),
        // One length byte, only for lengths the short form cannot hold.
        0x81 => match rest {
            [len @ 0x80..=0xff, contents @ ..] => (usize::from(*len), contents),
            _ => return false,
        },
        // Two length bytes, the first non-zero: anything shorter has a shorter form.
        0x82 => match rest {
            [hi @ 0x01..=0xff, lo, contents @ ..] => {
                (usize::from(*hi) << 8 | usize::from(*lo), contents)
            }
            _ => return false,
        },
        // Indefinite (BER only) or longer than any accepted input.
        _ => return false,
    };
    contents.len() == len
}

fn decode_digest(text: &str) -> Result<[u8; 32], CertificateError> {
    let mut digest = [0u8; 32];
    match Base64UrlUnpadded::decode(text.as_bytes(), &mut digest) {
        Ok(decoded) if decoded.len() == 32 => Ok(digest),
        _ => Err(CertificateError::Thumbprint),
    }
}

mod digest_text {
    use base64ct::{Base64UrlUnpadded, Encoding as _};
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(digest: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Base64UrlUnpadded::encode_string(digest))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::decode_digest(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_are_exactly_43_characters_of_base64url() {
        let digest = Base64UrlUnpadded::encode_string(&[7u8; 32]);
        assert_eq!(digest.len(), 43);
        let binding = CertificateBinding::from_x5t_s256(&digest).unwrap();
        assert_eq!(binding, CertificateBinding::X5tS256([7; 32]));
        assert_eq!(binding.thumbprint(), digest);
        assert_eq!(binding.to_string(), format!("x5t#S256:{digest}"));
        for bad in [
            "",
            &digest[..42],
            &format!("{digest}A"),
            &format!("{digest}="),
            &digest.replace('H', "+"),
            // Standard base64 alphabet, not base64url.
            "HvhhKkvRIc9DmaMbUZcnqqV4mYpuOV4crgR5kpVrYE+",
            // Bits set past the digest's end (RFC 8705's own example has them): each
            // digest has one spelling.
            "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2",
        ] {
            assert_eq!(
                CertificateBinding::from_x5t_s256(bad),
                Err(CertificateError::Thumbprint),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_serde_form_is_a_confirmation_member() {
        let x5t = CertificateBinding::X5tS256([0; 32]);
        let json = serde_json::to_value(x5t).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "x5t#S256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" })
        );
        assert_eq!(
            serde_json::from_value::<CertificateBinding>(json).unwrap(),
            x5t
        );
        let spki = CertificateBinding::SpkiS256([1; 32]);
        let back: CertificateBinding =
            serde_json::from_value(serde_json::to_value(spki).unwrap()).unwrap();
        assert_eq!(back, spki);
        for bad in [
            serde_json::json!({ "x5t#S256": "short" }),
            serde_json::json!({ "x5t#S1": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }),
            serde_json::json!("x5t#S256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            assert!(serde_json::from_value::<CertificateBinding>(bad).is_err());
        }
    }

    #[test]
    fn only_a_der_sequence_is_a_public_key() {
        assert!(is_one_der_sequence(&[0x30, 0x00]));
        assert!(is_one_der_sequence(&[0x30, 0x01, 0x05]));
        let long = [&[0x30, 0x81, 0x80][..], &[0u8; 0x80]].concat();
        assert!(is_one_der_sequence(&long));
        let two_bytes = [&[0x30, 0x82, 0x01, 0x00][..], &[0u8; 0x100]].concat();
        assert!(is_one_der_sequence(&two_bytes));
        for bad in [
            &[][..],
            &[0x31, 0x00],
            &[0x30, 0x01],
            &[0x30, 0x00, 0x00],
            // Not minimal: a short length written long.
            &[0x30, 0x81, 0x01, 0x00],
            &[0x30, 0x82, 0x00, 0x01, 0x00],
            // Indefinite length.
            &[0x30, 0x80, 0x00, 0x00],
        ] {
            assert!(!is_one_der_sequence(bad), "{bad:?}");
        }
        assert_eq!(
            CertificateBinding::public_key(&[0x31, 0x00]),
            Err(CertificateError::NotAPublicKey)
        );
    }

    #[test]
    fn certificates_are_checked_for_size_and_form() {
        assert_eq!(
            ClientCertificate::from_der(&[]).unwrap_err(),
            CertificateError::Size
        );
        assert_eq!(
            ClientCertificate::from_der(&vec![0x30; MAX_CERTIFICATE_LEN + 1]).unwrap_err(),
            CertificateError::Size
        );
        assert_eq!(
            CertificateBinding::certificate(b"-----BEGIN CERTIFICATE-----\nMIIB...\n"),
            Err(CertificateError::Pem)
        );
        assert_eq!(
            CertificateBinding::public_key_of(&[0x30, 0x00]),
            Err(CertificateError::NotACertificate)
        );
        // Any bytes have a thumbprint; only a spki#S256 binding needs them to parse.
        let junk = ClientCertificate::from_der(&[0x30, 0x00]).unwrap();
        assert!(!CertificateBinding::SpkiS256([0; 32]).matches(&junk));
        assert!(CertificateBinding::X5tS256(Sha256::digest([0x30, 0x00]).into()).matches(&junk));
        assert!(format!("{junk:?}").contains("x5t#S256"));
    }
}
