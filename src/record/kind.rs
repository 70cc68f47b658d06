//! What kind of key a record is, and the environment it belongs to.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a key is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyKind {
    /// A server-side key that may do whatever its scopes allow. Refused from browsers by
    /// default (see [`KeyType::allow_browsers`](crate::KeyType::allow_browsers)).
    #[default]
    Secret,
    /// A key meant for browsers and mobile apps, and so not secret: it may hold only the
    /// scopes its type allows ([`KeyType::allowed_scopes`](crate::KeyType::allowed_scopes)) and may be limited to origins.
    Publishable,
    /// A secret key with an explicit, non-empty list of scopes and no grant of everything.
    Restricted,
}

impl KeyKind {
    /// The kind as a lowercase word (`secret`, `publishable`, `restricted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Publishable => "publishable",
            Self::Restricted => "restricted",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The environment a key belongs to and a request is served in: `live`, `test`, or a name
/// of the host's (1 to 32 of `a-z 0-9 _ -`). Keys of one environment are refused in
/// another ([`VerifyError::WrongEnvironment`](crate::VerifyError::WrongEnvironment)).
///
/// ```
/// use keymint::Environment;
///
/// assert_eq!(Environment::live().as_str(), "live");
/// assert!(Environment::new("staging-eu").is_ok());
/// assert!(Environment::new("Live").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Environment(Box<str>);

/// Why a string is not an [`Environment`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("environment must be 1 to 32 of a-z, 0-9, '_' and '-'")]
pub struct EnvironmentError;

impl Environment {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`EnvironmentError`] for an empty, too long or otherwise invalid name.
    pub fn new(name: &str) -> Result<Self, EnvironmentError> {
        let valid = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(name.into()))
        } else {
            Err(EnvironmentError)
        }
    }

    /// `live`: real data.
    pub fn live() -> Self {
        Self("live".into())
    }

    /// `test`: test data.
    pub fn test() -> Self {
        Self("test".into())
    }
}

text_newtype!(
    Environment,
    parse = Environment::new,
    error = EnvironmentError
);
quoted_debug!(Environment);

/// Reads an environment leniently: records written before environments were enforced may
/// hold a free label, which must not make the whole record unreadable. Such a label reads
/// as none (the record then belongs to its key type's environment).
pub(crate) fn lenient_environment<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Environment>, D::Error> {
    let label = Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    Ok(label.and_then(|l| Environment::new(&l).ok()))
}
