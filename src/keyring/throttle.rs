//! The failed-attempt throttle: failed verifications counted per client network.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::clock::SharedClock;
use crate::ratelimit::{MemoryLimiter, Policy, RateLimitDenial};

/// Most client addresses the throttle tracks at once; idle ones are swept.
const THROTTLE_MAX_CLIENTS: usize = 1 << 20;

/// The failed-attempt throttle: its own in-memory limiter (so a flood of addresses can
/// never crowd real keys out of the key limiter's table), keyed by client network.
pub(crate) struct Throttle {
    policy: Arc<Policy>,
    limiter: MemoryLimiter<SharedClock>,
    warned_no_client: AtomicBool,
}

impl Throttle {
    pub(crate) fn new(policy: Policy, clock: SharedClock) -> Self {
        let max = NonZeroUsize::new(THROTTLE_MAX_CLIENTS).unwrap_or(NonZeroUsize::MIN);
        Self {
            policy: Arc::new(policy),
            limiter: MemoryLimiter::with_clock(clock).max_keys(max),
            warned_no_client: AtomicBool::new(false),
        }
    }

    /// Reserves one attempt for the client before the expensive path, or refuses a client
    /// whose budget is spent. Reserving (rather than peeking now and charging after the
    /// hash) is what keeps a burst of concurrent attempts from all passing at once. The
    /// reservation stays charged if the attempt fails; [`release`](Self::release) gives
    /// it back if it succeeds.
    pub(crate) fn reserve(
        &self,
        client: Option<IpAddr>,
    ) -> Result<Option<String>, RateLimitDenial> {
        let Some(bucket) = self.bucket(client) else {
            return Ok(None);
        };
        match self.limiter.check_now(&bucket, &self.policy, 1) {
            Ok(decision) if decision.allowed => Ok(Some(bucket)),
            Ok(decision) => Err(RateLimitDenial::new(self.policy.clone(), decision)),
            // A full table cannot track this client: authentication still applies.
            Err(e) => {
                tracing::debug!(error = %e, "failed-attempt throttle could not count an attempt");
                Ok(None)
            }
        }
    }

    /// Gives back a reservation: the attempt authenticated (or failed for the service's
    /// own reasons, which are no failed attempt of the client's).
    pub(crate) fn release(&self, reservation: Option<String>) {
        if let Some(bucket) = reservation {
            self.limiter.refund_now(&bucket, &self.policy, 1);
        }
    }

    /// Counts one failed attempt against the client (for refusals before the expensive
    /// path, which reserved nothing).
    pub(crate) fn charge(&self, client: Option<IpAddr>) {
        if let Some(bucket) = self.bucket(client)
            && let Err(e) = self.limiter.check_now(&bucket, &self.policy, 1)
        {
            tracing::debug!(error = %e, "failed-attempt throttle could not count an attempt");
        }
    }

    fn bucket(&self, client: Option<IpAddr>) -> Option<String> {
        match client {
            Some(ip) => Some(client_bucket(ip)),
            None => {
                if !self.warned_no_client.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "failed-attempt throttle is configured but requests carry no client address"
                    );
                }
                None
            }
        }
    }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("policy", &self.policy.name())
            .finish_non_exhaustive()
    }
}

/// The throttle's bucket for a client: its IPv4 address (IPv4-mapped IPv6 included), or
/// its IPv6 /64, the block one host or customer usually controls, so that cycling through
/// addresses within it does not reset the count.
pub(crate) fn client_bucket(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_grouped_by_ipv4_address_and_ipv6_64() {
        let b = |s: &str| client_bucket(s.parse().unwrap());
        assert_eq!(b("203.0.113.9"), b("::ffff:203.0.113.9"));
        assert_ne!(b("203.0.113.9"), b("203.0.113.10"));
        assert_eq!(b("2001:db8:1:2::1"), b("2001:db8:1:2:ffff::9"));
        assert_ne!(b("2001:db8:1:2::1"), b("2001:db8:1:3::1"));
    }
}
