//! `bmc-rotate plugin test`: the conformance suite, against bmc-lab personas in-process (the `lab`
//! feature) or against a BMC the operator names (`--bmc`, which needs no lab).

use super::args::SecretSourceParser;
use super::{CliError, CmdResult, Output, exit, plugins, render};
use crate::gateway::{Endpoint, Gateway, Limits, TlsPolicy};
use crate::secrets::{SecretReader, SecretSource};
use crate::suite::Verdict;
use crate::suite::live::{self, LiveBmc};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `plugin test` arguments.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The plugin file (`.wasm` component).
    file: PathBuf,
    /// Run against these personas only (default: every persona of the plugin's vendor, or
    /// dmtf-generic for a vendor the lab does not simulate).
    /// One of: dell-idrac9, dell-idrac10, hpe-ilo5, hpe-ilo6, hpe-ilo7, lenovo-xcc1, lenovo-xcc2, lenovo-xcc3,
    /// dmtf-generic.
    #[cfg(feature = "lab")]
    #[arg(long = "persona", value_name = "NAME", conflicts_with = "bmc")]
    personas: Vec<bmc_lab::Persona>,
    /// Run against this BMC instead of simulated ones: HOST or HOST:PORT. Read-only unless
    /// --allow-change; the wrong-password scenario costs exactly one failed login on it.
    #[arg(long, value_name = "ADDRESS", required = cfg!(not(feature = "lab")), requires_all = ["tls", "account"])]
    bmc: Option<Endpoint>,
    /// How to check the BMC's certificate: `sha256:HEX` (its pin, from `bmc-rotate discover`),
    /// `ca-file:PATH` or `system`. Never `insecure`: a password is sent.
    #[arg(long, value_name = "POLICY", requires = "bmc")]
    tls: Option<TlsPolicy>,
    /// The account that logs in (and, with --allow-change, changes its own password).
    #[arg(long, value_name = "NAME", requires = "bmc")]
    account: Option<String>,
    /// Where to read the account's password: prompt, env:VAR, file:PATH (mode 0600) or stdin.
    #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = SecretSourceParser)]
    password_from: SecretSource,
    /// Also change the account's password to a generated one, prove it, and change it back.
    #[arg(long, requires = "bmc")]
    allow_change: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(super) output: Output,
}

/// Runs the suite the arguments ask for.
pub async fn run(args: TestArgs, cache_dir: Option<PathBuf>) -> CmdResult {
    match args.bmc.clone() {
        Some(endpoint) => against_bmc(args, endpoint, cache_dir).await,
        #[cfg(feature = "lab")]
        None => against_personas(args, cache_dir).await,
        // clap requires --bmc in a build without the lab.
        #[cfg(not(feature = "lab"))]
        None => Err(CliError::bad_input("this build has no lab: give --bmc ADDRESS")),
    }
}

#[cfg(feature = "lab")]
async fn against_personas(args: TestArgs, cache_dir: Option<PathBuf>) -> CmdResult {
    let plugin = plugins::load(&args.file, cache_dir).await?;
    let personas = match args.personas {
        p if p.is_empty() => crate::conformance::personas_for(&plugin),
        p => p,
    };
    if args.output == Output::Table {
        let names: Vec<&str> = personas.iter().map(|p| p.name()).collect();
        println!("{} {} against {}", plugin.info.id, plugin.info.version, names.join(", "));
    }
    let verdicts = crate::conformance::run(plugin, &personas).await;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&verdicts).expect("serialisable")),
        Output::Table => print_table(&verdicts, "PERSONA"),
    }
    Ok(outcome(&verdicts))
}

async fn against_bmc(args: TestArgs, endpoint: Endpoint, cache_dir: Option<PathBuf>) -> CmdResult {
    // clap requires both with --bmc.
    let (Some(tls), Some(account)) = (args.tls, args.account) else {
        return Err(CliError::bad_input("--bmc needs --tls and --account"));
    };
    if tls == TlsPolicy::Insecure {
        return Err(CliError::bad_input(
            "--tls insecure: the suite sends the account's password, which never travels over an unchecked \
             connection; pin the certificate (sha256:HEX, from `bmc-rotate discover`) or name a CA file",
        ));
    }
    let plugin = plugins::load(&args.file, cache_dir).await?;
    let what = format!("the password of `{account}` on {endpoint}");
    let password = Arc::new(SecretReader::default().read(&args.password_from, &what).map_err(CliError::bad_input)?);
    let gateway = Gateway::connect(endpoint.clone(), tls, Limits::default())
        .await
        .map_err(|e| CliError::failed(format!("{endpoint}: {e}")))?;
    let recovery_dir = std::env::current_dir().map_err(|e| CliError::failed(format!("no current directory: {e}")))?;
    let bmc = LiveBmc { gateway: Arc::new(gateway), account, password, allow_change: args.allow_change, recovery_dir };
    // Said before anything is sent: the operator may be watching the BMC's security log.
    eprintln!("note: testing {endpoint} as `{}`: {}", bmc.account, live::WRONG_PASSWORD_COST);
    eprintln!(
        "note: {}",
        match bmc.allow_change {
            true => "--allow-change: the password is changed to a generated one and back",
            false => "read-only: nothing is changed (add --allow-change to test a change and its way back)",
        }
    );
    if args.output == Output::Table {
        println!("{} {} against {endpoint}", plugin.info.id, plugin.info.version);
    }
    let report = live::run(&plugin, &bmc).await;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report).expect("serialisable")),
        Output::Table => {
            print_table(&report.verdicts, "BMC");
            println!(
                "failed logins on the BMC: {} (the wrong-password scenario costs exactly one)",
                report.failed_logins
            );
        }
    }
    if let Some(file) = &report.recovery_file {
        eprintln!(
            "error: the BMC no longer accepts the original password of `{}`; the temporary one is in {} \
             (mode 0600): log in with it, set the password back, then delete the file",
            bmc.account,
            file.display()
        );
    } else if report.original_password_in_place == Some(false) {
        eprintln!(
            "error: the BMC no longer accepts the original password of `{}`, and the temporary one could not be \
             saved in {}",
            bmc.account,
            bmc.recovery_dir.display()
        );
    }
    Ok(outcome(&report.verdicts))
}

fn print_table(verdicts: &[Verdict], against: &str) {
    let rows: Vec<Vec<String>> = verdicts
        .iter()
        .map(|v| {
            vec![
                v.scenario.to_owned(),
                v.persona.clone(),
                if v.passed { "pass".into() } else { "FAIL".into() },
                format!("{:.0} ms", v.elapsed.as_secs_f64() * 1000.0),
                v.detail.clone(),
            ]
        })
        .collect();
    print!("{}", render::table(&["SCENARIO", against, "RESULT", "TIME", "DETAIL"], &rows));
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    println!("{} passed, {} failed", verdicts.len() - failed, failed);
}

/// Exit code 0 only if every verdict passed.
fn outcome(verdicts: &[Verdict]) -> ExitCode {
    match verdicts.iter().all(|v| v.passed) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(exit::FAILED),
    }
}
