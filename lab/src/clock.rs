//! The lab's clock: real time plus an offset tests can advance, so lockout periods, login delays
//! and minimum change intervals are tested without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic clock shared by every simulated BMC of a lab.
#[derive(Clone, Debug)]
pub struct LabClock {
    start: Instant,
    offset_ms: Arc<AtomicU64>,
}

impl Default for LabClock {
    fn default() -> Self {
        LabClock { start: Instant::now(), offset_ms: Arc::new(AtomicU64::new(0)) }
    }
}

impl LabClock {
    /// Time since the lab started, plus every advance.
    pub fn now(&self) -> Duration {
        self.start.elapsed() + Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward (e.g. past a lockout period).
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}
