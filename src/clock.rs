//! The one source of time: every expiry, grace period, cache TTL and rate limit reads it.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeDelta, Utc};

/// Wall-clock time for the crate. Implement it to take time from elsewhere; use
/// [`ManualClock`] in tests so that time-dependent behaviour is exact.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The current time as nanoseconds since the Unix epoch (negative before it), for hot
    /// paths that do arithmetic on time and want no calendar conversion (the rate limiter
    /// reads time only through this).
    ///
    /// The default converts [`now`](Clock::now) (saturating outside 1677..2262), so every
    /// implementation has it; [`ManualClock`] returns its stored value directly, and
    /// [`SystemClock`] reads a calibrated TSC clock anchored to the wall clock (see there).
    fn now_unix_nanos(&self) -> i64 {
        to_nanos(self.now())
    }
}

/// The operating system's clock.
///
/// [`now`](Clock::now) is the wall clock (`Utc::now`).
/// [`now_unix_nanos`](Clock::now_unix_nanos), which the rate limiter reads on every check,
/// trades a little accuracy for speed: it is the [quanta](https://docs.rs/quanta) clock
/// (the CPU's time-stamp counter, calibrated against the monotonic clock once per process
/// at first use, which takes a few milliseconds and at most 200; the monotonic clock where
/// no usable TSC exists) plus an offset to wall time that is re-read from the system clock
/// at most once per second. It therefore follows wall-clock steps (NTP, manual changes)
/// within a second, and between re-anchorings it drifts from the wall clock only by the
/// TSC calibration error (parts per million: microseconds per second); a re-anchoring can
/// step it back by that much. On this crate's test VM it costs about a third of
/// `SystemTime::now` (11 ns against 30).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    #[inline]
    fn now_unix_nanos(&self) -> i64 {
        static FAST: OnceLock<FastWall> = OnceLock::new();
        FAST.get_or_init(FastWall::new).now()
    }
}

/// Wall time from the quanta clock plus an offset re-anchored to `SystemTime` each second.
///
/// The counter can also move backwards (a resume from suspend resets it; so can a virtual
/// machine's snapshot restore or migration): a reading more than one anchoring interval
/// behind the last one, or below the origin, re-reads the system clock and starts again from
/// it, so the fast path never reports a time frozen in the past. Authorization decisions
/// (expiry, not-before, grace periods) rest on it.
struct FastWall {
    clock: quanta::Clock,
    /// Raw counter value readings are measured from (reset when the counter falls below it).
    origin: AtomicU64,
    /// Wall-clock nanoseconds minus nanoseconds since `origin`, as of the last anchoring.
    /// One word, so readers never see half of an update; stored before `origin` on a rebase
    /// (release/acquire), so a reader that sees a new origin sees its offset.
    offset: AtomicI64,
    /// Nanoseconds since `origin` at which to re-anchor.
    next_anchor: AtomicU64,
}

/// How often [`FastWall`] re-reads the system clock.
const ANCHOR_EVERY_NS: u64 = 1_000_000_000;

impl FastWall {
    fn new() -> Self {
        Self::with(quanta::Clock::new())
    }

    fn with(clock: quanta::Clock) -> Self {
        let origin = clock.raw();
        Self {
            clock,
            origin: AtomicU64::new(origin),
            offset: AtomicI64::new(system_nanos()),
            next_anchor: AtomicU64::new(ANCHOR_EVERY_NS),
        }
    }

    #[inline]
    fn now(&self) -> i64 {
        let raw = self.clock.raw();
        let origin = self.origin.load(Ordering::Acquire);
        if raw < origin {
            return self.rebase(raw);
        }
        let since = self.clock.delta_as_nanos(origin, raw);
        let next = self.next_anchor.load(Ordering::Relaxed);
        // Past the interval, or back by more than one: read the system clock again.
        if since >= next || since.saturating_add(ANCHOR_EVERY_NS) < next {
            self.anchor(since);
        }
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        since.saturating_add(self.offset.load(Ordering::Acquire))
    }

    /// Re-reads the system clock. Racing re-anchorings each store a consistent offset (one
    /// word); any of them will do.
    #[cold]
    fn anchor(&self, since: u64) {
        self.next_anchor
            .store(since.saturating_add(ANCHOR_EVERY_NS), Ordering::Relaxed);
        let offset = system_nanos().saturating_sub(i64::try_from(since).unwrap_or(i64::MAX));
        self.offset.store(offset, Ordering::Release);
    }

    /// The counter fell below the origin: start again from `raw`, answering the system
    /// clock itself for this reading.
    #[cold]
    fn rebase(&self, raw: u64) -> i64 {
        let now = system_nanos();
        self.offset.store(now, Ordering::Release);
        self.next_anchor.store(ANCHOR_EVERY_NS, Ordering::Relaxed);
        self.origin.store(raw, Ordering::Release);
        now
    }
}

/// `SystemTime::now` in nanoseconds since the Unix epoch, saturating.
fn system_nanos() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// A clock that moves only when told. Clones share the same time.
///
/// ```
/// use chrono::TimeDelta;
/// use keymint::{Clock, ManualClock};
///
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse()?);
/// let shared = clock.clone();
/// clock.advance(TimeDelta::seconds(90));
/// assert_eq!(shared.now().to_rfc3339(), "2026-01-01T00:01:30+00:00");
/// # Ok::<(), chrono::ParseError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    nanos: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start` (nanosecond precision; dates from 1677 to 2262).
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            nanos: Arc::new(AtomicI64::new(to_nanos(start))),
        }
    }

    /// Moves the clock forward (or back, for a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        let delta = by.num_nanoseconds().unwrap_or(i64::MAX);
        self.nanos.fetch_add(delta, Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        self.nanos.store(to_nanos(to), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    /// A clock at 2026-01-01T00:00:00Z.
    fn default() -> Self {
        Self::new(DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn now_unix_nanos(&self) -> i64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

/// Any clock, shared by clones: what the keyring holds, so that it, its in-memory rate
/// limiter and its failed-attempt throttle read one time.
///
/// A concrete type rather than `Arc<dyn Clock>`: futures holding a `dyn Clock` behind a
/// generic parameter can lose their `Send` proof in rustc's region erasure, which would make
/// `Keyring::verify` unusable in spawned tasks. The system clock is read without a virtual
/// call.
#[derive(Clone)]
pub struct SharedClock(Shared);

#[derive(Clone)]
enum Shared {
    System,
    Other(Arc<dyn Clock>),
}

impl SharedClock {
    /// Shares `clock`.
    pub fn new<C: Clock>(clock: C) -> Self {
        if std::any::TypeId::of::<C>() == std::any::TypeId::of::<SystemClock>() {
            Self(Shared::System)
        } else {
            Self(Shared::Other(Arc::new(clock)))
        }
    }
}

impl Default for SharedClock {
    /// The system clock.
    fn default() -> Self {
        Self(Shared::System)
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Shared::System => f.write_str("SharedClock(SystemClock)"),
            Shared::Other(clock) => write!(f, "SharedClock({clock:?})"),
        }
    }
}

impl Clock for SharedClock {
    fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Shared::System => SystemClock.now(),
            Shared::Other(clock) => clock.now(),
        }
    }

    #[inline]
    fn now_unix_nanos(&self) -> i64 {
        match &self.0 {
            Shared::System => SystemClock.now_unix_nanos(),
            Shared::Other(clock) => clock.now_unix_nanos(),
        }
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }

    fn now_unix_nanos(&self) -> i64 {
        (**self).now_unix_nanos()
    }
}

fn to_nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_exact_and_shared() {
        let clock = ManualClock::default();
        let start = clock.now();
        let other = clock.clone();
        other.advance(TimeDelta::milliseconds(1500));
        assert_eq!(clock.now() - start, TimeDelta::milliseconds(1500));
        clock.set(start);
        assert_eq!(other.now(), start);
    }

    #[test]
    fn manual_clock_unix_nanos_is_exact() {
        let clock = ManualClock::new("2026-03-01T12:00:00.000000007Z".parse().unwrap());
        assert_eq!(clock.now_unix_nanos(), 1_772_366_400_000_000_007);
        clock.advance(TimeDelta::nanoseconds(-8));
        assert_eq!(clock.now_unix_nanos(), 1_772_366_399_999_999_999);
        let arc: Arc<dyn Clock> = Arc::new(clock.clone());
        assert_eq!(arc.now_unix_nanos(), clock.now_unix_nanos());
        assert_eq!(to_nanos(arc.now()), arc.now_unix_nanos());
    }

    /// A clock that only implements `now` gets the default conversion.
    #[derive(Debug)]
    struct Fixed(DateTime<Utc>);

    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    #[test]
    fn default_unix_nanos_converts_now_and_saturates() {
        let t: DateTime<Utc> = "1969-12-31T23:59:59.5Z".parse().unwrap();
        assert_eq!(Fixed(t).now_unix_nanos(), -500_000_000);
        let far: DateTime<Utc> = "9999-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(Fixed(far).now_unix_nanos(), i64::MAX);
        let past: DateTime<Utc> = "0001-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(Fixed(past).now_unix_nanos(), i64::MIN);
    }

    #[test]
    fn system_clock_fast_path_tracks_the_wall_clock() {
        // Bracket the fast reading between two system reads; allow 5 ms for the TSC
        // calibration error and scheduling. Never steps back by more than a re-anchoring's
        // correction over a run of reads.
        let before = system_nanos();
        let fast = SystemClock.now_unix_nanos();
        let after = system_nanos();
        assert!(
            fast >= before - 5_000_000 && fast <= after + 5_000_000,
            "{before} {fast} {after}"
        );
        let mut last = SystemClock.now_unix_nanos();
        for _ in 0..1000 {
            let t = SystemClock.now_unix_nanos();
            assert!(t >= last - 1_000_000, "{last} then {t}");
            last = t;
        }
    }

    #[test]
    fn the_fast_clock_follows_a_counter_that_jumps_backwards() {
        let (clock, mock) = quanta::Clock::mock();
        mock.increment(std::time::Duration::from_secs(3600));
        let wall = FastWall::with(clock);
        let close = |reading: i64| (reading - system_nanos()).abs() < 5_000_000_000;
        mock.increment(std::time::Duration::from_secs(10));
        assert!(
            close(wall.now()),
            "ten seconds on: re-anchored to the system clock"
        );
        // The counter resets (a resume from suspend): below the origin.
        mock.decrement(std::time::Duration::from_secs(3000));
        assert!(close(wall.now()), "not frozen at the process start");
        mock.increment(std::time::Duration::from_millis(500));
        assert!(close(wall.now()));
        // Back by more than an interval, but above the origin.
        mock.increment(std::time::Duration::from_secs(20));
        assert!(close(wall.now()));
        mock.decrement(std::time::Duration::from_secs(15));
        assert!(close(wall.now()), "a backwards jump re-anchors");
    }
}
