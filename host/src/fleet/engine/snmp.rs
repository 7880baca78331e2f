//! The SNMPv3 check: Azure Stack Hub's hardware monitoring receives SNMPv3 traps from every BMC,
//! authenticated with the BMC credential itself and, since build 2005, with AES privacy. A
//! rotation that leaves the SNMPv3 side of the account off, on DES or on MD5 silently breaks
//! hardware alerts, so preflight checks the rotation account's SNMPv3 state on every BMC (and
//! stops, or warns with `--snmp warn`) and the run checks it again after the change.
//!
//! The state comes from the plugin's optional `snmp` export. A plugin without it (built before
//! the export existed) and a BMC that does not show the state are both "not reported": the host
//! cannot tell that traps will keep working, so that too fails preflight unless `--snmp warn`.

use super::bmcs::{Bmc, Shared, lock};
use super::converge::Fleet;
use super::steps::context;
use crate::fleet::journal::Which;
use crate::runtime::{SnmpAuthentication, SnmpPrivacy, SnmpV3};
use secrecy::SecretString;
use serde::Serialize;
use std::sync::Arc;

/// What an SNMPv3 problem does to a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SnmpMode {
    /// Preflight fails, naming each BMC and what to change; nothing is changed.
    #[default]
    Require,
    /// The run goes on; each problem is a warning in the report.
    Warn,
}

/// One SNMPv3 check of one BMC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnmpCheck {
    /// What the plugin reported; `null` when nothing was reported.
    pub reported: Option<SnmpV3>,
    /// Whether the state lets the BMC's traps reach Azure Stack Hub.
    pub ok: bool,
    /// What is wrong and what to change, one line each; empty when `ok`.
    pub problems: Vec<String>,
}

impl SnmpCheck {
    /// Judges a reported state for `account`.
    pub fn of(state: SnmpV3, account: &str) -> SnmpCheck {
        let mut problems = Vec::new();
        if !state.enabled {
            problems.push(format!(
                "SNMPv3 is off for `{account}`: enable it for that account with SHA authentication and AES privacy \
                 (Azure Stack Hub's hardware monitoring authenticates the BMC's traps with the BMC credential)"
            ));
        } else {
            match state.authentication {
                SnmpAuthentication::HmacMd5 => problems.push(format!(
                    "SNMPv3 authentication of `{account}` is HMAC-MD5: set SHA (HMAC-SHA-96 or stronger)"
                )),
                SnmpAuthentication::None | SnmpAuthentication::CommunityString => problems.push(format!(
                    "`{account}` has no SNMPv3 authentication ({}): set SHA",
                    serde_json::to_value(state.authentication).map(|v| v.to_string()).unwrap_or_default()
                )),
                _ => {}
            }
            match state.privacy {
                SnmpPrivacy::CbcDes => problems.push(format!(
                    "SNMPv3 privacy of `{account}` is DES: set AES (Azure Stack Hub requires AES since build 2005; \
                     run Set-BmcCredential again after changing it)"
                )),
                SnmpPrivacy::None => problems.push(format!(
                    "SNMPv3 privacy of `{account}` is off: set AES (Azure Stack Hub requires AES since build 2005)"
                )),
                _ => {}
            }
        }
        SnmpCheck { reported: Some(state), ok: problems.is_empty(), problems }
    }

    /// Nothing was reported, for `why`.
    pub fn not_reported(why: &str) -> SnmpCheck {
        SnmpCheck {
            reported: None,
            ok: false,
            problems: vec![format!(
                "SNMPv3 state not reported: {why}; check by hand that the account's SNMPv3 uses SHA and AES and that \
                 its passphrases follow the password"
            )],
        }
    }
}

/// Reads and judges the SNMPv3 state of `bmc`, logged in with `password` (the one it was just
/// shown to hold). Never changes anything.
pub(crate) async fn check(bmc: &Shared<Bmc>, password: &Arc<SecretString>) -> SnmpCheck {
    let member = lock(bmc).member.clone();
    if !member.plugin.reports_snmp() {
        return SnmpCheck::not_reported(&format!(
            "plugin `{}` was built without SNMPv3 reporting (an SDK before the `snmp` export)",
            member.plugin.info.id
        ));
    }
    let answer = member.plugin.snmp_state(context(&member, password, None), &member.target).await.result;
    member.rest();
    match answer {
        Ok(Some(state)) => SnmpCheck::of(state, &member.target.account),
        Ok(None) => SnmpCheck::not_reported("this BMC does not show it"),
        Err(e) => SnmpCheck::not_reported(&format!("reading it failed: {e}")),
    }
}

/// Checks each BMC `password_of` gives a password for, as many at once as `concurrency` allows
/// (one login each; one after another, a large fleet would wait minutes). The answers are in
/// `bmcs`' order; `None` where no password was given.
pub(crate) async fn check_each(
    bmcs: &[Shared<Bmc>],
    password_of: impl Fn(&Bmc) -> Option<Arc<SecretString>>,
    concurrency: usize,
) -> Vec<Option<SnmpCheck>> {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, bmc) in bmcs.iter().enumerate() {
        let Some(password) = password_of(&lock(bmc)) else { continue };
        let (bmc, permits) = (bmc.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
            (i, check(&bmc, &password).await)
        });
    }
    let mut checks = vec![None; bmcs.len()];
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((i, check)) => checks[i] = Some(check),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    checks
}

/// Checks SNMPv3 again on every BMC of `fleet` that holds a known password once the passwords
/// agree, unless the run was stopped: a BMC whose SNMPv3 side did not follow (a passphrase refused, a setting lost) is named
/// in `notes`, with what to change, unless `quiet_if` says the problem was already reported. The
/// outcome stands: the passwords already agree.
pub(crate) async fn check_after(fleet: &Fleet, quiet_if: impl Fn(&Bmc) -> bool, notes: &mut Vec<String>) {
    // A stop (Ctrl-C, SIGTERM) starts nothing new: these are logins too.
    if fleet.cancel.is_cancelled() {
        return;
    }
    let password_of = |bmc: &Bmc| match bmc.holds {
        Which::New => Some(fleet.new.clone()),
        Which::Old => Some(fleet.old.clone()),
        Which::Unknown => None,
    };
    let checks = check_each(&fleet.bmcs, password_of, fleet.concurrency).await;
    for (bmc, check) in fleet.bmcs.iter().zip(checks) {
        let Some(check) = check else { continue };
        let mut bmc = lock(bmc);
        if !check.ok && !quiet_if(&bmc) {
            for problem in &check.problems {
                notes.push(format!("warning: after the change, {}: {problem}", bmc.name()));
            }
        }
        bmc.snmp_after = Some(check);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(enabled: bool, authentication: SnmpAuthentication, privacy: SnmpPrivacy) -> SnmpV3 {
        SnmpV3 { enabled, authentication, privacy }
    }

    #[test]
    fn sha_with_aes_passes_and_each_weakness_is_named_with_its_fix() {
        let ok = SnmpCheck::of(state(true, SnmpAuthentication::HmacSha96, SnmpPrivacy::Cfb128Aes128), "azs");
        assert!(ok.ok && ok.problems.is_empty());
        let des = SnmpCheck::of(state(true, SnmpAuthentication::Hmac192Sha256, SnmpPrivacy::CbcDes), "azs");
        assert!(!des.ok && des.problems.len() == 1 && des.problems[0].contains("DES: set AES"), "{des:?}");
        let md5 = SnmpCheck::of(state(true, SnmpAuthentication::HmacMd5, SnmpPrivacy::Cfb128Aes256), "azs");
        assert!(md5.problems[0].contains("HMAC-MD5: set SHA"), "{md5:?}");
        let both = SnmpCheck::of(state(true, SnmpAuthentication::HmacMd5, SnmpPrivacy::None), "azs");
        assert_eq!(both.problems.len(), 2);
        let off = SnmpCheck::of(state(false, SnmpAuthentication::HmacSha96, SnmpPrivacy::Cfb128Aes128), "azs");
        assert!(off.problems[0].contains("SNMPv3 is off for `azs`"), "{off:?}");
        let none = SnmpCheck::of(state(true, SnmpAuthentication::CommunityString, SnmpPrivacy::Cfb128Aes128), "azs");
        assert!(none.problems[0].contains("\"community-string\""), "{none:?}");
        let unknown = SnmpCheck::not_reported("plugin `x` was built without SNMPv3 reporting");
        assert!(!unknown.ok && unknown.reported.is_none() && unknown.problems[0].contains("not reported"));
    }
}
