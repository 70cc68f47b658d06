//! Key types and environments: one keyring for secret, publishable and restricted keys in
//! live and test mode, as Stripe issues `sk_live_`, `sk_test_`, `pk_live_` and `rk_live_`.

use std::sync::Arc;

use crate::format::{FormatError, KeyFormat, ParseError, ParsedKey, Prefix, Scanner};
use crate::record::{Environment, KeyKind};
use crate::scope::Scope;
use chrono::TimeDelta;

/// One type of key a keyring issues and accepts: a prefix (its name, such as `sk_live`), a
/// [`KeyKind`], an [`Environment`], and optional constraints.
///
/// ```
/// use keymint::{Environment, KeyType};
/// use keymint::{Scope, TimeDelta};
///
/// let publishable = KeyType::publishable("pk_live", Environment::live())?
///     .allowed_scopes([Scope::new("*:read")?])
///     .max_lifetime(TimeDelta::days(365));
/// assert_eq!(publishable.name().as_str(), "pk_live");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct KeyType {
    format: KeyFormat,
    kind: KeyKind,
    environment: Environment,
    allowed_scopes: Option<Vec<Scope>>,
    default_lifetime: Option<TimeDelta>,
    max_lifetime: Option<TimeDelta>,
    default_policy: Option<String>,
    any_origin: bool,
    browsers: bool,
}

impl KeyType {
    /// A type of keys of `format`, of `kind`, in `environment`, without constraints.
    pub fn new(format: KeyFormat, kind: KeyKind, environment: Environment) -> Self {
        Self {
            format,
            kind,
            environment,
            allowed_scopes: None,
            default_lifetime: None,
            max_lifetime: None,
            default_policy: None,
            any_origin: false,
            browsers: false,
        }
    }

    /// Secret keys with `prefix` and the default lengths.
    ///
    /// # Errors
    /// [`FormatError::InvalidPrefix`] for an invalid prefix.
    pub fn secret(prefix: &str, environment: Environment) -> Result<Self, FormatError> {
        Ok(Self::new(
            KeyFormat::new(prefix)?,
            KeyKind::Secret,
            environment,
        ))
    }

    /// Publishable keys with `prefix`: they may hold no scope until
    /// [`allowed_scopes`](Self::allowed_scopes) marks some publishable.
    ///
    /// # Errors
    /// [`FormatError::InvalidPrefix`] for an invalid prefix.
    pub fn publishable(prefix: &str, environment: Environment) -> Result<Self, FormatError> {
        Ok(Self::new(
            KeyFormat::new(prefix)?,
            KeyKind::Publishable,
            environment,
        ))
    }

    /// Restricted keys with `prefix`.
    ///
    /// # Errors
    /// [`FormatError::InvalidPrefix`] for an invalid prefix.
    pub fn restricted(prefix: &str, environment: Environment) -> Result<Self, FormatError> {
        Ok(Self::new(
            KeyFormat::new(prefix)?,
            KeyKind::Restricted,
            environment,
        ))
    }

    /// Keys of this type may hold only scopes covered by one of `patterns` (roles
    /// included). Publishable types hold none without it.
    pub fn allowed_scopes(mut self, patterns: impl IntoIterator<Item = Scope>) -> Self {
        self.allowed_scopes = Some(patterns.into_iter().collect());
        self
    }

    /// Keys issued without an expiry expire this long after issue.
    pub fn default_lifetime(mut self, lifetime: TimeDelta) -> Self {
        self.default_lifetime = Some(lifetime);
        self
    }

    /// Keys expire at most this long after issue (a key issued without an expiry gets the
    /// default lifetime, or this one).
    pub fn max_lifetime(mut self, lifetime: TimeDelta) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// The rate-limit policy (defined on the keyring) for keys of this type that name
    /// none; before the keyring's own default.
    pub fn default_policy(mut self, name: &str) -> Self {
        self.default_policy = Some(name.to_owned());
        self
    }

    /// For publishable types: whether a key that lists no allowed origins is accepted from
    /// any origin (and from clients that send none). Default `false`: such a key is
    /// refused until it lists its origins.
    pub fn allow_any_origin(mut self, allow: bool) -> Self {
        self.any_origin = allow;
        self
    }

    /// For secret and restricted types: whether a request from a browser (one that
    /// carries an `Origin`) may use them. Default `false`: secret keys belong on servers,
    /// and one seen in a browser has leaked.
    pub fn allow_browsers(mut self, allow: bool) -> Self {
        self.browsers = allow;
        self
    }

    /// The type's name: its prefix.
    pub fn name(&self) -> &Prefix {
        self.format.prefix()
    }

    /// The format of its keys.
    pub fn format(&self) -> &KeyFormat {
        &self.format
    }

    /// Its kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Its environment.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// Its default rate-limit policy, if any.
    pub fn policy(&self) -> Option<&str> {
        self.default_policy.as_deref()
    }

    pub(crate) fn lifetimes(&self) -> (Option<TimeDelta>, Option<TimeDelta>) {
        (self.default_lifetime, self.max_lifetime)
    }

    pub(crate) fn allows_any_origin(&self) -> bool {
        self.any_origin
    }

    pub(crate) fn allows_browsers(&self) -> bool {
        self.browsers || self.kind == KeyKind::Publishable
    }

    /// The allowed pattern list, `None` when the type allows any scope.
    pub(crate) fn scope_allowance(&self) -> Option<&[Scope]> {
        match (&self.allowed_scopes, self.kind) {
            (Some(patterns), _) => Some(patterns),
            (None, KeyKind::Publishable) => Some(&[]),
            (None, _) => None,
        }
    }
}

/// The key types of a keyring, the first being its default: what
/// [`Keyring::builder`](crate::Keyring::builder) takes. A [`KeyFormat`] converts into a set
/// of one secret type in the `live` environment, so a keyring built from one format keeps
/// working as before.
///
/// ```
/// use keymint::{Environment, KeyType, KeyTypes};
///
/// let types = KeyTypes::new(KeyType::secret("sk_live", Environment::live())?)
///     .with(KeyType::secret("sk_test", Environment::test())?);
/// assert_eq!(
///     types.regex(),
///     r"\b(?:sk_live|sk_test)_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}\b"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct KeyTypes {
    types: Vec<Arc<KeyType>>,
    max_key_len: usize,
}

impl KeyTypes {
    /// A set whose default type is `first`.
    pub fn new(first: KeyType) -> Self {
        let max_key_len = first.format.key_len();
        Self {
            types: vec![Arc::new(first)],
            max_key_len,
        }
    }

    /// Adds a type (prefixes must be unique: checked when the keyring is built).
    pub fn with(mut self, key_type: KeyType) -> Self {
        self.max_key_len = self.max_key_len.max(key_type.format.key_len());
        self.types.push(Arc::new(key_type));
        self
    }

    /// The default type: the first one.
    pub fn default_type(&self) -> &KeyType {
        &self.types[0]
    }

    /// The type named `name` (its prefix).
    pub fn get(&self, name: &str) -> Option<&KeyType> {
        self.get_shared(name).map(|t| &**t)
    }

    pub(crate) fn get_shared(&self, name: &str) -> Option<&Arc<KeyType>> {
        self.types.iter().find(|t| t.name().as_str() == name)
    }

    /// Every type, the default first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &KeyType> + '_ {
        self.types.iter().map(|t| &**t)
    }

    /// The first prefix that two types share, if any.
    pub(crate) fn duplicate(&self) -> Option<&Prefix> {
        self.types.iter().enumerate().find_map(|(i, t)| {
            self.types[..i]
                .iter()
                .any(|other| other.name() == t.name())
                .then(|| t.name())
        })
    }

    /// Parses `key` as a key of one of the types: the type is found from the prefix in the
    /// same pass. No I/O; rejections do not allocate.
    ///
    /// # Errors
    /// The first [`ParseError`]; [`ParseError::PrefixMismatch`] for a well-formed key of no
    /// type here.
    pub fn parse<'k>(&self, key: &'k str) -> Result<(ParsedKey<'k>, &KeyType), ParseError> {
        self.parse_shared(key).map(|(parsed, t)| (parsed, &**t))
    }

    pub(crate) fn parse_shared<'k>(
        &self,
        key: &'k str,
    ) -> Result<(ParsedKey<'k>, &Arc<KeyType>), ParseError> {
        if let [only] = &self.types[..] {
            return only.format.parse(key).map(|parsed| (parsed, only));
        }
        let parsed = crate::format::parse_bounded(key, self.max_key_len)?;
        let key_type = self
            .get_shared(parsed.prefix())
            .ok_or(ParseError::PrefixMismatch)?;
        let (id_len, secret_len) = (key_type.format.id_len(), key_type.format.secret_len());
        if parsed.id().len() != id_len {
            return Err(ParseError::IdLength {
                found: parsed.id().len(),
                min: id_len,
                max: id_len,
            });
        }
        if parsed.expose_secret().len() != secret_len {
            return Err(ParseError::SecretLength {
                found: parsed.expose_secret().len(),
                min: secret_len,
                max: secret_len,
            });
        }
        Ok((parsed, key_type))
    }

    /// One regular expression matching keys of every type, for secret scanners (confirm
    /// candidates with [`parse`](Self::parse), which checks the checksum).
    pub fn regex(&self) -> String {
        let first = self.default_type().format();
        let same_lengths = self.types.iter().all(|t| {
            t.format.id_len() == first.id_len() && t.format.secret_len() == first.secret_len()
        });
        if same_lengths {
            let prefixes: Vec<&str> = self.types.iter().map(|t| t.name().as_str()).collect();
            format!(
                r"\b(?:{})_[0-9A-Za-z]{{{}}}_[0-9A-Za-z]{{{}}}\b",
                prefixes.join("|"),
                first.id_len(),
                first.secret_len() + crate::format::CHECKSUM_LEN
            )
        } else {
            let patterns: Vec<String> = self
                .types
                .iter()
                .map(|t| {
                    let r = t.format.regex();
                    r[2..r.len() - 2].to_owned()
                })
                .collect();
            format!(r"\b(?:{})\b", patterns.join("|"))
        }
    }

    /// A [`Scanner`] that finds (checksum-confirmed) keys of these types.
    pub fn scanner(&self) -> Scanner {
        Scanner::for_formats(self.types.iter().map(|t| t.format.clone()))
    }
}

impl From<KeyType> for KeyTypes {
    fn from(key_type: KeyType) -> Self {
        Self::new(key_type)
    }
}

impl From<KeyFormat> for KeyTypes {
    /// One secret type of `format`, in the `live` environment.
    fn from(format: KeyFormat) -> Self {
        Self::new(KeyType::new(format, KeyKind::Secret, Environment::live()))
    }
}
