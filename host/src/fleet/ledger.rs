//! The lockout ledger. BMCs punish refused logins — iLO delays the next ones, XCC locks the
//! account after a few, iDRAC blocks the client's address — so every operator action (`rotate`,
//! each `resume`) may spend at most [`BUDGET`] failed login per BMC. A login is "failed" when the
//! plugin says the credential was refused or the account is locked (`auth-failed`,
//! `locked-out`); a busy BMC (a session limit) is the plugin's `protocol` or `unreachable`, not a
//! failed login. A BMC whose budget is spent is not logged in to again in that action: it is
//! reported `needs-attention` with what is known. Each failed login is also journalled
//! (`login-refused`), so `status` shows them and the next `resume` tries the other password first.

use crate::runtime::{CallError, ErrorKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Failed logins one BMC may cost per operator action.
pub const BUDGET: u32 = 1;

/// How a login failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoginFailure {
    /// The credential was refused.
    AuthFailed,
    /// The account is locked or the client blocked.
    LockedOut,
}

impl LoginFailure {
    /// The failed login a call's error is, if it is one.
    pub fn of(error: &CallError) -> Option<LoginFailure> {
        match error.plugin_error()?.kind {
            ErrorKind::AuthFailed => Some(LoginFailure::AuthFailed),
            ErrorKind::LockedOut => Some(LoginFailure::LockedOut),
            _ => None,
        }
    }
}

/// Failed logins per BMC in this operator action; shared by its jobs.
#[derive(Clone, Debug, Default)]
pub struct Ledger(Arc<Mutex<BTreeMap<String, u32>>>);

impl Ledger {
    /// An empty ledger, for a new action.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Failed logins `bmc` cost in this action.
    pub fn spent(&self, bmc: &str) -> u32 {
        self.0.lock().expect("ledger").get(bmc).copied().unwrap_or(0)
    }

    /// Whether another login to `bmc` may be tried in this action.
    pub fn allows(&self, bmc: &str) -> bool {
        self.spent(bmc) < BUDGET
    }

    /// Counts one failed login.
    pub fn record(&self, bmc: &str) {
        *self.0.lock().expect("ledger").entry(bmc.to_owned()).or_default() += 1;
    }
}

/// Why a login was not tried.
pub fn spent_note() -> String {
    format!(
        "not tried: this BMC already refused {BUDGET} login(s) in this command (at most {BUDGET} per BMC per command)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_per_bmc_and_per_ledger() {
        let ledger = Ledger::new();
        assert!(ledger.allows("a") && ledger.allows("b"));
        ledger.record("a");
        assert!(!ledger.allows("a") && ledger.allows("b"));
        assert_eq!((ledger.spent("a"), ledger.spent("b")), (1, 0));
        let shared = ledger.clone();
        assert!(!shared.allows("a"), "the jobs of one action share it");
        assert!(Ledger::new().allows("a"), "the next action starts afresh");
    }
}
