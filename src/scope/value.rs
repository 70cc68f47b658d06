//! One scope: `users:read`, `billing:*`, `*`.

use super::error::ScopeError;

/// The longest scope allowed, in bytes.
pub const MAX_SCOPE_LEN: usize = 256;
/// The most segments a scope may have.
pub const MAX_SEGMENTS: usize = 16;
/// The longest segment allowed, in characters.
pub const MAX_SEGMENT_LEN: usize = 64;

/// The wildcard segment.
pub(crate) const WILDCARD: &str = "*";

/// A validated scope: one to [`MAX_SEGMENTS`] segments joined by `:`, at most
/// [`MAX_SCOPE_LEN`] bytes. A segment is 1 to [`MAX_SEGMENT_LEN`] characters of
/// `a-z 0-9 _ - .`, or exactly `*` (the wildcard). See the [module docs](super) for what a
/// wildcard grants.
///
/// ```
/// use keymint::{Scope, ScopeError};
///
/// let scope: Scope = "users:read".parse()?;
/// assert_eq!(scope.as_str(), "users:read");
/// assert!(scope.is_concrete());
/// assert!(!Scope::new("users:*")?.is_concrete());
/// assert_eq!(Scope::new("users::read"), Err(ScopeError::EmptySegment { position: 6 }));
/// assert_eq!(Scope::new("Users"), Err(ScopeError::InvalidCharacter { position: 0 }));
/// # Ok::<(), ScopeError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Box<str>);

impl Scope {
    /// Validates `scope`.
    ///
    /// # Errors
    /// A [`ScopeError`] naming the first problem and its byte position: empty, too long,
    /// an empty segment, a segment too long, too many segments, a character outside
    /// `a-z 0-9 _ - . * :`, or a `*` that is not a whole segment.
    pub fn new(scope: &str) -> Result<Self, ScopeError> {
        validate(scope.as_bytes())?;
        Ok(Self(scope.into()))
    }

    /// Whether the scope has no wildcard segment.
    pub fn is_concrete(&self) -> bool {
        !self.0.contains('*')
    }

    /// The segments, in order.
    ///
    /// ```
    /// let scope = keymint::Scope::new("users:*:self")?;
    /// assert_eq!(scope.segments().collect::<Vec<_>>(), ["users", "*", "self"]);
    /// # Ok::<(), keymint::ScopeError>(())
    /// ```
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.0.split(':')
    }

    /// Whether this scope, used as a grant, covers `required`: see the
    /// [module docs](super) for the rules. To check against many grants, build a
    /// [`ScopeSet`](super::ScopeSet), which does not compare the grants one by one.
    ///
    /// ```
    /// use keymint::Scope;
    ///
    /// let grant = Scope::new("users:*")?;
    /// assert!(grant.covers(&Scope::new("users:read:self")?));
    /// assert!(!grant.covers(&Scope::new("users")?));
    /// # Ok::<(), keymint::ScopeError>(())
    /// ```
    pub fn covers(&self, required: &Scope) -> bool {
        let (mut grant, mut need) = (self.0.as_bytes(), required.0.as_bytes());
        loop {
            let (g, grant_rest) = split_first_segment(grant);
            let (r, need_rest) = split_first_segment(need);
            let g_star = g == WILDCARD.as_bytes();
            if g_star && grant_rest.is_none() {
                return true; // a trailing `*` takes every remaining segment (at least one)
            }
            let matched = if r == WILDCARD.as_bytes() {
                // A required `*` stands for any segment, so only a granted `*` covers it;
                // a trailing required `*` stands for one or more segments, which only a
                // trailing granted `*` (handled above) covers.
                g_star && need_rest.is_some()
            } else {
                g_star || g == r
            };
            match (matched, grant_rest, need_rest) {
                (true, None, None) => return true,
                (true, Some(g), Some(r)) => (grant, need) = (g, r),
                _ => return false,
            }
        }
    }

    /// Whether this scope and `other`, both read as patterns, stand for at least one
    /// concrete scope in common (a `*` standing for one segment, a trailing `*` for one or
    /// more). For a concrete `other`, the same as [`covers`](Self::covers).
    ///
    /// ```
    /// use keymint::Scope;
    ///
    /// let s = |t| Scope::new(t).unwrap();
    /// assert!(s("admin:users").overlaps(&s("admin:*")));
    /// assert!(s("*:read").overlaps(&s("admin:*")));
    /// assert!(!s("billing:read").overlaps(&s("admin:*")));
    /// assert!(!s("admin").overlaps(&s("admin:*")));
    /// ```
    pub fn overlaps(&self, other: &Scope) -> bool {
        let (mut a, mut b) = (self.0.as_bytes(), other.0.as_bytes());
        let star = WILDCARD.as_bytes();
        loop {
            let (x, a_rest) = split_first_segment(a);
            let (y, b_rest) = split_first_segment(b);
            // A trailing `*` stands for one or more segments: it meets whatever the other
            // pattern has left, which is at least this segment.
            if (x == star && a_rest.is_none()) || (y == star && b_rest.is_none()) {
                return true;
            }
            if !(x == star || y == star || x == y) {
                return false;
            }
            match (a_rest, b_rest) {
                (None, None) => return true,
                (Some(p), Some(q)) => (a, b) = (p, q),
                _ => return false,
            }
        }
    }

    /// Wraps a string already known to be valid.
    pub(crate) fn from_trusted(scope: &str) -> Self {
        debug_assert!(validate(scope.as_bytes()).is_ok(), "{scope:?}");
        Self(scope.into())
    }
}

/// The first segment of `scope` and the rest after its `:`, if any.
fn split_first_segment(scope: &[u8]) -> (&[u8], Option<&[u8]>) {
    match scope.iter().position(|&b| b == b':') {
        Some(at) => (&scope[..at], scope.get(at + 1..)),
        None => (scope, None),
    }
}

/// Whether `b` may appear in a concrete segment.
pub(crate) fn is_segment_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.')
}

/// Validates a scope in one pass, reporting the first problem by position. The length cap
/// is checked before anything is read.
pub(crate) fn validate(bytes: &[u8]) -> Result<(), ScopeError> {
    if bytes.is_empty() {
        return Err(ScopeError::Empty);
    }
    if bytes.len() > MAX_SCOPE_LEN {
        return Err(ScopeError::TooLong {
            len: bytes.len(),
            max: MAX_SCOPE_LEN,
        });
    }
    let mut segments = 1;
    let mut start = 0;
    let mut has_wildcard = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' {
            end_segment(start, i, has_wildcard)?;
            segments += 1;
            if segments > MAX_SEGMENTS {
                return Err(ScopeError::TooManySegments {
                    position: i + 1,
                    max: MAX_SEGMENTS,
                });
            }
            start = i + 1;
            has_wildcard = false;
            continue;
        }
        if b == b'*' {
            has_wildcard = true;
        } else if !is_segment_byte(b) {
            return Err(ScopeError::InvalidCharacter { position: i });
        }
        if i - start >= MAX_SEGMENT_LEN {
            return Err(ScopeError::SegmentTooLong {
                position: start,
                max: MAX_SEGMENT_LEN,
            });
        }
    }
    end_segment(start, bytes.len(), has_wildcard)
}

fn end_segment(start: usize, end: usize, has_wildcard: bool) -> Result<(), ScopeError> {
    if start == end {
        Err(ScopeError::EmptySegment { position: start })
    } else if has_wildcard && end - start != 1 {
        Err(ScopeError::PartialWildcard { position: start })
    } else {
        Ok(())
    }
}

text_newtype!(Scope, parse = Scope::new, error = ScopeError);
quoted_debug!(Scope);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_scopes() {
        let longest_segment = "a".repeat(MAX_SEGMENT_LEN);
        let most_segments = vec!["a"; MAX_SEGMENTS].join(":");
        let longest = vec!["b".repeat(15); MAX_SEGMENTS].join(":"); // 16*15 + 15 = 255
        for ok in [
            "users",
            "users:read",
            "a-b_c.d:0",
            "*",
            "users:*",
            "*:read",
            "a:*:b",
            &longest_segment,
            &most_segments,
            &longest,
        ] {
            assert_eq!(Scope::new(ok).map(|s| s.to_string()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn concrete_means_no_wildcard() {
        assert!(Scope::new("users:read").unwrap().is_concrete());
        assert!(!Scope::new("*").unwrap().is_concrete());
        assert!(!Scope::new("a:*:b").unwrap().is_concrete());
    }

    #[test]
    fn serde_is_a_validated_string() {
        let scope: Scope = serde_json::from_str("\"users:read\"").unwrap();
        assert_eq!(scope.as_str(), "users:read");
        assert_eq!(serde_json::to_string(&scope).unwrap(), "\"users:read\"");
        let err = serde_json::from_str::<Scope>("\"users::read\"").unwrap_err();
        assert!(err.to_string().contains("empty segment at byte 6"), "{err}");
    }
}
