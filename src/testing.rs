//! Test kits for keymint's extension points (feature `testing`).
//!
//! * [`run_store_conformance`]: the whole [`KeyStore`](crate::KeyStore) contract against
//!   any implementation, so hosts can prove their own store before trusting it with keys.
//! * [`FaultyStore`]: wraps any store to count its calls, fail them on demand (before or
//!   after the write reaches the inner store), or hold one until the test lets it go.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! keymint::testing::run_store_conformance(keymint::MemoryStore::new()).await;
//! # }
//! ```

mod faulty_store;
mod store_kit;

pub use faulty_store::{Fault, FaultyStore, StoreOp};
pub use store_kit::{run_store_conformance, sample_record};
