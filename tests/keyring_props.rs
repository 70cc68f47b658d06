//! Lifecycle invariants under random operation sequences, checked against a model.
//!
//! Every verification must give exactly the outcome the model predicts; in particular a
//! revoked key never verifies again, an expired key never verifies, and uses are never
//! over-spent: a key and its rotation successors share one balance.

use chrono::{DateTime, TimeDelta, Utc};
use keymint::{
    Argon2idHasher, Clock, HashPolicy, IssueRequest, KeyFormat, KeyId, Keyring, ManualClock,
    MemoryStore, VerifyContext, VerifyError,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Verify(usize),
    Revoke(usize),
    Disable(usize),
    Enable(usize),
    Rotate(usize, i64),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize).prop_map(Op::Verify),
        1 => (0..4usize).prop_map(Op::Revoke),
        1 => (0..4usize).prop_map(Op::Disable),
        1 => (0..4usize).prop_map(Op::Enable),
        1 => (0..4usize, 0..120i64).prop_map(|(k, g)| Op::Rotate(k, g)),
        2 => (0..90i64).prop_map(Op::Advance),
    ]
}

#[derive(Clone, Debug, PartialEq)]
enum Status {
    Active,
    Disabled,
    Revoked,
}

struct Model {
    id: KeyId,
    key: String,
    status: Status,
    expires_at: Option<DateTime<Utc>>,
    /// Index of the balance this key spends: one per lineage, shared across rotations.
    balance: usize,
    rotated: bool,
    ever_revoked: bool,
}

fn expected(m: &Model, uses: Option<u64>, now: DateTime<Utc>) -> Result<(), &'static str> {
    match m.status {
        Status::Revoked => return Err("revoked"),
        Status::Disabled => return Err("disabled"),
        Status::Active => {}
    }
    if m.expires_at.is_some_and(|at| now >= at) {
        return Err("expired");
    }
    if uses == Some(0) {
        return Err("usage_exhausted");
    }
    Ok(())
}

fn run(
    ops: Vec<Op>,
    uses: [Option<u64>; 2],
    ttl_secs: [Option<i64>; 2],
) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let clock = ManualClock::default();
        let hashes = HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(32)
                .t_cost(1)
                .build()
                .expect("params"),
        );
        let keyring = Keyring::builder(
            KeyFormat::new("sk_prop").expect("format"),
            MemoryStore::new(),
        )
        .hashes(hashes)
        .clock(clock.clone())
        .cache(TimeDelta::seconds(30), 16)
        .build()
        .expect("keyring");
        let ctx = VerifyContext::new();
        let mut keys: Vec<Model> = Vec::new();
        let mut balances: Vec<Option<u64>> = uses.to_vec();
        for i in 0..2 {
            let mut request = IssueRequest::new("owner", format!("k{i}"));
            if let Some(n) = uses[i] {
                request = request.remaining_uses(n);
            }
            if let Some(s) = ttl_secs[i] {
                request = request.expires_in(TimeDelta::seconds(s));
            }
            let issued = keyring.issue(request).await.expect("issue");
            keys.push(Model {
                id: issued.record.id.clone(),
                key: issued.key.expose_secret().to_owned(),
                status: Status::Active,
                expires_at: issued.record.attributes.expires_at,
                balance: i,
                rotated: false,
                ever_revoked: false,
            });
        }
        for op in ops {
            let now = clock.now();
            match op {
                Op::Verify(k) => {
                    let Some(m) = keys.get_mut(k) else { continue };
                    let got = keyring.verify(&m.key, &ctx).await;
                    let want = expected(m, balances[m.balance], now);
                    prop_assert_eq!(got.as_ref().map(|_| ()).map_err(VerifyError::code), want);
                    if m.ever_revoked {
                        prop_assert!(got.is_err(), "a revoked key verified");
                    }
                    if got.is_ok()
                        && let Some(n) = balances[m.balance].as_mut()
                    {
                        *n -= 1;
                    }
                }
                Op::Revoke(k) => {
                    let Some(m) = keys.get_mut(k) else { continue };
                    keyring.revoke(&m.id, "test").await.expect("revoke");
                    m.status = Status::Revoked;
                    m.ever_revoked = true;
                }
                Op::Disable(k) | Op::Enable(k) => {
                    let Some(m) = keys.get_mut(k) else { continue };
                    let enable = matches!(op, Op::Enable(_));
                    let result = if enable {
                        keyring.enable(&m.id).await
                    } else {
                        keyring.disable(&m.id).await
                    };
                    if m.status == Status::Revoked {
                        prop_assert!(result.is_err(), "status of a revoked key changed");
                    } else {
                        result.expect("status change");
                        m.status = if enable {
                            Status::Active
                        } else {
                            Status::Disabled
                        };
                    }
                }
                Op::Rotate(k, grace) => {
                    let Some(m) = keys.get_mut(k) else { continue };
                    let result = keyring.rotate(&m.id, Some(TimeDelta::seconds(grace))).await;
                    if m.status != Status::Active || m.rotated {
                        prop_assert!(result.is_err(), "only active, unrotated keys rotate");
                        continue;
                    }
                    let issued = result.expect("rotate");
                    m.rotated = true;
                    let cutoff = now + TimeDelta::seconds(grace);
                    let successor = Model {
                        id: issued.record.id.clone(),
                        key: issued.key.expose_secret().to_owned(),
                        status: Status::Active,
                        expires_at: m.expires_at,
                        balance: m.balance,
                        rotated: false,
                        ever_revoked: false,
                    };
                    prop_assert_eq!(
                        issued.record.remaining_uses,
                        balances[m.balance],
                        "the successor takes over the uses left"
                    );
                    // Both keys now draw on that one balance, so rotation never doubles it.
                    m.expires_at = Some(m.expires_at.map_or(cutoff, |at| at.min(cutoff)));
                    keys.push(successor);
                }
                Op::Advance(secs) => clock.advance(TimeDelta::seconds(secs)),
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn verification_matches_the_lifecycle_model(
        ops in prop::collection::vec(op(), 1..40),
        uses in [prop::option::of(0..4u64), prop::option::of(0..4u64)],
        ttl in [prop::option::of(1..200i64), prop::option::of(1..200i64)],
    ) {
        run(ops, uses, ttl)?;
    }
}
