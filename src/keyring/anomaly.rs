//! Anomaly signals on verified keys: a sudden rise in a key's request rate, and a key used
//! from a network it has not been seen from. Bounded in memory, per process.
//!
//! See [`AnomalyConfig`] for what is detected and what is not.

use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use crate::format::KeyId;

/// How the anomaly signals are tuned, for
/// [`KeyringBuilder::anomaly_detection`](super::KeyringBuilder::anomaly_detection).
///
/// What it detects: a key whose requests in one minute exceed `spike_factor` times its usual
/// rate per minute (an exponentially weighted average over the minutes it has been seen,
/// quiet minutes included) and at least `min_spike_per_minute`, once its history covers
/// `warmup_minutes`; and, once a key has been used `network_warmup_uses` times, a use from an
/// IPv4 /24 or IPv6 /48 outside the `max_networks` it has been seen from.
///
/// What it cannot: a rate that climbs slowly (the average follows it); an attacker inside a
/// network the key already uses (the same /24, a shared cloud or NAT); abuse spread over many
/// keys or processes (each process watches only the requests it serves, and a restart
/// forgets what it learned); a key stolen before its usual networks were learned; requests
/// without a client address (no network signal); requests that were refused (rate limited,
/// out of scope, revoked: only requests that pass every check are observed, so a tight
/// rate limit hides most of a spike, and the refusals themselves are in the audit trail
/// and metrics instead); a second new network within an hour of the first (reported at
/// most once an hour per key, the rest learned silently). When `max_keys` keys are
/// watched, new keys are not watched until others have been idle for an hour. Signals are
/// hints for a human or an alert rule, never a reason to refuse a request.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct AnomalyConfig {
    pub(crate) spike_factor: f64,
    pub(crate) min_spike_per_minute: u32,
    pub(crate) warmup_minutes: u32,
    pub(crate) network_warmup_uses: u32,
    pub(crate) max_networks: usize,
    pub(crate) max_keys: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            spike_factor: Self::DEFAULT_SPIKE_FACTOR,
            min_spike_per_minute: Self::DEFAULT_MIN_SPIKE_PER_MINUTE,
            warmup_minutes: Self::DEFAULT_WARMUP_MINUTES,
            network_warmup_uses: Self::DEFAULT_NETWORK_WARMUP_USES,
            max_networks: Self::DEFAULT_MAX_NETWORKS,
            max_keys: Self::DEFAULT_MAX_KEYS,
        }
    }
}

impl AnomalyConfig {
    /// A minute's requests must exceed this many times the key's usual rate.
    pub const DEFAULT_SPIKE_FACTOR: f64 = 10.0;
    /// ...and at least this many requests.
    pub const DEFAULT_MIN_SPIKE_PER_MINUTE: u32 = 60;
    /// Minutes of history before a key's rate is judged.
    pub const DEFAULT_WARMUP_MINUTES: u32 = 30;
    /// Uses from which a key's networks are considered known.
    pub const DEFAULT_NETWORK_WARMUP_USES: u32 = 20;
    /// Networks remembered per key (the least recently seen is forgotten first).
    pub const DEFAULT_MAX_NETWORKS: usize = 16;
    /// Keys watched at most.
    pub const DEFAULT_MAX_KEYS: usize = 100_000;

    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`DEFAULT_SPIKE_FACTOR`](Self::DEFAULT_SPIKE_FACTOR) (at least 1).
    pub fn spike_factor(mut self, factor: f64) -> Self {
        self.spike_factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            Self::DEFAULT_SPIKE_FACTOR
        };
        self
    }

    /// See [`DEFAULT_MIN_SPIKE_PER_MINUTE`](Self::DEFAULT_MIN_SPIKE_PER_MINUTE).
    pub fn min_spike_per_minute(mut self, requests: u32) -> Self {
        self.min_spike_per_minute = requests.max(1);
        self
    }

    /// See [`DEFAULT_WARMUP_MINUTES`](Self::DEFAULT_WARMUP_MINUTES).
    pub fn warmup_minutes(mut self, minutes: u32) -> Self {
        self.warmup_minutes = minutes;
        self
    }

    /// See [`DEFAULT_NETWORK_WARMUP_USES`](Self::DEFAULT_NETWORK_WARMUP_USES).
    pub fn network_warmup_uses(mut self, uses: u32) -> Self {
        self.network_warmup_uses = uses;
        self
    }

    /// See [`DEFAULT_MAX_NETWORKS`](Self::DEFAULT_MAX_NETWORKS) (at least 1, at most 256).
    pub fn max_networks(mut self, networks: usize) -> Self {
        self.max_networks = networks.clamp(1, 256);
        self
    }

    /// See [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS) (at least 1).
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys.max(1);
        self
    }
}

/// What looked unusual.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Anomaly {
    /// The key's requests in the current minute far exceed its usual rate.
    RateSpike {
        /// Requests so far in this minute.
        per_minute: u32,
        /// The key's usual requests per minute.
        usual_per_minute: f64,
    },
    /// The key was used from a network it had not been seen from.
    NewNetwork {
        /// The network, as `a.b.c.0/24` or `xxxx:xxxx:xxxx::/48`.
        network: String,
    },
}

/// Smoothing of the per-minute average: each closed minute weighs this much.
const ALPHA: f64 = 0.1;
/// At most one new-network report per key in this many minutes.
const NETWORK_REPORT_MINUTES: i64 = 60;
/// Keys idle this long may make room for new ones when the table is full.
const IDLE_EVICT_MINUTES: i64 = 60;

#[derive(Debug)]
struct KeyState {
    minute: i64,
    in_minute: u32,
    usual: f64,
    minutes_seen: u32,
    spike_reported: bool,
    uses: u32,
    /// When the last new network was reported: at most one report an hour per key, so a
    /// key used from many networks (a browser key, a roaming client) is not a flood.
    network_reported: Option<i64>,
    /// (network, last minute seen), at most `max_networks`.
    networks: Vec<(u128, i64)>,
}

/// The per-key state behind the signals.
#[derive(Debug)]
pub(crate) struct AnomalyDetector {
    config: AnomalyConfig,
    keys: DashMap<KeyId, Mutex<KeyState>>,
    /// The minute of the last eviction sweep: at most one a minute, so a full table does
    /// not cost a sweep per verification.
    last_sweep: std::sync::atomic::AtomicI64,
}

/// A /24 (IPv4) or /48 (IPv6) as one number, tagged so the two never collide.
fn network_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => (1u128 << 64) | u128::from(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            match v6.to_ipv4_mapped() {
                Some(v4) => network_of(IpAddr::V4(v4)),
                None => (bits & !((1u128 << 80) - 1)) | 2,
            }
        }
    }
}

fn network_text(network: u128) -> String {
    if network & 3 == 2 {
        let prefix = std::net::Ipv6Addr::from(network & !3);
        format!("{prefix}/48")
    } else {
        #[allow(clippy::cast_possible_truncation)] // the low 32 bits hold the address
        let v4 = std::net::Ipv4Addr::from(network as u32);
        format!("{v4}/24")
    }
}

impl AnomalyDetector {
    pub(crate) fn new(config: AnomalyConfig) -> Self {
        Self {
            config,
            keys: DashMap::new(),
            last_sweep: std::sync::atomic::AtomicI64::new(i64::MIN),
        }
    }

    /// Notes one verified use of `lineage` (rotations keep their history) and answers what
    /// looked unusual about it.
    pub(crate) fn observe(
        &self,
        lineage: &KeyId,
        client_ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Vec<Anomaly> {
        let minute = now.timestamp().div_euclid(60);
        if let Some(entry) = self.keys.get(lineage) {
            let mut state = entry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return self.update(&mut state, client_ip, minute);
        }
        if !self.make_room(minute) {
            return Vec::new();
        }
        let entry = self.keys.entry(lineage.clone()).or_insert_with(|| {
            Mutex::new(KeyState {
                minute,
                in_minute: 0,
                usual: 0.0,
                minutes_seen: 0,
                spike_reported: false,
                uses: 0,
                network_reported: None,
                networks: Vec::new(),
            })
        });
        let mut state = entry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.update(&mut state, client_ip, minute)
    }

    fn update(&self, state: &mut KeyState, client_ip: Option<IpAddr>, minute: i64) -> Vec<Anomaly> {
        let mut found = Vec::new();
        self.count(state, minute, &mut found);
        if let Some(ip) = client_ip {
            self.place(state, network_of(ip), minute, &mut found);
        }
        state.uses = state.uses.saturating_add(1);
        found
    }

    fn count(&self, state: &mut KeyState, minute: i64, found: &mut Vec<Anomaly>) {
        if minute > state.minute {
            // Close the minute just ended, then the quiet ones after it (capped: after a
            // long silence the average is ~0 either way).
            let quiet = (minute - state.minute - 1).min(600);
            state.usual = state.usual * (1.0 - ALPHA) + f64::from(state.in_minute) * ALPHA;
            #[allow(clippy::cast_possible_truncation)] // at most 600
            let decay = (1.0 - ALPHA).powi(quiet as i32);
            state.usual *= decay;
            state.minutes_seen = state
                .minutes_seen
                .saturating_add(1)
                .saturating_add(u32::try_from(quiet).unwrap_or(u32::MAX));
            state.minute = minute;
            state.in_minute = 0;
            state.spike_reported = false;
        }
        state.in_minute = state.in_minute.saturating_add(1);
        let threshold = (state.usual * self.config.spike_factor)
            .max(f64::from(self.config.min_spike_per_minute));
        if !state.spike_reported
            && state.minutes_seen >= self.config.warmup_minutes
            && f64::from(state.in_minute) > threshold
        {
            state.spike_reported = true;
            found.push(Anomaly::RateSpike {
                per_minute: state.in_minute,
                usual_per_minute: state.usual,
            });
        }
    }

    fn place(&self, state: &mut KeyState, network: u128, minute: i64, found: &mut Vec<Anomaly>) {
        if let Some(seen) = state.networks.iter_mut().find(|(n, _)| *n == network) {
            seen.1 = minute;
            return;
        }
        if state.uses >= self.config.network_warmup_uses
            && state
                .network_reported
                .is_none_or(|at| minute - at >= NETWORK_REPORT_MINUTES)
        {
            state.network_reported = Some(minute);
            found.push(Anomaly::NewNetwork {
                network: network_text(network),
            });
        }
        if state.networks.len() >= self.config.max_networks {
            // Forget the least recently seen network.
            if let Some(oldest) = state
                .networks
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(i, _)| i)
            {
                state.networks.swap_remove(oldest);
            }
        }
        state.networks.push((network, minute));
    }

    /// Whether a new key may be watched: there is room, or keys idle for an hour were
    /// dropped to make some.
    fn make_room(&self, minute: i64) -> bool {
        use std::sync::atomic::Ordering;
        if self.keys.len() < self.config.max_keys {
            return true;
        }
        let last = self.last_sweep.load(Ordering::Relaxed);
        if last >= minute
            || self
                .last_sweep
                .compare_exchange(last, minute, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        self.keys.retain(|_, state| {
            let state = state
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            minute - state.minute < IDLE_EVICT_MINUTES
        });
        self.keys.len() < self.config.max_keys
    }

    /// Keys watched now.
    #[cfg(test)]
    fn watched(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn id(n: u32) -> KeyId {
        KeyId::new(&format!("anomaly{n:05}")).unwrap()
    }

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_steady_rate_is_quiet_and_a_tenfold_burst_is_reported_once() {
        let d = AnomalyDetector::new(AnomalyConfig::new().warmup_minutes(30));
        let key = id(1);
        let mut now = start();
        for _ in 0..60 {
            for _ in 0..10 {
                assert!(
                    d.observe(&key, None, now).is_empty(),
                    "steady 10/min is usual"
                );
            }
            now += TimeDelta::minutes(1);
        }
        let mut spikes = 0;
        for _ in 0..300 {
            spikes += d.observe(&key, None, now).len();
        }
        assert_eq!(spikes, 1, "one report per minute at most");
        // The burst raised the usual rate (to 0.9 * 10 + 0.1 * 300 = 39 a minute): the same
        // burst again is below ten times that, a bigger one is reported again.
        now += TimeDelta::minutes(1);
        let same: usize = (0..300).map(|_| d.observe(&key, None, now).len()).sum();
        assert_eq!(same, 0);
        now += TimeDelta::minutes(1);
        let bigger: usize = (0..1000).map(|_| d.observe(&key, None, now).len()).sum();
        assert_eq!(bigger, 1);
    }

    #[test]
    fn nothing_is_judged_before_the_warmup_or_below_the_floor() {
        let d = AnomalyDetector::new(AnomalyConfig::new().warmup_minutes(5));
        let key = id(2);
        let now = start();
        let early: usize = (0..1000).map(|_| d.observe(&key, None, now).len()).sum();
        assert_eq!(early, 0, "no history yet");
        // A quiet key (1 a minute) going to 30 a minute stays below the floor of 60.
        let d = AnomalyDetector::new(AnomalyConfig::new().warmup_minutes(5));
        let mut now = start();
        for _ in 0..10 {
            d.observe(&key, None, now);
            now += TimeDelta::minutes(1);
        }
        let burst: usize = (0..30).map(|_| d.observe(&key, None, now).len()).sum();
        assert_eq!(burst, 0);
    }

    #[test]
    fn a_new_network_is_reported_after_the_warmup_and_not_before() {
        let d = AnomalyDetector::new(AnomalyConfig::new().network_warmup_uses(5));
        let key = id(3);
        let now = start();
        let home: IpAddr = "198.51.100.7".parse().unwrap();
        let same_24: IpAddr = "198.51.100.200".parse().unwrap();
        for _ in 0..5 {
            assert!(d.observe(&key, Some(home), now).is_empty());
        }
        assert!(d.observe(&key, Some(same_24), now).is_empty(), "same /24");
        let away: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            d.observe(&key, Some(away), now),
            [Anomaly::NewNetwork {
                network: "203.0.113.0/24".into()
            }]
        );
        assert!(d.observe(&key, Some(away), now).is_empty(), "known now");
        // Another new network within the hour is learned, not reported again.
        let third: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(
            d.observe(&key, Some(third), now).is_empty(),
            "one report an hour"
        );
        let now = now + TimeDelta::minutes(61);
        let v6: IpAddr = "2001:db8:1234:5678::1".parse().unwrap();
        assert_eq!(
            d.observe(&key, Some(v6), now),
            [Anomaly::NewNetwork {
                network: "2001:db8:1234::/48".into()
            }]
        );
        let mapped: IpAddr = "::ffff:198.51.100.9".parse().unwrap();
        assert!(
            d.observe(&key, Some(mapped), now).is_empty(),
            "IPv4-mapped is the /24"
        );
    }

    #[test]
    fn memory_stays_bounded_per_key_and_in_keys() {
        let d = AnomalyDetector::new(AnomalyConfig::new().max_networks(4).max_keys(10));
        let key = id(4);
        let now = start();
        for n in 0..1000u32 {
            let [_, _, high, low] = n.to_be_bytes();
            let ip = IpAddr::from([10, high, low, 1]);
            d.observe(&key, Some(ip), now);
        }
        let networks = d.keys.get(&key).unwrap().lock().unwrap().networks.len();
        assert_eq!(networks, 4);
        for n in 0..100 {
            d.observe(&id(100 + n), None, now);
        }
        assert_eq!(d.watched(), 10, "no more keys than max_keys");
        // An hour later the idle keys make room.
        let later = now + TimeDelta::minutes(61);
        d.observe(&id(999), None, later);
        assert!(d.keys.contains_key(&id(999)));
        assert!(d.watched() <= 10);
    }
}
