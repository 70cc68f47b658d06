//! Peppers: the keys of [`HmacSha256Hasher`](super::HmacSha256Hasher), wherever they live.
//!
//! The hasher never touches a key itself: it asks a [`PepperProvider`] for the MAC. A
//! [`Pepper`] holds its bytes in this process (from a secrets manager, an environment
//! variable or a file); `Pkcs11Pepper` (feature `pkcs11`) leaves the key inside a hardware
//! module and has the module compute the MAC, so that even a full memory dump of the server
//! holds no pepper.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::hash::HashError;

/// Computes HMAC-SHA-256 under one pepper, wherever its key is kept.
///
/// [`HmacSha256Hasher`](super::HmacSha256Hasher) holds one provider per pepper id and
/// computes every hash through it, so the key can stay in a hardware module (PKCS#11), a
/// cloud KMS with a MAC API (AWS KMS `GenerateMac`, Google Cloud KMS `MacSign`) or in
/// memory ([`Pepper`]).
///
/// # Contract
/// - Return the RFC 2104 HMAC-SHA-256 of `message` under the key: the same bytes
///   [`Pepper`] computes for the same key, so peppers can move between providers without
///   rehashing.
/// - Fail with an error, never with a made-up tag, when the key cannot be used:
///   [`HashError::PepperUnavailable`] for a module or service that is down, refuses the
///   login or lacks the key. The hasher then fails closed.
/// - Never put key material in errors, logs or `Debug`.
/// - It may block (a PKCS#11 call, a network round trip): the keyring runs hashing on
///   tokio's blocking pool, at most `uncached_concurrency` at a time.
///
/// ```
/// use keymint::hash::PepperProvider;
/// use keymint::{HashError, HmacSha256Hasher, Pepper, SecretHasher};
///
/// /// Counts MACs, delegating to an in-memory pepper.
/// #[derive(Debug)]
/// struct Counting(Pepper, std::sync::atomic::AtomicUsize);
///
/// impl PepperProvider for Counting {
///     fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], HashError> {
///         self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.0.hmac_sha256(message)
///     }
/// }
///
/// let provider = std::sync::Arc::new(Counting(Pepper::new([7u8; 32])?, Default::default()));
/// let hasher = HmacSha256Hasher::new("k1", provider.clone())?;
/// let stored = hasher.hash(b"secret")?;
/// assert!(hasher.verify(b"secret", &stored.phc()?)?);
/// assert_eq!(provider.1.load(std::sync::atomic::Ordering::Relaxed), 2);
/// # Ok::<(), keymint::HashError>(())
/// ```
pub trait PepperProvider: Send + Sync + fmt::Debug + 'static {
    /// HMAC-SHA-256 of `message` under this pepper.
    ///
    /// # Errors
    /// [`HashError::PepperUnavailable`] when the key cannot be used now; an implementation
    /// may also return [`HashError::Backend`] for a failure of its own.
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], HashError>;
}

impl<P: PepperProvider + ?Sized> PepperProvider for Arc<P> {
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], HashError> {
        (**self).hmac_sha256(message)
    }
}

/// A pepper held in this process: at least 32 bytes, zeroized on drop, never printed.
///
/// Load it from a secrets manager ([`new`](Self::new)), an environment variable
/// ([`from_env`](Self::from_env)) or a file that only its owner can read
/// ([`from_file`](Self::from_file)). A memory dump of the process holds it; when that
/// matters, keep the key in a hardware module instead (`Pkcs11Pepper`, feature `pkcs11`).
#[derive(Clone)]
pub struct Pepper(Arc<Zeroizing<Vec<u8>>>);

impl Pepper {
    /// Shortest pepper accepted, in bytes.
    pub const MIN_LEN: usize = 32;
    /// Largest pepper file read, in bytes: anything longer is not a pepper.
    pub const MAX_FILE_LEN: usize = 4096;

    /// Wraps `bytes` (for example 32 bytes from a secrets manager).
    ///
    /// # Errors
    /// [`HashError::InvalidConfig`] when shorter than [`Pepper::MIN_LEN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, HashError> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.len() < Self::MIN_LEN {
            return Err(HashError::InvalidConfig("pepper must be at least 32 bytes"));
        }
        Ok(Self(Arc::new(bytes)))
    }

    /// The pepper in environment variable `var`: its bytes as they are (the UTF-8 text of,
    /// say, `openssl rand -base64 32`), as the `keymint` CLI reads `KEYMINT_PEPPER`.
    ///
    /// The copy read is zeroized on drop, but the process environment keeps its own (and
    /// `/proc/<pid>/environ` shows it to the same user): prefer [`from_file`](Self::from_file)
    /// where you can.
    ///
    /// # Errors
    /// [`HashError::PepperSource`] naming the variable when it is unset, empty or shorter
    /// than [`Pepper::MIN_LEN`] bytes; the message never holds the value.
    pub fn from_env(var: &str) -> Result<Self, HashError> {
        Self::from_env_value(var, std::env::var_os(var))
    }

    fn from_env_value(var: &str, value: Option<std::ffi::OsString>) -> Result<Self, HashError> {
        let origin = || format!("environment variable {var}");
        let value = value.ok_or_else(|| HashError::PepperSource {
            origin: origin(),
            reason: "not set".into(),
        })?;
        Self::checked(Zeroizing::new(value.into_encoded_bytes()), origin)
    }

    /// The pepper in the file at `path`: its bytes as they are, less one trailing newline
    /// (so `openssl rand -base64 32 > pepper` and `printf %s "$PEPPER" > pepper` give the
    /// same pepper as the variable would).
    ///
    /// On Unix the file must not be readable or writable by its group or others (mode
    /// `0600` or `0400`; with Kubernetes secret volumes set `defaultMode: 0400`, with
    /// Docker secrets `mode: 0400`). It must be a regular file of at most
    /// [`Pepper::MAX_FILE_LEN`] bytes; its mode is checked on the opened file, and symbolic
    /// links are followed.
    ///
    /// # Errors
    /// [`HashError::PepperSource`] naming the file when it cannot be opened or read, is
    /// open to others, is not a regular file, or is too short or too long; the message never
    /// holds its contents.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, HashError> {
        let path = path.as_ref();
        let origin = || format!("file {}", path.display());
        let refuse = |reason: String| HashError::PepperSource {
            origin: origin(),
            reason,
        };
        // Checked before opening too: opening a FIFO would wait for a writer.
        let before = std::fs::metadata(path).map_err(|e| refuse(format!("cannot open: {e}")))?;
        if !before.is_file() {
            return Err(refuse("not a regular file".into()));
        }
        let file = std::fs::File::open(path).map_err(|e| refuse(format!("cannot open: {e}")))?;
        let meta = file
            .metadata()
            .map_err(|e| refuse(format!("cannot read its metadata: {e}")))?;
        if !meta.is_file() {
            return Err(refuse("not a regular file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o066 != 0 {
                return Err(refuse(format!(
                    "readable or writable by group or others (mode {mode:04o}): \
                     restrict it to its owner (chmod 600)"
                )));
            }
        }
        let limit = Self::MAX_FILE_LEN + 1;
        // Room for one byte more than is ever read: the buffer never grows, so no copy of
        // the contents is left behind in a freed allocation.
        let mut bytes = Zeroizing::new(Vec::with_capacity(limit + 1));
        file.take(limit as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| refuse(format!("cannot read: {e}")))?;
        if bytes.len() > Self::MAX_FILE_LEN {
            return Err(refuse(format!(
                "longer than {} bytes: not a pepper file",
                Self::MAX_FILE_LEN
            )));
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Self::checked(bytes, origin)
    }

    /// The key itself, for importing it into a hardware module.
    #[cfg(feature = "pkcs11")]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn checked(bytes: Zeroizing<Vec<u8>>, origin: impl Fn() -> String) -> Result<Self, HashError> {
        let reason = if bytes.is_empty() {
            "empty".to_owned()
        } else if bytes.len() < Self::MIN_LEN {
            format!(
                "{} bytes, shorter than the {} a pepper needs",
                bytes.len(),
                Self::MIN_LEN
            )
        } else {
            return Ok(Self(Arc::new(bytes)));
        };
        Err(HashError::PepperSource {
            origin: origin(),
            reason,
        })
    }
}

impl PepperProvider for Pepper {
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], HashError> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .map_err(|_| HashError::Backend("hmac key rejected"))?;
        mac.update(message);
        Ok(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_memory_pepper_computes_the_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 6 (a key longer than the block size).
        let pepper = Pepper::new(vec![0xaa; 131]).unwrap();
        let tag = pepper
            .hmac_sha256(b"Test Using Larger Than Block-Size Key - Hash Key First")
            .unwrap();
        assert_eq!(
            crate::hex::lower_hex(&tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn an_environment_value_is_refused_when_unset_empty_or_short_naming_the_variable_only() {
        let refused = |value: Option<&str>| {
            Pepper::from_env_value("KEYMINT_PEPPER", value.map(Into::into))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(None),
            "pepper from environment variable KEYMINT_PEPPER: not set"
        );
        assert_eq!(
            refused(Some("")),
            "pepper from environment variable KEYMINT_PEPPER: empty"
        );
        let short = refused(Some("tooshort-but-secret-31-bytes-ab"));
        assert!(
            short.contains("KEYMINT_PEPPER") && short.contains("31 bytes"),
            "{short}"
        );
        assert!(!short.contains("tooshort"), "the value leaked: {short}");
    }

    #[test]
    fn an_environment_value_is_the_same_pepper_as_its_bytes() {
        let text = "q0xWm3bS1mB6l0i1o8Yc2J2Ck3H8l3h4m6W3YVtq8Sg=";
        let from_env = Pepper::from_env_value("P", Some(text.into())).unwrap();
        let direct = Pepper::new(text.as_bytes()).unwrap();
        assert_eq!(
            from_env.hmac_sha256(b"m").unwrap(),
            direct.hmac_sha256(b"m").unwrap()
        );
    }

    #[test]
    fn a_pepper_never_prints_its_bytes() {
        let pepper = Pepper::new(*b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(format!("{pepper:?}"), "Pepper([REDACTED])");
    }
}
