//! Fault injection: per BMC, set in the fleet spec and changeable at run time.

use serde::Deserialize;
use std::str::FromStr;
use std::time::Duration;

/// Which calls a fault applies to: a method and a path fragment, e.g. `PATCH /Accounts/`, and
/// optionally how many times (then the fault disarms itself).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CallMatch {
    /// Method, upper case, or `*`.
    pub method: String,
    /// A substring of the path.
    pub path: String,
    /// Remaining firings; `None` = always.
    pub times: Option<u32>,
}

impl FromStr for CallMatch {
    type Err = String;

    /// `METHOD PATH-FRAGMENT` with an optional `xN` suffix: `PATCH /Accounts/ x1`, `* /Sessions`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let (Some(method), Some(path)) = (words.next(), words.next()) else {
            return Err(format!("`{s}`: expected `METHOD PATH-FRAGMENT [xN]`, e.g. `PATCH /Accounts/ x1`"));
        };
        let times = match words.next() {
            None => None,
            Some(n) => Some(
                n.strip_prefix('x')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("`{s}`: `{n}` should be a repeat count such as `x1`"))?,
            ),
        };
        let method = method.to_ascii_uppercase();
        if !["*", "GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method.as_str()) {
            return Err(format!("`{s}`: `{method}` is not an HTTP method (or `*`)"));
        }
        Ok(CallMatch { method, path: path.to_owned(), times })
    }
}

impl TryFrom<String> for CallMatch {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl CallMatch {
    /// Whether it applies to this call, consuming one firing if it does.
    fn fire(&mut self, method: &str, path: &str) -> bool {
        let hit = (self.method == "*" || self.method == method) && path.contains(&self.path);
        match (&mut self.times, hit) {
            (_, false) | (Some(0), _) => false,
            (Some(n), true) => {
                *n -= 1;
                true
            }
            (None, true) => true,
        }
    }
}

/// The faults of one BMC.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Fixed latency added to every answer, milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Extra random latency up to this many milliseconds.
    #[serde(default)]
    pub jitter_ms: u64,
    /// Calls answered with 500 `InternalError` (nothing applied).
    #[serde(default)]
    pub error_500: Vec<CallMatch>,
    /// Calls answered 404 `ResourceNotFound` (nothing applied), as by a service that lacks the
    /// resource: `* /AccountService` is a Redfish service without account management.
    #[serde(default)]
    pub not_found: Vec<CallMatch>,
    /// Calls whose connection is dropped before anything is applied.
    #[serde(default)]
    pub reset: Vec<CallMatch>,
    /// Calls never answered.
    #[serde(default)]
    pub hang: Vec<CallMatch>,
    /// Calls applied, whose connection then dies before the answer.
    #[serde(default)]
    pub apply_then_drop: Vec<CallMatch>,
    /// Every Nth PATCH carrying If-Match is refused with 412 although the tag is current
    /// (the intermittent 412 seen on newer XCC); 0 = never.
    #[serde(default)]
    pub intermittent_412_every: u32,
    /// Session creation fails with the persona's session-limit answer.
    #[serde(default)]
    pub session_limit: bool,
    /// The BMC accepts no connections.
    #[serde(default)]
    pub down: bool,
}

/// What the server does with one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Serve it normally.
    Serve,
    /// Answer 500.
    Error500,
    /// Answer 404.
    NotFound,
    /// Drop the connection without applying.
    Reset,
    /// Never answer.
    Hang,
    /// Apply, then drop the connection.
    ApplyThenDrop,
    /// Answer 412 without applying.
    Stale412,
}

/// Faults plus the counters they need.
#[derive(Debug, Default)]
pub struct FaultState {
    /// The configuration.
    pub faults: Faults,
    if_match_patches: u32,
    rng: u64,
}

impl FaultState {
    /// State for a configuration.
    pub fn new(faults: Faults) -> Self {
        FaultState { faults, if_match_patches: 0, rng: 0x9E37_79B9_7F4A_7C15 }
    }

    /// The latency for the next answer.
    pub fn latency(&mut self) -> Duration {
        let f = &self.faults;
        let jitter = if f.jitter_ms == 0 {
            0
        } else {
            // xorshift: deterministic, no dependency, good enough for jitter.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng % (f.jitter_ms + 1)
        };
        Duration::from_millis(f.latency_ms + jitter)
    }

    /// Decides what happens to a call.
    pub fn decide(&mut self, method: &str, path: &str, has_if_match: bool) -> Action {
        let fire = |list: &mut Vec<CallMatch>| list.iter_mut().any(|m| m.fire(method, path));
        if fire(&mut self.faults.hang) {
            return Action::Hang;
        }
        if fire(&mut self.faults.reset) {
            return Action::Reset;
        }
        if fire(&mut self.faults.error_500) {
            return Action::Error500;
        }
        if fire(&mut self.faults.not_found) {
            return Action::NotFound;
        }
        if method == "PATCH" && has_if_match && self.faults.intermittent_412_every > 0 {
            self.if_match_patches += 1;
            if self.if_match_patches.is_multiple_of(self.faults.intermittent_412_every) {
                return Action::Stale412;
            }
        }
        if fire(&mut self.faults.apply_then_drop) {
            return Action::ApplyThenDrop;
        }
        Action::Serve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_matches_parse_and_count_down() {
        let mut m: CallMatch = "patch /Accounts/ x2".parse().unwrap();
        assert!(m.fire("PATCH", "/redfish/v1/AccountService/Accounts/2"));
        assert!(!m.fire("GET", "/redfish/v1/AccountService/Accounts/2"));
        assert!(m.fire("PATCH", "/redfish/v1/AccountService/Accounts/2"));
        assert!(!m.fire("PATCH", "/redfish/v1/AccountService/Accounts/2"));
        assert!("FETCH /x".parse::<CallMatch>().unwrap_err().contains("not an HTTP method"));
        assert!("PATCH".parse::<CallMatch>().unwrap_err().contains("expected `METHOD PATH-FRAGMENT"));
        assert!("PATCH /x twice".parse::<CallMatch>().unwrap_err().contains("repeat count"));
    }

    #[test]
    fn decisions_follow_the_configuration() {
        let mut state = FaultState::new(Faults {
            hang: vec!["GET /Managers x1".parse().unwrap()],
            apply_then_drop: vec!["PATCH /Accounts/".parse().unwrap()],
            not_found: vec!["* /Systems".parse().unwrap()],
            intermittent_412_every: 2,
            ..Faults::default()
        });
        assert_eq!(state.decide("GET", "/redfish/v1/Systems/1", false), Action::NotFound);
        assert_eq!(state.decide("GET", "/redfish/v1/Managers/1", false), Action::Hang);
        assert_eq!(state.decide("GET", "/redfish/v1/Managers/1", false), Action::Serve);
        assert_eq!(state.decide("PATCH", "/redfish/v1/AccountService/Accounts/2", true), Action::ApplyThenDrop);
        assert_eq!(state.decide("PATCH", "/redfish/v1/AccountService/Accounts/2", true), Action::Stale412);
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut state = FaultState::new(Faults { latency_ms: 10, jitter_ms: 5, ..Faults::default() });
        for _ in 0..100 {
            let l = state.latency();
            assert!(l >= Duration::from_millis(10) && l <= Duration::from_millis(15));
        }
    }
}
