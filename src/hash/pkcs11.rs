//! HMAC peppers held in a PKCS#11 hardware module (feature `pkcs11`).
//!
//! The pepper is a generic secret key on the token (`CKK_GENERIC_SECRET`), sensitive and
//! not extractable; the module computes each MAC itself (`CKM_SHA256_HMAC`), so the key
//! never enters this process and a memory dump of the server holds no pepper. Each pepper
//! id of [`HmacSha256Hasher`](crate::HmacSha256Hasher) maps to one key label.
//!
//! ```no_run
//! use keymint::hash::pkcs11::{Pkcs11Config, Pkcs11Token};
//! use keymint::{HashPolicy, HmacSha256Hasher};
//!
//! # fn main() -> Result<(), keymint::HashError> {
//! let pin = std::fs::read_to_string("/run/secrets/hsm-pin").unwrap_or_default();
//! let token = Pkcs11Token::open(Pkcs11Config::new(
//!     "/usr/lib/softhsm/libsofthsm2.so",
//!     "keymint",
//!     pin.trim(),
//! ))?;
//! // Rotation: new hashes use p2; hashes made with p1 still verify and get rehashed.
//! let hasher = HmacSha256Hasher::new("p2", token.pepper("keymint-pepper-p2")?)?
//!     .with_previous("p1", token.pepper("keymint-pepper-p1")?)?;
//! let policy = HashPolicy::new(hasher);
//! # let _ = policy;
//! # Ok(())
//! # }
//! ```
//!
//! # Sessions, login and failures
//!
//! PKCS#11 sessions must not be used by two threads at once, so a [`Pkcs11Token`] keeps a
//! small pool (at most [`Pkcs11Config::max_sessions`]); a MAC borrows one session for the
//! length of the call. The user logs in once, when the token is opened: a login holds for
//! every session of the process.
//!
//! When the module cannot compute a MAC (the module or token is gone, the login was lost,
//! the key label is absent) the call fails with
//! [`HashError::PepperUnavailable`], and the
//! verification fails closed: there is no fallback to another pepper or to none. A stale
//! key handle, a lost login or closed sessions are repaired on the next call (a new
//! session, a new login, a fresh lookup by label). A PIN the token refuses is never tried
//! again, since retries could lock the token's PIN: open the token again with the right
//! one.
//!
//! The PKCS#11 library stays initialised when a token is dropped (other parts of the
//! process may use the same module), and tokens opened twice in one process share one
//! login.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroize;

use super::HashError;
use super::pepper::{Pepper, PepperProvider};

/// Bytes of a key made by [`Pkcs11Token::generate_key`]: SHA-256's output size.
const GENERATED_KEY_LEN: u64 = 32;
/// Shortest key used, as for [`Pepper`].
const MIN_KEY_LEN: u64 = Pepper::MIN_LEN as u64;
/// How many times a MAC is retried after repairing a session, a login or a key handle.
const MAX_REPAIRS: usize = 2;

/// Where the token is and how to log in to it; see [`Pkcs11Token::open`].
///
/// `Debug` never shows the PIN.
pub struct Pkcs11Config {
    module: PathBuf,
    token_label: String,
    pin: AuthPin,
    max_sessions: usize,
    session_wait: Duration,
}

impl Pkcs11Config {
    /// Sessions kept open by default.
    pub const DEFAULT_MAX_SESSIONS: usize = 8;
    /// How long a MAC waits by default for a free session before failing.
    pub const DEFAULT_SESSION_WAIT: Duration = Duration::from_secs(2);

    /// The token labelled `token_label` in the PKCS#11 module (shared library) at `module`,
    /// logged in to as its user with `pin`. The PIN is kept in memory that is zeroized on
    /// drop.
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin: impl Into<String>,
    ) -> Self {
        Self {
            module: module.into(),
            token_label: token_label.into(),
            pin: AuthPin::from(pin.into()),
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
            session_wait: Self::DEFAULT_SESSION_WAIT,
        }
    }

    /// At most `sessions` sessions open at once (at least 1): as many MACs run in parallel.
    /// Match it to the keyring's `uncached_concurrency`; HSMs often limit sessions per
    /// application.
    #[must_use]
    pub fn max_sessions(mut self, sessions: usize) -> Self {
        self.max_sessions = sessions.max(1);
        self
    }

    /// How long a MAC waits for a free session before failing with
    /// [`HashError::PepperUnavailable`].
    #[must_use]
    pub fn session_wait(mut self, wait: Duration) -> Self {
        self.session_wait = wait;
        self
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"[REDACTED]")
            .field("max_sessions", &self.max_sessions)
            .field("session_wait", &self.session_wait)
            .finish()
    }
}

/// An open PKCS#11 token: a pool of sessions, logged in as the token's user. Cheap to
/// clone (the clones share the pool). Keys on it become peppers through
/// [`pepper`](Self::pepper); [`generate_key`](Self::generate_key),
/// [`import_pepper`](Self::import_pepper) and [`destroy_key`](Self::destroy_key) set them
/// up and retire them.
#[derive(Clone)]
pub struct Pkcs11Token {
    inner: Arc<Token>,
}

struct Token {
    ctx: Pkcs11,
    slot: Slot,
    module: PathBuf,
    label: Box<str>,
    pin: AuthPin,
    login_required: bool,
    pool: Mutex<Pool>,
    freed: Condvar,
    max_sessions: usize,
    session_wait: Duration,
    /// One login attempt at a time, so that a lost login is repaired once, not by every
    /// waiting thread with the same (perhaps wrong) PIN.
    login: Mutex<()>,
    /// Why the token refused the PIN: no login is attempted again.
    refused: OnceLock<String>,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Session>,
    open: usize,
}

impl Pkcs11Token {
    /// Loads the module, finds the token by its label and logs in.
    ///
    /// # Errors
    /// [`HashError::PepperUnavailable`] when the module cannot be loaded or initialised, no
    /// token (or more than one) has that label, or the login fails (a wrong PIN among
    /// others). Messages name the module and the token, never the PIN.
    pub fn open(config: Pkcs11Config) -> Result<Self, HashError> {
        let Pkcs11Config {
            module,
            token_label,
            pin,
            max_sessions,
            session_wait,
        } = config;
        let fail = |what: String| {
            HashError::PepperUnavailable(format!("pkcs11 module {}: {what}", module.display()))
        };
        let ctx = Pkcs11::new(&module).map_err(|e| fail(format!("cannot load: {e}")))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Already initialised by another part of this process: share it.
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(fail(format!("cannot initialise: {}", describe(&e)))),
        }
        let mut matching = Vec::new();
        for slot in ctx
            .get_slots_with_token()
            .map_err(|e| fail(format!("cannot list slots: {}", describe(&e))))?
        {
            // A slot whose token vanished meanwhile is simply not a match.
            if let Ok(info) = ctx.get_token_info(slot)
                && info.label().trim_end() == token_label
            {
                matching.push((slot, info.login_required()));
            }
        }
        let (slot, login_required) = match matching.as_slice() {
            [one] => *one,
            [] => return Err(fail(format!("no token labelled {token_label:?}"))),
            more => {
                return Err(fail(format!(
                    "{} tokens are labelled {token_label:?}",
                    more.len()
                )));
            }
        };
        let token = Token {
            ctx,
            slot,
            module,
            label: token_label.into(),
            pin,
            login_required,
            pool: Mutex::default(),
            freed: Condvar::new(),
            max_sessions,
            session_wait,
            login: Mutex::new(()),
            refused: OnceLock::new(),
        };
        let session = token.lease()?;
        token.log_in(&session)?;
        drop(session);
        Ok(Self {
            inner: Arc::new(token),
        })
    }

    /// The key labelled `label` as a pepper, checked now: exactly one generic secret key
    /// has that label, of at least 32 bytes, sensitive, not extractable, not usable for
    /// key derivation, and allowed to sign.
    ///
    /// # Errors
    /// [`HashError::PepperUnavailable`] naming the label when no such key is usable.
    pub fn pepper(&self, label: &str) -> Result<Pkcs11Pepper, HashError> {
        check_label(label)?;
        let pepper = Pkcs11Pepper {
            token: self.inner.clone(),
            label: label.into(),
            handle: Mutex::new(None),
        };
        self.inner.run(&pepper, |_, _| Ok(()))?;
        Ok(pepper)
    }

    /// Creates a 32-byte HMAC key labelled `label` inside the token, sensitive and never
    /// extractable (it never exists outside the module), and returns it as a pepper. For
    /// set-up and tests; HSM vendors' tools do the same.
    ///
    /// # Errors
    /// [`HashError::PepperUnavailable`] when a key with that label exists already or the
    /// token refuses; [`HashError::InvalidConfig`] for an invalid label.
    pub fn generate_key(&self, label: &str) -> Result<Pkcs11Pepper, HashError> {
        check_label(label)?;
        let token = &self.inner;
        let session = token.admin_session()?;
        token.refuse_existing(&session, label)?;
        let mut template = key_template(label);
        template.push(Attribute::ValueLen(GENERATED_KEY_LEN.into()));
        session
            .generate_key(&Mechanism::GenericSecretKeyGen, &template)
            .map_err(|e| {
                token.unavailable(format!("cannot generate key {label:?}: {}", describe(&e)))
            })?;
        drop(session);
        self.pepper(label)
    }

    /// Stores `pepper` on the token as the key labelled `label` (sensitive, not extractable
    /// from then on) and returns it as a pepper that computes the same MACs: for moving an
    /// existing pepper into the module without rehashing. The key existed outside the
    /// module before, so the module records it as neither always sensitive nor never
    /// extractable; destroy the other copies.
    ///
    /// # Errors
    /// As [`generate_key`](Self::generate_key).
    pub fn import_pepper(&self, label: &str, pepper: &Pepper) -> Result<Pkcs11Pepper, HashError> {
        check_label(label)?;
        let token = &self.inner;
        let session = token.admin_session()?;
        token.refuse_existing(&session, label)?;
        let mut template = key_template(label);
        template.push(Attribute::Value(pepper.bytes().to_vec()));
        let created = session.create_object(&template);
        for attribute in &mut template {
            if let Attribute::Value(value) = attribute {
                value.zeroize();
            }
        }
        created.map_err(|e| {
            token.unavailable(format!("cannot import key {label:?}: {}", describe(&e)))
        })?;
        drop(session);
        self.pepper(label)
    }

    /// Destroys every key labelled `label` (a pepper retired after rotation, once no
    /// stored hash uses it); returns whether there was one.
    ///
    /// # Errors
    /// [`HashError::PepperUnavailable`] when the token refuses.
    pub fn destroy_key(&self, label: &str) -> Result<bool, HashError> {
        check_label(label)?;
        let token = &self.inner;
        let session = token.admin_session()?;
        let found = session.find_objects(&key_search(label)).map_err(|e| {
            token.unavailable(format!("cannot search for key {label:?}: {}", describe(&e)))
        })?;
        for handle in &found {
            session.destroy_object(*handle).map_err(|e| {
                token.unavailable(format!("cannot destroy key {label:?}: {}", describe(&e)))
            })?;
        }
        Ok(!found.is_empty())
    }
}

impl fmt::Debug for Pkcs11Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Token")
            .field("module", &self.inner.module)
            .field("token_label", &self.inner.label)
            .field("max_sessions", &self.inner.max_sessions)
            .finish_non_exhaustive()
    }
}

/// One HMAC key on a [`Pkcs11Token`], found by its label: a [`PepperProvider`] whose MAC
/// the module computes. Made by [`Pkcs11Token::pepper`].
pub struct Pkcs11Pepper {
    token: Arc<Token>,
    label: Box<str>,
    /// The key's handle, looked up by label when missing or stale.
    handle: Mutex<Option<ObjectHandle>>,
}

impl Pkcs11Pepper {
    /// The key's label on the token.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn cached(&self) -> Option<ObjectHandle> {
        *lock(&self.handle)
    }

    fn remember(&self, handle: Option<ObjectHandle>) {
        *lock(&self.handle) = handle;
    }
}

impl PepperProvider for Pkcs11Pepper {
    fn hmac_sha256(&self, message: &[u8]) -> Result<[u8; 32], HashError> {
        self.token.run(self, |session, key| {
            let tag = session
                .sign(&Mechanism::Sha256Hmac, key, message)
                .map_err(|e| Failure::classify(e, "sign"))?;
            <[u8; 32]>::try_from(tag.as_slice()).map_err(|_| {
                Failure::Refused(format!(
                    "the module returned a {}-byte HMAC-SHA-256",
                    tag.len()
                ))
            })
        })
    }
}

impl fmt::Debug for Pkcs11Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Pepper")
            .field("token", &self.token.label)
            .field("label", &self.label)
            .finish()
    }
}

/// Why one attempt at an operation failed, and so what would repair it.
enum Failure {
    /// The key handle is no longer valid: look the label up again.
    StaleHandle,
    /// The process is not logged in (any more): log in again.
    NotLoggedIn,
    /// The session is gone (closed, token removed, library reset): open another.
    SessionLost(String),
    /// Nothing to repair.
    Refused(String),
}

impl Failure {
    fn classify(error: CkError, doing: &str) -> Self {
        match &error {
            CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _) => {
                Self::StaleHandle
            }
            CkError::Pkcs11(RvError::UserNotLoggedIn, _) => Self::NotLoggedIn,
            CkError::Pkcs11(
                RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::DeviceError
                | RvError::CryptokiNotInitialized,
                _,
            ) => Self::SessionLost(format!("cannot {doing}: {}", describe(&error))),
            _ => Self::Refused(format!("cannot {doing}: {}", describe(&error))),
        }
    }
}

impl Token {
    fn unavailable(&self, what: impl fmt::Display) -> HashError {
        HashError::PepperUnavailable(format!("pkcs11 token {:?}: {what}", self.label))
    }

    fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        lock(&self.pool)
    }

    /// Runs `op` with a session and the key's handle, repairing what can be repaired (a
    /// stale handle, a lost login, a lost session) and trying again, at most
    /// [`MAX_REPAIRS`] times.
    fn run<T>(
        &self,
        key: &Pkcs11Pepper,
        mut op: impl FnMut(&Session, ObjectHandle) -> Result<T, Failure>,
    ) -> Result<T, HashError> {
        let mut lease = self.lease()?;
        let mut repairs = 0;
        loop {
            let attempt = match key.cached() {
                Some(handle) => op(&lease, handle),
                None => self.find_key(&lease, &key.label).and_then(|handle| {
                    key.remember(Some(handle));
                    op(&lease, handle)
                }),
            };
            let failure = match attempt {
                Ok(value) => return Ok(value),
                Err(Failure::Refused(reason)) => return Err(self.unavailable(reason)),
                Err(failure) if repairs == MAX_REPAIRS => {
                    return Err(self.unavailable(match failure {
                        Failure::StaleHandle => "the key handle stayed invalid".to_owned(),
                        Failure::NotLoggedIn => "still not logged in after a login".to_owned(),
                        Failure::SessionLost(reason) | Failure::Refused(reason) => reason,
                    }));
                }
                Err(failure) => failure,
            };
            repairs += 1;
            key.remember(None);
            match failure {
                Failure::StaleHandle | Failure::Refused(_) => {}
                Failure::NotLoggedIn => self.log_in(&lease)?,
                Failure::SessionLost(_) => {
                    // Closed sessions come back with a new one; a removed token or a
                    // finalised library fail again there, closed. (The library is not
                    // initialised again behind the back of whoever finalised it.)
                    lease.broken = true;
                    drop(lease);
                    self.discard_idle();
                    lease = self.lease()?;
                }
            }
        }
    }

    /// The one usable key labelled `label`.
    fn find_key(&self, session: &Session, label: &str) -> Result<ObjectHandle, Failure> {
        let found = session
            .find_objects(&key_search(label))
            .map_err(|e| Failure::classify(e, "search for the key"))?;
        let handle = match found.as_slice() {
            [one] => *one,
            [] => {
                // Private keys are invisible without a login: a lost login looks like a
                // missing key.
                let state = session
                    .get_session_info()
                    .map_err(|e| Failure::classify(e, "read the session state"))?
                    .session_state();
                return Err(match state {
                    SessionState::RoPublic | SessionState::RwPublic if self.login_required => {
                        Failure::NotLoggedIn
                    }
                    _ => Failure::Refused(format!("no key labelled {label:?}")),
                });
            }
            more => {
                return Err(Failure::Refused(format!(
                    "{} keys are labelled {label:?}: a pepper's label must be unique",
                    more.len()
                )));
            }
        };
        let attributes = session
            .get_attributes(
                handle,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Derive,
                    AttributeType::Sign,
                    AttributeType::ValueLen,
                ],
            )
            .map_err(|e| Failure::classify(e, "read the key's attributes"))?;
        let (mut sensitive, mut extractable, mut derive, mut sign, mut len) =
            (false, true, true, false, 0u64);
        for attribute in attributes {
            match attribute {
                Attribute::Sensitive(v) => sensitive = v,
                Attribute::Extractable(v) => extractable = v,
                Attribute::Derive(v) => derive = v,
                Attribute::Sign(v) => sign = v,
                Attribute::ValueLen(v) => len = v.into(),
                _ => {}
            }
        }
        if !sensitive || extractable || derive {
            return Err(Failure::Refused(format!(
                "key {label:?} could leave the module (it must be sensitive, not extractable \
                 and not derivable): make it with Pkcs11Token::generate_key or import_pepper"
            )));
        }
        if !sign {
            return Err(Failure::Refused(format!(
                "key {label:?} may not sign (CKA_SIGN)"
            )));
        }
        if len < MIN_KEY_LEN {
            return Err(Failure::Refused(format!(
                "key {label:?} is {len} bytes, shorter than the {MIN_KEY_LEN} a pepper needs"
            )));
        }
        Ok(handle)
    }

    /// Logs the process in as the token's user (once for all sessions).
    fn log_in(&self, session: &Session) -> Result<(), HashError> {
        if !self.login_required {
            return Ok(());
        }
        let _one_at_a_time = lock(&self.login);
        if let Some(reason) = self.refused.get() {
            return Err(self.unavailable(reason));
        }
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(
                rv @ (RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinExpired
                | RvError::PinLocked
                | RvError::UserPinNotInitialized),
                _,
            )) => {
                let reason = format!(
                    "the token refused the PIN ({}); no login is attempted again, so that \
                     retries cannot lock it: open the token again with the right PIN",
                    rv_name(rv)
                );
                let _ = self.refused.set(reason.clone());
                Err(self.unavailable(reason))
            }
            Err(e) => Err(self.unavailable(format!("cannot log in: {}", describe(&e)))),
        }
    }

    /// A session of the pool: an idle one, a new one while fewer than `max_sessions` are
    /// open, or the first freed within `session_wait`.
    fn lease(&self) -> Result<Lease<'_>, HashError> {
        if let Some(reason) = self.refused.get() {
            return Err(self.unavailable(reason));
        }
        let deadline = Instant::now() + self.session_wait;
        let mut pool = self.lock_pool();
        loop {
            if let Some(session) = pool.idle.pop() {
                return Ok(Lease::new(self, session));
            }
            if pool.open < self.max_sessions {
                pool.open += 1;
                drop(pool);
                return match self.ctx.open_ro_session(self.slot) {
                    Ok(session) => Ok(Lease::new(self, session)),
                    Err(e) => {
                        self.lock_pool().open -= 1;
                        self.freed.notify_one();
                        Err(self.unavailable(format!("cannot open a session: {}", describe(&e))))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.unavailable(format!(
                    "all {} sessions stayed busy for {:?}",
                    self.max_sessions, self.session_wait
                )));
            }
            pool = self
                .freed
                .wait_timeout(pool, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn give_back(&self, session: Session, broken: bool) {
        let mut pool = self.lock_pool();
        if broken {
            pool.open -= 1;
            drop(pool);
            drop(session);
        } else {
            pool.idle.push(session);
            drop(pool);
        }
        self.freed.notify_one();
    }

    /// Closes the idle sessions: after one session was lost, the others are likely lost too.
    fn discard_idle(&self) {
        let idle = {
            let mut pool = self.lock_pool();
            let idle = std::mem::take(&mut pool.idle);
            pool.open -= idle.len();
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }

    /// A read-write session outside the pool, logged in, for key management.
    fn admin_session(&self) -> Result<Session, HashError> {
        let session = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(|e| self.unavailable(format!("cannot open a session: {}", describe(&e))))?;
        let state = session
            .get_session_info()
            .map_err(|e| self.unavailable(format!("cannot read the session: {}", describe(&e))))?
            .session_state();
        if matches!(state, SessionState::RwPublic) {
            self.log_in(&session)?;
        }
        Ok(session)
    }

    fn refuse_existing(&self, session: &Session, label: &str) -> Result<(), HashError> {
        let found = session.find_objects(&key_search(label)).map_err(|e| {
            self.unavailable(format!("cannot search for key {label:?}: {}", describe(&e)))
        })?;
        if found.is_empty() {
            Ok(())
        } else {
            Err(self.unavailable(format!("a key labelled {label:?} exists already")))
        }
    }
}

/// A session borrowed from the pool, given back (or closed, if broken) when dropped.
struct Lease<'a> {
    token: &'a Token,
    session: Option<Session>,
    broken: bool,
}

impl<'a> Lease<'a> {
    fn new(token: &'a Token, session: Session) -> Self {
        Self {
            token,
            session: Some(session),
            broken: false,
        }
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        // Taken only in `drop`.
        self.session.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.token.give_back(session, self.broken);
        }
    }
}

/// The attributes of a pepper key: a private token object that can only sign and verify,
/// and whose value the module never reveals.
fn key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Derive(false),
        Attribute::Sign(true),
        Attribute::Verify(true),
    ]
}

fn key_search(label: &str) -> [Attribute; 3] {
    [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

fn check_label(label: &str) -> Result<(), HashError> {
    if (1..=64).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(HashError::InvalidConfig(
            "pkcs11 key label must be 1..=64 printable ASCII characters without spaces",
        ))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a panic elsewhere does not
    // make it unusable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `CKR_PIN_INCORRECT` style, from cryptoki's variant name.
fn rv_name(rv: RvError) -> String {
    let name = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A cryptoki error in a line: the function and the return value's name (cryptoki's own
/// `Display` of a return value is a paragraph of the specification).
fn describe(error: &CkError) -> String {
    match error {
        CkError::Pkcs11(rv, function) => {
            let function = format!("{function:?}");
            format!("C_{function} returned {}", rv_name(*rv))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_values_are_named_as_in_the_specification() {
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(RvError::DeviceRemoved), "CKR_DEVICE_REMOVED");
        assert_eq!(
            describe(&CkError::Pkcs11(
                RvError::UserNotLoggedIn,
                cryptoki::context::Function::Sign
            )),
            "C_Sign returned CKR_USER_NOT_LOGGED_IN"
        );
    }

    #[test]
    fn a_missing_module_fails_closed_with_its_path_but_not_the_pin() {
        let error = Pkcs11Token::open(Pkcs11Config::new(
            "/nonexistent/libpkcs11-missing.so",
            "keymint",
            "pin-do-not-print-1234",
        ))
        .unwrap_err();
        assert!(error.is_unavailable(), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("/nonexistent/libpkcs11-missing.so"), "{text}");
        assert!(!text.contains("pin-do-not-print"), "{text}");
    }

    #[test]
    fn the_config_never_prints_the_pin() {
        let config = Pkcs11Config::new("/usr/lib/x.so", "keymint", "s3cret-pin");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret-pin") && debug.contains("[REDACTED]"),
            "{debug}"
        );
    }

    #[test]
    fn labels_are_checked() {
        assert!(check_label("keymint-pepper-p1").is_ok());
        for bad in ["", "with space", "tab\t", &"x".repeat(65)] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
    }
}
