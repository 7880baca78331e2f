//! `log`: the guest's diagnostics, scrubbed of the job's secrets, bounded, and routed into the
//! host's log with the job's plugin and BMC attached.

use crate::gateway::redact::Redactor;

/// Longest guest log message kept; the rest is cut.
pub const MAX_LOG_MESSAGE: usize = 4096;
/// Most guest log lines kept per job (all are also sent to tracing).
pub const MAX_LOG_LINES: usize = 256;

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
}

impl LogCtx {
    /// An empty log for `plugin` working on `bmc`.
    pub fn new(plugin: &str, bmc: String) -> LogCtx {
        LogCtx { plugin: plugin.to_owned(), bmc, lines: Vec::new(), panic_message: None }
    }
}

/// The `log` import over one job's log and redactor.
pub struct LogView<'a> {
    pub(crate) ctx: &'a mut LogCtx,
    pub(crate) redactor: &'a Redactor,
}

impl LogView<'_> {
    /// Writes one line.
    pub fn log(&mut self, level: Level, message: &str) {
        let mut message = self.redactor.scrub_str(message);
        if message.len() > MAX_LOG_MESSAGE {
            let mut cut = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
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
            self.ctx.lines.push(GuestLogLine { level, message });
        }
    }
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
        let mut view = LogView { ctx: &mut ctx, redactor: &redactor };
        view.log(Level::Info, &format!("pw={PASSWORD}"));
        view.log(Level::Warn, &"é".repeat(MAX_LOG_MESSAGE));
        view.log(Level::Error, "plugin panicked at src/lib.rs:1:1:\nboom");
        for _ in 0..MAX_LOG_LINES {
            view.log(Level::Debug, "x");
        }
        assert_eq!(ctx.lines[0].message, "pw=<redacted>");
        assert!(ctx.lines[1].message.len() <= MAX_LOG_MESSAGE + '…'.len_utf8());
        assert_eq!(ctx.panic_message.as_deref(), Some("plugin panicked at src/lib.rs:1:1:\nboom"));
        assert_eq!(ctx.lines.len(), MAX_LOG_LINES);
    }
}
