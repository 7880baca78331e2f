//! From an inventory to the fleet's members: each BMC with its hardware profile, the plugin that
//! profile names (found in the plugin directory, version-checked and, if pinned, digest-checked)
//! and a gateway bound to its address and TLS policy.

use super::inventory::{BmcEntry, Inventory};
use super::profiles::{HardwareProfile, Profiles, TlsExpectation};
use crate::gateway::{Gateway, Limits, Outbound, TlsPolicy};
use crate::runtime::capabilities::Manifest;
use crate::runtime::signature::{self, SignatureError, Signer, SignerKey};
use crate::runtime::{Plugin, Runtime, Target};
use semver::{Op, Version, VersionReq};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::Instrument;

/// One BMC, ready to be worked on. Cloning is cheap: the plugin and gateway are shared.
#[derive(Clone)]
pub struct Member {
    /// The inventory entry.
    pub entry: BmcEntry,
    /// Its hardware profile.
    pub profile: HardwareProfile,
    /// The plugin that rotates it.
    pub plugin: Arc<Plugin>,
    /// Its gateway, or why none could be set up (reported by preflight).
    pub gateway: Result<Arc<Gateway>, String>,
    /// The account rotated, logging in as itself.
    pub target: Target,
}

impl Member {
    /// Its gateway as the runtime takes it; `None` (HTTP denied) when none could be set up.
    pub fn outbound(&self) -> Option<Arc<dyn Outbound>> {
        self.gateway.as_ref().ok().map(|g| g.clone() as Arc<dyn Outbound>)
    }

    /// Its work in this phase is done: see [`Gateway::rest`].
    pub fn rest(&self) {
        if let Ok(gateway) = &self.gateway {
            gateway.rest();
        }
    }
}

/// A loaded plugin, the file it came from and what its signature proved.
struct Loaded {
    path: PathBuf,
    plugin: Arc<Plugin>,
    signature: Result<Signer, SignatureError>,
}

/// The usable plugins of a directory, by id, each with the file it was loaded from.
pub struct PluginSet {
    /// Where the files were looked for, in order.
    dirs: Vec<PathBuf>,
    by_id: BTreeMap<String, Vec<Loaded>>,
    refused: Vec<String>,
    /// Files left uncompiled because no profile in use pins their digest: `FILE (sha256 PREFIX…)`.
    skipped: Vec<String>,
}

/// Where plugins go and how to get them there: the end of every error about a missing plugin
/// or plugin directory, since an operator meeting one on a fresh install has no plugins yet.
pub fn plugin_install_hint() -> String {
    let default = crate::paths::user_plugins()
        .map_or_else(|| "$XDG_DATA_HOME/bmc-rotate/plugins".to_owned(), |d| d.display().to_string());
    format!(
        "`bmc-rotate plugins install FILE.wasm` puts a plugin in {default}, which is read unless --plugin-dir DIR (or \
         BMC_ROTATE_PLUGIN_DIR) names another directory; the release packages install the vendor plugins beside the \
         binary (PREFIX/lib/bmc-rotate/plugins), also read, and a source checkout builds them into \
         target/wasm/wasm32-wasip2/plugin/ (`cargo build -p bmc-tests`)"
    )
}

/// What selection knows of one file: where it is, its version and its digest.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// The file.
    pub path: &'a Path,
    /// The plugin id its `info` reported.
    pub id: &'a str,
    /// The plugin version its `info` reported.
    pub version: &'a str,
    /// SHA-256 of the file, hex.
    pub sha256: &'a str,
    /// The capabilities it declares.
    pub capabilities: &'a Manifest,
    /// Its signature, checked against every key the profiles in use trust.
    pub signature: &'a Result<Signer, SignatureError>,
}

/// The first hex digits of a digest shown in messages (enough to tell files apart; the full
/// value is what a pin needs: `plugins list --output json` or `plugins inspect FILE`).
const SHORT_SHA256: usize = 12;

/// Whether the requirement names one exact version (`=1.2.3`), not a range.
fn exact_version(req: &VersionReq) -> Option<Version> {
    match req.comparators.as_slice() {
        [c] if c.op == Op::Exact => Some(Version {
            major: c.major,
            minor: c.minor?,
            patch: c.patch?,
            pre: c.pre.clone(),
            build: semver::BuildMetadata::EMPTY,
        }),
        _ => None,
    }
}

/// Which of the files carrying `profile.plugin` the profile uses (an index into `candidates`).
///
/// The rule: with a `plugin_sha256` pin, the file with that digest (its version must still fit)
/// and no other; without a pin, the one file of that id, if there is only one. When several files
/// carry the id, an unpinned profile is refused — a stock and a foreign plugin of the same id must
/// never be settled by version order — unless its `plugin_version` is an exact version (`=X.Y.Z`)
/// that only one of them has.
///
/// `refused` (files of the directory that did not load) is appended when no file fits.
pub fn choose(profile: &HardwareProfile, candidates: &[Candidate<'_>], refused: &[String]) -> Result<usize, String> {
    let candidates: Vec<(usize, &Candidate<'_>)> =
        candidates.iter().enumerate().filter(|(_, c)| c.id == profile.plugin).collect();
    let none_fits = |reasons: Vec<String>| {
        let mut message = format!(
            "profile `{}` needs plugin `{}` {}, and the plugin directory has none that fits",
            profile.name, profile.plugin, profile.plugin_version
        );
        for reason in reasons.iter().chain(refused) {
            message.push_str(&format!("; {reason}"));
        }
        message
    };
    let check = |c: &Candidate<'_>| {
        let origin = c.path.display().to_string();
        profile.check(c.id, c.version, c.sha256, &origin)?;
        profile.check_signature(&origin, c.signature)?;
        profile.check_capabilities(c.capabilities, &origin)
    };
    if profile.plugin_sha256.is_some() {
        // The pin names the file: the others are not considered at all.
        let mut reasons = Vec::new();
        for (i, c) in &candidates {
            match check(c) {
                Ok(()) => return Ok(*i),
                Err(e) => reasons.push(e),
            }
        }
        return Err(none_fits(reasons));
    }
    if let [(i, c)] = candidates.as_slice() {
        return check(c).map(|()| *i).map_err(|e| none_fits(vec![e]));
    }
    if candidates.is_empty() {
        return Err(none_fits(Vec::new()));
    }
    if let Some(exact) = exact_version(&profile.plugin_version) {
        let with_it: Vec<&(usize, &Candidate<'_>)> =
            candidates.iter().filter(|(_, c)| Version::parse(c.version).is_ok_and(|v| v == exact)).collect();
        if let [(i, c)] = with_it.as_slice() {
            return check(c).map(|()| *i).map_err(|e| none_fits(vec![e]));
        }
    }
    let files: Vec<String> = candidates
        .iter()
        .map(|(_, c)| {
            format!(
                "{} (version {}, sha256 {}…)",
                c.path.display(),
                c.version,
                c.sha256.get(..SHORT_SHA256).unwrap_or(c.sha256)
            )
        })
        .collect();
    Err(format!(
        "profile `{}` does not say which of {} files of plugin `{}` to use: {}; refusing to choose one by \
         version. Remove the file you did not install from the plugin directory, or pin the one to use in the \
         profile with `plugin_sha256 = \"<its sha256>\"` (`bmc-rotate plugins list --output json` shows the full \
         digests) or with an exact `plugin_version = \"=X.Y.Z\"` that only that file has",
        profile.name,
        files.len(),
        profile.plugin,
        files.join(" and ")
    ))
}

impl PluginSet {
    /// Loads every `*.wasm` of `dir` for profiles that require no signature (tests, tools).
    pub async fn load(runtime: &Runtime, dir: &Path) -> Result<PluginSet, String> {
        PluginSet::load_for(runtime, &[dir], &[]).await
    }

    /// Loads every `*.wasm` of `dirs` that `profiles` (those in use) may take; plugins that fail
    /// to load are remembered with the reason. A directory that does not exist is passed over,
    /// unless none of them does.
    ///
    /// Each file's signature (`FILE.wasm.minisig`) is checked first, against every key those
    /// profiles trust. When every one of them requires a signature, a file none of them would
    /// accept (unsigned, signed by a stranger, or with a bad signature) is refused before it is
    /// compiled or run. Otherwise it is loaded, and [`PluginSet::select`] holds each profile to
    /// its own keys.
    ///
    /// When every profile in use pins its plugin file by digest (the built-in profiles and those
    /// `plugins install` writes do), only the pinned files are compiled: compiling is most of a
    /// cold run's CPU, and a file no pin names could never be chosen.
    pub async fn load_for(
        runtime: &Runtime,
        dirs: &[&Path],
        profiles: &[&HardwareProfile],
    ) -> Result<PluginSet, String> {
        let present: Vec<&Path> = dirs.iter().copied().filter(|d| d.exists()).collect();
        if present.is_empty() {
            let named: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            let what = if named.len() == 1 { "directory" } else { "directories" };
            return Err(format!("plugin {what} {} does not exist; {}", named.join(" and "), plugin_install_hint()));
        }
        let mut trusted: Vec<SignerKey> = Vec::new();
        for key in profiles.iter().flat_map(|p| &p.signers) {
            if !trusted.contains(key) {
                trusted.push(key.clone());
            }
        }
        let all_require = !profiles.is_empty() && profiles.iter().all(|p| !p.signers.is_empty());
        let pins: Option<Vec<&str>> =
            if profiles.is_empty() { None } else { profiles.iter().map(|p| p.plugin_sha256.as_deref()).collect() };
        let mut skipped = Vec::new();
        let mut paths = Vec::new();
        for dir in &present {
            let files = crate::runtime::plugin_files(dir)
                .await
                .map_err(|e| format!("plugin directory {}: {e}", dir.display()))?;
            paths.extend(files);
        }
        let mut by_id: BTreeMap<String, Vec<Loaded>> = BTreeMap::new();
        let mut refused = Vec::new();
        for path in paths {
            let bytes = match crate::runtime::read_plugin(&path).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    refused.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let origin = path.display().to_string();
            let sig_path = signature::signature_path(&path);
            let signature = match signature::read_signature(&sig_path) {
                Ok(text) => {
                    signature::verify(&origin, &bytes, &sig_path.display().to_string(), text.as_deref(), &trusted)
                }
                Err(e) => {
                    refused.push(format!("{origin}: its signature cannot be read: {e}"));
                    continue;
                }
            };
            if all_require && let Err(e) = &signature {
                let keys: Vec<String> = trusted.iter().map(|k| k.id().to_string()).collect();
                refused.push(format!(
                    "{e}; not compiled: every profile in use requires a plugin signed by key {}",
                    keys.join(" or ")
                ));
                continue;
            }
            if let Some(pins) = &pins {
                let sha256 = hex::encode(Sha256::digest(&bytes));
                if !pins.contains(&sha256.as_str()) {
                    skipped.push(format!("{origin} (sha256 {}…)", &sha256[..SHORT_SHA256]));
                    continue;
                }
            }
            match runtime.load_bytes(bytes, origin).await {
                Ok(plugin) => by_id.entry(plugin.info.id.clone()).or_default().push(Loaded { path, plugin, signature }),
                Err(e) => refused.push(format!("{}: {e}", path.display())),
            }
        }
        Ok(PluginSet { dirs: present.iter().map(|d| d.to_path_buf()).collect(), by_id, refused, skipped })
    }

    /// The plugin the profile names (see [`choose`] for the rule).
    pub fn select(&self, profile: &HardwareProfile) -> Result<Arc<Plugin>, String> {
        let files = self.by_id.get(&profile.plugin).map(Vec::as_slice).unwrap_or_default();
        if files.is_empty() {
            // Not one file of that id: name what was looked for and where, so the operator can
            // tell a plugin never installed from one that is there but refused.
            let wanted = match (&profile.plugin_sha256, self.skipped.is_empty()) {
                // The files were not compiled, so their ids are unknown: say what was compared.
                (Some(pin), false) => format!(
                    "no file in {} has the sha256 it pins ({pin}; the others were not compiled: {})",
                    self.places(),
                    self.skipped.join(", ")
                ),
                _ => format!("no file in {} has that plugin id", self.places()),
            };
            let mut message = format!(
                "profile `{}` needs plugin `{}` {}, and {wanted}: install the release's {}.wasm there, or give \
                 --plugin-dir DIR where it is",
                profile.name,
                profile.plugin,
                profile.plugin_version,
                profile.plugin.replace('-', "_")
            );
            for reason in &self.refused {
                message.push_str(&format!("; refused: {reason}"));
            }
            return Err(message);
        }
        let candidates: Vec<Candidate<'_>> = files
            .iter()
            .map(|l| Candidate {
                path: &l.path,
                id: &l.plugin.info.id,
                version: &l.plugin.info.version,
                sha256: &l.plugin.sha256,
                capabilities: &l.plugin.metadata.capabilities,
                signature: &l.signature,
            })
            .collect();
        let mut notes = self.refused.clone();
        if !self.skipped.is_empty() {
            notes.push(format!("not compiled, as no profile in use pins them: {}", self.skipped.join(", ")));
        }
        choose(profile, &candidates, &notes).map(|i| files[i].plugin.clone())
    }

    /// The directories searched, for messages: `A` or `A or B`.
    fn places(&self) -> String {
        let places: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        places.join(" or ")
    }
}

/// Builds the members. Errors that make the run impossible (an unknown profile, a missing
/// plugin, a self-signed model without a pin) are collected, one per BMC, and returned together.
pub async fn plan(
    inventory: &Inventory,
    profiles: &Profiles,
    plugins: &PluginSet,
    limits: Limits,
) -> Result<Vec<Member>, Vec<String>> {
    let limits = Limits { close_when_resting: !keeps_connections(inventory.bmcs.len()), ..limits };
    let mut members = Vec::new();
    let mut errors = Vec::new();
    for entry in &inventory.bmcs {
        let at = format!("{}:{} (BMC {})", inventory.path.display(), entry.line, entry.name);
        let profile = match profiles.get(&entry.profile) {
            Ok(p) => p.clone(),
            Err(e) => {
                errors.push(format!("{at}: {e}"));
                continue;
            }
        };
        if profile.tls == TlsExpectation::PinOrCa && entry.tls == TlsPolicy::SystemRoots {
            errors.push(format!(
                "{at}: {} BMCs ship self-signed certificates; set `tls = \"sha256:…\"` (the certificate's pin) or \
                 `tls = \"ca-file:PATH\"` for it, or `tls` at the top of the inventory",
                profile.name
            ));
            continue;
        }
        let plugin = match plugins.select(&profile) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("{at}: {e}"));
                continue;
            }
        };
        // The span names the BMC in what connecting logs (an `insecure` TLS policy's warning).
        let gateway = Gateway::connect(entry.endpoint.clone(), entry.tls.clone(), limits.clone())
            .instrument(tracing::warn_span!("bmc", name = %entry.name))
            .await
            .map(|g| Arc::new(g.named(&entry.name)))
            .map_err(|e| e.to_string());
        let target = Target {
            address: entry.endpoint.to_string(),
            account: inventory.bmc_user.clone(),
            login_account: inventory.bmc_user.clone(),
        };
        members.push(Member { entry: entry.clone(), profile, plugin, gateway, target });
    }
    if errors.is_empty() { Ok(members) } else { Err(errors) }
}

/// The largest fleet whose BMCs keep their connection open between phases: ~34 KiB and a
/// descriptor each (140 MiB at this size; 10,000 BMCs held 697 MiB).
pub const KEEP_CONNECTED_UP_TO: usize = 4096;

/// Whether a fleet of `bmcs` keeps each BMC's connection open between phases. A larger one, or
/// one that would use more than half the descriptors the process may open, closes each BMC's
/// connection when its work in a phase ends ([`Gateway::rest`]), so at most `--concurrency`
/// are open at a time; the price is a TLS handshake per BMC per phase (~0.7 ms of CPU on the
/// project machine, three more per BMC).
pub fn keeps_connections(bmcs: usize) -> bool {
    let descriptors = crate::platform::raise_open_file_limit().unwrap_or(1024);
    bmcs <= KEEP_CONNECTED_UP_TO && bmcs as u64 <= descriptors / 2
}

/// Reads the inventory, the profiles and the plugins, and plans the members: everything the
/// commands do before contacting a BMC. Every problem found is returned.
pub async fn load(
    inventory: &Path,
    profile_dir: Option<&Path>,
    plugin_dirs: &[&Path],
    runtime: &Runtime,
    limits: Limits,
) -> Result<(Inventory, Vec<Member>), Vec<String>> {
    let inventory = Inventory::load(inventory).map_err(|e| vec![e.to_string()])?;
    let profiles = Profiles::load(profile_dir).map_err(|e| vec![e])?;
    let in_use: BTreeMap<&str, &HardwareProfile> =
        inventory.bmcs.iter().filter_map(|b| profiles.get(&b.profile).ok()).map(|p| (p.name.as_str(), p)).collect();
    let in_use: Vec<&HardwareProfile> = in_use.into_values().collect();
    let plugins = PluginSet::load_for(runtime, plugin_dirs, &in_use).await.map_err(|e| vec![e])?;
    let members = plan(&inventory, &profiles, &plugins, limits).await?;
    Ok((inventory, members))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::profiles::Profiles;

    const STOCK: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const FOREIGN: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn profile(version: &str, pin: Option<&str>) -> HardwareProfile {
        let mut p = Profiles::built_in().get("hpe-proliant-dl380-gen10").unwrap().clone();
        p.plugin_version = VersionReq::parse(version).unwrap();
        p.plugin_sha256 = pin.map(str::to_owned);
        p
    }

    #[test]
    fn a_stamp_keeps_its_connections_and_a_fleet_beyond_the_bound_closes_them() {
        assert!(keeps_connections(16));
        let descriptors = crate::platform::raise_open_file_limit().unwrap();
        let bound = KEEP_CONNECTED_UP_TO.min(usize::try_from(descriptors / 2).unwrap_or(usize::MAX));
        assert!(keeps_connections(bound));
        assert!(!keeps_connections(bound + 1));
        assert!(!keeps_connections(10_000));
    }

    fn candidate<'a>(path: &'a str, id: &'a str, version: &'a str, sha256: &'a str) -> Candidate<'a> {
        static BASELINE: std::sync::LazyLock<Manifest> = std::sync::LazyLock::new(Manifest::baseline);
        static UNSIGNED: Result<Signer, SignatureError> =
            Err(SignatureError::Unsigned { file: String::new(), signature: String::new() });
        Candidate { path: Path::new(path), id, version, sha256, capabilities: &BASELINE, signature: &UNSIGNED }
    }

    /// A stock hpe-ilo 0.1.0 and a foreign one of a higher version in one directory, plus another
    /// vendor's plugin that never counts.
    fn stock_and_foreign() -> Vec<Candidate<'static>> {
        vec![
            candidate(
                "/p/dell_idrac.wasm",
                "dell-idrac",
                "0.1.0",
                "3333333333333333333333333333333333333333333333333333333333333333",
            ),
            candidate("/p/hpe_ilo.wasm", "hpe-ilo", "0.1.0", STOCK),
            candidate("/p/zz_hpe_ilo.wasm", "hpe-ilo", "0.1.9", FOREIGN),
        ]
    }

    #[test]
    fn one_file_of_the_id_is_chosen_when_its_version_fits() {
        let files = &stock_and_foreign()[..2];
        assert_eq!(choose(&profile("^0.1", None), files, &[]), Ok(1));
        let err = choose(&profile("^0.2", None), files, &[]).unwrap_err();
        assert!(err.contains("none that fits") && err.contains("is version 0.1.0"), "{err}");
    }

    #[test]
    fn two_files_of_one_id_and_no_pin_are_refused_naming_both() {
        let err = choose(&profile("^0.1", None), &stock_and_foreign(), &[]).unwrap_err();
        for part in [
            "profile `hpe-proliant-dl380-gen10` does not say which of 2 files of plugin `hpe-ilo` to use",
            "/p/hpe_ilo.wasm (version 0.1.0, sha256 111111111111…)",
            "/p/zz_hpe_ilo.wasm (version 0.1.9, sha256 222222222222…)",
            "refusing to choose one by version",
            "Remove the file",
            "plugin_sha256 = ",
            "plugin_version = \"=X.Y.Z\"",
        ] {
            assert!(err.contains(part), "missing `{part}` in: {err}");
        }
        assert!(!err.contains("dell_idrac"), "another plugin id is no candidate: {err}");
        // A range that only one of them fits does not say which file either: still refused.
        let err = choose(&profile(">=0.1.5", None), &stock_and_foreign(), &[]).unwrap_err();
        assert!(err.contains("does not say which of 2 files"), "{err}");
    }

    #[test]
    fn a_pin_picks_its_file_and_ignores_the_others() {
        assert_eq!(choose(&profile("^0.1", Some(STOCK)), &stock_and_foreign(), &[]), Ok(1));
        assert_eq!(choose(&profile("^0.1", Some(FOREIGN)), &stock_and_foreign(), &[]), Ok(2));
        // The pinned file must still fit the version range.
        let err = choose(&profile("=0.1.0", Some(FOREIGN)), &stock_and_foreign(), &[]).unwrap_err();
        assert!(err.contains("none that fits") && err.contains("zz_hpe_ilo.wasm is version 0.1.9"), "{err}");
        // A pin no file has: nothing is chosen, even though files of the id are there.
        let other = "4".repeat(64);
        let err =
            choose(&profile("^0.1", Some(&other)), &stock_and_foreign(), &["/p/x.wasm: refused".into()]).unwrap_err();
        assert!(
            err.contains(&format!("pins plugin file sha256 {other}")) && err.contains("/p/x.wasm: refused"),
            "{err}"
        );
    }

    #[test]
    fn an_exact_version_only_one_file_has_picks_it() {
        assert_eq!(choose(&profile("=0.1.9", None), &stock_and_foreign(), &[]), Ok(2));
        assert_eq!(choose(&profile("=0.1.0", None), &stock_and_foreign(), &[]), Ok(1));
        // Both files at the same version (a foreign rebuild): the exact version does not decide.
        let mut same = stock_and_foreign();
        same[2].version = "0.1.0";
        let err = choose(&profile("=0.1.0", None), &same, &[]).unwrap_err();
        assert!(err.contains("does not say which of 2 files"), "{err}");
        // `=0.1` is a range (0.1.x), not one version.
        let err = choose(&profile("=0.1", None), &stock_and_foreign(), &[]).unwrap_err();
        assert!(err.contains("does not say which of 2 files"), "{err}");
    }
}
