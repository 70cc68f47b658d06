//! The embedded backends pass the public conformance kits, one test per guarantee.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used)]

mod memory_store {
    keymint::store_conformance!(async { keymint::MemoryStore::new() });
}

mod faulty_store_without_faults {
    keymint::store_conformance!(async {
        keymint::testing::FaultyStore::new(keymint::MemoryStore::new())
    });
}

mod memory_limiter {
    keymint::limiter_conformance!(async { keymint::MemoryLimiter::new() });
}

mod argon2id_hasher {
    keymint::hasher_conformance!(
        keymint::Argon2idHasher::builder()
            .m_cost(64)
            .t_cost(1)
            .build()
            .unwrap()
    );
}

mod hmac_sha256_hasher {
    keymint::hasher_conformance!(
        keymint::HmacSha256Hasher::new("k1", keymint::Pepper::new([7u8; 32]).unwrap()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_store_contract_in_one_call() {
    keymint::testing::run_store_conformance(keymint::MemoryStore::new()).await;
}

/// The kits are only worth something if they catch broken backends.
mod the_kits_catch_broken_backends {
    use keymint::ratelimit::{Decision, Policy, RateLimitError, RateLimiter};
    use keymint::testing::{block_on, checks};
    use keymint::{KeyId, KeyRecord, KeyStore, MemoryStore, StoreError};

    /// A store whose update ignores the version: last writer wins.
    #[derive(Clone, Default)]
    struct NoCompareAndSet(MemoryStore);

    impl KeyStore for NoCompareAndSet {
        async fn insert(&self, r: &KeyRecord) -> Result<(), StoreError> {
            self.0.insert(r).await
        }
        async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            self.0.get(id).await
        }
        async fn update(&self, r: &KeyRecord) -> Result<u64, StoreError> {
            let stored = self.0.get(&r.id).await?.ok_or(StoreError::NotFound)?;
            let mut r = r.clone();
            r.version = stored.version;
            self.0.update(&r).await
        }
        async fn decrement_remaining(
            &self,
            id: &KeyId,
            uses: u64,
        ) -> Result<keymint::Decrement, StoreError> {
            self.0.decrement_remaining(id, uses).await
        }
        async fn record_last_used(
            &self,
            b: &[(KeyId, keymint::DateTime<keymint::Utc>)],
        ) -> Result<(), StoreError> {
            self.0.record_last_used(b).await
        }
        async fn list_by_owner(
            &self,
            o: &str,
            p: &keymint::PageRequest,
        ) -> Result<keymint::Page, StoreError> {
            self.0.list_by_owner(o, p).await
        }
        async fn list_expiring(
            &self,
            f: keymint::DateTime<keymint::Utc>,
            t: keymint::DateTime<keymint::Utc>,
            p: &keymint::PageRequest,
        ) -> Result<keymint::Page, StoreError> {
            self.0.list_expiring(f, t, p).await
        }
    }

    /// A limiter that admits everything.
    struct AdmitsAll;

    impl RateLimiter for AdmitsAll {
        async fn check(&self, _: &str, p: &Policy, _: u32) -> Result<Decision, RateLimitError> {
            let max = u64::from(p.limits()[0].max());
            Ok(Decision::allow(max, max, std::time::Duration::ZERO))
        }
    }

    fn fails(check: impl std::future::Future<Output = ()>) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(check))).is_err()
    }

    #[test]
    fn a_store_without_compare_and_set_fails_the_update_guarantee() {
        let store = NoCompareAndSet::default();
        assert!(fails(checks::update_is_compare_and_set(&store)));
        assert!(
            !fails(checks::insert_and_get(&store)),
            "the rest of it is fine"
        );
    }

    #[test]
    fn a_limiter_that_admits_everything_fails() {
        assert!(fails(checks::admits_the_burst_then_denies(&AdmitsAll)));
        assert!(fails(checks::a_cost_above_the_burst_is_an_error(
            &AdmitsAll
        )));
    }
}
