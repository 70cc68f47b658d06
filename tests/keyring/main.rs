//! The keyring's behaviour through its public API, one module per concern.
//!
//! Every test runs against a [`FaultyStore`](keymint::testing::FaultyStore) over the memory
//! store, on a manual clock: faults, races and time are under the test's control.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod certificates;
mod credits;
mod hashing;
mod lifecycle;
#[path = "../support/listening.rs"]
mod listening;
mod races;
mod rate_limits;
mod support;
mod verify;
