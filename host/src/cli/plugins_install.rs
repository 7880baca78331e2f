//! `bmc-rotate plugins install FILE.wasm`: checks a plugin (signature first, then API version,
//! manifest and `info`, which compiles it into the cache), copies it and its signature into the
//! plugin directory, and writes or prints the hardware profile that pins it.
//!
//! Every check runs before anything is written, so a refusal changes nothing.

use super::plugins::runtime;
use super::{CliError, CmdResult, Output};
use crate::fleet::profiles::{HardwareProfile, PolicyOverrides, Profiles, Source, TlsExpectation};
use crate::runtime::capabilities::Manifest;
use crate::runtime::signature::{self, SignatureError, Signer, SignerKey};
use crate::runtime::{Plugin, read_plugin};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The arguments of `plugins install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The plugin file (`.wasm` component).
    file: PathBuf,
    /// Write the hardware profile NAME, pinned to this file (and its signer), into the user's
    /// profile directory. An existing profile of that name (built-in or the user's) is the
    /// starting point; a new name needs --default-account. Without it the pin is printed.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// The plugin's detached minisign signature. [default: FILE.minisig, if there is one]
    #[arg(long, value_name = "FILE.minisig")]
    signature: Option<PathBuf>,
    /// A vendor public key to trust for this plugin: the `RW…` line of the vendor's minisign
    /// .pub file, or the file's path. Keys the named profile already trusts need not be given.
    #[arg(long = "signer", value_name = "KEY")]
    signers: Vec<String>,
    /// The vendor's factory account, for a profile that does not exist yet.
    #[arg(long, value_name = "ACCOUNT")]
    default_account: Option<String>,
    /// The plugin directory to install into. The default is the user's, which `rotate` reads
    /// after the release's own directory (PREFIX/lib/bmc-rotate/plugins, the package manager's).
    /// [default: $XDG_DATA_HOME/bmc-rotate/plugins]
    #[arg(long, env = "BMC_ROTATE_PLUGIN_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The user profile directory.
    /// [default: $XDG_CONFIG_HOME/bmc-rotate/profiles]
    #[arg(long, env = "BMC_ROTATE_PROFILE_DIR", value_name = "DIR")]
    profile_dir: Option<PathBuf>,
    /// Replace a different plugin file of the same name, or an existing profile file.
    #[arg(long)]
    force: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// A profile as written to disk: the fields of `host/profiles/*.toml`.
#[derive(Serialize)]
struct ProfileFile<'a> {
    description: &'a str,
    plugin: &'a str,
    plugin_version: String,
    plugin_sha256: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    signers: Vec<&'a str>,
    families: &'a [String],
    default_account: &'a str,
    tls: TlsExpectation,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    capabilities: Vec<String>,
    /// Kept from the profile it replaces: an explicit profile (the generic one) must stay out of
    /// `discover`'s proposals when a user's copy overrides it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    explicit: bool,
    policy: &'a PolicyOverrides,
}

/// What `install` did, also its JSON form.
#[derive(Serialize)]
struct Installed {
    plugin: String,
    version: String,
    file: String,
    sha256: String,
    signature_file: Option<String>,
    signer: Option<Signer>,
    /// Where the compiled code was stored, if the cache is in use.
    cache: Option<String>,
    /// The profile file written, if `--profile` was given.
    profile_file: Option<String>,
    profile: String,
}

/// A key given on the command line: the key itself, or a `.pub` file holding it.
fn parse_key(text: &str) -> Result<SignerKey, CliError> {
    let path = Path::new(text);
    let from_file = path.is_file();
    let key_text = if from_file {
        crate::files::read_bounded_string(path, "the public key", signature::MAX_SIGNATURE)
            .map_err(|e| CliError::bad_input(e.to_string()))?
    } else {
        text.to_owned()
    };
    SignerKey::parse(&key_text).map_err(|e| CliError::bad_input(format!("--signer {text}: {e}")))
}

/// A profile name is a file name in the profile directory: nothing that could leave it.
fn check_profile_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        return Ok(());
    }
    Err(CliError::bad_input(format!(
        "--profile `{name}`: a profile name is a file name: letters, digits, `-`, `_` and `.`, e.g. dell-poweredge-r760"
    )))
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a reader never
/// sees half a plugin.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let failed = |e: std::io::Error| CliError::failed(format!("cannot write {}: {e}", path.display()));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp).map_err(failed)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all()).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(failed(e));
    }
    Ok(())
}

/// The profile pinning `plugin`: `base` with its plugin, pin and signer replaced, or a new one.
fn profile_text(
    name: &str,
    base: Option<&HardwareProfile>,
    plugin: &Plugin,
    signer: Option<&Signer>,
    default_account: Option<&str>,
) -> Result<String, CliError> {
    let new_description = format!("{} {}", plugin.info.vendor, plugin.info.product);
    let capabilities: Vec<String> = match base {
        Some(b) => b.capabilities.beyond(&Manifest::baseline()).iter().map(ToString::to_string).collect(),
        None => plugin.metadata.capabilities.beyond(&Manifest::baseline()).iter().map(ToString::to_string).collect(),
    };
    let default_account = match (default_account, base) {
        (Some(account), _) => account,
        (None, Some(b)) => b.default_account.as_str(),
        (None, None) => {
            return Err(CliError::bad_input(format!(
                "profile `{name}` does not exist yet: give --default-account ACCOUNT (the vendor's factory \
                 account, e.g. root) to create it, or --profile with an existing profile (`bmc-rotate profiles list`)"
            )));
        }
    };
    let no_overrides = PolicyOverrides::default();
    let file = ProfileFile {
        description: base.map_or(new_description.as_str(), |b| b.description.as_str()),
        plugin: &plugin.info.id,
        plugin_version: format!("={}", plugin.info.version),
        plugin_sha256: &plugin.sha256,
        signers: signer.map(|s| s.key.as_str()).into_iter().collect(),
        families: base.map_or(plugin.info.families.as_slice(), |b| b.families.as_slice()),
        default_account,
        // A new model's BMC is assumed to ship self-signed: the inventory must pin or name a CA.
        tls: base.map_or(TlsExpectation::PinOrCa, |b| b.tls),
        capabilities,
        explicit: base.is_some_and(|b| b.explicit),
        policy: base.map_or(&no_overrides, |b| &b.policy),
    };
    let mut text = format!(
        "# Written by `bmc-rotate plugins install` for {} {} (sha256 {}){}.\n",
        plugin.info.id,
        plugin.info.version,
        plugin.sha256,
        signer.map_or_else(String::new, |s| format!(", signed by minisign key {}", s.key_id))
    );
    if base.is_none() && !file.capabilities.is_empty() {
        text.push_str("# `capabilities` are what the plugin declares beyond the baseline: review them.\n");
    }
    text.push_str(&toml::to_string(&file).map_err(|e| CliError::failed(format!("cannot write the profile: {e}")))?);
    // The text must read back as the profile meant, or nothing is written.
    HardwareProfile::parse(name, &text, &format!("the profile for {name}"), Source::BuiltIn)
        .map_err(|e| CliError::failed(format!("the profile written would not load: {e}")))?;
    Ok(text)
}

/// Without `--profile`: the lines that pin this file, for the operator's own profile.
fn pin_lines(plugin: &Plugin, signer: Option<&Signer>) -> String {
    let mut text = format!(
        "# For the profile that uses plugin `{}` (`bmc-rotate profiles list`):\nplugin_version = \"={}\"\nplugin_sha256 = \"{}\"\n",
        plugin.info.id, plugin.info.version, plugin.sha256
    );
    if let Some(s) = signer {
        text.push_str(&format!("signers = [\"{}\"]\n", s.key));
    }
    text
}

/// `plugins install FILE.wasm`.
pub async fn install(args: InstallArgs, cache_dir: Option<PathBuf>) -> CmdResult {
    let Some(dir) = args.dir.clone().or_else(crate::paths::user_plugins) else {
        return Err(CliError::bad_input("no plugin directory: pass --dir DIR or set BMC_ROTATE_PLUGIN_DIR"));
    };
    let profile_dir = args.profile_dir.clone().or_else(crate::paths::profiles);
    if let Some(name) = &args.profile {
        check_profile_name(name)?;
    }
    let Some(file_name) = args.file.file_name().map(ToOwned::to_owned) else {
        return Err(CliError::bad_input(format!("{} is not a file", args.file.display())));
    };
    let origin = args.file.display().to_string();
    let bytes = read_plugin(&args.file).await.map_err(CliError::bad_input)?;

    // The signature first: nothing unverified is compiled for a profile that requires one.
    let profiles = Profiles::load(profile_dir.as_deref()).map_err(CliError::bad_input)?;
    let base = args.profile.as_deref().and_then(|name| profiles.get(name).ok());
    let given: Vec<SignerKey> = args.signers.iter().map(|k| parse_key(k)).collect::<Result<_, _>>()?;
    let mut trusted = given.clone();
    trusted.extend(base.map_or_else(|| profiles.signers(), |b| b.signers.clone()));
    let signature_file = args.signature.clone().unwrap_or_else(|| signature::signature_path(&args.file));
    let signature_text = signature::read_signature(&signature_file).map_err(CliError::bad_input)?;
    if args.signature.is_some() && signature_text.is_none() {
        return Err(CliError::bad_input(format!("{}: no such signature file", signature_file.display())));
    }
    let sig_origin = signature_file.display().to_string();
    let checked = signature::verify(&origin, &bytes, &sig_origin, signature_text.as_deref(), &trusted);
    let signer = match (&checked, signature_text.is_some()) {
        (Ok(signer), _) => Some(signer.clone()),
        (Err(e @ SignatureError::UntrustedKey { .. }), true) => {
            let hint = "if that key is the vendor's published one, trust it with --signer KEY (its `RW…` line or \
                        .pub file), or list it in the profile's `signers`";
            return Err(CliError::failed(e).with_hint(hint));
        }
        (Err(e), true) => return Err(CliError::failed(e)),
        (Err(_), false) => None,
    };
    if let Some(b) = base
        && given.is_empty()
    {
        b.check_signature(&origin, &checked).map_err(CliError::failed)?;
    }
    if let (Err(unsigned), false) = (&checked, given.is_empty()) {
        return Err(CliError::failed(unsigned));
    }

    // API version, manifest and `info`: compiled once, into the cache.
    let runtime = runtime(cache_dir)?;
    let plugin = runtime.load_bytes(bytes.clone(), origin.clone()).await.map_err(CliError::failed)?;
    if let Some(b) = base {
        if plugin.info.id != b.plugin {
            return Err(CliError::failed(format!(
                "profile `{}` is for plugin `{}`, but {origin} is plugin `{}`; name another profile with --profile",
                b.name, b.plugin, plugin.info.id
            )));
        }
        b.check_capabilities(&plugin.metadata.capabilities, &origin).map_err(CliError::failed)?;
    }
    let profile = match &args.profile {
        Some(name) => profile_text(name, base, &plugin, signer.as_ref(), args.default_account.as_deref())?,
        None => pin_lines(&plugin, signer.as_ref()),
    };

    // Refuse to replace anything before writing anything.
    let target = dir.join(&file_name);
    let target_signature = signature::signature_path(&target);
    let occupied = !matches!(std::fs::symlink_metadata(&target), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    if occupied && !args.force {
        match crate::files::read_bounded(&target, "the installed plugin", crate::files::MAX_PLUGIN) {
            Ok(existing) if existing == bytes => {}
            Ok(_) => {
                return Err(CliError::bad_input(format!(
                    "{} exists and is another file; give --force to replace it",
                    target.display()
                )));
            }
            Err(e) => return Err(CliError::bad_input(format!("{e}; give --force to replace it"))),
        }
    }
    let profile_file = match (&args.profile, &profile_dir) {
        (Some(name), Some(d)) => Some(d.join(format!("{name}.toml"))),
        (Some(_), None) => {
            return Err(CliError::bad_input(
                "no profile directory: pass --profile-dir DIR or set BMC_ROTATE_PROFILE_DIR (or XDG_CONFIG_HOME or HOME)",
            ));
        }
        (None, _) => None,
    };
    if let Some(path) = &profile_file
        && path.exists()
        && !args.force
    {
        return Err(CliError::bad_input(format!(
            "{} exists; give --force to replace it with the profile pinning {origin}",
            path.display()
        )));
    }

    std::fs::create_dir_all(&dir).map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    write_atomically(&target, &bytes)?;
    match &signature_text {
        Some(text) if signer.is_some() => write_atomically(&target_signature, text.as_bytes())?,
        // A signature left from a former file would only ever fail: it belongs to other bytes.
        _ => match std::fs::remove_file(&target_signature) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CliError::failed(format!("cannot remove {}: {e}", target_signature.display())));
            }
            _ => {}
        },
    }
    if let Some(path) = &profile_file {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::failed(format!("cannot create {}: {e}", parent.display())))?;
        }
        write_atomically(path, profile.as_bytes())?;
    }

    let installed = Installed {
        plugin: plugin.info.id.clone(),
        version: plugin.info.version.clone(),
        file: target.display().to_string(),
        sha256: plugin.sha256.clone(),
        signature_file: signer.as_ref().map(|_| target_signature.display().to_string()),
        signer,
        cache: runtime.cache().map(|c| c.dir().display().to_string()),
        profile_file: profile_file.as_ref().map(|p| p.display().to_string()),
        profile,
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&installed).expect("serialisable")),
        Output::Table => {
            println!(
                "installed {} {} as {} (sha256 {})",
                installed.plugin, installed.version, installed.file, installed.sha256
            );
            match &installed.signer {
                Some(s) => println!("signed by key {} (trusted comment \"{}\"): verified", s.key_id, s.trusted_comment),
                None => println!("not signed"),
            }
            match &installed.cache {
                Some(cache) => println!("compiled into the cache {cache}"),
                None => println!("not cached (--no-cache, or the cache directory is not usable)"),
            }
            match &installed.profile_file {
                Some(path) => println!("profile written: {path}"),
                None => print!("{}", installed.profile),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
