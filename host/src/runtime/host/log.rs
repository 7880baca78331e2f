//! `log`: the guest's diagnostics, scrubbed of the job's secrets, escaped, bounded, and routed
//! into the host's log with the job's plugin and BMC attached.
//!
//! Every bound is applied before any work that grows with the guest's input: a line is cut
//! before it is scrubbed, and lines past the per-job cap are only counted.

use crate::gateway::redact::Redactor;
use crate::runtime::contract::{MAX_MESSAGE_LEN, untrusted};
use crate::runtime::limits::JobLimits;

/// Longest guest log message kept; the rest is cut.
pub const MAX_LOG_MESSAGE: usize = MAX_MESSAGE_LEN;
/// Most guest log lines kept per job with the outcome.
pub const MAX_LOG_LINES: usize = 256;
/// Most guest log lines one job sends to the host's log; the rest are counted and reported as
/// one line when the job ends, so a plugin cannot flood the operator's terminal or disk.
pub const MAX_LOG_EMITTED: u32 = 1000;

/// Severity of a guest log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

/// One line the guest logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestLogLine {
    /// Severity.
    pub level: Level,
    /// The message, scrubbed of the job's secrets.
    pub message: String,
}

/// What a job's guest logged.
pub struct LogCtx {
    plugin: String,
    bmc: String,
    pub(crate) lines: Vec<GuestLogLine>,
    pub(crate) panic_message: Option<String>,
    emitted: u32,
    pub(crate) suppressed: u64,
}

impl LogCtx {
    /// An empty log for `plugin` working on `bmc`.
    pub fn new(plugin: &str, bmc: String) -> LogCtx {
        LogCtx { plugin: plugin.to_owned(), bmc, lines: Vec::new(), panic_message: None, emitted: 0, suppressed: 0 }
    }

    /// Says, once, how many lines the cap kept out of the host's log.
    pub(crate) fn report_suppressed(&self) {
        if self.suppressed > 0 {
            tracing::warn!(
                target: "plugin",
                plugin = %self.plugin,
                bmc = %self.bmc,
                "{} more log lines from this call were suppressed (at most {MAX_LOG_EMITTED} per call)",
                self.suppressed
            );
        }
    }
}

/// The `log` import over one job's log and redactor.
pub struct LogView<'a> {
    pub(crate) ctx: &'a mut LogCtx,
    pub(crate) redactor: &'a Redactor,
    pub(crate) limits: &'a mut JobLimits,
}

impl LogView<'_> {
    /// Writes one line; traps when the lines kept would pass the job's memory budget.
    pub fn log(&mut self, level: Level, message: &str) -> wasmtime::Result<()> {
        if self.ctx.emitted >= MAX_LOG_EMITTED {
            self.ctx.suppressed += 1;
            return Ok(());
        }
        self.ctx.emitted += 1;
        // Keep enough past the cut for a secret straddling it to be found whole.
        let head = prefix(message, MAX_LOG_MESSAGE.saturating_add(self.redactor.longest()));
        let message = untrusted(&self.redactor.scrub_str(head), MAX_LOG_MESSAGE);
        let (plugin, bmc) = (&self.ctx.plugin, &self.ctx.bmc);
        match level {
            Level::Trace => tracing::trace!(target: "plugin", %plugin, %bmc, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", %plugin, %bmc, "{message}"),
            Level::Info => tracing::info!(target: "plugin", %plugin, %bmc, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", %plugin, %bmc, "{message}"),
            Level::Error => tracing::error!(target: "plugin", %plugin, %bmc, "{message}"),
        }
        // The SDK's panic hook reports through this import just before the guest aborts.
        if level == Level::Error && message.starts_with("plugin panicked at") {
            self.ctx.panic_message = Some(message.clone());
        }
        if self.ctx.lines.len() < MAX_LOG_LINES {
            self.limits.charge(message.len())?;
            self.ctx.lines.push(GuestLogLine { level, message });
        }
        Ok(())
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn logs_are_scrubbed_bounded_and_panics_recorded() {
        const PASSWORD: &str = r#"Old"Pass\1ü"#;
        let mut redactor = Redactor::new();
        redactor.add_secret(&SecretString::from(PASSWORD.to_owned()));
        let mut ctx = LogCtx::new("test", "-".into());
        let mut limits = JobLimits::new(64 << 20);
        let mut view = LogView { ctx: &mut ctx, redactor: &redactor, limits: &mut limits };
        view.log(Level::Info, &format!("pw={PASSWORD}")).unwrap();
        view.log(Level::Warn, &"é".repeat(MAX_LOG_MESSAGE)).unwrap();
        view.log(Level::Error, "plugin panicked at src/lib.rs:1:1:\nboom").unwrap();
        // A secret straddling the cut is still found whole.
        view.log(Level::Info, &format!("{}{PASSWORD}", "x".repeat(MAX_LOG_MESSAGE - 3))).unwrap();
        view.log(Level::Info, "forged\r\n2026-01-01 INFO fake \u{1b}[31mline").unwrap();
        for _ in 0..MAX_LOG_EMITTED {
            view.log(Level::Debug, "x").unwrap();
        }
        assert_eq!(ctx.lines[0].message, "pw=<redacted>");
        assert!(ctx.lines[1].message.len() <= MAX_LOG_MESSAGE + '…'.len_utf8());
        assert_eq!(ctx.panic_message.as_deref(), Some("plugin panicked at src/lib.rs:1:1:\\u{a}boom"));
        assert!(!ctx.lines[3].message.contains("Old"), "{}", ctx.lines[3].message);
        assert_eq!(ctx.lines[4].message, "forged\\u{d}\\u{a}2026-01-01 INFO fake \\u{1b}[31mline");
        assert_eq!(ctx.lines.len(), MAX_LOG_LINES);
        assert_eq!(ctx.suppressed, 5, "five lines past the cap were counted, not written");
        assert!(limits.host_bytes() >= ctx.lines.iter().map(|l| l.message.len()).sum::<usize>());
    }

    #[test]
    fn kept_lines_are_charged_to_the_job() {
        let redactor = Redactor::new();
        let mut ctx = LogCtx::new("test", "-".into());
        let mut limits = JobLimits::new(64 << 10);
        let mut view = LogView { ctx: &mut ctx, redactor: &redactor, limits: &mut limits };
        let line = "y".repeat(MAX_LOG_MESSAGE);
        let refused = (0..MAX_LOG_LINES).map(|_| view.log(Level::Info, &line)).find_map(Result::err);
        assert!(refused.expect("64 KiB holds fewer than 256 lines of 4 KiB").to_string().contains("memory limit"));
    }
}
