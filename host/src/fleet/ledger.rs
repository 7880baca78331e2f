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
    /// The call was stopped before the BMC's answer was read (its budget ran out, the plugin
    /// crashed): the BMC may have refused the login and counted it — iLO, for one, holds the
    /// answer to a login after a failure for seconds — so it is counted as one.
    Unanswered,
}

impl LoginFailure {
    /// The failed login a call's error is, or may be.
    pub fn of(error: &CallError) -> Option<LoginFailure> {
        match error {
            CallError::Plugin(e) => match e.kind {
                ErrorKind::AuthFailed => Some(LoginFailure::AuthFailed),
                ErrorKind::LockedOut => Some(LoginFailure::LockedOut),
                _ => None,
            },
            CallError::Deadline(_) | CallError::Memory { .. } | CallError::Panic(_) | CallError::Trap(_) => {
                Some(LoginFailure::Unanswered)
            }
            // The host read the BMC's answer (and withheld it): not a refusal it could miss.
            CallError::SecretEchoed(_) => None,
            // Refused at a handshake, before any request on that connection: every login the
            // call sent before was answered and read.
            CallError::CertificateChanged(_) => None,
        }
    }

    /// Whether the BMC certainly refused the password (so the next command tries the other one
    /// first), as against a login whose answer was never read.
    pub fn refused(self) -> bool {
        self != LoginFailure::Unanswered
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

    #[test]
    fn a_login_whose_answer_was_never_read_counts_but_is_not_a_refusal() {
        use crate::runtime::PluginError;
        let plugin = |kind| CallError::Plugin(PluginError { kind, message: String::new() });
        assert_eq!(LoginFailure::of(&plugin(ErrorKind::AuthFailed)), Some(LoginFailure::AuthFailed));
        assert_eq!(LoginFailure::of(&plugin(ErrorKind::Unreachable)), None, "nothing was sent");
        let cut = CallError::Deadline(std::time::Duration::from_secs(3));
        assert_eq!(LoginFailure::of(&cut), Some(LoginFailure::Unanswered));
        assert_eq!(LoginFailure::of(&CallError::Trap("x".into())), Some(LoginFailure::Unanswered));
        assert!(!LoginFailure::Unanswered.refused() && LoginFailure::LockedOut.refused());
        assert_eq!(LoginFailure::of(&CallError::SecretEchoed("x".into())), None);
        assert_eq!(LoginFailure::of(&CallError::CertificateChanged("x".into())), None);
    }
}
