//! A requirement compiled for checking: a short list of tests and forward jumps, run in a
//! loop, so a check costs one scope lookup per test it reaches and no recursion.
//!
//! `a and (b or c)` becomes `test a; jump-if-false end; test b; jump-if-true end;
//! test c; end:`. `and`/`or` short-circuit exactly like the expression; jumps only go
//! forward, so a run takes at most one step per instruction.

use super::expr::Expr;
use super::set::ScopeSet;
use super::value::Scope;

#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// `acc = granted covers scope`.
    Test(Scope),
    /// `acc = some grant overlaps scope`: a wildcard under an odd number of `not`s.
    TestOverlap(Scope),
    /// `acc = !acc`.
    Not,
    /// Jump forward to the index when `acc` is false.
    JumpIfFalse(u32),
    /// Jump forward to the index when `acc` is true.
    JumpIfTrue(u32),
}

pub(crate) fn compile(expr: &Expr) -> Box<[Op]> {
    let mut ops = Vec::new();
    emit(expr, &mut ops, true);
    ops.into_boxed_slice()
}

/// `positive` is false under an odd number of `not`s, where a wildcard scope is tested for
/// overlap instead of coverage (see `requirement::eval`).
fn emit(expr: &Expr, ops: &mut Vec<Op>, positive: bool) {
    match expr {
        Expr::Scope(scope) if positive || scope.is_concrete() => {
            ops.push(Op::Test(scope.clone()));
        }
        Expr::Scope(scope) => ops.push(Op::TestOverlap(scope.clone())),
        Expr::Not(inner) => {
            emit(inner, ops, !positive);
            ops.push(Op::Not);
        }
        Expr::All(items) | Expr::Any(items) => {
            let all = matches!(expr, Expr::All(_));
            let mut jumps = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                emit(item, ops, positive);
                if i + 1 < items.len() {
                    jumps.push(ops.len());
                    ops.push(if all {
                        Op::JumpIfFalse(0)
                    } else {
                        Op::JumpIfTrue(0)
                    });
                }
            }
            // Requirement text is capped at 4 KiB, and a requirement built in code with
            // four billion instructions would not fit in memory first.
            #[allow(clippy::cast_possible_truncation)]
            let end = ops.len() as u32;
            for at in jumps {
                if let Some(Op::JumpIfFalse(to) | Op::JumpIfTrue(to)) = ops.get_mut(at) {
                    *to = end;
                }
            }
        }
    }
}

pub(crate) fn run(ops: &[Op], granted: &ScopeSet) -> bool {
    let mut acc = true;
    let mut pc = 0;
    while let Some(op) = ops.get(pc) {
        pc += 1;
        match op {
            Op::Test(scope) => acc = granted.covers(scope),
            Op::TestOverlap(scope) => acc = granted.overlaps(scope),
            Op::Not => acc = !acc,
            Op::JumpIfFalse(to) => {
                if !acc {
                    pc = *to as usize;
                }
            }
            Op::JumpIfTrue(to) => {
                if acc {
                    pc = *to as usize;
                }
            }
        }
    }
    acc
}
