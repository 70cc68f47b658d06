//! A named set of limits checked together.

use std::fmt;
use std::sync::Arc;

use super::error::PolicyError;
use super::quota::{CalendarWindow, Limit};

/// A name plus one to [`MAX_LIMITS`](Policy::MAX_LIMITS) limits that every request is
/// checked against together, for example 10 per second and 10 000 per UTC day.
///
/// A request is admitted only if every limit admits it, and a denied request is charged to
/// none of them. Limiter state belongs to the pair (key, limit): two policies share state
/// for a key only if they have the same name and an identical limit at the same index.
///
/// The name appears in `RateLimit-Policy` headers, so it is restricted to
/// `A-Za-z0-9_.-` (1 to 64 characters).
///
/// ```
/// use std::num::NonZeroU32;
/// use keymint::ratelimit::{CalendarQuota, Policy, Quota};
///
/// let n = |v| NonZeroU32::new(v).unwrap();
/// let policy = Policy::new(
///     "default",
///     [Quota::per_second(n(10)).into(), CalendarQuota::per_utc_day(n(10_000)).into()],
/// )?;
/// assert_eq!(policy.limits().len(), 2);
/// # Ok::<(), keymint::ratelimit::PolicyError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Policy {
    inner: Arc<Inner>,
}

#[derive(PartialEq, Eq)]
struct Inner {
    name: Box<str>,
    limits: Box<[Limit]>,
    /// Per-limit identity: a fixed (unseeded) hash of name, limit and index, mixed into
    /// the in-memory table key.
    tags: Box<[u64]>,
}

impl Policy {
    /// Most limits in one policy.
    pub const MAX_LIMITS: usize = 4;
    /// Longest policy name.
    pub const MAX_NAME_LEN: usize = 64;

    /// A policy named `name` with the given limits.
    ///
    /// # Errors
    ///
    /// [`PolicyError::InvalidName`] for a name that is empty, too long or has characters
    /// outside `A-Za-z0-9_.-`; [`PolicyError::LimitCount`] for zero or more than
    /// [`MAX_LIMITS`](Policy::MAX_LIMITS) limits.
    pub fn new(name: &str, limits: impl IntoIterator<Item = Limit>) -> Result<Self, PolicyError> {
        if name.is_empty()
            || name.len() > Self::MAX_NAME_LEN
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(PolicyError::InvalidName);
        }
        let mut collected = Vec::with_capacity(Self::MAX_LIMITS);
        for (i, limit) in limits.into_iter().enumerate() {
            if i >= Self::MAX_LIMITS {
                return Err(PolicyError::LimitCount {
                    found: i + 1,
                    max: Self::MAX_LIMITS,
                });
            }
            collected.push(limit);
        }
        if collected.is_empty() {
            return Err(PolicyError::LimitCount {
                found: 0,
                max: Self::MAX_LIMITS,
            });
        }
        let tags = collected
            .iter()
            .enumerate()
            .map(|(i, l)| fnv1a(&descriptor(name, i, l)))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.into(),
                limits: collected.into_boxed_slice(),
                tags,
            }),
        })
    }

    /// A policy with a single limit.
    ///
    /// # Errors
    ///
    /// [`PolicyError::InvalidName`] as for [`Policy::new`].
    pub fn single(name: &str, limit: impl Into<Limit>) -> Result<Self, PolicyError> {
        Self::new(name, [limit.into()])
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The limits, in the order given.
    pub fn limits(&self) -> &[Limit] {
        &self.inner.limits
    }

    pub(crate) fn tags(&self) -> &[u64] {
        &self.inner.tags
    }

    /// The item name of limit `index` in HTTP fields: the policy name for the first limit,
    /// `name.index` for the others.
    pub fn item_name(&self, index: usize) -> String {
        if index == 0 {
            self.inner.name.to_string()
        } else {
            format!("{}.{index}", self.inner.name)
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.inner.name)
            .field("limits", &self.inner.limits)
            .finish()
    }
}

/// An unambiguous byte description of limit `index` of policy `name` (length-prefixed
/// name, then fixed-width fields). Used for the in-memory tag and the Redis key names.
pub(crate) fn descriptor(name: &str, index: usize, limit: &Limit) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 32);
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name.as_bytes());
    out.push(u8::try_from(index).unwrap_or(u8::MAX));
    match limit {
        Limit::Rate(q) => {
            out.push(b'g');
            out.extend_from_slice(&q.interval_ns().to_be_bytes());
            out.extend_from_slice(&q.burst().get().to_be_bytes());
        }
        Limit::Calendar(c) => {
            out.push(match c.window() {
                CalendarWindow::UtcDay => b'd',
                CalendarWindow::UtcMonth => b'm',
            });
            out.extend_from_slice(&c.limit().get().to_be_bytes());
        }
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
