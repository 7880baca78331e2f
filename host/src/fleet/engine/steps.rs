//! The steps every command is made of: a login through the failed-login ledger, finding out
//! which password a BMC holds, one verified and journalled change, and bounded concurrency that
//! a stop can interrupt between jobs. A refused login is never retried with the same password
//! (iLO delays, XCC locks out, iDRAC blocks the address).

use crate::fleet::cancel::Cancel;
use crate::fleet::journal::{Journal, Record, Which};
use crate::fleet::ledger::{self, Ledger, LoginFailure};
use crate::fleet::members::Member;
use crate::runtime::{CallContext, CallError, ErrorKind, SecretBindings, SecretName};
use secrecy::SecretString;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

type Shared<T> = Arc<Mutex<T>>;

pub(crate) fn context(member: &Member, login: &Arc<SecretString>, new: Option<&Arc<SecretString>>) -> CallContext {
    let mut secrets = SecretBindings::new().bind(SecretName::LoginPassword, login.clone());
    if let Some(new) = new {
        secrets = secrets.bind(SecretName::NewPassword, new.clone());
    }
    CallContext { gateway: member.outbound(), secrets, budget: None }
}

/// The journal, shared by the concurrent jobs; a write failure stops the run where it stands:
/// the journal refuses every later record, and no job starts another step.
#[derive(Clone)]
pub(crate) struct SharedJournal(Shared<Journal>, Arc<std::sync::atomic::AtomicBool>);

impl SharedJournal {
    pub(crate) fn new(journal: Journal) -> SharedJournal {
        SharedJournal(Arc::new(Mutex::new(journal)), Arc::default())
    }

    pub(crate) fn write(&self, record: Record) -> Result<(), String> {
        let mut journal = self.0.lock().expect("journal");
        let written = journal.write(record);
        if written.is_err() {
            self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        written
    }

    /// Refuses to start a step once a record could not be written.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !self.1.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        Err(self.0.lock().expect("journal").broken().unwrap_or("the journal could not be written").to_owned())
    }
}

/// Whether a failed change may still have been applied.
fn maybe_applied(error: &CallError) -> bool {
    match error.plugin_error() {
        Some(e) => matches!(e.kind, ErrorKind::Ambiguous | ErrorKind::Protocol | ErrorKind::AuthFailed),
        // Stopped mid-call (deadline, crash): it may have sent the PATCH.
        None => true,
    }
}

/// A plugin call that logs in, through the failed-login ledger.
pub(crate) enum Login<T> {
    /// It succeeded.
    Done(T),
    /// It failed (a failed login among other errors: counted and journalled already).
    Failed(CallError),
    /// Not made: the BMC already cost its failed-login budget in this action.
    NotTried,
}

/// Makes one call that logs in to `bmc` with `password`, unless the BMC's failed-login budget
/// for this action is spent; a failed login is counted and, once the run has a journal,
/// journalled.
pub(crate) async fn login<T>(
    bmc: &str,
    password: Which,
    ledger: &Ledger,
    journal: Option<&SharedJournal>,
    call: impl Future<Output = Result<T, CallError>>,
) -> Login<T> {
    if !ledger.allows(bmc) {
        return Login::NotTried;
    }
    match call.await {
        Ok(value) => Login::Done(value),
        Err(error) => {
            if let Some(failure) = LoginFailure::of(&error) {
                ledger.record(bmc);
                if let Some(journal) = journal {
                    // A record that cannot be written marks the journal broken: the step after
                    // this one refuses to start, so the result can be ignored here.
                    let _ = journal.write(Record::LoginRefused { bmc: bmc.to_owned(), password, failure });
                }
            }
            Login::Failed(error)
        }
    }
}

/// Finds out which password a BMC holds, trying each once; `refused` was just refused and is not
/// retried, and nothing is tried once the BMC's failed-login budget is spent.
pub(crate) async fn resolve(
    member: &Member,
    secrets: [(&Arc<SecretString>, Which); 2],
    refused: Option<Which>,
    ledger: &Ledger,
    journal: &SharedJournal,
) -> (Which, String) {
    let mut notes = Vec::new();
    for (secret, which) in secrets {
        if Some(which) == refused {
            continue;
        }
        let call = async { member.plugin.verify(context(member, secret, None), &member.target).await.result };
        match login(&member.entry.name, which, ledger, Some(journal), call).await {
            Login::Done(()) => return (which, format!("verified the {} password", name(which))),
            Login::Failed(e) => notes.push(format!("{} password: {e}", name(which))),
            Login::NotTried => notes.push(format!("{} password: {}", name(which), ledger::spent_note())),
        }
    }
    (Which::Unknown, format!("neither password could be verified ({})", notes.join("; ")))
}

/// The word for a password in notes and tables: `old`, `new` or `unknown`.
pub fn name(which: Which) -> &'static str {
    match which {
        Which::Old => "old",
        Which::New => "new",
        Which::Unknown => "unknown",
    }
}

/// What one change ended with.
pub(crate) struct Changed {
    /// The password the BMC holds now.
    pub holds: Which,
    /// What went wrong, for the operator.
    pub error: Option<String>,
    /// The plugin's kind of error when the change itself was answered with one, so callers
    /// decide on the kind, never on the error's text.
    pub refused: Option<ErrorKind>,
}

/// Sets `to` on one BMC that holds `from`, verifies it, and journals each step.
pub(crate) async fn change_one(
    member: &Member,
    from: (&Arc<SecretString>, Which),
    to: (&Arc<SecretString>, Which),
    journal: &SharedJournal,
    ledger: &Ledger,
) -> Result<Changed, String> {
    journal.check()?;
    let bmc = member.entry.name.as_str();
    if !ledger.allows(bmc) {
        // Not even the change: it logs in, and this BMC already refused a login in this command.
        return Ok(Changed { holds: from.1, error: Some(ledger::spent_note()), refused: None });
    }
    journal.write(Record::Changing { bmc: bmc.to_owned(), to: to.1 })?;
    let call =
        async { member.plugin.change_password(context(member, from.0, Some(to.0)), &member.target).await.result };
    let changed = match login(bmc, from.1, ledger, Some(journal), call).await {
        Login::Done(()) => Ok(()),
        Login::Failed(e) => Err(e),
        Login::NotTried => {
            // Checked above; one job per BMC, so only a bug gets here: nothing was sent.
            let note = ledger::spent_note();
            journal.write(Record::Holds { bmc: bmc.to_owned(), password: from.1, note: note.clone() })?;
            return Ok(Changed { holds: from.1, error: Some(note), refused: None });
        }
    };
    let refused = changed.as_ref().err().and_then(|e| e.plugin_error()).map(|p| p.kind);
    let verify = async { member.plugin.verify(context(member, to.0, None), &member.target).await.result };
    let (holds, note, error) = match changed {
        Ok(()) => match login(bmc, to.1, ledger, Some(journal), verify).await {
            Login::Done(()) => (to.1, format!("changed and verified the {} password", name(to.1)), None),
            Login::NotTried => {
                let note = format!("the change was accepted; {}", ledger::spent_note());
                (Which::Unknown, note.clone(), Some(note))
            }
            Login::Failed(e) => {
                let (holds, note) =
                    resolve(member, [(from.0, from.1), (to.0, to.1)], Some(to.1), ledger, journal).await;
                (
                    holds,
                    note.clone(),
                    Some(format!("the change was accepted but the new password does not verify: {e}; {note}")),
                )
            }
        },
        Err(e) if maybe_applied(&e) => {
            let kind = e.plugin_error().map(|p| p.kind);
            let refused = (kind == Some(ErrorKind::AuthFailed)).then_some(from.1);
            // One failed login per BMC per command: the likelier password first. An answer the
            // plugin did not understand (a 500, say) most often means nothing was changed; a lost
            // answer or a call cut short, that the change was made.
            let order = if kind == Some(ErrorKind::Protocol) {
                [(from.0, from.1), (to.0, to.1)]
            } else {
                [(to.0, to.1), (from.0, from.1)]
            };
            let (holds, note) = resolve(member, order, refused, ledger, journal).await;
            (holds, note.clone(), Some(format!("{e}; {note}")))
        }
        Err(e) => (from.1, "refused, nothing changed".into(), Some(e.to_string())),
    };
    journal.write(Record::Holds { bmc: member.entry.name.clone(), password: holds, note })?;
    Ok(Changed { holds, error, refused })
}

/// Runs `job(i)` for each of `indices` with at most `limit` at once. Once `cancel` is set no
/// further job starts (those running finish: a change is always verified and journalled); the
/// indices never started are returned. A job's error (the journal could not be written) is
/// returned once every running job has ended.
pub(crate) async fn each<F, Fut>(indices: &[usize], limit: usize, cancel: &Cancel, job: F) -> Result<Vec<usize>, String>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut not_started = Vec::new();
    for (n, &i) in indices.iter().enumerate() {
        let permit = semaphore.clone().acquire_owned().await.expect("never closed");
        // Checked after the wait for a slot: a stop that came while waiting is seen here.
        if cancel.is_cancelled() {
            not_started.extend_from_slice(&indices[n..]);
            break;
        }
        let fut = job(i);
        tasks.spawn(async move {
            let result = fut.await;
            drop(permit);
            result
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(|e| format!("a BMC job panicked: {e}")).and_then(|r| r);
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(not_started), Err)
}
