//! Errors of the scope module. Positions are byte offsets into the text that was parsed;
//! no message echoes the input itself.

use thiserror::Error;

/// Why a string is not a valid [`Scope`](super::Scope).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The string is empty.
    #[error("scope is empty")]
    Empty,
    /// The string is longer than [`MAX_SCOPE_LEN`](super::MAX_SCOPE_LEN); it was not read.
    #[error("scope is too long: {len} bytes, at most {max} allowed")]
    TooLong {
        /// Length of the string, in bytes.
        len: usize,
        /// Longest length accepted.
        max: usize,
    },
    /// A segment is empty: a leading, trailing or doubled `:`.
    #[error("empty segment at byte {position}")]
    EmptySegment {
        /// Byte offset where the empty segment starts.
        position: usize,
    },
    /// A segment is longer than [`MAX_SEGMENT_LEN`](super::MAX_SEGMENT_LEN).
    #[error("segment at byte {position} is longer than {max} characters")]
    SegmentTooLong {
        /// Byte offset where the segment starts.
        position: usize,
        /// Longest segment accepted.
        max: usize,
    },
    /// More than [`MAX_SEGMENTS`](super::MAX_SEGMENTS) segments.
    #[error("too many segments: segment at byte {position} is past the limit of {max}")]
    TooManySegments {
        /// Byte offset where the first segment past the limit starts.
        position: usize,
        /// Most segments accepted.
        max: usize,
    },
    /// A byte outside `a-z 0-9 _ - . * :`.
    #[error("invalid character at byte {position}: expected a-z, 0-9, '_', '-', '.', '*' or ':'")]
    InvalidCharacter {
        /// Byte offset of the first byte of the offending character.
        position: usize,
    },
    /// A `*` in a segment that has other characters too (`us*rs`, `**`).
    #[error("wildcard '*' must be a whole segment (segment at byte {position})")]
    PartialWildcard {
        /// Byte offset where the segment starts.
        position: usize,
    },
}

impl ScopeError {
    /// The byte offset the error points at (0 for [`Empty`](Self::Empty), the length cap
    /// for [`TooLong`](Self::TooLong)).
    pub fn position(&self) -> usize {
        match *self {
            Self::Empty => 0,
            Self::TooLong { max, .. } => max,
            Self::EmptySegment { position }
            | Self::SegmentTooLong { position, .. }
            | Self::TooManySegments { position, .. }
            | Self::InvalidCharacter { position }
            | Self::PartialWildcard { position } => position,
        }
    }
}

/// Why a string is not a valid [`Requirement`](super::Requirement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RequirementError {
    /// The string is empty or only whitespace.
    #[error("requirement is empty")]
    Empty,
    /// The string is longer than [`MAX_REQUIREMENT_LEN`](super::MAX_REQUIREMENT_LEN); it
    /// was not read.
    #[error("requirement is too long: {len} bytes, at most {max} allowed")]
    TooLong {
        /// Length of the string, in bytes.
        len: usize,
        /// Longest length accepted.
        max: usize,
    },
    /// Parentheses and `not` are nested deeper than
    /// [`MAX_REQUIREMENT_DEPTH`](super::MAX_REQUIREMENT_DEPTH).
    #[error("requirement nests deeper than {max} levels at byte {position}")]
    TooDeep {
        /// Byte offset of the `(` or `not` that went past the limit.
        position: usize,
        /// Deepest nesting accepted.
        max: usize,
    },
    /// A word that is not a valid scope.
    #[error("invalid scope at byte {position}: {source}")]
    InvalidScope {
        /// Byte offset of the offending byte within the whole requirement (the scope's
        /// start plus [`ScopeError::position`]).
        position: usize,
        /// Why the word is not a scope; its positions are relative to the word.
        source: ScopeError,
    },
    /// A scope spelled like an operator (`and`, `or`, `not`), which the language cannot
    /// express.
    #[error("scope at byte {position} is a reserved word")]
    ReservedWord {
        /// Byte offset of the word.
        position: usize,
    },
    /// A scope, `not` or `(` was expected.
    #[error("expected a scope, 'not' or '(' at byte {position}, found {found}")]
    ExpectedOperand {
        /// Byte offset of what was found instead.
        position: usize,
        /// What was found: `'and'`, `'or'`, `')'` or `end of input`.
        found: &'static str,
    },
    /// `and`, `or`, `)` or the end was expected after a complete operand.
    #[error("expected 'and', 'or', ')' or the end at byte {position}, found {found}")]
    ExpectedOperator {
        /// Byte offset of what was found instead.
        position: usize,
        /// What was found: `a scope`, `a word` (text that is not a valid scope), `'not'`
        /// or `'('`.
        found: &'static str,
    },
    /// A `(` without its `)`.
    #[error("unclosed '(' at byte {position}")]
    UnclosedParen {
        /// Byte offset of the `(`.
        position: usize,
    },
    /// A `)` without its `(`.
    #[error("unmatched ')' at byte {position}")]
    UnmatchedParen {
        /// Byte offset of the `)`.
        position: usize,
    },
}

impl RequirementError {
    /// The byte offset the error points at (0 for [`Empty`](Self::Empty), the length cap
    /// for [`TooLong`](Self::TooLong)).
    pub fn position(&self) -> usize {
        match *self {
            Self::Empty => 0,
            Self::TooLong { max, .. } => max,
            Self::TooDeep { position, .. }
            | Self::InvalidScope { position, .. }
            | Self::ReservedWord { position }
            | Self::ExpectedOperand { position, .. }
            | Self::ExpectedOperator { position, .. }
            | Self::UnclosedParen { position }
            | Self::UnmatchedParen { position } => position,
        }
    }
}

/// Why a role name is invalid. Role names follow the rules of one concrete scope segment:
/// 1 to [`MAX_SEGMENT_LEN`](super::MAX_SEGMENT_LEN) characters of `a-z 0-9 _ - .`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RoleError {
    /// The name is empty.
    #[error("role name is empty")]
    Empty,
    /// The name is longer than [`MAX_SEGMENT_LEN`](super::MAX_SEGMENT_LEN).
    #[error("role name is too long: {len} bytes, at most {max} allowed")]
    TooLong {
        /// Length of the name, in bytes.
        len: usize,
        /// Longest name accepted.
        max: usize,
    },
    /// A byte outside `a-z 0-9 _ - .`.
    #[error(
        "invalid character in role name at byte {position}: expected a-z, 0-9, '_', '-' or '.'"
    )]
    InvalidCharacter {
        /// Byte offset of the first byte of the offending character.
        position: usize,
    },
}
