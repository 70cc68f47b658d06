//! The keyring's events as entries of the tamper-evident audit trail: how each
//! [`AuditEvent`] is written to a [`ChainedLog`].

use std::net::IpAddr;

use serde_json::json;

use super::{Anomaly, AuditEvent, AuditSink, FailureReason, SelfServiceAction};
use crate::audit::{ChainedLog, Record};

/// `WrongSecret` -> `wrong_secret`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn reason_code(reason: FailureReason) -> String {
    snake(&format!("{reason:?}"))
}

fn self_service(action: SelfServiceAction) -> String {
    snake(&format!("{action:?}"))
}

fn ip(ip: Option<IpAddr>) -> serde_json::Value {
    ip.map_or(serde_json::Value::Null, |ip| ip.to_string().into())
}

/// The chain entry for one event.
fn entry(event: &AuditEvent) -> Record {
    let outcome = match event {
        AuditEvent::VerificationFailed { reason, .. } => reason_code(*reason),
        _ => "ok".to_owned(),
    };
    let entry = |action: &str| Record::new(action, outcome.clone());
    match event {
        AuditEvent::Issued {
            id,
            hint,
            owner,
            actor,
            at,
        } => entry("issued")
            .actor_opt(actor.clone())
            .key_id(id.to_string())
            .detail(json!({ "hint": hint, "owner": owner }))
            .at(*at),
        AuditEvent::VerificationFailed {
            id, client_ip, at, ..
        } => entry("verification_failed")
            .key_id_opt(id.as_ref().map(ToString::to_string))
            .detail(json!({ "client_ip": ip(*client_ip) }))
            .at(*at),
        AuditEvent::Revoked {
            id,
            reason,
            actor,
            at,
        } => entry("revoked")
            .actor_opt(actor.clone())
            .key_id(id.to_string())
            .detail(json!({ "reason": reason }))
            .at(*at),
        AuditEvent::Disabled { id, actor, at } => entry("disabled")
            .actor_opt(actor.clone())
            .key_id(id.to_string())
            .at(*at),
        AuditEvent::Enabled { id, actor, at } => entry("enabled")
            .actor_opt(actor.clone())
            .key_id(id.to_string())
            .at(*at),
        AuditEvent::Rotated {
            old,
            new,
            old_expires_at,
            actor,
        } => entry("rotated")
            .actor_opt(actor.clone())
            .key_id(old.to_string())
            .detail(json!({ "successor": new, "old_expires_at": old_expires_at })),
        AuditEvent::Updated { id, actor, at } => entry("updated")
            .actor_opt(actor.clone())
            .key_id(id.to_string())
            .at(*at),
        AuditEvent::SentInClear { id, client_ip, at } => entry("sent_in_clear")
            .key_id(id.to_string())
            .detail(json!({ "client_ip": ip(*client_ip) }))
            .at(*at),
        AuditEvent::SelfService {
            actor,
            owner,
            action,
            id,
            successor,
            at,
        } => entry("self_service")
            .actor(actor.clone())
            .key_id(id.to_string())
            .detail(
                json!({ "owner": owner, "action": self_service(*action), "successor": successor }),
            )
            .at(*at),
        AuditEvent::Anomaly {
            id,
            anomaly,
            client_ip,
            at,
        } => entry("anomaly")
            .key_id(id.to_string())
            .detail(match anomaly {
                Anomaly::RateSpike {
                    per_minute,
                    usual_per_minute,
                } => json!({ "kind": "rate_spike", "per_minute": per_minute,
                             "usual_per_minute": usual_per_minute, "client_ip": ip(*client_ip) }),
                Anomaly::NewNetwork { network } => json!({
                    "kind": "new_network", "network": network, "client_ip": ip(*client_ip) }),
            })
            .at(*at),
        AuditEvent::LeakReported {
            id,
            owner,
            url,
            source,
            revoked,
            at,
        } => entry("leak_reported")
            .key_id(id.to_string())
            .detail(json!({ "owner": owner, "url": url, "source": source, "revoked": revoked }))
            .at(*at),
        AuditEvent::TokenDerived {
            parent,
            token_id,
            scopes,
            expires_at,
            at,
        } => entry("token_derived")
            .key_id(parent.to_string())
            .detail(json!({ "token_id": token_id, "scopes": scopes, "expires_at": expires_at }))
            .at(*at),
        AuditEvent::Rehashed { id } => entry("rehashed").key_id(id.to_string()),
    }
}

impl AuditSink for ChainedLog {
    fn record(&self, event: &AuditEvent) {
        // A failure is logged and counted by the log itself (`write_failures`); the
        // keyring's operation does not fail for it.
        let _ = self.append(entry(event));
    }
}
