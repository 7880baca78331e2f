//! `clock`: wall time as the host tells it, and sleeps cut short at the job's deadline.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a job's wall-clock time comes from: the system's, or a fixed one in tests.
pub trait WallClock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
    }
}

impl fmt::Debug for dyn WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WallClock({} ms)", self.now_ms())
    }
}

/// A job's clock: the wall clock the runtime was given, and the job's deadline.
pub struct ClockCtx {
    clock: Arc<dyn WallClock>,
    deadline: Instant,
}

impl ClockCtx {
    /// A clock for a job that must end by `deadline`.
    pub fn new(clock: Arc<dyn WallClock>, deadline: Instant) -> ClockCtx {
        ClockCtx { clock, deadline }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Waits `ms` milliseconds, or until the deadline if that comes first: a plugin's back-off
    /// never outlives its job.
    pub async fn sleep_ms(&self, ms: u32) {
        let wanted = Duration::from_millis(ms.into());
        let left = self.deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(wanted.min(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u64);

    impl WallClock for Fixed {
        fn now_ms(&self) -> u64 {
            self.0
        }
    }

    #[tokio::test]
    async fn sleep_is_cut_at_the_deadline() {
        let clock = ClockCtx::new(Arc::new(SystemClock), Instant::now() + Duration::from_millis(100));
        let started = Instant::now();
        clock.sleep_ms(60_000).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(clock.now_ms() > 1_600_000_000_000);
    }

    #[test]
    fn the_wall_clock_is_the_injected_one() {
        let clock = ClockCtx::new(Arc::new(Fixed(1_234)), Instant::now());
        assert_eq!(clock.now_ms(), 1_234);
    }
}
