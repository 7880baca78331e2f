//! SIGINT and SIGTERM (Ctrl-C, Ctrl-Break and closing the console on Windows) during `rotate`
//! and `resume`. The first one asks the run to stop: no BMC
//! job or phase starts after it, the steps already sent finish (a change is always verified and
//! journalled), and the command ends with what to run next. A second signal, or steps that do not
//! finish within [`GRACE`], end the process at once — as safe as a crash, since every journal
//! record is durable before the step after it starts, and `resume` converges from there.

use super::exit;
use crate::fleet::cancel::Cancel;
use crate::fleet::engine::Observer;
use crate::fleet::journal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long the steps under way may take to finish after the first signal. A plugin call is
/// bounded by its own deadline; this bounds a BMC that keeps answering slowly.
pub const GRACE: Duration = Duration::from_secs(60);

/// Watches for the signals until the returned guard drops. `journals` are where the runs (one
/// per stamp) record what they did (for the next command to run).
pub fn watch(cancel: Cancel, journals: Vec<PathBuf>, observer: Arc<dyn Observer>) -> Result<Guard, String> {
    let mut requests = crate::platform::StopRequests::listen()?;
    let task = tokio::spawn(async move {
        let first = requests.next().await;
        cancel.cancel();
        observer.note(&format!(
            "{first}: stopping — no new BMC is started, the steps under way finish (at most {} s); a second signal \
             stops at once",
            GRACE.as_secs()
        ));
        let why = tokio::select! {
            _ = requests.next() => "a second signal",
            () = tokio::time::sleep(GRACE) => "the steps under way did not finish in time",
        };
        abort(why, &journals);
    });
    Ok(Guard(task))
}

/// Ends the process now, saying what the journals hold and what to run next.
fn abort(why: &str, journals: &[PathBuf]) -> ! {
    let changed: Vec<&PathBuf> = journals.iter().filter(|j| journal::any_change(j)).collect();
    if !changed.is_empty() {
        eprintln!("aborted ({why}): BMCs may have changed");
        for journal in changed {
            eprintln!("run: bmc-rotate resume --journal {}", crate::fleet::lock::printable(&journal.to_string_lossy()));
        }
        std::process::exit(i32::from(exit::NEEDS_RESUME));
    }
    eprintln!("aborted ({why}): nothing was changed");
    std::process::exit(i32::from(exit::FAILED));
}

/// Stops watching when dropped (the command is over).
pub struct Guard(tokio::task::JoinHandle<()>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
