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
    /// hash) is what keeps a burst of concurrent attempts from all passing at once.
    ///
    /// The reservation is given back when dropped, unless [`Reservation::keep`] marks the
    /// attempt as failed. It travels with the work, not with the caller: a caller that stops
    /// waiting neither keeps a charge for an attempt that went on to succeed nor escapes one
    /// for an attempt that went on to fail.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        client: Option<IpAddr>,
    ) -> Result<Option<Reservation>, RateLimitDenial> {
        let Some(bucket) = self.bucket(client) else {
            return Ok(None);
        };
        match self.limiter.check_now(&bucket, &self.policy, 1) {
            Ok(decision) if decision.allowed => Ok(Some(Reservation {
                throttle: self.clone(),
                bucket: Some(bucket),
            })),
            Ok(decision) => Err(RateLimitDenial::new(self.policy.clone(), decision)),
            // A full table cannot track this client: authentication still applies.
            Err(e) => {
                tracing::debug!(error = %e, "failed-attempt throttle could not count an attempt");
                Ok(None)
            }
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

/// One attempt reserved from a client's budget: given back on drop (the attempt
/// authenticated, failed for the service's own reasons, or never ran), kept by
/// [`keep`](Self::keep) (the attempt failed authentication).
pub(crate) struct Reservation {
    throttle: Arc<Throttle>,
    bucket: Option<String>,
}

impl Reservation {
    /// The attempt failed authentication: the charge stays.
    pub(crate) fn keep(mut self) {
        self.bucket = None;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(bucket) = self.bucket.take() {
            self.throttle
                .limiter
                .refund_now(&bucket, &self.throttle.policy, 1);
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("kept", &self.bucket.is_none())
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
