//! `bmc-rotate profiles list|show`.

use super::render;
use super::{CliError, CmdResult, Output};
use crate::fleet::profiles::{HardwareProfile, Profiles, Source};
use std::path::PathBuf;
use std::process::ExitCode;

fn load(dir: Option<PathBuf>) -> Result<Profiles, CliError> {
    Profiles::load(dir.or_else(crate::paths::profiles).as_deref()).map_err(CliError::bad_input)
}

fn source(p: &HardwareProfile) -> String {
    match &p.source {
        Source::BuiltIn => "built-in".into(),
        Source::File(path) => path.display().to_string(),
    }
}

/// `profiles list`.
pub fn list(dir: Option<PathBuf>, output: Output) -> CmdResult {
    let profiles = load(dir)?;
    match output {
        Output::Json => {
            let all: Vec<&HardwareProfile> = profiles.iter().collect();
            println!("{}", serde_json::to_string_pretty(&all).expect("serialisable"));
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = profiles
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        format!("{} {}", p.plugin, p.plugin_version),
                        p.families.join(","),
                        source(p),
                        p.description.clone(),
                    ]
                })
                .collect();
            print!("{}", render::table(&["PROFILE", "PLUGIN", "FAMILIES", "SOURCE", "DESCRIPTION"], &rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `profiles show NAME`.
pub fn show(name: &str, dir: Option<PathBuf>, output: Output) -> CmdResult {
    let profiles = load(dir)?;
    let p = profiles.get(name).map_err(CliError::bad_input)?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(p).expect("serialisable")),
        Output::Table => {
            let o = &p.policy;
            let overrides = [
                ("min_length", o.min_length),
                ("max_length", o.max_length),
                ("min_classes", o.min_classes),
                ("reuse_cycle", o.reuse_cycle),
            ]
            .iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k} = {v}")))
            .collect::<Vec<_>>();
            print!(
                "{}",
                render::fields(&[
                    ("profile", p.name.clone()),
                    ("description", p.description.clone()),
                    ("plugin", format!("{} {}", p.plugin, p.plugin_version)),
                    ("plugin sha256", p.plugin_sha256.clone().unwrap_or_else(|| "not pinned".into())),
                    (
                        "signers",
                        if p.signers.is_empty() {
                            "none: no signature required".into()
                        } else {
                            p.signers.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
                        },
                    ),
                    ("families", p.families.join(", ")),
                    ("default account", p.default_account.clone()),
                    ("tls", format!("{:?}", p.tls)),
                    ("policy", if overrides.is_empty() { "as the BMC reports".into() } else { overrides.join(", ") }),
                    ("source", source(p)),
                ])
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
