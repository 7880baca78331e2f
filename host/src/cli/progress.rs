//! Showing a run as it goes, on stderr: a progress bar per phase on a terminal, one plain line
//! per event otherwise (CI logs, pipes). Never a secret: only names, counts and messages the
//! layers below already scrubbed.

use crate::fleet::engine::{Observer, Phase};
use crate::pep::{PepEvent, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

/// Progress bars on a terminal, lines elsewhere.
pub struct Display {
    bar: Mutex<Option<(Phase, ProgressBar)>>,
    tty: bool,
}

impl Display {
    /// Chooses bars when stderr is a terminal.
    pub fn new() -> Arc<Display> {
        Arc::new(Display { bar: Mutex::new(None), tty: std::io::stderr().is_terminal() })
    }

    /// Runs `f` with the bars hidden, so what it writes to the terminal stays readable.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &*self.bar.lock().expect("bar") {
            Some((_, bar)) if self.tty => bar.suspend(f),
            _ => f(),
        }
    }

    fn line(&self, text: &str) {
        match &*self.bar.lock().expect("bar") {
            Some((_, bar)) if self.tty => bar.println(text),
            _ => eprintln!("{text}"),
        }
    }
}

impl Observer for Display {
    fn phase(&self, phase: Phase, total: usize) {
        let mut slot = self.bar.lock().expect("bar");
        if let Some((_, bar)) = slot.take() {
            bar.finish();
        }
        if !self.tty {
            eprintln!("== {} ({total})", phase.label());
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10.bold} [{bar:30}] {pos}/{len} {elapsed:>4} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(phase.label());
        *slot = Some((phase, bar));
    }

    fn advanced(&self, bmc: &str, ok: bool, detail: &str) {
        let slot = self.bar.lock().expect("bar");
        match &*slot {
            Some((phase, bar)) if self.tty => {
                bar.inc(1);
                bar.set_message(bmc.to_owned());
                if !ok {
                    bar.println(format!("{:>10} {bmc}: {detail}", phase.label()));
                }
            }
            _ => {
                let status = if ok { "ok" } else { "FAILED" };
                let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
                eprintln!("  {bmc}: {status}{detail}");
            }
        }
    }

    fn note(&self, text: &str) {
        self.line(text);
    }

    fn pep_progress(&self) -> Progress {
        let tty = self.tty;
        let bar = self.bar.lock().expect("bar").as_ref().map(|(_, b)| b.clone());
        Arc::new(move |event: PepEvent| {
            let text = super::pep::describe_event(event);
            match (&bar, tty) {
                (Some(bar), true) => bar.set_message(text),
                _ => eprintln!("  pep: {text}"),
            }
        })
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Some((_, bar)) = self.bar.lock().expect("bar").take() {
            bar.finish();
        }
    }
}
