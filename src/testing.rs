//! Test kits for keymint's extension points (feature `testing`): prove your own store, rate
//! limiter or hasher against the contract its trait documents, and inject faults.
//!
//! * [`store_conformance!`](crate::store_conformance): one test per guarantee of the
//!   [`KeyStore`](crate::KeyStore) contract (or [`run_store_conformance`] for all of them in
//!   one call).
//! * [`limiter_conformance!`](crate::limiter_conformance): the
//!   [`RateLimiter`](crate::RateLimiter) contract (all or nothing, peeks, weights, opaque
//!   keys), without depending on time passing, so it runs against servers with their own
//!   clocks.
//! * [`hasher_conformance!`](crate::hasher_conformance): the
//!   [`SecretHasher`](crate::SecretHasher) contract.
//! * [`FaultyStore`]: wraps any store to count its calls, fail them on demand (before or
//!   after the write reaches the inner store), or hold one until the test lets it go.
//!
//! Each macro expands to plain `#[test]` functions in the module where it is invoked (they
//! run on a multi-threaded tokio runtime of their own), taking an expression that makes a
//! fresh backend, evaluated once per test; attributes given first (`#[ignore = ".."]`) are
//! put on every test:
//!
//! ```
//! mod memory_store {
//!     keymint::store_conformance!(async { keymint::MemoryStore::new() });
//! }
//! mod memory_limiter {
//!     keymint::limiter_conformance!(async { keymint::MemoryLimiter::new() });
//! }
//! mod argon2 {
//!     keymint::hasher_conformance!(
//!         keymint::Argon2idHasher::builder().m_cost(64).t_cost(1).build().unwrap()
//!     );
//! }
//! # fn main() {}
//! ```

mod faulty_store;
mod hasher_kit;
mod limiter_kit;
mod store_kit;

pub use faulty_store::{Fault, FaultyStore, StoreOp};
pub use store_kit::{full_record, run_store_conformance, sample_record};

/// The checks behind the macros, one function per guarantee, for hosts that prefer to
/// call them from tests of their own.
pub mod checks {
    pub use super::hasher_kit::*;
    pub use super::limiter_kit::*;
    pub use super::store_kit::{
        concurrent_decrements_lose_nothing, concurrent_updates_lose_nothing,
        decrement_never_below_zero, duplicate_insert_conflicts, insert_and_get,
        last_used_moves_forward, list_by_owner_pages, list_expiring_window,
        list_unused_since_window, update_is_compare_and_set,
    };
}

/// Runs `future` to completion on a fresh multi-threaded tokio runtime (two workers): what
/// the conformance macros' tests do, so they need no async test attribute of their own.
///
/// # Panics
/// When the runtime cannot be built, and with whatever `future` panics with.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    #[allow(clippy::expect_used)]
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance kit");
    runtime.block_on(future)
}

/// One `#[test]` per guarantee of the [`KeyStore`](crate::KeyStore) contract, against the
/// store that `$make` (an expression evaluating to a future of a store) creates for each.
/// Give it an empty store or a fresh schema; it writes records with random ids and owners.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr $(, #[$meta:meta])* $(,)?) => {
        $crate::__conformance_tests!(store, [$(#[$meta])*], $make;
            insert_and_get, duplicate_insert_conflicts, update_is_compare_and_set,
            decrement_never_below_zero, concurrent_decrements_lose_nothing,
            concurrent_updates_lose_nothing, last_used_moves_forward, list_by_owner_pages,
            list_expiring_window, list_unused_since_window);
    };
}

/// One `#[test]` per guarantee of the [`RateLimiter`](crate::RateLimiter) contract, against
/// the limiter that `$make` (an expression evaluating to a future of a limiter) creates.
/// Keys and policy names are random per run, so a shared server is fine.
#[macro_export]
macro_rules! limiter_conformance {
    ($make:expr $(, #[$meta:meta])* $(,)?) => {
        $crate::__conformance_tests!(limiter, [$(#[$meta])*], $make;
            admits_the_burst_then_denies, a_denied_request_is_charged_to_no_limit,
            a_peek_changes_nothing, weights_are_charged_in_full,
            a_cost_above_the_burst_is_an_error, keys_are_opaque_and_independent);
    };
}

/// One `#[test]` per guarantee of the [`SecretHasher`](crate::SecretHasher) contract,
/// against the hasher that `$make` (an expression, not a future) creates.
#[macro_export]
macro_rules! hasher_conformance {
    ($make:expr $(, #[$meta:meta])* $(,)?) => {
        $crate::__conformance_tests!(hasher, [$(#[$meta])*], async { $make };
            hash_then_verify_matches, a_wrong_secret_does_not_match, every_hash_has_its_own_salt,
            hashes_are_phc_strings_of_its_algorithm, a_fresh_hash_needs_no_rehash,
            a_tampered_hash_never_matches, unreadable_and_foreign_hashes_are_errors);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    // One check at a time, so that the attributes repeat once per test.
    ($kind:ident, [$($attrs:tt)*], $make:expr; $check:ident $(, $rest:ident)* $(,)?) => {
        $($attrs)*
        #[test]
        fn $check() {
            $crate::testing::block_on(async {
                let backend = $make.await;
                $crate::testing::checks::$check(&backend).await;
            });
        }
        $crate::__conformance_tests!($kind, [$($attrs)*], $make; $($rest),*);
    };
    ($kind:ident, [$($attrs:tt)*], $make:expr;) => {};
}
