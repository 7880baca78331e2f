//! A stop request (SIGINT or SIGTERM from the operator): once set, no BMC job starts and no
//! phase begins; the steps already sent finish and are journalled, so the run stops at a point
//! `resume` converges from. Shared by every job of a run; setting it twice is harmless.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The run's stop flag.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag nobody has set.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks the run to stop starting new work.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_the_stop() {
        let cancel = Cancel::new();
        let job = cancel.clone();
        assert!(!job.is_cancelled());
        cancel.cancel();
        assert!(job.is_cancelled() && cancel.is_cancelled());
    }
}
