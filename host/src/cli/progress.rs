//! Showing a run as it goes: on stderr a progress bar per phase on a terminal, one plain line
//! per event otherwise (CI logs, pipes); or, for `--output jsonl`, one JSON object per event on
//! stdout. Never a secret: only names, counts and messages the layers below already scrubbed.

use crate::fleet::engine::{Observer, Phase};
use crate::pep::{PepEvent, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

/// Progress bars on a terminal, lines elsewhere, or JSON events.
pub struct Display {
    bar: Mutex<Option<(Phase, ProgressBar)>>,
    tty: bool,
    /// `--output jsonl`: events on stdout instead of anything on stderr.
    events: bool,
    /// The BMCs being worked on in the current phase, in the order they started.
    in_flight: Mutex<Vec<String>>,
    /// With several stamps at once: the stamp, on every line and event.
    stamp: Option<String>,
}

impl Display {
    /// Chooses bars when stderr is a terminal.
    pub fn new() -> Arc<Display> {
        Arc::new(Display {
            bar: Mutex::new(None),
            tty: std::io::stderr().is_terminal(),
            events: false,
            in_flight: Mutex::default(),
            stamp: None,
        })
    }

    /// One of several stamps run at once: plain lines tagged `[STAMP]` (bars of stamps running
    /// side by side would overwrite each other), or events carrying `"stamp"`.
    pub fn for_stamp(stamp: &str, events: bool) -> Arc<Display> {
        Arc::new(Display {
            bar: Mutex::new(None),
            tty: false,
            events,
            in_flight: Mutex::default(),
            stamp: Some(stamp.to_owned()),
        })
    }

    /// `[STAMP] ` before each line when several stamps run at once.
    fn tag(&self) -> String {
        self.stamp.as_ref().map(|s| format!("[{s}] ")).unwrap_or_default()
    }

    /// One JSON object per event on stdout (`--output jsonl`).
    pub fn events() -> Arc<Display> {
        Arc::new(Display { bar: Mutex::new(None), tty: false, events: true, in_flight: Mutex::default(), stamp: None })
    }

    /// Writes one event line; the current phase is added to BMC events.
    pub fn event(&self, mut event: serde_json::Value) {
        use std::io::Write;
        if let Some((phase, _)) = &*self.bar.lock().expect("bar")
            && event["event"] == "bmc"
        {
            event["phase"] = serde_json::to_value(phase).expect("a word");
        }
        if let Some(stamp) = &self.stamp {
            event["stamp"] = stamp.as_str().into();
        }
        // One write per line, flushed: a reader follows the run as it goes.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{event}").and_then(|()| out.flush());
    }

    /// Runs `f` with the bars hidden, so what it writes to the terminal stays readable.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &*self.bar.lock().expect("bar") {
            Some((_, bar)) if self.tty => bar.suspend(f),
            _ => f(),
        }
    }

    /// The bar's message: which BMCs are in flight — at high latency the bar may not move for a
    /// while, and the operator should see what it waits for.
    fn show_in_flight(&self, bar: &ProgressBar) {
        let names = self.in_flight.lock().expect("in flight");
        let message = match names.len() {
            0 => String::new(),
            1..=4 => format!("in flight: {}", names.join(", ")),
            n => format!("in flight: {} and {} more", names[..3].join(", "), n - 3),
        };
        bar.set_message(message);
    }

    fn line(&self, text: &str) {
        if self.events {
            return self.event(serde_json::json!({ "event": "note", "text": text }));
        }
        match &*self.bar.lock().expect("bar") {
            Some((_, bar)) if self.tty => bar.println(text),
            _ => eprintln!("{}{text}", self.tag()),
        }
    }
}

impl Observer for Display {
    fn phase(&self, phase: Phase, total: usize) {
        if self.events {
            self.event(serde_json::json!({ "event": "phase", "phase": phase, "total": total }));
            let bar = ProgressBar::hidden();
            *self.bar.lock().expect("bar") = Some((phase, bar));
            return;
        }
        self.in_flight.lock().expect("in flight").clear();
        let mut slot = self.bar.lock().expect("bar");
        if let Some((_, bar)) = slot.take() {
            bar.finish();
        }
        if !self.tty {
            eprintln!("{}== {} ({total})", self.tag(), phase.label());
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12.bold} [{bar:30}] {pos}/{len} {elapsed:>4} {wide_msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(phase.label());
        *slot = Some((phase, bar));
    }

    fn started(&self, bmc: &str) {
        if self.events || !self.tty {
            return;
        }
        self.in_flight.lock().expect("in flight").push(bmc.to_owned());
        if let Some((_, bar)) = &*self.bar.lock().expect("bar") {
            self.show_in_flight(bar);
        }
    }

    fn advanced(&self, bmc: &str, ok: bool, detail: &str) {
        if self.events {
            return self.event(serde_json::json!({ "event": "bmc", "bmc": bmc, "ok": ok, "detail": detail }));
        }
        self.in_flight.lock().expect("in flight").retain(|b| b != bmc);
        let slot = self.bar.lock().expect("bar");
        match &*slot {
            Some((phase, bar)) if self.tty => {
                bar.inc(1);
                self.show_in_flight(bar);
                if !ok {
                    bar.println(format!("{:>12} {bmc}: {detail}", phase.label()));
                }
            }
            _ => {
                let status = if ok { "ok" } else { "FAILED" };
                let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
                eprintln!("{}  {bmc}: {status}{detail}", self.tag());
            }
        }
    }

    fn note(&self, text: &str) {
        self.line(text);
    }

    fn pep_progress(&self) -> Progress {
        let stamp = self.stamp.clone();
        if self.events {
            return Arc::new(move |event: PepEvent| {
                let text = super::pep::describe_event(event);
                let mut line = serde_json::json!({ "event": "pep", "text": text });
                if let Some(stamp) = &stamp {
                    line["stamp"] = stamp.as_str().into();
                }
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            });
        }
        let tty = self.tty;
        let tag = self.tag();
        let bar = self.bar.lock().expect("bar").as_ref().map(|(_, b)| b.clone());
        Arc::new(move |event: PepEvent| {
            let text = super::pep::describe_event(event);
            match (&bar, tty) {
                (Some(bar), true) => bar.set_message(text),
                _ => eprintln!("{tag}  pep: {text}"),
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
