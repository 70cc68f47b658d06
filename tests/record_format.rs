//! The stored form of a key record, pinned. Stores persist `KeyRecord` as JSON (the memory
//! store as values, `PgStore` as JSONB, hosts however they like), so any change to field
//! names, nesting or what is omitted must be deliberate: it fails here first, and comes with
//! a migration for existing rows.

#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used)]

use keymint::{KeyRecord, KeyStatus};

const FULL: &str = include_str!("fixtures/key_record_v1.json");
const MINIMAL: &str = include_str!("fixtures/key_record_v1_minimal.json");

#[test]
fn a_full_record_reads_and_writes_exactly_the_pinned_form() {
    let record: KeyRecord = serde_json::from_str(FULL).unwrap();
    assert_eq!(record.id.as_str(), "AbC123xyZ789");
    assert_eq!(record.attributes.name, "CI deploy");
    assert_eq!(record.attributes.scopes.len(), 2);
    assert_eq!(record.status, KeyStatus::Revoked);
    assert_eq!(record.kind, Some(keymint::KeyKind::Publishable));
    assert_eq!(record.environment, Some(keymint::Environment::live()));
    assert_eq!(record.attributes.allowed_origins.len(), 2);
    let bindings = &record.attributes.certificate_bindings;
    assert_eq!(bindings.len(), 2);
    assert_eq!(bindings[0].method(), "x5t#S256");
    assert_eq!(
        bindings[1].thumbprint(),
        "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    );
    assert_eq!(record.remaining_uses, Some(41));
    assert_eq!(record.lineage().as_str(), "ZZZ000aaa111");
    assert_eq!(
        record.attributes.credit_refill.unwrap().period().num_days(),
        30
    );
    let own_limit = record.attributes.rate_limit.unwrap();
    assert_eq!(own_limit.limit().get(), 100);
    assert_eq!(own_limit.period(), std::time::Duration::from_secs(60));
    let written: serde_json::Value = serde_json::to_value(&record).unwrap();
    let pinned: serde_json::Value = serde_json::from_str(FULL).unwrap();
    assert_eq!(written, pinned, "the stored form of KeyRecord changed");
}

#[test]
fn a_record_with_only_the_required_fields_reads_and_omits_the_rest() {
    let record: KeyRecord = serde_json::from_str(MINIMAL).unwrap();
    assert_eq!(
        record.lineage(),
        &record.id,
        "no lineage: the key is its own"
    );
    assert!(record.attributes.scopes.is_empty() && record.remaining_uses.is_none());
    assert!(
        record.attributes.certificate_bindings.is_empty(),
        "records written before bindings read as unbound"
    );
    let written: serde_json::Value = serde_json::to_value(&record).unwrap();
    let mut pinned: serde_json::Value = serde_json::from_str(MINIMAL).unwrap();
    // `scopes` is always written, even when empty.
    pinned["scopes"] = serde_json::json!([]);
    assert_eq!(written, pinned);
}

#[test]
fn records_never_serialise_anything_but_the_hash_of_the_secret() {
    let record = keymint::testing::sample_record("owner");
    let json = serde_json::to_string(&record).unwrap();
    assert!(json.contains(record.hash.as_str()), "the hash is stored");
    assert!(
        !format!("{record:?}").contains(record.hash.as_str()),
        "Debug hides it"
    );
}

#[test]
fn the_pinned_form_covers_every_field_a_record_can_write() {
    let mut record = keymint::testing::full_record("owner");
    record.attributes.description = Some("every field set".into());
    record.attributes.metadata = serde_json::json!({ "k": 1 });
    let written: serde_json::Value = serde_json::to_value(&record).unwrap();
    let pinned: serde_json::Value = serde_json::from_str(FULL).unwrap();
    let fields = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        fields(&written),
        fields(&pinned),
        "a field was added to (or removed from) KeyRecord: pin it in fixtures/key_record_v1.json"
    );
}
