//! From an inventory to the fleet's members: each BMC with its hardware profile, the plugin that
//! profile names (found in the plugin directory, version-checked and, if pinned, digest-checked)
//! and a gateway bound to its address and TLS policy.

use super::inventory::{BmcEntry, Inventory};
use super::profiles::{HardwareProfile, Profiles, TlsExpectation};
use crate::gateway::{Gateway, Limits, Outbound, TlsPolicy};
use crate::runtime::{Plugin, Runtime, Target};
use semver::Version;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

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
}

/// The usable plugins of a directory, by id.
pub struct PluginSet {
    by_id: BTreeMap<String, Vec<Arc<Plugin>>>,
    refused: Vec<String>,
}

impl PluginSet {
    /// Loads every `*.wasm` of `dir`; plugins that fail to load are remembered with the reason.
    pub async fn load(runtime: &Runtime, dir: &Path) -> Result<PluginSet, String> {
        let loaded = runtime.load_dir(dir).await.map_err(|e| format!("plugin directory {}: {e}", dir.display()))?;
        let mut by_id: BTreeMap<String, Vec<Arc<Plugin>>> = BTreeMap::new();
        let mut refused = Vec::new();
        for (path, result) in loaded {
            match result {
                Ok(plugin) => by_id.entry(plugin.info.id.clone()).or_default().push(plugin),
                Err(e) => refused.push(format!("{}: {e}", path.display())),
            }
        }
        Ok(PluginSet { by_id, refused })
    }

    /// The newest plugin the profile accepts.
    pub fn select(&self, profile: &HardwareProfile) -> Result<Arc<Plugin>, String> {
        let candidates = self.by_id.get(&profile.plugin).map(Vec::as_slice).unwrap_or_default();
        let mut reasons = Vec::new();
        let mut best: Option<&Arc<Plugin>> = None;
        for plugin in candidates {
            match profile.check_plugin(plugin) {
                Ok(()) => {
                    let newer = |b: &&Arc<Plugin>| {
                        Version::parse(&plugin.info.version).ok() > Version::parse(&b.info.version).ok()
                    };
                    if best.as_ref().is_none_or(newer) {
                        best = Some(plugin);
                    }
                }
                Err(e) => reasons.push(e),
            }
        }
        best.cloned().ok_or_else(|| {
            let mut message = format!(
                "profile `{}` needs plugin `{}` {}, and the plugin directory has none that fits",
                profile.name, profile.plugin, profile.plugin_version
            );
            for reason in reasons.iter().chain(&self.refused) {
                message.push_str(&format!("; {reason}"));
            }
            message
        })
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
        let gateway = Gateway::connect(entry.endpoint.clone(), entry.tls.clone(), limits.clone())
            .await
            .map(Arc::new)
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

/// Reads the inventory, the profiles and the plugins, and plans the members: everything the
/// commands do before contacting a BMC. Every problem found is returned.
pub async fn load(
    inventory: &Path,
    profile_dir: Option<&Path>,
    plugin_dir: &Path,
    runtime: &Runtime,
    limits: Limits,
) -> Result<(Inventory, Vec<Member>), Vec<String>> {
    let inventory = Inventory::load(inventory).map_err(|e| vec![e.to_string()])?;
    let profiles = Profiles::load(profile_dir).map_err(|e| vec![e])?;
    let plugins = PluginSet::load(runtime, plugin_dir).await.map_err(|e| vec![e])?;
    let members = plan(&inventory, &profiles, &plugins, limits).await?;
    Ok((inventory, members))
}
