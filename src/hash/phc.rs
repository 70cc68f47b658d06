//! Reading PHC strings: `$id[$v=version][$param=value(,param=value)*][$salt[$hash]]`.

use base64ct::{Base64Unpadded, Encoding};

use crate::hash::HashError;

/// Longest stored hash this crate reads; longer strings are rejected unread.
pub const MAX_PHC_LEN: usize = 512;
const MAX_PARAMS: usize = 8;

/// A PHC string split into its fields, borrowing the stored text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phc<'a> {
    algorithm: &'a str,
    version: Option<u32>,
    params: &'a str,
    salt: Option<&'a str>,
    hash: Option<&'a str>,
}

impl<'a> Phc<'a> {
    /// Parses `text`, checking its length first.
    ///
    /// # Errors
    /// [`HashError::Malformed`] naming the first problem found.
    pub fn parse(text: &'a str) -> Result<Self, HashError> {
        if text.len() > MAX_PHC_LEN {
            return Err(HashError::Malformed("longer than 512 bytes"));
        }
        let rest = text
            .strip_prefix('$')
            .ok_or(HashError::Malformed("does not start with '$'"))?;
        let mut fields = rest.split('$');
        let algorithm = fields.next().unwrap_or_default();
        if algorithm.is_empty()
            || algorithm.len() > 32
            || !algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(HashError::Malformed("invalid algorithm identifier"));
        }
        let mut next = fields.next();
        let mut version = None;
        if let Some(v) = next.and_then(|f| f.strip_prefix("v=")) {
            version = Some(parse_decimal(v).ok_or(HashError::Malformed("invalid version"))?);
            next = fields.next();
        }
        let mut params = "";
        if let Some(p) = next.filter(|f| f.contains('=')) {
            let mut count = 0;
            for pair in p.split(',') {
                count += 1;
                let (name, value) = pair
                    .split_once('=')
                    .ok_or(HashError::Malformed("parameter without '='"))?;
                if count > MAX_PARAMS || !is_param_name(name) || !is_param_value(value) {
                    return Err(HashError::Malformed("invalid parameter"));
                }
            }
            params = p;
            next = fields.next();
        }
        let salt = next;
        let hash = fields.next();
        if fields.next().is_some() {
            return Err(HashError::Malformed("too many fields"));
        }
        for field in [salt, hash].into_iter().flatten() {
            if field.is_empty() || !field.bytes().all(is_b64) {
                return Err(HashError::Malformed("salt or hash is not B64"));
            }
        }
        Ok(Self {
            algorithm,
            version,
            params,
            salt,
            hash,
        })
    }

    /// The algorithm identifier, such as `argon2id`.
    pub fn algorithm(&self) -> &'a str {
        self.algorithm
    }

    /// The `v=` version, if present.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// The value of parameter `name`, if present.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .find_map(|(n, v)| (n == name).then_some(v))
    }

    /// The value of parameter `name` as a decimal number.
    ///
    /// # Errors
    /// [`HashError::Malformed`] when it is missing or not a decimal `u32`.
    pub fn decimal_param(&self, name: &str) -> Result<u32, HashError> {
        self.param(name)
            .and_then(parse_decimal)
            .ok_or(HashError::Malformed("missing or invalid numeric parameter"))
    }

    /// The decoded salt.
    ///
    /// # Errors
    /// [`HashError::Malformed`] when missing or not valid unpadded base64.
    pub fn salt(&self) -> Result<Vec<u8>, HashError> {
        decode(self.salt)
    }

    /// The decoded hash output.
    ///
    /// # Errors
    /// [`HashError::Malformed`] when missing or not valid unpadded base64.
    pub fn hash(&self) -> Result<Vec<u8>, HashError> {
        decode(self.hash)
    }
}

/// Unpadded standard base64, as PHC strings use.
pub(crate) fn encode_b64(bytes: &[u8]) -> String {
    Base64Unpadded::encode_string(bytes)
}

fn decode(field: Option<&str>) -> Result<Vec<u8>, HashError> {
    let field = field.ok_or(HashError::Malformed("missing salt or hash"))?;
    Base64Unpadded::decode_vec(field).map_err(|_| HashError::Malformed("salt or hash is not B64"))
}

fn parse_decimal(s: &str) -> Option<u32> {
    // No signs, no leading zeros beyond "0", at most 10 digits: one canonical spelling.
    let canonical = !s.is_empty()
        && s.len() <= 10
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

fn is_param_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_param_value(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| is_b64(b) || b == b'-' || b == b'.')
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_argon2_phc_string() {
        let s = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        let phc = Phc::parse(s).unwrap();
        assert_eq!(phc.algorithm(), "argon2id");
        assert_eq!(phc.version(), Some(19));
        assert_eq!(phc.decimal_param("m").unwrap(), 19456);
        assert_eq!(phc.param("p"), Some("1"));
        assert_eq!(phc.param("x"), None);
        assert_eq!(phc.salt().unwrap(), b"somesalt");
    }

    #[test]
    fn rejects_malformed_strings() {
        for bad in [
            "",
            "argon2id",
            "$",
            "$ARGON$x",
            "$argon2id$v=019$m=1$c2FsdA$aGFzaA",
            "$argon2id$v=19$m=1,$c2FsdA$aGFzaA",
            "$argon2id$v=19$m=1$c2FsdA$aGFzaA$extra",
            "$argon2id$v=19$m=1$c2F*dA$aGFzaA",
            "$argon2id$v=19$m=1$$aGFzaA",
            &format!("$argon2id${}", "a".repeat(600)),
        ] {
            assert!(
                matches!(Phc::parse(bad), Err(HashError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
