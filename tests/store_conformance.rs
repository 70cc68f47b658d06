//! The memory store passes the public conformance kit.
#![cfg(feature = "testing")]

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_meets_the_key_store_contract() {
    keymint::testing::run_store_conformance(keymint::MemoryStore::new()).await;
}
