//! `bmc-rotate onboard`: puts the stamp's BMC account on a node being added to the stamp.
//!
//! Azure Stack Hub adds a node only when its BMC accepts the stamp's BMC credential, and a new
//! node's BMC still has its factory or installer credential. This command logs in to the new BMC
//! with that credential and has the plugin create (or enable) the stamp's `bmc_user` with the
//! stamp's current password, then proves it by logging in as that account.
//!
//! The stamp password is checked first, with one login on one other BMC of the stamp: a mistyped
//! password must cost one refused login there, not an account on the new node that the stamp
//! cannot use. Each BMC costs at most one failed login ([`crate::fleet::ledger`]); the stamp's lock
//! is held throughout so that no rotation changes the password meanwhile.

use super::args::SecretSourceParser;
use super::{CliError, CmdResult, Output, exit, read_secret};
use crate::fleet::audit::{self, AuditEntry};
use crate::fleet::engine;
use crate::fleet::inventory::Inventory;
use crate::fleet::journal;
use crate::fleet::ledger::{BUDGET, Ledger, LoginFailure};
use crate::fleet::members::Member;
use crate::paths;
use crate::runtime::contract::Onboarded;
use crate::runtime::{CallContext, CallError, SecretBindings, SecretName, Target};
use crate::secrets::{SecretReader, SecretSource};
use secrecy::SecretString;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// `onboard` arguments.
#[derive(Debug, clap::Args)]
pub struct OnboardArgs {
    /// The stamp's inventory. The new node's BMC must already be in it (add its `[[bmc]]` entry
    /// first: name, address, profile, tls), as it will be for every later rotation.
    #[arg(long, value_name = "FILE")]
    inventory: PathBuf,
    /// The name of the new node's BMC in the inventory.
    #[arg(long = "bmc", value_name = "NAME")]
    bmc: String,
    /// The factory or installer account to log in to the new BMC with (e.g. Dell `root` or
    /// `azsinstall`, HPE `Administrator`, Lenovo `USERID`).
    #[arg(long, value_name = "USER")]
    from_user: String,
    /// Where to read that account's password: prompt, env:VAR, file:PATH (mode 0600) or stdin.
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    from_password: SecretSource,
    /// Where to read the password every BMC of the stamp holds now: prompt, env:VAR, file:PATH or
    /// stdin. Read first: on stdin, the stamp password comes before the factory password.
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    bmc_password: SecretSource,
    /// Once the stamp account logs in, disable the factory account (`--from-user`), logged in as
    /// the stamp account: a PATCH of `{"Enabled": false}` to it, nothing else.
    #[arg(long)]
    disable_from_account: bool,
    /// Onboard without asking. Without a terminal to ask on, it is needed.
    #[arg(long, short = 'y')]
    yes: bool,
    /// The plugin directory (`*.wasm`).
    /// [default: PREFIX/lib/bmc-rotate/plugins beside the binary, and $XDG_DATA_HOME/bmc-rotate/plugins]
    #[arg(long, env = "BMC_ROTATE_PLUGIN_DIR", value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// The user profile directory (adds to and overrides the built-in profiles).
    /// [default: $XDG_CONFIG_HOME/bmc-rotate/profiles]
    #[arg(long, env = "BMC_ROTATE_PROFILE_DIR", value_name = "DIR")]
    profile_dir: Option<PathBuf>,
    /// Append a record of the command to this audit log (JSON lines, mode 0600).
    /// [default: $XDG_STATE_HOME/bmc-rotate/audit.jsonl]
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(super) output: Output,
}

/// What `onboard` did, as `--output json` prints it. Holds no secret.
#[derive(Debug, Serialize)]
struct Report {
    stamp: String,
    bmc: String,
    account: String,
    from_user: String,
    /// The BMC the stamp password was checked on.
    checked_on: String,
    /// `created` or `updated`.
    outcome: Onboarded,
    /// The new account logged in with the stamp password.
    verified: bool,
    /// The factory account was disabled (`--disable-from-account`).
    from_user_disabled: bool,
}

/// Runs `onboard`.
pub async fn run(args: OnboardArgs, cache_dir: Option<PathBuf>) -> CmdResult {
    let (inventory, members) =
        super::rotate::load_members(&args.inventory, args.plugin_dir.clone(), args.profile_dir.clone(), cache_dir)
            .await?;
    let Some(new) = members.iter().find(|m| m.entry.name == args.bmc) else {
        let names: Vec<&str> = members.iter().map(|m| m.entry.name.as_str()).collect();
        return Err(CliError::bad_input(format!(
            "{}: no BMC named `{}` (BMCs: {})",
            inventory.path.display(),
            args.bmc,
            names.join(", ")
        ))
        .with_hint("add the new node's [[bmc]] entry (name, address, profile, tls) to the inventory first"));
    };
    if args.from_user == inventory.bmc_user {
        return Err(CliError::bad_input(format!(
            "--from-user `{}` is the stamp's bmc_user: give the factory or installer account the new BMC has now",
            args.from_user
        )));
    }
    if args.from_user.is_empty() || args.from_user.chars().any(char::is_control) {
        return Err(CliError::bad_input("--from-user: expected an account name without control characters"));
    }
    let Some(existing) = members.iter().find(|m| m.entry.name != args.bmc) else {
        return Err(CliError::bad_input(format!(
            "{}: `{}` is the only BMC; onboarding checks the stamp password on another BMC of the stamp first",
            inventory.path.display(),
            args.bmc
        )));
    };
    if !new.plugin.onboards() {
        return Err(CliError::failed(format!(
            "plugin {} {} (profile {}) cannot onboard: it does not export `bmc:plugin/onboard`; install a plugin \
             built with SDK 0.2.1 or later",
            new.plugin.info.id, new.plugin.info.version, new.profile.name
        )));
    }
    for member in [new, existing] {
        if let Err(why) = &member.gateway {
            return Err(CliError::bad_input(format!("{}: {why}", member.entry.name)));
        }
    }
    // Before any secret is read: a command line reused in a script must not change a BMC
    // because nobody was there to be asked.
    if !args.yes && !super::plan::has_terminal() {
        return Err(CliError::bad_input(format!(
            "onboard creates `{}` on {} and asks first: with no terminal to ask on, give --yes",
            inventory.bmc_user, new.entry.name
        )));
    }
    let _lock = super::lock_stamp(&inventory, "onboard", None)?;
    let audit_log = args.audit_log.clone().or_else(paths::audit_log);
    unfinished_run(audit_log.as_deref(), &inventory, &new.entry.name)?;
    let mut reader = SecretReader::default();
    let stamp_password = Arc::new(read_secret(&mut reader, &args.bmc_password, "the stamp's current BMC password")?);
    let what = format!("the password of `{}` on {}", args.from_user, new.entry.name);
    let factory_password = Arc::new(read_secret(&mut reader, &args.from_password, &what)?);
    if !args.yes && !confirm(&inventory.bmc_user, new, &args.from_user)? {
        return Err(CliError::failed("not confirmed; nothing was changed"));
    }
    let record = |outcome: &str| {
        let bmcs = vec![existing.entry.name.clone(), new.entry.name.clone()];
        let entry = AuditEntry::now("onboard", &inventory.stamp, bmcs, outcome, None);
        if let Some(path) = &audit_log
            && let Err(e) = audit::append(path, &entry)
        {
            eprintln!("warning: {e}");
        }
    };
    let ledger = Ledger::new();
    let steps = Steps { ledger: &ledger, stamp_password: &stamp_password, factory_password: &factory_password };
    let ended = steps.onboard(existing, new, &inventory.bmc_user, &args.from_user).await;
    let ended = match ended {
        Ok(outcome) if args.disable_from_account => {
            steps.disable(new, &inventory.bmc_user, &args.from_user).await.map(|()| outcome)
        }
        other => other,
    };
    match ended {
        Ok(outcome) => {
            record(&format!("onboarded-{}", kebab(outcome)));
            let report = Report {
                stamp: inventory.stamp.clone(),
                bmc: new.entry.name.clone(),
                account: inventory.bmc_user.clone(),
                from_user: args.from_user.clone(),
                checked_on: existing.entry.name.clone(),
                outcome,
                verified: true,
                from_user_disabled: args.disable_from_account,
            };
            print(&report, args.output);
            Ok(ExitCode::from(exit::OK))
        }
        Err(failure) => {
            record(failure.outcome);
            Err(failure.error)
        }
    }
}

fn kebab(outcome: Onboarded) -> &'static str {
    match outcome {
        Onboarded::Created => "created",
        Onboarded::Updated => "updated",
    }
}

fn print(report: &Report, output: Output) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(report).expect("serialisable")),
        Output::Table => {
            println!(
                "{}: `{}` {} (logged in as `{}`), verified with the stamp password (checked first on {})",
                report.bmc,
                report.account,
                match report.outcome {
                    Onboarded::Created => "created",
                    Onboarded::Updated => "enabled with the stamp password",
                },
                report.from_user,
                report.checked_on
            );
            if report.from_user_disabled {
                println!("{}: `{}` disabled", report.bmc, report.from_user);
            }
        }
    }
}

/// Asks on the controlling terminal (stdin may carry secrets).
fn confirm(account: &str, new: &Member, from_user: &str) -> Result<bool, CliError> {
    use std::io::{BufRead, Write};
    let (input, output) = crate::platform::open_terminal()
        .map_err(|e| CliError::bad_input(format!("no terminal to confirm on ({e}); give --yes")))?;
    let mut output = &output;
    write!(
        output,
        "Log in to {} ({}) as `{from_user}` and create or enable `{account}` with the stamp's password? [y/N] ",
        new.entry.name, new.entry.endpoint
    )
    .and_then(|()| output.flush())
    .map_err(|e| CliError::failed(format!("the terminal: {e}")))?;
    let mut answer = String::new();
    std::io::BufReader::new(&input)
        .read_line(&mut answer)
        .map_err(|e| CliError::failed(format!("the terminal: {e}")))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Why onboarding stopped: the error for the operator and the audit log's word for it.
struct Failure {
    error: CliError,
    outcome: &'static str,
}

/// The three plugin calls, each BMC's failed logins counted.
struct Steps<'a> {
    ledger: &'a Ledger,
    stamp_password: &'a Arc<SecretString>,
    factory_password: &'a Arc<SecretString>,
}

impl Steps<'_> {
    async fn onboard(
        &self,
        existing: &Member,
        new: &Member,
        account: &str,
        from_user: &str,
    ) -> Result<Onboarded, Failure> {
        // 1. The stamp password, on a BMC that has it.
        let secrets = SecretBindings::new().bind(SecretName::LoginPassword, self.stamp_password.clone());
        let checked = existing.plugin.verify(context(existing, secrets), &existing.target).await.result;
        if let Err(e) = checked {
            // A login cut short (deadline, trap) counts against the budget but says nothing of
            // the password: only a refusal is "not accepted".
            let refused = self.count(existing, &e).is_some_and(LoginFailure::refused);
            let error = CliError::failed(format!(
                "{}: the stamp password was not accepted for `{}`: {e}{}; nothing was changed on {}",
                existing.entry.name,
                existing.target.login_account,
                if refused {
                    format!(" (one failed login, the most this command spends there: {BUDGET})")
                } else {
                    String::new()
                },
                new.entry.name
            ));
            return Err(Failure {
                error: error.with_hint(
                    "check the stamp password (--bmc-password); `bmc-rotate status` shows the last rotation",
                ),
                outcome: if refused { "stamp-password-refused" } else { "stamp-password-unchecked" },
            });
        }
        // 2. The account, logged in as the factory account.
        let target = Target {
            address: new.entry.endpoint.to_string(),
            account: account.to_owned(),
            login_account: from_user.to_owned(),
        };
        let secrets = SecretBindings::new()
            .bind(SecretName::LoginPassword, self.factory_password.clone())
            .bind(SecretName::NewPassword, self.stamp_password.clone());
        let enabled = new.plugin.enable_account(context(new, secrets), &target).await.result;
        let outcome = match enabled {
            Ok(outcome) => outcome,
            Err(e) => {
                let failed_login = self.count(new, &e);
                let refused = failed_login.is_some_and(LoginFailure::refused);
                let changed = match &e {
                    _ if refused => "nothing was changed (one failed login on it)",
                    CallError::Plugin(p) if p.kind == crate::runtime::ErrorKind::Ambiguous => {
                        "the account may or may not have been set up"
                    }
                    CallError::SecretEchoed(_)
                    | CallError::Deadline(_)
                    | CallError::Trap(_)
                    | CallError::Panic(_)
                    | CallError::Memory { .. } => "the account may or may not have been set up",
                    _ => "the account was not set up",
                };
                let error = CliError::failed(format!(
                    "{}: onboarding `{account}` as `{from_user}` failed: {e}; {changed}",
                    new.entry.name
                ));
                let error = if refused {
                    error.with_hint(format!("check the factory password of `{from_user}` (--from-password)"))
                } else {
                    error
                };
                let outcome = match failed_login {
                    Some(_) if refused => "factory-login-refused",
                    _ => "failed",
                };
                return Err(Failure { error, outcome });
            }
        };
        // 3. The account logs in with the stamp password.
        let secrets = SecretBindings::new().bind(SecretName::LoginPassword, self.stamp_password.clone());
        let mine = Target { login_account: account.to_owned(), ..target };
        if let Err(e) = new.plugin.verify(context(new, secrets), &mine).await.result {
            self.count(new, &e);
            return Err(Failure {
                error: CliError::failed(format!(
                    "{}: `{account}` was set up but does not log in with the stamp password: {e}",
                    new.entry.name
                )),
                outcome: "unverified",
            });
        }
        Ok(outcome)
    }

    /// Disables the factory account, logged in as the stamp account that was just verified.
    async fn disable(&self, new: &Member, account: &str, from_user: &str) -> Result<(), Failure> {
        let secrets = SecretBindings::new().bind(SecretName::LoginPassword, self.stamp_password.clone());
        let target = Target {
            address: new.entry.endpoint.to_string(),
            account: from_user.to_owned(),
            login_account: account.to_owned(),
        };
        match new.plugin.disable_account(context(new, secrets), &target).await.result {
            Ok(()) => Ok(()),
            Err(e) => {
                self.count(new, &e);
                Err(Failure {
                    error: CliError::failed(format!(
                        "{}: `{account}` was set up and verified, but `{from_user}` was not disabled: {e}",
                        new.entry.name
                    ))
                    .with_hint(format!("disable `{from_user}` on the BMC itself; the stamp account works")),
                    outcome: "onboarded-factory-account-enabled",
                })
            }
        }
    }

    /// Records a failed login in the ledger, if `error` is (or may be) one.
    fn count(&self, member: &Member, error: &CallError) -> Option<LoginFailure> {
        let failure = LoginFailure::of(error)?;
        self.ledger.record(&member.entry.name);
        Some(failure)
    }
}

/// Refuses to onboard while the stamp's last rotation is unfinished: its BMCs may hold two
/// passwords, so which one the new node must take is not known, and the new node would change the
/// BMC set a later `rotate` matches that run by. Read as `rotate` reads it (audit log, then that
/// run's journal); a log or journal that cannot be read tells nothing.
fn unfinished_run(audit_log: Option<&Path>, inventory: &Inventory, new_bmc: &str) -> Result<(), CliError> {
    let stamp = inventory.stamp.as_str();
    let Some(path) = audit_log.and_then(|log| audit::last_run(log, stamp)).and_then(|e| e.journal) else {
        return Ok(());
    };
    let Ok(state) = journal::read_all(&path).and_then(|contents| engine::state_of(&contents)) else {
        return Ok(());
    };
    if state.converged() || !journal::any_change(&path) || state.bmc_user != inventory.bmc_user {
        return Ok(());
    }
    // The run covered the stamp without the new node (as it was) or with it.
    let digest = |bmcs: Vec<&crate::fleet::inventory::BmcEntry>| {
        crate::fleet::lock::address_digest(
            bmcs.into_iter().map(|b| crate::fleet::inventory::canonical_address(&b.endpoint)),
        )
    };
    let without: Vec<_> = inventory.bmcs.iter().filter(|b| b.name != new_bmc).collect();
    let ran_on = state.bmcs_sha256.as_deref();
    if ran_on != Some(digest(without).as_str()) && ran_on != Some(digest(inventory.bmcs.iter().collect()).as_str()) {
        return Ok(());
    }
    let shown = crate::fleet::lock::printable(&path.to_string_lossy());
    Err(CliError::bad_input(format!(
        "the last run on stamp {stamp} did not finish (journal {shown}): its BMCs may hold two passwords, so the \
         one for {new_bmc} is not known. Converge it first with `bmc-rotate resume --journal {shown}`; nothing was \
         contacted"
    )))
}

fn context(member: &Member, secrets: SecretBindings) -> CallContext {
    CallContext { gateway: member.outbound(), secrets, budget: None }
}
