//! The requirement parser: a recursive descent whose depth is counted, after a length cap.
//!
//! ```text
//! requirement = or-expr
//! or-expr     = and-expr *( "or" and-expr )
//! and-expr    = unary *( "and" unary )
//! unary       = "not" unary / primary
//! primary     = scope / "(" or-expr ")"
//! ```
//!
//! Tokens are separated by ASCII whitespace; `(` and `)` also end a word. Every `(` and
//! every `not` adds a level of nesting, and going past [`MAX_REQUIREMENT_DEPTH`] is an
//! error, so the parser's recursion (and the tree's) is bounded whatever the input.

use std::fmt::{self, Write as _};

use super::error::RequirementError;
use super::expr::{Expr, RESERVED};
use super::value::{self, Scope};

/// The longest requirement text accepted, in bytes (the input and its canonical form).
pub const MAX_REQUIREMENT_LEN: usize = 4096;
/// The deepest nesting of parentheses and `not` accepted.
pub const MAX_REQUIREMENT_DEPTH: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    Open,
    Close,
    And,
    Or,
    Not,
    Word(&'a str),
    End,
}

impl Token<'_> {
    fn describe(self) -> &'static str {
        match self {
            Token::Open => "'('",
            Token::Close => "')'",
            Token::And => "'and'",
            Token::Or => "'or'",
            Token::Not => "'not'",
            Token::Word(word) if value::validate(word.as_bytes()).is_ok() => "a scope",
            Token::Word(_) => "a word",
            Token::End => "end of input",
        }
    }
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    peeked: Option<(usize, Token<'a>)>,
}

impl<'a> Lexer<'a> {
    fn peek(&mut self) -> (usize, Token<'a>) {
        if let Some(token) = self.peeked {
            return token;
        }
        let token = self.scan();
        self.peeked = Some(token);
        token
    }

    fn next(&mut self) -> (usize, Token<'a>) {
        let token = self.peek();
        self.peeked = None;
        token
    }

    fn scan(&mut self) -> (usize, Token<'a>) {
        let bytes = self.input.as_bytes();
        while bytes.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
        let start = self.pos;
        let token = match bytes.get(start) {
            None => Token::End,
            Some(b'(') => {
                self.pos += 1;
                Token::Open
            }
            Some(b')') => {
                self.pos += 1;
                Token::Close
            }
            Some(_) => {
                // ASCII delimiters never occur inside a UTF-8 sequence, so `pos` stays on
                // a character boundary.
                while bytes
                    .get(self.pos)
                    .is_some_and(|&b| !b.is_ascii_whitespace() && b != b'(' && b != b')')
                {
                    self.pos += 1;
                }
                match &self.input[start..self.pos] {
                    "and" => Token::And,
                    "or" => Token::Or,
                    "not" => Token::Not,
                    word => Token::Word(word),
                }
            }
        };
        (start, token)
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    depth: usize,
}

/// Parses a requirement; see the module docs for the grammar and caps.
pub(crate) fn parse(input: &str) -> Result<Expr, RequirementError> {
    if input.len() > MAX_REQUIREMENT_LEN {
        return Err(RequirementError::TooLong {
            len: input.len(),
            max: MAX_REQUIREMENT_LEN,
        });
    }
    let mut parser = Parser {
        lexer: Lexer {
            input,
            pos: 0,
            peeked: None,
        },
        depth: 0,
    };
    if parser.lexer.peek().1 == Token::End {
        return Err(RequirementError::Empty);
    }
    let expr = parser.or_expr()?;
    match parser.lexer.next() {
        (_, Token::End) => {}
        (position, Token::Close) => return Err(RequirementError::UnmatchedParen { position }),
        (position, found) => {
            return Err(RequirementError::ExpectedOperator {
                position,
                found: found.describe(),
            });
        }
    }
    // The canonical text can be longer than the input (`a and(b)or(c)and(d)` gains
    // spaces); holding it to the cap too keeps `parse(display(x)) == x` for every
    // accepted input.
    let canonical = canonical_len(&expr);
    if canonical > MAX_REQUIREMENT_LEN {
        return Err(RequirementError::TooLong {
            len: canonical,
            max: MAX_REQUIREMENT_LEN,
        });
    }
    Ok(expr)
}

fn canonical_len(expr: &Expr) -> usize {
    struct Counter(usize);
    impl fmt::Write for Counter {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail.
    let _ = write!(counter, "{expr}");
    counter.0
}

impl Parser<'_> {
    fn or_expr(&mut self) -> Result<Expr, RequirementError> {
        let first = self.and_expr()?;
        if self.lexer.peek().1 != Token::Or {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.lexer.peek().1 == Token::Or {
            self.lexer.next();
            items.push(self.and_expr()?);
        }
        Ok(Expr::Any(items))
    }

    fn and_expr(&mut self) -> Result<Expr, RequirementError> {
        let first = self.unary()?;
        if self.lexer.peek().1 != Token::And {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.lexer.peek().1 == Token::And {
            self.lexer.next();
            items.push(self.unary()?);
        }
        Ok(Expr::All(items))
    }

    fn unary(&mut self) -> Result<Expr, RequirementError> {
        let mut nots = 0;
        while let (position, Token::Not) = self.lexer.peek() {
            self.lexer.next();
            self.enter(position)?;
            nots += 1;
        }
        let mut expr = self.primary()?;
        for _ in 0..nots {
            expr = Expr::Not(Box::new(expr));
        }
        self.depth -= nots;
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, RequirementError> {
        match self.lexer.next() {
            (position, Token::Word(word)) => scope(word, position).map(Expr::Scope),
            (open, Token::Open) => {
                self.enter(open)?;
                let expr = self.or_expr()?;
                match self.lexer.next() {
                    (_, Token::Close) => {}
                    (_, Token::End) => {
                        return Err(RequirementError::UnclosedParen { position: open });
                    }
                    (position, found) => {
                        return Err(RequirementError::ExpectedOperator {
                            position,
                            found: found.describe(),
                        });
                    }
                }
                self.depth -= 1;
                Ok(expr)
            }
            (position, found) => Err(RequirementError::ExpectedOperand {
                position,
                found: found.describe(),
            }),
        }
    }

    fn enter(&mut self, position: usize) -> Result<(), RequirementError> {
        self.depth += 1;
        if self.depth > MAX_REQUIREMENT_DEPTH {
            return Err(RequirementError::TooDeep {
                position,
                max: MAX_REQUIREMENT_DEPTH,
            });
        }
        Ok(())
    }
}

fn scope(word: &str, start: usize) -> Result<Scope, RequirementError> {
    debug_assert!(!RESERVED.contains(&word), "the lexer takes keywords");
    match value::validate(word.as_bytes()) {
        Ok(()) => Ok(Scope::from_trusted(word)),
        Err(source) => Err(RequirementError::InvalidScope {
            position: start + source.position(),
            source,
        }),
    }
}
