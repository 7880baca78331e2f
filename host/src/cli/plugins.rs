//! `bmc-rotate plugins list|inspect` (`install` is in `plugins_install`, `test` in `plugin_test`).

use super::render;
use super::{CliError, CmdResult, Output, exit};
use crate::fleet::profiles::Profiles;
use crate::runtime::signature::{self, Detached, SignatureError};
use crate::runtime::{PasswordPolicy, Plugin, Runtime, RuntimeConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(super) fn runtime(cache_dir: Option<PathBuf>) -> Result<Runtime, CliError> {
    Runtime::new(RuntimeConfig { cache_dir, ..RuntimeConfig::default() })
        .map_err(|e| CliError::failed(format!("cannot start the plugin runtime: {e:#}")))
}

/// Loads one plugin file; a refusal is the command's failure.
pub(super) async fn load(file: &Path, cache_dir: Option<PathBuf>) -> Result<std::sync::Arc<Plugin>, CliError> {
    runtime(cache_dir)?.load_file(file).await.map_err(CliError::failed)
}

/// Everything `inspect` shows, also its JSON form.
#[derive(Serialize)]
struct Inspection<'a> {
    file: &'a str,
    id: &'a str,
    vendor: &'a str,
    product: &'a str,
    version: &'a str,
    families: &'a [String],
    api_version: String,
    policy: &'a PasswordPolicy,
    sha256: &'a str,
    capabilities: Vec<String>,
    imports: &'a [String],
    exports: &'a [String],
    signature: SignatureView,
}

/// What is known of a plugin's signature: who signed it and whether that was verified.
#[derive(Serialize)]
pub(super) struct SignatureView {
    /// The signature file looked at.
    file: String,
    /// Whether there is one.
    signed: bool,
    /// The key id it names.
    key_id: Option<String>,
    /// Its trusted comment (signed, so only as good as `verified`).
    trusted_comment: Option<String>,
    /// Whether it verified under a key some profile trusts.
    verified: bool,
    /// The profiles that trust its key.
    trusted_by: Vec<String>,
    /// Why it did not verify.
    problem: Option<String>,
}

impl SignatureView {
    /// Checks `bytes` (the plugin `file`) against its signature file under every key `profiles`
    /// trust.
    pub(super) fn of(file: &Path, bytes: &[u8], signature_file: &Path, profiles: &Profiles) -> Result<Self, CliError> {
        let text = signature::read_signature(signature_file).map_err(CliError::bad_input)?;
        let parsed = text.as_deref().and_then(|t| Detached::parse(t).ok());
        let result = signature::verify(
            &file.display().to_string(),
            bytes,
            &signature_file.display().to_string(),
            text.as_deref(),
            &profiles.signers(),
        );
        // By the key that verified, never by id alone (ids can collide).
        let verified_key = result.as_ref().ok().map(|signer| signer.key.as_str());
        let trusted_by = profiles
            .iter()
            .filter(|p| verified_key.is_some_and(|key| p.signers.iter().any(|k| k.as_base64() == key)))
            .map(|p| p.name.clone())
            .collect();
        Ok(SignatureView {
            file: signature_file.display().to_string(),
            signed: text.is_some(),
            key_id: parsed.as_ref().map(|d| d.key_id().to_string()),
            trusted_comment: parsed.as_ref().map(|d| d.trusted_comment().to_owned()),
            verified: result.is_ok(),
            trusted_by,
            problem: match result {
                Ok(_) | Err(SignatureError::Unsigned { .. }) => None,
                Err(SignatureError::UntrustedKey { key_id, .. }) => Some(format!(
                    "not verified: no profile trusts key {key_id} (add the vendor's public key to a profile's `signers`)"
                )),
                Err(e) => Some(e.to_string()),
            },
        })
    }

    /// A few words for a table column: `verified KEYID`, `unsigned`, `untrusted KEYID`, `BAD`.
    fn short(&self) -> String {
        let key = self.key_id.as_deref().unwrap_or("?");
        match (self.signed, self.verified, &self.problem) {
            (false, ..) => "unsigned".into(),
            (true, true, _) => format!("verified {key}"),
            (true, false, Some(problem)) if problem.starts_with("not verified: no profile trusts") => {
                format!("untrusted {key}")
            }
            (true, false, _) => "BAD".into(),
        }
    }

    /// One line for the table.
    pub(super) fn describe(&self) -> String {
        if !self.signed {
            return format!("not signed (no {})", self.file);
        }
        let mut text = format!("key {}", self.key_id.as_deref().unwrap_or("?"));
        if let Some(comment) = &self.trusted_comment {
            text.push_str(&format!(", trusted comment \"{comment}\""));
        }
        if self.verified {
            text.push_str(&format!(": verified (trusted by {})", self.trusted_by.join(", ")));
        } else if let Some(problem) = &self.problem {
            text.push_str(&format!(": {problem}"));
        }
        text
    }
}

impl<'a> Inspection<'a> {
    fn of(plugin: &'a Plugin, signature: SignatureView) -> Self {
        Inspection {
            file: &plugin.origin,
            id: &plugin.info.id,
            vendor: &plugin.info.vendor,
            product: &plugin.info.product,
            version: &plugin.info.version,
            families: &plugin.info.families,
            api_version: plugin.metadata.api_version.to_string(),
            policy: &plugin.info.policy,
            sha256: &plugin.sha256,
            capabilities: plugin.metadata.capabilities.rules().iter().map(ToString::to_string).collect(),
            imports: &plugin.metadata.imports,
            exports: &plugin.metadata.exports,
            signature,
        }
    }
}

fn describe_policy(p: &PasswordPolicy) -> String {
    let mut parts = vec![format!("{}-{} chars", p.min_length, p.max_length), format!("{} classes", p.min_classes)];
    if !p.allowed_symbols.is_empty() {
        parts.push(format!("symbols {}", p.allowed_symbols));
    }
    if p.reuse_cycle > 0 {
        parts.push(format!("no reuse of last {}", p.reuse_cycle));
    }
    if p.min_change_interval_hours > 0 {
        parts.push(format!("{} h between changes", p.min_change_interval_hours));
    }
    if p.max_repeated_chars > 0 {
        parts.push(format!("at most {} repeated", p.max_repeated_chars));
    }
    if p.forbid_account_name {
        parts.push("not the account name".into());
    }
    parts.join(", ")
}

/// `plugins inspect FILE [--signature FILE.minisig]`: the signature is checked under every key
/// the profiles (built-in and `profile_dir`'s) trust.
pub async fn inspect(
    file: &Path,
    signature_file: Option<PathBuf>,
    profile_dir: Option<PathBuf>,
    output: Output,
    cache_dir: Option<PathBuf>,
) -> CmdResult {
    let profiles =
        Profiles::load(profile_dir.or_else(crate::paths::profiles).as_deref()).map_err(CliError::bad_input)?;
    let bytes = crate::runtime::read_plugin(file).await.map_err(CliError::failed)?;
    let signature_file = signature_file.unwrap_or_else(|| signature::signature_path(file));
    let signature = SignatureView::of(file, &bytes, &signature_file, &profiles)?;
    let plugin = runtime(cache_dir)?.load_bytes(bytes, file.display().to_string()).await.map_err(CliError::failed)?;
    let view = Inspection::of(&plugin, signature);
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&view).expect("serialisable")),
        Output::Table => print!(
            "{}",
            render::fields(&[
                ("file", view.file.to_owned()),
                ("id", view.id.to_owned()),
                ("vendor", view.vendor.to_owned()),
                ("product", view.product.to_owned()),
                ("version", view.version.to_owned()),
                ("families", view.families.join(", ")),
                ("api version", view.api_version.clone()),
                ("policy", describe_policy(view.policy)),
                ("sha256", view.sha256.to_owned()),
                ("signature", view.signature.describe()),
                ("capabilities", view.capabilities.join("\n")),
                ("imports", view.imports.join("\n")),
                ("exports", view.exports.join(", ")),
            ])
        ),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Listed {
    file: String,
    #[serde(flatten)]
    plugin: Option<ListedPlugin>,
    error: Option<String>,
}

#[derive(Serialize)]
struct ListedPlugin {
    id: String,
    version: String,
    vendor: String,
    families: Vec<String>,
    api_version: String,
    sha256: String,
    /// Its signature (`FILE.wasm.minisig`), checked under every key the profiles trust.
    signature: SignatureView,
    /// Whether another file listed has the same plugin id.
    duplicate: bool,
    /// The other files listed carrying the same plugin id (profiles without a
    /// `plugin_sha256` pin refuse to choose between them).
    same_id_as: Vec<String>,
}

/// Marks each plugin that shares its id with other files listed, naming them.
fn mark_duplicates(listed: &mut [Listed]) {
    let ids: Vec<Option<(String, String)>> =
        listed.iter().map(|l| l.plugin.as_ref().map(|p| (p.id.clone(), l.file.clone()))).collect();
    for l in listed.iter_mut() {
        if let Some(p) = l.plugin.as_mut() {
            p.same_id_as = ids
                .iter()
                .flatten()
                .filter(|(id, file)| *id == p.id && *file != l.file)
                .map(|(_, file)| file.clone())
                .collect();
            p.duplicate = !p.same_id_as.is_empty();
        }
    }
}

/// `plugins list [--dir DIR]`, by default the release's and the user's plugins (as `rotate` reads
/// them): each plugin's signature is checked under every key the profiles
/// (built-in and `profile_dir`'s) trust, as `inspect` does.
pub async fn list(
    dir: Option<PathBuf>,
    profile_dir: Option<PathBuf>,
    output: Output,
    cache_dir: Option<PathBuf>,
) -> CmdResult {
    let dirs = dir.map_or_else(crate::paths::plugin_dirs, |dir| vec![dir]);
    if dirs.is_empty() {
        return Err(CliError::bad_input("no plugin directory: pass --dir DIR or set BMC_ROTATE_PLUGIN_DIR"));
    }
    let profiles =
        Profiles::load(profile_dir.or_else(crate::paths::profiles).as_deref()).map_err(CliError::bad_input)?;
    let hint = || crate::fleet::members::plugin_install_hint().replace("--plugin-dir DIR", "--dir DIR");
    let present: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    let places = dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" or ");
    if present.is_empty() {
        return Err(CliError::bad_input(format!("plugin directory {places} does not exist")).with_hint(hint()));
    }
    let runtime = runtime(cache_dir)?;
    let mut results = Vec::new();
    for dir in &present {
        results.extend(runtime.load_dir(dir).await.map_err(|e| CliError::bad_input(e).with_hint(hint()))?);
    }
    // With several directories the name alone would not say which file is meant.
    let whole_paths = present.len() > 1;
    let mut listed: Vec<Listed> = Vec::with_capacity(results.len());
    for (path, result) in &results {
        let file = match path.file_name() {
            Some(name) if !whole_paths => name.to_string_lossy().into_owned(),
            _ => path.display().to_string(),
        };
        listed.push(match result {
            Ok(p) => {
                let bytes = crate::runtime::read_plugin(path).await.map_err(CliError::failed)?;
                // The signature must speak for the bytes listed, not for a file replaced meanwhile.
                if hex::encode(Sha256::digest(&bytes)) != p.sha256 {
                    return Err(CliError::failed(format!(
                        "{} changed while it was being listed: run the command again",
                        path.display()
                    )));
                }
                let signature = SignatureView::of(path, &bytes, &signature::signature_path(path), &profiles)?;
                Listed {
                    file,
                    plugin: Some(ListedPlugin {
                        id: p.info.id.clone(),
                        version: p.info.version.clone(),
                        vendor: p.info.vendor.clone(),
                        families: p.info.families.clone(),
                        api_version: p.metadata.api_version.to_string(),
                        sha256: p.sha256.clone(),
                        signature,
                        duplicate: false,
                        same_id_as: Vec::new(),
                    }),
                    error: None,
                }
            }
            // The file name is already in the row: keep only the reason.
            Err(e) => Listed {
                file,
                plugin: None,
                error: Some(e.to_string().replacen(&format!("{}: ", path.display()), "", 1)),
            },
        });
    }
    mark_duplicates(&mut listed);
    let failed = listed.iter().any(|l| l.error.is_some());
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&listed).expect("serialisable")),
        Output::Table if listed.is_empty() => {
            println!("no plugins (*.wasm) in {places}");
            eprintln!("hint: {}", hint());
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|l| match (&l.plugin, &l.error) {
                    (Some(p), _) => vec![
                        l.file.clone(),
                        if p.duplicate { format!("{} (DUPLICATE)", p.id) } else { p.id.clone() },
                        p.version.clone(),
                        p.vendor.clone(),
                        p.families.join(","),
                        p.api_version.clone(),
                        p.signature.short(),
                    ],
                    (None, error) => vec![
                        l.file.clone(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        format!("REFUSED: {}", error.as_deref().unwrap_or("")),
                    ],
                })
                .collect();
            print!("{}", render::table(&["FILE", "ID", "VERSION", "VENDOR", "FAMILIES", "API", "SIGNATURE"], &rows));
            for l in &listed {
                if let Some(p) = l.plugin.as_ref().filter(|p| p.duplicate) {
                    println!(
                        "DUPLICATE: {} (sha256 {}) has plugin id `{}`, like {}: a profile that does not pin \
                         `plugin_sha256` refuses to choose; remove one or pin it",
                        l.file,
                        p.sha256,
                        p.id,
                        p.same_id_as.join(", ")
                    );
                }
            }
        }
    }
    Ok(if failed { ExitCode::from(exit::FAILED) } else { ExitCode::SUCCESS })
}
