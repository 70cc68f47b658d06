//! Long-form documentation, rendered here and doctested: how keymint works inside, what was
//! measured, and how to extend it. The README has the user's summary of each.

#[doc = include_str!("../docs/architecture.md")]
pub mod architecture {}

#[doc = include_str!("../docs/verification.md")]
pub mod verification {}

#[doc = include_str!("../docs/peppers.md")]
pub mod peppers {}

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
#[doc = include_str!("../docs/extending.md")]
pub mod extending {}

#[cfg(all(feature = "sqlite", feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "sqlite", feature = "testing"))))]
#[doc = include_str!("../docs/implementing-a-store.md")]
pub mod implementing_a_store {}

#[doc = include_str!("../docs/scopes.md")]
pub mod scopes {}

#[doc = include_str!("../docs/rate-limiting.md")]
pub mod rate_limiting {}

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[doc = include_str!("../docs/postgres.md")]
pub mod postgres {}

#[doc = include_str!("../docs/performance.md")]
pub mod performance {}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[doc = include_str!("../docs/client-certificates.md")]
pub mod client_certificates {}
