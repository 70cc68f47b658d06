//! Scope checks on the hot path: one required scope or one requirement against 50 grants,
//! with a grant-by-grant scan beside it for comparison.

// Helpers outside #[test] functions build fixtures from literals known to be valid.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keymint::{Requirement, Scope, ScopeSet};

/// 50 grants in the shape real keys have: resources with actions, a few wildcards.
fn fifty_grants() -> Vec<Scope> {
    let resources = [
        "users",
        "billing",
        "invoices",
        "orders",
        "products",
        "customers",
        "reports",
        "webhooks",
        "files",
        "teams",
    ];
    let actions = ["read", "write", "delete", "list"];
    let mut grants = Vec::new();
    for resource in resources {
        for action in actions {
            grants.push(format!("{resource}:{action}"));
        }
    }
    grants.extend(
        [
            "orders:*:self",
            "files:*",
            "teams:*:members:read",
            "audit:read:self",
            "admin:logs:read",
            "users:read:self",
            "billing:refunds:create",
            "reports:*:export",
            "webhooks:endpoints:*",
            "metrics:read",
        ]
        .map(String::from),
    );
    assert_eq!(grants.len(), 50);
    grants.iter().map(|g| Scope::new(g).unwrap()).collect()
}

fn scope_checks(c: &mut Criterion) {
    let grants = fifty_grants();
    let set = ScopeSet::new(grants.iter().cloned());
    let hit = Scope::new("teams:eng:members:read").unwrap(); // through a wildcard edge
    let exact = Scope::new("users:read").unwrap();
    let miss = Scope::new("admin:users:delete").unwrap();
    let needs = Requirement::parse("users:read and (billing:read or admin:*)").unwrap();

    let mut group = c.benchmark_group("scope_50_grants");
    group.bench_function("covers_exact/scope_set", |b| {
        b.iter(|| black_box(&set).covers(black_box(&exact)));
    });
    group.bench_function("covers_wildcard/scope_set", |b| {
        b.iter(|| black_box(&set).covers(black_box(&hit)));
    });
    group.bench_function("covers_miss/scope_set", |b| {
        b.iter(|| black_box(&set).covers(black_box(&miss)));
    });
    group.bench_function("covers_miss/linear_scan", |b| {
        b.iter(|| {
            black_box(&grants)
                .iter()
                .any(|g| g.covers(black_box(&miss)))
        });
    });
    // Reference point: the cheapest possible exact check, a std hash set lookup (SipHash).
    let exact_set: std::collections::HashSet<&str> = grants.iter().map(Scope::as_str).collect();
    group.bench_function("covers_exact/std_hashset_reference", |b| {
        b.iter(|| black_box(&exact_set).contains(black_box(exact.as_str())));
    });
    group.bench_function("requirement_check", |b| {
        b.iter(|| black_box(&needs).check(black_box(&set)).is_ok());
    });
    group.bench_function("requirement_is_satisfied_by", |b| {
        b.iter(|| black_box(&needs).is_satisfied_by(black_box(&set)));
    });
    group.finish();

    c.bench_function("requirement_parse", |b| {
        b.iter(|| Requirement::parse(black_box("users:read and (billing:read or admin:*)")));
    });
}

criterion_group!(benches, scope_checks);
criterion_main!(benches);
