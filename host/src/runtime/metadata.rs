//! What can be learned from a plugin's bytes without compiling them: the API version it was built
//! for (the `bmc:api-version` custom section the SDK writes), its capability manifest (the
//! `bmc:capabilities` section) and the interfaces it imports.
//! Both are checked before compilation, so an incompatible or over-reaching plugin is refused
//! with a clear message and costs no compile time.

use super::capabilities::{CAPABILITIES_SECTION, Manifest, ManifestError};
use super::wit::{self, ApiVersion};
use semver::Version;
use wasmparser::{Parser, Payload};

/// The custom section holding the API version, as UTF-8 semver text.
pub const API_VERSION_SECTION: &str = "bmc:api-version";

/// WASI interfaces Rust's standard library imports even when unused. They are linked deny-all:
/// no files, no environment, no arguments; clocks and randomness only.
const ALLOWED_WASI: &[&str] = &["wasi:cli/", "wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:filesystem/"];

/// The facts read from a plugin's bytes.
#[derive(Clone, Debug)]
pub struct Metadata {
    /// The API version from the custom section.
    pub api_version: Version,
    /// The contract version of this host that serves it.
    pub contract: ApiVersion,
    /// The Redfish requests it declares, enforced on every request it sends.
    pub capabilities: Manifest,
    /// The component's top-level imports, e.g. `bmc:plugin/http@0.1.0`.
    pub imports: Vec<String>,
    /// The component's top-level exports.
    pub exports: Vec<String>,
}

/// Why a plugin was refused before compilation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    /// Not a wasm component at all.
    #[error("not a WebAssembly component: {0}")]
    Malformed(String),
    /// Built without the SDK's `register_plugin!` (or stripped of its section).
    #[error(
        "no `{API_VERSION_SECTION}` section: the plugin was not built with bmc-plugin-sdk's \
         `register_plugin!`, or a post-processing step stripped the section"
    )]
    MissingVersion,
    /// The section is not a semantic version.
    #[error("the `{API_VERSION_SECTION}` section holds `{0}`, which is not a semantic version")]
    BadVersion(String),
    /// Built for a contract this host does not implement.
    #[error(
        "the plugin targets plugin API {found}; this host supports API {supported}. Rebuild the \
         plugin with a bmc-plugin-sdk matching {supported}, or use a bmc-rotate release that supports {found}"
    )]
    UnsupportedVersion {
        /// The plugin's version.
        found: Version,
        /// What this host accepts.
        supported: String,
    },
    /// Built for a contract version this host knows and refuses.
    #[error(
        "the plugin targets plugin API {found}, which this host no longer serves: {why}. Rebuild the plugin with \
         a bmc-plugin-sdk matching {supported} and declare its Redfish requests in `VendorPlugin::CAPABILITIES`",
        why = wit::RETIRED_WHY
    )]
    RetiredVersion {
        /// The plugin's version.
        found: Version,
        /// What this host accepts.
        supported: String,
    },
    /// No capability manifest, or more than one.
    #[error(
        "no single `{CAPABILITIES_SECTION}` section: a plugin must declare the Redfish requests it sends (bmc-plugin-sdk's \
         `register_plugin!` writes `VendorPlugin::CAPABILITIES` there)"
    )]
    MissingCapabilities,
    /// The manifest does not parse.
    #[error("the `{CAPABILITIES_SECTION}` section is not a valid manifest: {0}")]
    BadCapabilities(ManifestError),
    /// Imports something the sandbox does not provide.
    #[error(
        "the plugin imports {}, which the sandbox does not provide; plugins may import only \
         `bmc:plugin/*` and the WASI interfaces Rust's std needs (cli, io, clocks, random, filesystem)",
        .0.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
    )]
    ForbiddenImports(Vec<String>),
}

/// Reads and checks a plugin's metadata. Parses the whole binary so malformed input becomes an
/// error here rather than in the compiler.
pub fn inspect(bytes: &[u8]) -> Result<Metadata, MetadataError> {
    let mut depth = 0usize;
    let mut versions = Vec::new();
    let mut manifests = Vec::new();
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| MetadataError::Malformed(e.to_string()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != wasmparser::Encoding::Component {
                    return Err(MetadataError::Malformed(
                        "this is a core wasm module; build the plugin for wasm32-wasip2 to get a component".into(),
                    ));
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(section) if section.name() == API_VERSION_SECTION => {
                versions.push(String::from_utf8_lossy(section.data()).into_owned());
            }
            Payload::CustomSection(section) if section.name() == CAPABILITIES_SECTION => {
                manifests.push(String::from_utf8_lossy(section.data()).into_owned());
            }
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import = import.map_err(|e| MetadataError::Malformed(e.to_string()))?;
                    // Type imports only name types of interfaces imported alongside; what the
                    // sandbox must provide are the instances and functions.
                    if !matches!(import.ty, wasmparser::ComponentTypeRef::Type(_)) {
                        imports.push(import.name.name.to_owned());
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export = export.map_err(|e| MetadataError::Malformed(e.to_string()))?;
                    if export.kind != wasmparser::ComponentExternalKind::Type {
                        exports.push(export.name.name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    let text = match versions.as_slice() {
        [] => return Err(MetadataError::MissingVersion),
        [one] => one.trim_end_matches('\0').trim().to_owned(),
        many => return Err(MetadataError::BadVersion(many.join(" + "))),
    };
    let api_version = Version::parse(&text).map_err(|_| MetadataError::BadVersion(text.clone()))?;
    let Some(contract) = ApiVersion::select(&api_version) else {
        if wit::RETIRED.matches(&api_version) {
            return Err(MetadataError::RetiredVersion { found: api_version, supported: wit::supported() });
        }
        return Err(MetadataError::UnsupportedVersion { found: api_version, supported: wit::supported() });
    };
    let capabilities = match manifests.as_slice() {
        [one] => Manifest::parse(one.trim_end_matches('\0')).map_err(MetadataError::BadCapabilities)?,
        _ => return Err(MetadataError::MissingCapabilities),
    };
    let forbidden: Vec<String> = imports.iter().filter(|i| !import_allowed(i, contract)).cloned().collect();
    if !forbidden.is_empty() {
        return Err(MetadataError::ForbiddenImports(forbidden));
    }
    Ok(Metadata { api_version, contract, capabilities, imports, exports })
}

/// Whether the sandbox provides an import to a plugin built for `contract`: the contract's own
/// interfaces at that contract's version (never another version's), and the allowed WASI.
pub fn import_allowed(name: &str, contract: ApiVersion) -> bool {
    if let Some(rest) = name.strip_prefix("bmc:plugin/") {
        let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
        return contract.interfaces().contains(&interface)
            && Version::parse(version).is_ok_and(|v| ApiVersion::select(&v) == Some(contract));
    }
    ALLOWED_WASI.iter().any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        let req = ApiVersion::V0_2;
        for ok in [
            "bmc:plugin/http@0.2.0",
            "bmc:plugin/secrets@0.2.3",
            "wasi:cli/environment@0.2.3",
            "wasi:io/streams@0.2.0",
            "wasi:random/random@0.2.0",
        ] {
            assert!(import_allowed(ok, req), "{ok}");
        }
        for bad in [
            "wasi:sockets/tcp@0.2.0",
            "wasi:http/outgoing-handler@0.2.0",
            "bmc:plugin/http@0.1.0",
            "bmc:plugin/http@0.3.0",
            "bmc:plugin/exec@0.2.0",
            "bmc:plugin/http",
            "acme:evil/x@1.0.0",
            "wasi:cli-evil/x@0.2.0",
        ] {
            assert!(!import_allowed(bad, req), "{bad}");
        }
    }

    #[test]
    fn garbage_and_core_modules_are_refused() {
        assert!(matches!(inspect(b"not wasm"), Err(MetadataError::Malformed(_))));
        // The smallest core module: magic + version 1.
        let core = b"\0asm\x01\0\0\0";
        assert!(inspect(core).unwrap_err().to_string().contains("wasm32-wasip2"));
    }

    /// An empty component holding the given custom sections.
    fn component(sections: &[(&str, &str)]) -> Vec<u8> {
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        for (name, data) in sections {
            let mut payload = vec![name.len() as u8];
            payload.extend_from_slice(name.as_bytes());
            payload.extend_from_slice(data.as_bytes());
            bytes.push(0);
            let mut len = payload.len();
            loop {
                let byte = (len & 0x7f) as u8;
                len >>= 7;
                bytes.push(if len == 0 { byte } else { byte | 0x80 });
                if len == 0 {
                    break;
                }
            }
            bytes.extend_from_slice(&payload);
        }
        bytes
    }

    #[test]
    fn the_manifest_is_read_before_compiling() {
        let baseline = crate::runtime::capabilities::BASELINE;
        let meta = inspect(&component(&[(API_VERSION_SECTION, "0.2.0"), (CAPABILITIES_SECTION, baseline)])).unwrap();
        assert_eq!(meta.capabilities, Manifest::baseline());
        assert_eq!(meta.contract, ApiVersion::V0_2);
        assert_eq!(
            inspect(&component(&[(API_VERSION_SECTION, "0.2.0")])).unwrap_err(),
            MetadataError::MissingCapabilities
        );
        let twice = component(&[
            (API_VERSION_SECTION, "0.2.0"),
            (CAPABILITIES_SECTION, baseline),
            (CAPABILITIES_SECTION, baseline),
        ]);
        assert_eq!(inspect(&twice).unwrap_err(), MetadataError::MissingCapabilities);
        let bad =
            inspect(&component(&[(API_VERSION_SECTION, "0.2.0"), (CAPABILITIES_SECTION, "GET /a\nPATCH {account}\n")]));
        assert!(matches!(bad, Err(MetadataError::BadCapabilities(ref e)) if e.line == 2), "{bad:?}");
    }

    #[test]
    fn a_retired_contract_is_refused_with_the_reason() {
        let err = inspect(&component(&[(API_VERSION_SECTION, "0.1.9")])).unwrap_err();
        assert!(matches!(err, MetadataError::RetiredVersion { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("0.1.9") && text.contains("^0.2.0") && text.contains("CAPABILITIES"), "{text}");
    }

    #[test]
    fn version_messages_name_both_versions() {
        let err = MetadataError::UnsupportedVersion { found: Version::new(9, 0, 0), supported: wit::supported() };
        let text = err.to_string();
        assert!(text.contains("9.0.0") && text.contains("^0.2.0"), "{text}");
        let err = MetadataError::RetiredVersion { found: Version::new(0, 1, 9), supported: wit::supported() };
        assert!(err.to_string().contains("no capability manifest"), "{err}");
    }
}
