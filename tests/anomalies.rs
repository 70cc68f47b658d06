//! Anomaly signals through a real keyring: a new network and a rate spike each become one
//! audit event, on the key's lineage (a rotation keeps the history), never a refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::TimeDelta;
use keymint::{
    Anomaly, AnomalyConfig, AuditEvent, AuditSink, IssueRequest, KeyFormat, Keyring, ManualClock,
    MemoryStore, VerifyContext,
};

#[derive(Debug, Default, Clone)]
struct Audit(Arc<Mutex<Vec<AuditEvent>>>);

impl AuditSink for Audit {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Audit {
    fn anomalies(&self) -> Vec<Anomaly> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                AuditEvent::Anomaly { anomaly, .. } => Some(anomaly.clone()),
                _ => None,
            })
            .collect()
    }
}

#[tokio::test]
async fn unusual_use_is_reported_once_and_never_refused() {
    let clock = ManualClock::default();
    let audit = Audit::default();
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .clock(clock.clone())
        .audit(audit.clone())
        .anomaly_detection(
            AnomalyConfig::new()
                .warmup_minutes(10)
                .network_warmup_uses(10)
                .min_spike_per_minute(50),
        )
        .build()
        .unwrap();
    let issued = keyring
        .issue(IssueRequest::new("acct", "ci"))
        .await
        .unwrap();
    let key = issued.key.expose_secret().to_owned();
    let office: IpAddr = "198.51.100.10".parse().unwrap();
    let from = |ip: IpAddr| VerifyContext::new().client_ip(ip);

    // Twenty quiet minutes from the office: 3 requests a minute.
    for _ in 0..20 {
        for _ in 0..3 {
            keyring.verify(&key, &from(office)).await.unwrap();
        }
        clock.advance(TimeDelta::minutes(1));
    }
    assert!(audit.anomalies().is_empty());

    // Another network: reported, and still served.
    let elsewhere: IpAddr = "203.0.113.50".parse().unwrap();
    keyring.verify(&key, &from(elsewhere)).await.unwrap();
    assert_eq!(
        audit.anomalies(),
        [Anomaly::NewNetwork {
            network: "203.0.113.0/24".into()
        }]
    );

    // A burst after a rotation: the successor inherits the lineage's history.
    let successor = keyring.rotate(&issued.record.id, None).await.unwrap();
    let new_key = successor.key.expose_secret().to_owned();
    for _ in 0..200 {
        keyring.verify(&new_key, &from(office)).await.unwrap();
    }
    let found = audit.anomalies();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(matches!(found[1], Anomaly::RateSpike { per_minute, .. } if per_minute > 50));
    let events = audit.0.lock().unwrap();
    let spike = events
        .iter()
        .rev()
        .find(|e| matches!(e, AuditEvent::Anomaly { .. }))
        .unwrap();
    assert!(
        matches!(spike, AuditEvent::Anomaly { id, client_ip: Some(ip), .. }
        if *id == successor.record.id && *ip == office)
    );
}

#[tokio::test]
async fn without_detection_no_anomaly_is_reported() {
    let clock = ManualClock::default();
    let audit = Audit::default();
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .clock(clock.clone())
        .audit(audit.clone())
        .build()
        .unwrap();
    let issued = keyring
        .issue(IssueRequest::new("acct", "ci"))
        .await
        .unwrap();
    for n in 0..100u8 {
        let ip = IpAddr::from([10, 0, n, 1]);
        keyring
            .verify(
                issued.key.expose_secret(),
                &VerifyContext::new().client_ip(ip),
            )
            .await
            .unwrap();
    }
    assert!(audit.anomalies().is_empty());
}
