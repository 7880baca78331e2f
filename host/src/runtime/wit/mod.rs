//! The contract versions this host implements, and the seam between them and the rest of the
//! host.
//!
//! Each released contract is a frozen folder under `sdk/wit/` (e.g. `sdk/wit/v0.2`, shipped inside
//! the SDK crate: one source of truth for plugins and host) and one module here
//! (`v0_2`) holding its `bindgen!` output, the conversions between its generated types and the
//! host's own ([`super::contract`], [`super::host`]) and the glue that links its imports. Nothing
//! generated leaves these modules: the host's imports are written once, against host types, in
//! [`super::host`], and every version's bindings delegate to them.
//!
//! A plugin's `bmc:api-version` section picks the version ([`ApiVersion::select`]); its exports
//! are then called through [`Guest`], one arm per version. Adding `sdk/wit/v0.3` is: the folder, a
//! `v0_3` module like `v0_2`, and one arm in [`ApiVersion`], [`GuestPre`] and [`Guest`].
//!
//! `bmc:plugin@0.1` is retired, not served: it had no capability manifest and let a plugin place
//! a secret anywhere in a request, so no host policy could tell a password change from an oracle
//! built on one ([`RETIRED`]).

pub mod v0_2;

use super::contract::{Onboarded, PluginError, PluginInfo, ProbeResult, SnmpV3, Target};
use super::job::JobState;
use semver::{Version, VersionReq};
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

/// A contract version this host implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    /// `bmc:plugin@0.2.0`, `sdk/wit/v0.2`.
    V0_2,
}

impl ApiVersion {
    /// Every implemented version, oldest first.
    pub const ALL: &[ApiVersion] = &[ApiVersion::V0_2];

    /// The oldest version implemented.
    pub const MIN: ApiVersion = ApiVersion::V0_2;

    /// The newest version implemented.
    pub const MAX: ApiVersion = ApiVersion::V0_2;

    /// The version of the contract's WIT package.
    pub fn version(self) -> Version {
        match self {
            ApiVersion::V0_2 => v0_2::VERSION,
        }
    }

    /// The contract's interfaces, without package or version.
    pub fn interfaces(self) -> &'static [&'static str] {
        match self {
            ApiVersion::V0_2 => v0_2::INTERFACES,
        }
    }

    /// The implemented version a plugin built for `api` talks to: the one `api` is
    /// semver-compatible with (for 0.x releases, the same minor).
    pub fn select(api: &Version) -> Option<ApiVersion> {
        ApiVersion::ALL.iter().copied().find(|v| compatible(v.version()).matches(api))
    }
}

/// Contract versions this host knows and refuses, with [`RETIRED_WHY`].
pub static RETIRED: std::sync::LazyLock<VersionReq> =
    std::sync::LazyLock::new(|| VersionReq::parse("^0.1.0").expect("a valid requirement"));

/// Why [`RETIRED`] versions are refused, for the operator and the plugin's author.
pub const RETIRED_WHY: &str = "bmc:plugin@0.1 had no capability manifest and let a plugin place a secret anywhere in a \
     request, so a hostile plugin could turn a BMC's answers into an oracle for the password; it cannot be held to \
     this host's least-privilege policy";

/// What a version accepts: `^0.1.0` takes 0.1.x, `^1.2.0` takes 1.x from 1.2.
fn compatible(version: Version) -> VersionReq {
    VersionReq::parse(&format!("^{version}")).expect("a version makes a valid caret requirement")
}

/// The plugin API versions this host accepts, as shown to operators and plugin authors: derived
/// from [`ApiVersion::MIN`] and [`ApiVersion::MAX`], so a new version cannot be forgotten here.
pub fn supported() -> String {
    let (min, max) = (ApiVersion::MIN.version(), ApiVersion::MAX.version());
    if compatible(min.clone()).matches(&max) {
        return format!("^{min}");
    }
    let end = if max.major == 0 { Version::new(0, max.minor + 1, 0) } else { Version::new(max.major + 1, 0, 0) };
    format!(">={min}, <{end}")
}

/// Links every version's imports into one linker: a component names its version in each import
/// (`bmc:plugin/http@0.1.0`), so the versions sit side by side.
pub(crate) fn add_to_linker(linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
    v0_2::add_to_linker(linker)
}

/// A plugin, pre-instantiated against the version it was built for.
pub(crate) enum GuestPre {
    /// Built for `bmc:plugin@0.2.x`.
    V0_2(v0_2::Pre),
}

impl GuestPre {
    /// Checks that the component exports the world of `api`.
    pub(crate) fn new(api: ApiVersion, pre: InstancePre<JobState>) -> wasmtime::Result<GuestPre> {
        Ok(match api {
            ApiVersion::V0_2 => GuestPre::V0_2(v0_2::Pre::new(pre)?),
        })
    }

    /// A fresh instance in `store`.
    pub(crate) async fn instantiate(&self, store: &mut Store<JobState>) -> wasmtime::Result<Guest> {
        Ok(match self {
            GuestPre::V0_2(pre) => Guest::V0_2(pre.instantiate(store).await?),
        })
    }

    /// Whether the component exports the optional `snmp` interface.
    pub(crate) fn reports_snmp(&self) -> bool {
        match self {
            GuestPre::V0_2(pre) => pre.reports_snmp(),
        }
    }

    /// Whether the component exports the optional `onboard` interface.
    pub(crate) fn onboards(&self) -> bool {
        match self {
            GuestPre::V0_2(pre) => pre.onboards(),
        }
    }

    /// The engine the plugin was compiled for.
    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        match self {
            GuestPre::V0_2(pre) => pre.engine(),
        }
    }
}

/// A live plugin instance; every export is dispatched on its version.
pub(crate) enum Guest {
    /// Built for `bmc:plugin@0.2.x`.
    V0_2(v0_2::Instance),
}

/// What an export returns: a trap (outer) or the plugin's own answer (inner).
pub(crate) type Answer<T> = wasmtime::Result<Result<T, PluginError>>;

impl Guest {
    /// `info`.
    pub(crate) async fn info(&self, store: &mut Store<JobState>) -> Answer<PluginInfo> {
        match self {
            Guest::V0_2(g) => g.info(store).await,
        }
    }

    /// `probe`.
    pub(crate) async fn probe(&self, store: &mut Store<JobState>, target: &Target) -> Answer<ProbeResult> {
        match self {
            Guest::V0_2(g) => g.probe(store, target).await,
        }
    }

    /// `verify`.
    pub(crate) async fn verify(&self, store: &mut Store<JobState>, target: &Target) -> Answer<()> {
        match self {
            Guest::V0_2(g) => g.verify(store, target).await,
        }
    }

    /// `change-password`.
    pub(crate) async fn change_password(&self, store: &mut Store<JobState>, target: &Target) -> Answer<()> {
        match self {
            Guest::V0_2(g) => g.change_password(store, target).await,
        }
    }

    /// `snmp#state`, or `None` from a component without the optional export.
    pub(crate) async fn snmp_state(&self, store: &mut Store<JobState>, target: &Target) -> Answer<Option<SnmpV3>> {
        match self {
            Guest::V0_2(g) => g.snmp_state(store, target).await,
        }
    }

    /// `onboard#disable-account`, or `unsupported` from a component without the optional export.
    pub(crate) async fn disable_account(&self, store: &mut Store<JobState>, target: &Target) -> Answer<()> {
        match self {
            Guest::V0_2(g) => g.disable_account(store, target).await,
        }
    }

    /// `onboard#enable-account`, or `unsupported` from a component without the optional export.
    pub(crate) async fn enable_account(&self, store: &mut Store<JobState>, target: &Target) -> Answer<Onboarded> {
        match self {
            Guest::V0_2(g) => g.enable_account(store, target).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_is_served_by_the_version_it_is_compatible_with() {
        assert_eq!(ApiVersion::select(&Version::new(0, 2, 0)), Some(ApiVersion::V0_2));
        assert_eq!(ApiVersion::select(&Version::new(0, 2, 7)), Some(ApiVersion::V0_2));
        assert_eq!(ApiVersion::select(&Version::new(0, 1, 0)), None);
        assert_eq!(ApiVersion::select(&Version::new(0, 3, 0)), None);
        assert_eq!(ApiVersion::select(&Version::new(1, 0, 0)), None);
        assert_eq!(ApiVersion::select(&Version::parse("0.2.0-alpha").unwrap()), None);
        assert!(RETIRED.matches(&Version::new(0, 1, 9)) && !RETIRED.matches(&Version::new(0, 2, 0)));
    }

    #[test]
    fn the_supported_range_follows_the_versions() {
        assert_eq!(supported(), "^0.2.0");
        for v in ApiVersion::ALL {
            assert!(ApiVersion::select(&v.version()) == Some(*v), "{v:?} serves its own version");
        }
        assert_eq!(ApiVersion::ALL.first(), Some(&ApiVersion::MIN));
        assert_eq!(ApiVersion::ALL.last(), Some(&ApiVersion::MAX));
    }
}
