//! A bounded soak of the example server on loopback: many keys, and a mix of valid,
//! invalid, unknown, revoked, over-limit and cancelled requests from concurrent clients.
//! Every answer must be one its class expects; the process's memory must be flat after the
//! warm-up; the p99 latency of valid (cached) requests is reported.
//!
//! `#[ignore]`d (it runs for `KEYMINT_SOAK_SECS`, default 20 s): `.ci/run` runs it with the
//! server-backed tests.
#![cfg(feature = "axum")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

#[path = "../examples/axum_server/app.rs"]
#[allow(dead_code)]
mod app;
#[path = "../examples/axum_server/login.rs"]
mod login;
#[cfg(feature = "tokens")]
#[path = "../examples/axum_server/tokens.rs"]
mod tokens;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Valid,
    Garbage,
    Unknown,
    Revoked,
    OverLimit,
    Cancelled,
}

impl Class {
    fn allowed(self, status: StatusCode) -> bool {
        match self {
            Self::Valid => status == StatusCode::OK,
            Self::Garbage | Self::Unknown | Self::Revoked => status == StatusCode::UNAUTHORIZED,
            // One request an hour: the first may pass, the rest are limited.
            Self::OverLimit => matches!(status, StatusCode::OK | StatusCode::TOO_MANY_REQUESTS),
            Self::Cancelled => true,
        }
    }
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}

/// A small deterministic generator (xorshift), so a failing mix can be replayed.
struct Gen(u64);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of KEYMINT_SOAK_SECS seconds (default 20): run with --include-ignored"]
async fn the_example_server_under_a_mixed_load_answers_as_expected_with_flat_memory() {
    let secs: u64 = std::env::var("KEYMINT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let keyring = app::keyring().unwrap();
    let admin = app::admin_key(&keyring).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app::router(keyring.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let create = |body: serde_json::Value| {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        async move {
            let answer = http
                .post(format!("{base}/admin/keys"))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::CREATED);
            let created: serde_json::Value = answer.json().await.unwrap();
            (
                created["key"].as_str().unwrap().to_owned(),
                created["id"].as_str().unwrap().to_owned(),
            )
        }
    };
    let mut valid = Vec::new();
    for i in 0..200 {
        valid.push(create(json!({"name": format!("v{i}")})).await.0);
    }
    let mut revoked = Vec::new();
    for i in 0..40 {
        let (key, id) = create(json!({"name": format!("r{i}")})).await;
        let answer = http
            .delete(format!("{base}/admin/keys/{id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        revoked.push(key);
    }
    let mut limited = Vec::new();
    for i in 0..20 {
        let body =
            json!({"name": format!("l{i}"), "rate_limit": {"limit": 1, "period_secs": 3600}});
        limited.push(create(body).await.0);
    }
    let format = keymint::KeyFormat::new("sk_live").unwrap();
    let unknown: Vec<String> = (0..50)
        .map(|_| format.generate().unwrap().expose_secret().to_owned())
        .collect();
    let keys = Arc::new((valid, revoked, limited, unknown));

    let statuses: Arc<Mutex<BTreeMap<(Class, u16), u64>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let started = Instant::now();
    let warm_up = Duration::from_secs(secs / 4);
    let end = Duration::from_secs(secs);
    let rss_start = rss_bytes();
    let mut rss_after_warm_up = None;
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (http, base, keys) = (http.clone(), base.clone(), keys.clone());
            let (statuses, latencies) = (statuses.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut rng = Gen(0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1));
                while started.elapsed() < end {
                    let (valid, revoked, limited, unknown) = &*keys;
                    let (class, key) = match rng.below(10) {
                        0..=4 => (Class::Valid, valid[rng.below(valid.len())].clone()),
                        5 => (
                            Class::Garbage,
                            format!("sk_live_{}", "x".repeat(rng.below(60))),
                        ),
                        6 => (Class::Unknown, unknown[rng.below(unknown.len())].clone()),
                        7 => (Class::Revoked, revoked[rng.below(revoked.len())].clone()),
                        8 => (Class::OverLimit, limited[rng.below(limited.len())].clone()),
                        _ => (Class::Cancelled, valid[rng.below(valid.len())].clone()),
                    };
                    let request = http
                        .get(format!("{base}/v1/hello"))
                        .bearer_auth(&key)
                        .send();
                    let sent = Instant::now();
                    if class == Class::Cancelled {
                        // The client gives up almost at once: the server must not care.
                        let _ = tokio::time::timeout(Duration::from_micros(200), request).await;
                        *statuses.lock().unwrap().entry((class, 0)).or_default() += 1;
                        continue;
                    }
                    let status = request.await.expect("the server answers").status();
                    if class == Class::Valid {
                        latencies.lock().unwrap().push(sent.elapsed());
                    }
                    *statuses
                        .lock()
                        .unwrap()
                        .entry((class, status.as_u16()))
                        .or_default() += 1;
                }
            })
        })
        .collect();
    while started.elapsed() < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if rss_after_warm_up.is_none() && started.elapsed() >= warm_up {
            rss_after_warm_up = Some(rss_bytes());
        }
    }
    for client in clients {
        client.await.unwrap();
    }
    let rss_end = rss_bytes();
    let rss_warm = rss_after_warm_up.unwrap_or(rss_start);

    let statuses = statuses.lock().unwrap().clone();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    let total: u64 = statuses.values().sum();
    eprintln!(
        "soak: {secs} s, {total} requests, statuses {statuses:?}; valid requests p50 {:?}, p99 {:?}; RSS start {} MiB, after warm-up {} MiB, end {} MiB",
        p(0.5),
        p(0.99),
        rss_start >> 20,
        rss_warm >> 20,
        rss_end >> 20
    );
    for ((class, status), count) in &statuses {
        if *class != Class::Cancelled {
            assert!(
                class.allowed(StatusCode::from_u16(*status).unwrap()),
                "{count} {class:?} requests answered {status}"
            );
        }
    }
    for class in [
        Class::Valid,
        Class::Garbage,
        Class::Unknown,
        Class::Revoked,
        Class::OverLimit,
    ] {
        assert!(
            statuses.keys().any(|(c, _)| *c == class),
            "no {class:?} request was made"
        );
    }
    assert!(
        statuses.contains_key(&(Class::OverLimit, 429)),
        "the over-limit keys were limited"
    );
    // Flat after the warm-up: growth within a tenth, plus 16 MiB of allocator slack.
    assert!(
        rss_end <= rss_warm + rss_warm / 10 + (16 << 20),
        "memory grew after the warm-up: {} -> {} MiB",
        rss_warm >> 20,
        rss_end >> 20
    );
    // A generous ceiling that catches a stall, not a speed goal.
    assert!(p(0.99) < Duration::from_secs(2), "p99 {:?}", p(0.99));
    // The server still answers normally after the soak.
    let answer = http
        .get(format!("{base}/v1/hello"))
        .bearer_auth(&keys.0[0])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}
