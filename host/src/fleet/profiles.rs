//! Hardware profiles: which plugin (and which versions, optionally which exact file) rotates a
//! server model's BMC, its default account, what TLS to expect, and policy overrides.
//!
//! Built-in profiles ship inside the binary (`host/profiles/*.toml`); profiles in the user's
//! directory (`$BMC_ROTATE_PROFILE_DIR`, default [`crate::paths::profiles`]) add to
//! them and override built-ins of the same name (the file name, without `.toml`).

use crate::runtime::capabilities::Manifest;
use crate::runtime::signature::{SignatureError, Signer, SignerKey};
use crate::runtime::{PasswordPolicy, Plugin};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const BUILT_IN: &[(&str, &str)] = &[
    ("dell-poweredge-r640", include_str!("../../profiles/dell-poweredge-r640.toml")),
    ("dell-poweredge-r760", include_str!("../../profiles/dell-poweredge-r760.toml")),
    ("dell-poweredge-r770", include_str!("../../profiles/dell-poweredge-r770.toml")),
    ("generic-redfish", include_str!("../../profiles/generic-redfish.toml")),
    ("hpe-proliant-dl380-gen10", include_str!("../../profiles/hpe-proliant-dl380-gen10.toml")),
    ("hpe-proliant-dl380-gen11", include_str!("../../profiles/hpe-proliant-dl380-gen11.toml")),
    ("hpe-proliant-dl380-gen12", include_str!("../../profiles/hpe-proliant-dl380-gen12.toml")),
    ("lenovo-thinksystem-sr650", include_str!("../../profiles/lenovo-thinksystem-sr650.toml")),
    ("lenovo-thinksystem-sr650-v3", include_str!("../../profiles/lenovo-thinksystem-sr650-v3.toml")),
    ("lenovo-thinksystem-sr650-v4", include_str!("../../profiles/lenovo-thinksystem-sr650-v4.toml")),
];

/// What TLS a BMC of this model presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsExpectation {
    /// Self-signed out of the box: the inventory must pin the certificate or name a CA file.
    PinOrCa,
    /// Certificates from the organisation's PKI: system roots work.
    System,
}

/// Policy fields a profile may tighten on top of what the BMC reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverrides {
    /// Fewest characters.
    pub min_length: Option<u32>,
    /// Most characters.
    pub max_length: Option<u32>,
    /// Classes required.
    pub min_classes: Option<u32>,
    /// Previous passwords refused.
    pub reuse_cycle: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    description: String,
    plugin: String,
    plugin_version: String,
    plugin_sha256: Option<String>,
    #[serde(default)]
    families: Vec<String>,
    default_account: String,
    tls: TlsExpectation,
    #[serde(default)]
    policy: PolicyOverrides,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    explicit: bool,
    #[serde(default)]
    signers: Vec<String>,
}

/// Where a profile came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Shipped with bmc-rotate.
    BuiltIn,
    /// A file in the user's profile directory.
    File(PathBuf),
}

/// One hardware profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HardwareProfile {
    /// Its name, e.g. `dell-poweredge-r640`.
    pub name: String,
    /// What hardware it describes.
    pub description: String,
    /// The plugin id.
    pub plugin: String,
    /// Plugin versions accepted.
    #[serde(serialize_with = "display")]
    pub plugin_version: VersionReq,
    /// The plugin file's SHA-256, if pinned.
    pub plugin_sha256: Option<String>,
    /// Controller families `probe` may report.
    pub families: Vec<String>,
    /// The vendor's default account.
    pub default_account: String,
    /// Expected TLS.
    pub tls: TlsExpectation,
    /// Policy overrides.
    pub policy: PolicyOverrides,
    /// The capabilities a plugin may declare for this hardware: the baseline every profile
    /// grants, plus the vendor rules the profile lists (`capabilities = [...]`).
    #[serde(serialize_with = "display")]
    pub capabilities: Manifest,
    /// Used only where an inventory names it: `discover` never proposes it for a BMC, whatever
    /// the BMC's service root says (the generic Redfish profile, which would fit any BMC).
    pub explicit: bool,
    /// The minisign keys whose signature this profile requires on its plugin (any one of them);
    /// empty: no signature required. A list of trusted keys that also let unsigned files through
    /// would protect nothing (deleting the `.minisig` would pass), so listing keys is requiring.
    pub signers: Vec<SignerKey>,
    /// Where it came from.
    pub source: Source,
}

fn display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl HardwareProfile {
    /// Parses a profile; `origin` names the file in errors.
    pub fn parse(name: &str, text: &str, origin: &str, source: Source) -> Result<HardwareProfile, String> {
        let file: ProfileFile = toml::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        let plugin_version = VersionReq::parse(&file.plugin_version).map_err(|e| {
            format!(
                "{origin}: field `plugin_version`: `{}` is not a semver requirement such as `^0.1` ({e})",
                file.plugin_version
            )
        })?;
        if let Some(pin) = &file.plugin_sha256
            && (pin.len() != 64 || !pin.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(format!("{origin}: field `plugin_sha256`: expected 64 hex digits, found `{pin}`"));
        }
        let mut capabilities = Manifest::baseline();
        if !file.capabilities.is_empty() {
            let extra = Manifest::parse(&file.capabilities.join("\n")).map_err(|e| {
                format!(
                    "{origin}: field `capabilities`, entry {}: {} (expected `METHOD PATH [password=POINTER]`)",
                    e.line, e.message
                )
            })?;
            capabilities = capabilities.with(&extra);
        }
        let signers = file
            .signers
            .iter()
            .enumerate()
            .map(|(i, text)| {
                SignerKey::parse(text).map_err(|e| format!("{origin}: field `signers`, entry {}: {e}", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HardwareProfile {
            name: name.to_owned(),
            description: file.description,
            plugin: file.plugin,
            plugin_version,
            plugin_sha256: file.plugin_sha256.map(|s| s.to_ascii_lowercase()),
            families: file.families,
            default_account: file.default_account,
            tls: file.tls,
            policy: file.policy,
            capabilities,
            explicit: file.explicit,
            signers,
            source,
        })
    }

    /// Whether a plugin file's signature (as checked against every key in use, see
    /// [`crate::runtime::signature::verify`]) satisfies this profile: anything does without
    /// `signers`; with them, only a good signature by one of them. Each refusal names the file,
    /// the key and this profile's keys, and says which of unsigned, untrusted or bad it is.
    pub fn check_signature(&self, file: &str, signature: &Result<Signer, SignatureError>) -> Result<(), String> {
        if self.signers.is_empty() {
            return Ok(());
        }
        let trusted = || self.signers.iter().map(|k| k.id().to_string()).collect::<Vec<_>>().join(" or ");
        let untrusted = |key_id| {
            format!(
                "profile `{}` requires a plugin signed by key {}, but {file} is signed by key {key_id}, which the \
                 profile does not trust; if that key is the vendor's, add its public key to the profile's `signers`",
                self.name,
                trusted()
            )
        };
        match signature {
            // The whole key, not its id: an id is 8 bytes its maker chooses, so another key can
            // carry the id of a key this profile trusts.
            Ok(signer) if self.signers.iter().any(|k| k.as_base64() == signer.key) => Ok(()),
            Ok(signer) => Err(untrusted(signer.key_id)),
            Err(SignatureError::UntrustedKey { key_id, .. }) => Err(untrusted(*key_id)),
            Err(e @ SignatureError::Unsigned { .. }) => Err(format!(
                "profile `{}` requires a plugin signed by key {}, but {e}: install the vendor's signature as \
                 FILE.wasm.minisig beside the plugin (`bmc-rotate plugins install FILE.wasm --signature FILE.minisig`)",
                self.name,
                trusted()
            )),
            Err(e) => Err(format!("profile `{}` requires a plugin signed by key {}: {e}", self.name, trusted())),
        }
    }

    /// Checks that `plugin` is the one this profile names: id, version range and, if pinned,
    /// the file's digest.
    pub fn check_plugin(&self, plugin: &Plugin) -> Result<(), String> {
        self.check(&plugin.info.id, &plugin.info.version, &plugin.sha256, &plugin.origin)?;
        self.check_capabilities(&plugin.metadata.capabilities, &plugin.origin)
    }

    /// Whether a plugin's manifest stays within what this profile grants; the error lists every
    /// rule beyond it.
    pub fn check_capabilities(&self, asked: &Manifest, origin: &str) -> Result<(), String> {
        let beyond = asked.beyond(&self.capabilities);
        if beyond.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{origin} declares capabilities profile `{}` does not grant: {}; a profile grants the baseline plus its \
             `capabilities` list, so review what the plugin asks for before adding it there",
            self.name,
            beyond.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
        ))
    }

    /// The same check on what is known of a file: its plugin id, version, digest and name.
    pub(crate) fn check(&self, id: &str, version: &str, sha256: &str, origin: &str) -> Result<(), String> {
        if id != self.plugin {
            return Err(format!(
                "profile `{}` needs plugin `{}`, but {origin} is plugin `{id}`",
                self.name, self.plugin
            ));
        }
        let parsed =
            Version::parse(version).map_err(|_| format!("{origin}: plugin version `{version}` is not semver"))?;
        if !self.plugin_version.matches(&parsed) {
            return Err(format!(
                "profile `{}` accepts plugin `{}` {}, but {origin} is version {version}",
                self.name, self.plugin, self.plugin_version
            ));
        }
        if let Some(pin) = &self.plugin_sha256
            && pin != sha256
        {
            return Err(format!(
                "profile `{}` pins plugin file sha256 {pin}, but {origin} has sha256 {sha256}: the file was changed or \
                 is not the one this profile was written for; refusing to use it",
                self.name
            ));
        }
        Ok(())
    }

    /// The policy to plan with: the BMC's live policy, tightened by the profile.
    pub fn apply(&self, mut live: PasswordPolicy) -> PasswordPolicy {
        let o = &self.policy;
        if let Some(v) = o.min_length {
            live.min_length = live.min_length.max(v);
        }
        if let Some(v) = o.max_length {
            live.max_length = live.max_length.min(v);
        }
        if let Some(v) = o.min_classes {
            live.min_classes = live.min_classes.max(v);
        }
        if let Some(v) = o.reuse_cycle {
            live.reuse_cycle = live.reuse_cycle.max(v);
        }
        live
    }
}

/// The profiles in force.
#[derive(Clone, Debug, Default)]
pub struct Profiles {
    map: BTreeMap<String, HardwareProfile>,
}

impl Profiles {
    /// The built-in profiles. A release build (one given `BMC_ROTATE_RELEASE_PUBKEY`) requires
    /// the project's signature on the plugins they name; other builds rely on their pins alone.
    pub fn built_in() -> Profiles {
        let release = crate::runtime::signature::release_key()
            .map(|key| key.expect("BMC_ROTATE_RELEASE_PUBKEY is checked when the binary is built"));
        Profiles::built_in_trusting(release)
    }

    /// The built-in profiles, each requiring a signature by `release` when given.
    pub fn built_in_trusting(release: Option<SignerKey>) -> Profiles {
        let map = BUILT_IN
            .iter()
            .map(|(name, text)| {
                let origin = format!("built-in profile {name}");
                let mut profile =
                    HardwareProfile::parse(name, text, &origin, Source::BuiltIn).expect("built-in profiles parse");
                profile.signers.extend(release.clone());
                (name.to_string(), profile)
            })
            .collect();
        Profiles { map }
    }

    /// Built-ins, then every `*.toml` of `dir` (a missing directory adds nothing). A profile that
    /// does not parse is an error naming its file: nothing is half-loaded.
    pub fn load(dir: Option<&Path>) -> Result<Profiles, String> {
        let mut profiles = Profiles::built_in();
        let Some(dir) = dir else { return Ok(profiles) };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(profiles),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let text = crate::files::read_bounded_string(&path, "the hardware profile", crate::files::MAX_PROFILE)
                .map_err(|e| e.to_string())?;
            let profile =
                HardwareProfile::parse(&name, &text, &path.display().to_string(), Source::File(path.clone()))?;
            profiles.map.insert(name, profile);
        }
        Ok(profiles)
    }

    /// Every key some profile trusts, each once.
    pub fn signers(&self) -> Vec<SignerKey> {
        let mut keys: Vec<SignerKey> = Vec::new();
        for key in self.map.values().flat_map(|p| &p.signers) {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Every profile, by name.
    pub fn iter(&self) -> impl Iterator<Item = &HardwareProfile> {
        self.map.values()
    }

    /// Adds `profile`, replacing one of the same name (a test's own profile).
    #[cfg(test)]
    pub(crate) fn insert(&mut self, profile: HardwareProfile) {
        self.map.insert(profile.name.clone(), profile);
    }

    /// The profile with this name, or an error listing the names there are.
    pub fn get(&self, name: &str) -> Result<&HardwareProfile, String> {
        self.map.get(name).ok_or_else(|| {
            let names: Vec<&str> = self.map.keys().map(String::as_str).collect();
            format!("no hardware profile named `{name}`; there are: {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_cover_the_three_vendors() {
        let profiles = Profiles::built_in();
        for (name, plugin) in [
            ("dell-poweredge-r640", "dell-idrac"),
            ("dell-poweredge-r760", "dell-idrac"),
            ("hpe-proliant-dl380-gen10", "hpe-ilo"),
            ("hpe-proliant-dl380-gen11", "hpe-ilo"),
            ("hpe-proliant-dl380-gen12", "hpe-ilo"),
            ("lenovo-thinksystem-sr650", "lenovo-xcc"),
            ("lenovo-thinksystem-sr650-v3", "lenovo-xcc"),
            ("generic-redfish", "generic-redfish"),
        ] {
            assert_eq!(profiles.get(name).unwrap().plugin, plugin);
        }
        let explicit: Vec<&str> = profiles.iter().filter(|p| p.explicit).map(|p| p.name.as_str()).collect();
        assert_eq!(explicit, ["generic-redfish"], "only the generic profile waits to be named");
        assert!(profiles.get("dell-poweredge-r7000").unwrap_err().contains("there are: dell-poweredge-r640"));
    }

    fn dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-profiles-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn user_profiles_override_built_ins() {
        let d = dir("override");
        let pin = "ab".repeat(32);
        std::fs::write(
            d.join("dell-poweredge-r640.toml"),
            format!("description = \"ours\"\nplugin = \"dell-idrac\"\nplugin_version = \"=0.1.0\"\nplugin_sha256 = \"{pin}\"\ndefault_account = \"azsbmc\"\ntls = \"system\"\n"),
        )
        .unwrap();
        let profiles = Profiles::load(Some(&d)).unwrap();
        std::fs::remove_dir_all(&d).ok();
        let p = profiles.get("dell-poweredge-r640").unwrap();
        assert_eq!(
            (p.description.as_str(), p.default_account.as_str(), p.tls),
            ("ours", "azsbmc", TlsExpectation::System)
        );
        assert!(matches!(p.source, Source::File(_)));
        assert!(profiles.get("hpe-proliant-dl380-gen10").is_ok(), "the other built-ins stay");
    }

    #[test]
    fn a_bad_profile_names_file_line_and_field() {
        let d = dir("bad");
        std::fs::write(d.join("x.toml"), "description = \"x\"\nplugin = \"dell-idrac\"\nplugin_verison = \"^0.1\"\n")
            .unwrap();
        let err = Profiles::load(Some(&d)).unwrap_err();
        std::fs::write(d.join("x.toml"), "description = \"x\"\nplugin = \"p\"\nplugin_version = \"zero\"\ndefault_account = \"a\"\ntls = \"system\"\n").unwrap();
        let err2 = Profiles::load(Some(&d)).unwrap_err();
        std::fs::remove_dir_all(&d).ok();
        assert!(err.contains("x.toml") && err.contains("line 3") && err.contains("plugin_verison"), "{err}");
        assert!(err2.contains("field `plugin_version`") && err2.contains("`zero`"), "{err2}");
    }

    #[test]
    fn plugins_are_checked_by_id_version_and_digest() {
        let mut p = Profiles::built_in().get("hpe-proliant-dl380-gen10").unwrap().clone();
        // The built-in ships pinned to this release's build; start from the unpinned profile.
        assert!(p.plugin_sha256.is_some(), "built-in profiles pin their plugin");
        p.plugin_sha256 = None;
        let digest = "cd".repeat(32);
        assert!(p.check("hpe-ilo", "0.2.3", &digest, "hpe_ilo.wasm").is_ok());
        assert!(p.check("dell-idrac", "0.2.0", &digest, "x.wasm").unwrap_err().contains("needs plugin `hpe-ilo`"));
        assert!(p.check("hpe-ilo", "0.3.0", &digest, "x.wasm").unwrap_err().contains("accepts plugin `hpe-ilo` ^0.2"));
        p.plugin_sha256 = Some("ab".repeat(32));
        let err = p.check("hpe-ilo", "0.2.0", &digest, "x.wasm").unwrap_err();
        assert!(err.contains(&"ab".repeat(32)) && err.contains(&digest) && err.contains("refusing"), "{err}");
    }

    #[test]
    fn a_plugin_asking_for_more_than_its_profile_grants_is_refused_rule_by_rule() {
        let profiles = Profiles::built_in();
        let (hpe, dell) =
            (profiles.get("hpe-proliant-dl380-gen10").unwrap(), profiles.get("dell-poweredge-r760").unwrap());
        let attrs = "PATCH /redfish/v1/Managers/iDRAC.Embedded.1/Oem/Dell/DellAttributes/iDRAC.Embedded.1 \
                     password=/Attributes/Users.{account-id}.Password";
        let dell_asks = Manifest::baseline().with(&Manifest::parse(attrs).unwrap());
        assert!(dell.check_capabilities(&dell_asks, "dell.wasm").is_ok());
        assert!(hpe.check_capabilities(&Manifest::baseline(), "hpe.wasm").is_ok());
        let err = hpe.check_capabilities(&dell_asks, "x.wasm").unwrap_err();
        assert!(err.contains("DellAttributes") && err.contains("hpe-proliant-dl380-gen10"), "{err}");
        let creates = Manifest::baseline().with(&Manifest::parse("POST /redfish/v1/AccountService/Accounts").unwrap());
        let err = dell.check_capabilities(&creates, "x.wasm").unwrap_err();
        assert!(err.contains("`POST /redfish/v1/AccountService/Accounts`") && !err.contains("GET"), "{err}");
    }

    #[test]
    fn a_bad_capability_in_a_profile_is_named() {
        let text = "description = \"x\"\nplugin = \"p\"\nplugin_version = \"^0.2\"\ndefault_account = \"a\"\n\
                    tls = \"system\"\ncapabilities = [\"GET /a/**\", \"PATCH {account}\"]\n";
        let err = HardwareProfile::parse("x", text, "x.toml", Source::BuiltIn).unwrap_err();
        assert!(err.contains("x.toml: field `capabilities`, entry 2"), "{err}");
    }

    const VENDOR_KEY: &str = "RWR3qUZg6MMoFSS4h7v8YVqjMpRZvszmN9XEwhsbQOl+Uar4vbbCsaVV";
    const STRANGER_KEY: &str = "RWQYE2RrXy+sKlagHt+Smy6yH12NIA2UaS+RfSAHpjOLxzSA9oU9H+7A";

    fn signed_by(key: &str) -> Result<Signer, SignatureError> {
        let key = SignerKey::parse(key).unwrap();
        Ok(Signer {
            key_id: key.id(),
            key: key.as_base64().to_owned(),
            trusted_comment: "acme 1.0".into(),
            prehashed: true,
        })
    }

    #[test]
    fn signers_are_read_and_a_bad_one_is_named() {
        let base = "description = \"x\"\nplugin = \"p\"\nplugin_version = \"^0.2\"\ndefault_account = \"a\"\ntls = \"system\"\n";
        let p =
            HardwareProfile::parse("x", &format!("{base}signers = [\"{VENDOR_KEY}\"]\n"), "x.toml", Source::BuiltIn)
                .unwrap();
        assert_eq!(p.signers[0].id().to_string(), "1528C3E86046A977");
        let err = HardwareProfile::parse(
            "x",
            &format!("{base}signers = [\"{VENDOR_KEY}\", \"RWQnope\"]\n"),
            "x.toml",
            Source::BuiltIn,
        )
        .unwrap_err();
        assert!(err.contains("x.toml: field `signers`, entry 2") && err.contains("minisign public key"), "{err}");
    }

    #[test]
    fn a_profile_with_signers_takes_only_their_good_signatures() {
        let mut p = Profiles::built_in_trusting(None).get("dell-poweredge-r760").unwrap().clone();
        assert!(p.signers.is_empty(), "a build without a release key requires no signature");
        let unsigned = Err(SignatureError::Unsigned { file: "d.wasm".into(), signature: "d.wasm.minisig".into() });
        assert!(p.check_signature("d.wasm", &unsigned).is_ok());

        p.signers = vec![SignerKey::parse(VENDOR_KEY).unwrap()];
        assert!(p.check_signature("d.wasm", &signed_by(VENDOR_KEY)).is_ok());
        let err = p.check_signature("d.wasm", &unsigned).unwrap_err();
        assert!(
            err.contains("requires a plugin signed by key 1528C3E86046A977") && err.contains("d.wasm is not signed"),
            "{err}"
        );
        let err = p.check_signature("d.wasm", &signed_by(STRANGER_KEY)).unwrap_err();
        let stranger = SignerKey::parse(STRANGER_KEY).unwrap().id().to_string();
        assert!(
            err.contains(&format!("d.wasm is signed by key {stranger}, which the profile does not trust")),
            "{err}"
        );
        let untrusted = Err(SignatureError::UntrustedKey {
            file: "d.wasm".into(),
            key_id: SignerKey::parse(STRANGER_KEY).unwrap().id(),
        });
        assert_eq!(p.check_signature("d.wasm", &untrusted).unwrap_err(), err);
        let bad = Err(SignatureError::Bad {
            file: "d.wasm".into(),
            signature: "d.wasm.minisig".into(),
            key_id: SignerKey::parse(VENDOR_KEY).unwrap().id(),
        });
        let err = p.check_signature("d.wasm", &bad).unwrap_err();
        assert!(err.contains("d.wasm: BAD signature by key 1528C3E86046A977"), "{err}");

        // A key with the trusted key's id but other key bytes (an id is its maker's choice):
        // a file it signed is not this profile's.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut forged = b64.decode(STRANGER_KEY).unwrap();
        forged[2..10].copy_from_slice(&b64.decode(VENDOR_KEY).unwrap()[2..10]);
        let forged = b64.encode(forged);
        assert_eq!(SignerKey::parse(&forged).unwrap().id(), p.signers[0].id());
        assert!(p.check_signature("d.wasm", &signed_by(&forged)).is_err(), "trusted by id alone");
    }

    #[test]
    fn a_release_key_makes_every_built_in_require_it() {
        let release = SignerKey::parse(VENDOR_KEY).unwrap();
        let profiles = Profiles::built_in_trusting(Some(release.clone()));
        assert!(profiles.iter().all(|p| p.signers == [release.clone()]));
        assert_eq!(profiles.signers(), [release]);
    }

    #[test]
    fn overrides_only_tighten() {
        let p = Profiles::built_in().get("lenovo-thinksystem-sr650-v3").unwrap().clone();
        let live = PasswordPolicy { min_length: 8, max_length: 255, ..PasswordPolicy::default() };
        assert_eq!(p.apply(live.clone()).max_length, 20);
        let tight = PasswordPolicy { max_length: 16, ..live };
        assert_eq!(p.apply(tight).max_length, 16);
    }
}
