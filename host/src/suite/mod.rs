//! What a conformance run reports, whichever BMCs it runs against (bmc-lab personas in
//! `conformance`, an operator's own BMC in [`live`]): one [`Verdict`] per scenario, each
//! stating what it expected ([`Expected`]).
//!
//! Only the plugin's own answer can pass: a panic, a trap, a deadline, a memory limit or a secret
//! echoed by the BMC (every [`CallError`] but `Plugin`) fails whatever the scenario expects, and
//! so does an error of another kind. A failed verdict's detail starts with what was expected.

pub mod live;

use crate::fleet::profiles::{HardwareProfile, Profiles};
use crate::runtime::capabilities::Manifest;
use crate::runtime::{CallError, ErrorKind, Plugin};
use serde::Serialize;
use std::time::{Duration, Instant};

/// One scenario's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Scenario name.
    pub scenario: &'static str,
    /// Persona it ran against.
    pub persona: String,
    /// What the scenario expects (serialised as text: `success`, the error kinds such as
    /// `ambiguous` or `protocol or ambiguous`, or the manifest check).
    pub expected: Expected,
    /// Whether it passed.
    pub passed: bool,
    /// Wall-clock time (JSON: `elapsed_ms`).
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
    /// What was seen (the failure reason, or a short confirmation).
    pub detail: String,
}

/// What a scenario expects of the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The call succeeds (and the BMC shows its effect).
    Success,
    /// The call fails with the plugin's own typed error, of one of these kinds.
    Error(&'static [ErrorKind]),
    /// The capability manifest stays within what the plugin's profiles (or the baseline) grant.
    Manifest,
}

impl Expected {
    /// `Ok` with the value if the call succeeded; otherwise what it returned instead.
    pub(crate) fn success<T>(self, result: Result<T, CallError>) -> Result<T, String> {
        debug_assert_eq!(self, Expected::Success);
        result.map_err(|e| format!("got: {}", describe(&e)))
    }

    /// `Ok` with the plugin's message if the call failed with one of the expected kinds; a
    /// success, another kind or anything but the plugin's own error (panic, trap, deadline,
    /// memory, secret echoed) is a failure.
    pub(crate) fn error<T>(self, result: Result<T, CallError>) -> Result<String, String> {
        // A scenario that does not expect an error accepts none.
        let kinds: &[ErrorKind] = match self {
            Expected::Error(kinds) => kinds,
            Expected::Success | Expected::Manifest => &[],
        };
        match result {
            Ok(_) => Err("got: success".into()),
            Err(CallError::Plugin(p)) if kinds.contains(&p.kind) => {
                Ok(format!("`{}`: {}", p.kind.as_str(), p.message.chars().take(100).collect::<String>()))
            }
            Err(e) => Err(format!("got: {}", describe(&e))),
        }
    }
}

/// A call's failure, saying which kind of failure it is.
fn describe(error: &CallError) -> String {
    let text: String = error.to_string().chars().take(200).collect();
    match error {
        CallError::Plugin(p) => format!("`{}` error: {text}", p.kind.as_str()),
        CallError::SecretEchoed(_) => format!("secret echoed: {text}"),
        _ => text,
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::Success => f.write_str("success"),
            Expected::Error(kinds) => {
                let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                f.write_str(&names.join(" or "))
            }
            Expected::Manifest => f.write_str("a manifest within the profile"),
        }
    }
}

impl Serialize for Expected {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Whether the plugin's capability manifest stays within what every built-in hardware profile
/// for its id grants (the baseline, for an id no profile names), with the manifest as detail.
pub fn capabilities_verdict(plugin: &Plugin) -> Verdict {
    let started = Instant::now();
    let profiles = Profiles::built_in();
    let mine: Vec<&HardwareProfile> = profiles.iter().filter(|p| p.plugin == plugin.info.id).collect();
    let manifest = plugin.metadata.capabilities.rules().iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let refusals: Vec<String> = if mine.is_empty() {
        let beyond = plugin.metadata.capabilities.beyond(&Manifest::baseline());
        beyond.iter().map(|r| format!("`{r}` is beyond the baseline (no built-in profile names this plugin)")).collect()
    } else {
        mine.iter().filter_map(|p| p.check_capabilities(&plugin.metadata.capabilities, &plugin.origin).err()).collect()
    };
    let scope = if mine.is_empty() {
        "baseline".to_owned()
    } else {
        mine.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    };
    Verdict {
        scenario: "capabilities within the vendor profile",
        persona: scope,
        expected: Expected::Manifest,
        passed: refusals.is_empty(),
        elapsed: started.elapsed(),
        detail: if refusals.is_empty() {
            format!("declares: {manifest}")
        } else {
            format!("expected {}; {}", Expected::Manifest, refusals.join("; "))
        },
    }
}

pub(crate) fn verdict(
    scenario: &'static str,
    persona: String,
    expected: Expected,
    started: Instant,
    result: Result<String, String>,
) -> Verdict {
    let (passed, detail) = match result {
        Ok(d) => (true, d),
        Err(d) => (false, format!("expected {expected}; {d}")),
    };
    Verdict { scenario, persona, expected, passed, elapsed: started.elapsed(), detail }
}
