//! `rotate` across several stamps. Each stamp is its own atomic rotation — its own lock, journal,
//! PEP, secrets and new password — exactly as `rotate` runs one; this module only chooses the
//! order: a canary stamp alone first, then the others a few at a time, and no new stamp once too
//! many have failed. Every stamp is resolved (inventory, plugins, secrets, lock) before any BMC of
//! any stamp is contacted, so a typo in the tenth inventory costs nothing on the first.

use super::pep::{PepArgs, StampArgs};
use super::progress::Display;
use super::rotate::{Ended, RotateArgs, RotatePlan, Sources, run_plan};
use super::{CliError, CmdResult, RunOutput, exit, render};
use crate::fleet::cancel::Cancel;
use crate::fleet::inventory::Inventory;
use crate::secrets::{STAMP, SecretSource};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::task::JoinSet;

/// The stamps a rotation works on, and how to reach their privileged endpoints.
#[derive(Debug, clap::Args)]
pub struct StampsArgs {
    /// A stamp's inventory; its `[pep]` table names the ERCS VMs and the CloudAdmin account.
    /// Repeat it to rotate several stamps, each on its own (then secret sources, --journal and
    /// --password-out may name the stamp: env:CA_{stamp}, file:/secrets/{stamp}/cloudadmin).
    #[arg(long, value_name = "FILE", required_unless_present = "inventories")]
    pub inventory: Vec<PathBuf>,
    /// Rotate the stamp of every `*.toml` inventory in DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "inventory")]
    pub inventories: Option<PathBuf>,
    /// With several stamps: how many rotate at once, after the canary.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub stamp_concurrency: u16,
    /// With several stamps: the one rotated first, alone (default: the first). If it fails, no
    /// other stamp starts.
    #[arg(long, value_name = "STAMP")]
    pub canary: Option<String>,
    /// With several stamps: start no new stamp once this many have failed.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_failed_stamps: u32,
    /// How to reach the privileged endpoints.
    #[command(flatten)]
    pub pep: PepArgs,
}

impl StampsArgs {
    /// The inventory files, in the order given (a directory's sorted by name).
    fn files(&self) -> Result<Vec<PathBuf>, CliError> {
        let Some(dir) = &self.inventories else { return Ok(self.inventory.clone()) };
        let entries =
            std::fs::read_dir(dir).map_err(|e| CliError::bad_input(format!("--inventories {}: {e}", dir.display())))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CliError::bad_input(format!("--inventories {}: no *.toml inventory in it", dir.display())));
        }
        Ok(files)
    }
}

/// `rotate`: one stamp as always, or several.
pub async fn rotate(
    stamps: StampsArgs,
    args: RotateArgs,
    sources: Sources,
    output: RunOutput,
    cache_dir: Option<PathBuf>,
) -> CmdResult {
    let files = stamps.files()?;
    if let [one] = files.as_slice() {
        let stamp = StampArgs { inventory: one.clone(), pep: stamps.pep };
        return super::rotate::rotate(stamp, args, sources, output, cache_dir).await;
    }
    let many = Many::resolve(&files, &stamps, &args, &sources, cache_dir).await?;
    many.run(output).await
}

/// How one stamp ended, in a run of several.
enum StampEnd {
    /// It ran (or found its rotation already done).
    Ended(Ended),
    /// It stopped with an error before or during the run.
    Failed(CliError),
    /// It never started: the canary or too many stamps failed, or the operator stopped the run.
    NotStarted(&'static str),
}

impl StampEnd {
    fn code(&self) -> u8 {
        match self {
            StampEnd::Ended(ended) => ended.code(),
            StampEnd::Failed(e) => e.code,
            StampEnd::NotStarted(_) => exit::FAILED,
        }
    }

    fn outcome(&self) -> String {
        match self {
            StampEnd::Ended(Ended::Report { report, .. }) => report.outcome.as_str().to_owned(),
            StampEnd::Ended(Ended::AlreadyDone(_)) => "already-done".into(),
            StampEnd::Failed(_) => "failed".into(),
            StampEnd::NotStarted(_) => "not-started".into(),
        }
    }

    fn detail(&self) -> String {
        match self {
            StampEnd::Ended(Ended::Report { journal: Some(journal), .. }) => format!("journal {}", journal.display()),
            StampEnd::Ended(Ended::Report { journal: None, .. }) => String::new(),
            StampEnd::Ended(Ended::AlreadyDone(note)) => note.clone(),
            StampEnd::Failed(e) => e.messages.join("; "),
            StampEnd::NotStarted(why) => (*why).to_owned(),
        }
    }
}

/// Several stamps, every one resolved.
struct Many {
    /// In run order: the canary first.
    plans: Vec<(String, RotatePlan)>,
    /// The stamps in the order given, for the summary.
    order: Vec<String>,
    stamp_concurrency: usize,
    max_failed: u32,
    cancel: Cancel,
}

impl Many {
    async fn resolve(
        files: &[PathBuf],
        stamps: &StampsArgs,
        args: &RotateArgs,
        sources: &Sources,
        cache_dir: Option<PathBuf>,
    ) -> Result<Many, CliError> {
        check_for_many(args, &stamps.pep)?;
        let mut plans = Vec::new();
        let mut seen = BTreeSet::new();
        // `env:CA_{stamp}` of stamps `east-1` and `east.1` is the same variable: one stamp would
        // log in with the other's secret.
        let mut variables: HashMap<String, String> = HashMap::new();
        for file in files {
            let name = Inventory::load(file).map_err(CliError::bad_input)?.stamp;
            if !seen.insert(name.clone()) {
                return Err(CliError::bad_input(format!(
                    "{}: stamp {name} is named by another inventory too; each stamp is rotated once",
                    file.display()
                )));
            }
            let (stamp, stamp_args) = for_stamp(file, &name, &stamps.pep, args);
            let templated = [
                (Some(&stamps.pep.cloudadmin_password), Some(&stamp.pep.cloudadmin_password)),
                (Some(&args.bmc_password), Some(&stamp_args.bmc_password)),
                (args.new_password.as_ref(), stamp_args.new_password.as_ref()),
                (args.transcripts_password.as_ref(), stamp_args.transcripts_password.as_ref()),
            ];
            for (given, resolved) in templated {
                if let (Some(given), Some(SecretSource::Env(variable))) = (given, resolved)
                    && given.names_stamp()
                    && let Some(other) = variables.insert(variable.clone(), name.clone())
                    && other != name
                {
                    return Err(CliError::bad_input(format!(
                        "stamps {other} and {name} both read the environment variable {variable} (a variable name \
                         holds only upper-case letters, digits and _): rename a stamp or use file:…/{STAMP}/…"
                    )));
                }
            }
            let plan = RotatePlan::resolve(&stamp, &stamp_args, sources, cache_dir.clone()).await.map_err(|e| {
                CliError { messages: e.messages.iter().map(|m| format!("stamp {name}: {m}")).collect(), ..e }
            })?;
            plans.push((name, plan));
        }
        let order = plans.iter().map(|(name, _)| name.clone()).collect();
        if let Some(canary) = &stamps.canary {
            let Some(at) = plans.iter().position(|(name, _)| name == canary) else {
                let names: Vec<&str> = plans.iter().map(|(n, _)| n.as_str()).collect();
                return Err(CliError::bad_input(format!(
                    "--canary {canary}: no such stamp; the inventories name {}",
                    names.join(", ")
                )));
            };
            let first = plans.remove(at);
            plans.insert(0, first);
        }
        // One stop for all: a signal stops every stamp from starting anything new.
        let cancel = Cancel::new();
        for (_, plan) in &mut plans {
            plan.options.cancel = cancel.clone();
        }
        Ok(Many {
            plans,
            order,
            stamp_concurrency: stamps.stamp_concurrency as usize,
            max_failed: stamps.max_failed_stamps,
            cancel,
        })
    }

    async fn run(self, output: RunOutput) -> CmdResult {
        let Many { plans, order, stamp_concurrency, max_failed, cancel } = self;
        let events = output == RunOutput::Jsonl;
        let journals = plans.iter().map(|(_, p)| p.journal.clone()).collect();
        let watcher = Display::for_stamp("all", events);
        let _signals = super::signals::watch(cancel.clone(), journals, watcher).map_err(CliError::failed)?;
        let mut ends: Vec<(String, StampEnd)> = Vec::new();
        let mut queue = plans.into_iter();
        let mut failed = 0u32;
        let mut running = Running { set: JoinSet::new(), names: HashMap::new() };
        let start = |running: &mut Running, (name, plan): (String, RotatePlan)| {
            let display = Display::for_stamp(&name, events);
            let task = running.set.spawn(async move {
                match run_plan(plan, display).await {
                    Ok(ended) => StampEnd::Ended(ended),
                    Err(e) => StampEnd::Failed(e),
                }
            });
            running.names.insert(task.id(), name);
        };
        // The canary alone: the others wait for its answer.
        let mut canary_failed = false;
        if let Some(canary) = queue.next() {
            start(&mut running, canary);
            if let Some((name, end)) = running.join().await {
                canary_failed = end.code() != exit::OK;
                failed += u32::from(canary_failed);
                finished(&name, &end, output);
                ends.push((name, end));
            }
        }
        loop {
            let stop = if canary_failed {
                Some("the canary stamp failed")
            } else if failed >= max_failed {
                Some("too many stamps failed (--max-failed-stamps)")
            } else if cancel.is_cancelled() {
                Some("interrupted")
            } else {
                None
            };
            if stop.is_none()
                && running.set.len() < stamp_concurrency
                && let Some(next) = queue.next()
            {
                start(&mut running, next);
                continue;
            }
            if let Some(why) = stop {
                ends.extend(queue.by_ref().map(|(name, _)| (name, StampEnd::NotStarted(why))));
            }
            let Some((name, end)) = running.join().await else { break };
            failed += u32::from(end.code() != exit::OK);
            finished(&name, &end, output);
            ends.push((name, end));
        }
        ends.sort_by_key(|(name, _)| order.iter().position(|o| o == name));
        summary(&ends, output);
        let worst = ends.iter().map(|(_, end)| end.code()).max().unwrap_or(exit::OK);
        Ok(ExitCode::from(worst))
    }
}

/// The stamps under way.
struct Running {
    set: JoinSet<StampEnd>,
    names: HashMap<tokio::task::Id, String>,
}

impl Running {
    /// The next stamp to end. A panic in one stamp's run is a bug; it is reported as that
    /// stamp's failure and the others still end.
    async fn join(&mut self) -> Option<(String, StampEnd)> {
        let (id, end) = match self.set.join_next_with_id().await? {
            Ok((id, end)) => (id, end),
            Err(e) => (e.id(), StampEnd::Failed(CliError::failed(format!("the stamp's run panicked: {e}")))),
        };
        Some((self.names.remove(&id).unwrap_or_default(), end))
    }
}

/// What works for one stamp but not for several, refused before anything is read.
fn check_for_many(args: &RotateArgs, pep: &PepArgs) -> Result<(), CliError> {
    if !args.yes && !args.dry_run {
        return Err(CliError::bad_input(
            "several stamps are rotated without asking each: review them with --dry-run, then give --yes",
        ));
    }
    // Neither --new-password nor --generate-password: rotate would prompt for the new one.
    let prompt = SecretSource::Prompt;
    let new_password = match (&args.new_password, args.generate_password) {
        (Some(source), _) => Some(source),
        (None, true) => None,
        (None, false) => Some(&prompt),
    };
    let sources = [
        ("--bmc-password", Some(&args.bmc_password)),
        ("--new-password", new_password),
        ("--cloudadmin-password", Some(&pep.cloudadmin_password)),
        ("--transcripts-password", args.transcripts_password.as_ref()),
    ];
    for (flag, source) in sources {
        if let Some(SecretSource::Prompt | SecretSource::Stdin) = source {
            return Err(CliError::bad_input(format!(
                "{flag}: with several stamps, give env:VAR or file:PATH (they may name the stamp: env:VAR_{STAMP}, \
                 file:/secrets/{STAMP}/FILE); prompts and stdin cannot tell the stamps apart"
            )));
        }
    }
    for (flag, path) in [("--journal", &args.journal), ("--password-out", &args.password_out)] {
        if let Some(path) = path
            && !path.to_string_lossy().contains(STAMP)
        {
            return Err(CliError::bad_input(format!(
                "{flag} {}: with several stamps, the path must name the stamp ({STAMP}): one file per stamp",
                path.display()
            )));
        }
    }
    Ok(())
}

/// One stamp's arguments: `{stamp}` filled in wherever it may stand.
fn for_stamp(file: &Path, stamp: &str, pep: &PepArgs, args: &RotateArgs) -> (StampArgs, RotateArgs) {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| PathBuf::from(p.to_string_lossy().replace(STAMP, stamp)));
    let mut pep = pep.clone();
    pep.cloudadmin_password = pep.cloudadmin_password.for_stamp(stamp);
    let args = RotateArgs {
        bmc_password: args.bmc_password.for_stamp(stamp),
        new_password: args.new_password.as_ref().map(|s| s.for_stamp(stamp)),
        transcripts_password: args.transcripts_password.as_ref().map(|s| s.for_stamp(stamp)),
        journal: path(&args.journal),
        password_out: path(&args.password_out),
        ..args.clone()
    };
    (StampArgs { inventory: file.to_owned(), pep }, args)
}

/// A stamp's end as soon as it comes: its report (tables, JSON lines), or nothing yet (one JSON
/// document is printed whole at the end).
fn finished(stamp: &str, end: &StampEnd, output: RunOutput) {
    match output {
        RunOutput::Json => {}
        RunOutput::Jsonl => {
            let mut line = match end {
                StampEnd::Ended(ended) => ended.to_json(),
                _ => serde_json::json!({ "report": null, "error": end.detail() }),
            };
            line["event"] = "end".into();
            line["stamp"] = stamp.into();
            line["exit_code"] = end.code().into();
            println!("{line}");
        }
        RunOutput::Table => {
            println!("== stamp {stamp}");
            match end {
                StampEnd::Ended(ended) => ended.print(RunOutput::Table),
                other => println!("{}: {}", other.outcome(), other.detail()),
            }
            println!();
        }
    }
}

/// The summary of every stamp.
fn summary(ends: &[(String, StampEnd)], output: RunOutput) {
    match output {
        RunOutput::Table => {
            let rows: Vec<Vec<String>> = ends
                .iter()
                .map(|(stamp, end)| vec![stamp.clone(), end.outcome(), end.code().to_string(), end.detail()])
                .collect();
            print!("{}", render::table_fit(&["STAMP", "OUTCOME", "EXIT", "DETAIL"], &rows, render::terminal_width()));
        }
        RunOutput::Json => {
            let stamps: Vec<serde_json::Value> = ends
                .iter()
                .map(|(stamp, end)| {
                    let mut value = match end {
                        StampEnd::Ended(ended) => ended.to_json(),
                        _ => serde_json::json!({ "report": null, "error": end.detail() }),
                    };
                    value["stamp"] = stamp.as_str().into();
                    value["outcome"] = end.outcome().into();
                    value["exit_code"] = end.code().into();
                    value
                })
                .collect();
            let json = serde_json::json!({ "stamps": stamps });
            println!("{}", serde_json::to_string_pretty(&json).expect("serialisable"));
        }
        RunOutput::Jsonl => {
            let stamps: Vec<serde_json::Value> = ends
                .iter()
                .map(|(stamp, end)| {
                    serde_json::json!({ "stamp": stamp, "outcome": end.outcome(), "exit_code": end.code() })
                })
                .collect();
            println!("{}", serde_json::json!({ "event": "summary", "stamps": stamps }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_fills_in_its_name_and_nothing_else_changes() {
        let pep = PepArgs {
            cloudadmin_password: "env:CA_{stamp}".parse().unwrap(),
            pep_client: super::super::pep::PepClientKind::Native,
            pep_deadline: std::time::Duration::from_secs(60),
        };
        assert_eq!(pep.cloudadmin_password.for_stamp("east-1.a"), SecretSource::Env("CA_EAST_1_A".into()));
        let file: SecretSource = "file:/s/{stamp}/bmc".parse().unwrap();
        assert_eq!(file.for_stamp("east-1"), SecretSource::File("/s/east-1/bmc".into()));
        let plain: SecretSource = "env:SAME".parse().unwrap();
        assert_eq!(plain.for_stamp("east-1"), plain);
    }
}
