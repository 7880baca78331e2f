//! `bmc-rotate plugin new NAME --vendor VENDOR`: a complete plugin crate of its own, from the
//! templates in `host/templates/plugin/`, which does the DMTF-standard password change and
//! passes `plugin test` against the lab's standard persona as it is.

use super::{CliError, CmdResult};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The SDK release a new plugin depends on (the host runs its contract, `^0.2.0`).
const SDK_VERSION: &str = "0.2";

/// `plugin new` arguments.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The crate's name, also the plugin id hardware profiles name: lower-case letters, digits
    /// and `-`, starting with a letter, e.g. `acme-bmc`.
    name: String,
    /// The vendor, as its BMCs' Redfish service root names it (`Vendor`), e.g. `Acme`.
    #[arg(long)]
    vendor: String,
    /// Where to create the crate: a new or empty directory. [default: ./NAME]
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    /// Depend on the SDK in this directory (e.g. an unpacked bmc-plugin-sdk .crate) instead of
    /// `bmc-plugin-sdk = "0.2"` from crates.io.
    #[arg(long, value_name = "PATH")]
    sdk_path: Option<PathBuf>,
}

/// One file of the crate: where it goes and its template.
struct Template {
    path: &'static str,
    text: &'static str,
}

const TEMPLATES: &[Template] = &[
    Template { path: "Cargo.toml", text: include_str!("../../templates/plugin/Cargo.toml.tmpl") },
    Template { path: ".cargo/config.toml", text: include_str!("../../templates/plugin/config.toml.tmpl") },
    Template { path: ".gitignore", text: include_str!("../../templates/plugin/gitignore.tmpl") },
    Template { path: "README.md", text: include_str!("../../templates/plugin/README.md.tmpl") },
    Template { path: "src/lib.rs", text: include_str!("../../templates/plugin/src/lib.rs.tmpl") },
];

/// Runs `plugin new`.
pub fn run(args: NewArgs) -> CmdResult {
    check_name(&args.name).map_err(|e| CliError::bad_input(format!("plugin name `{}`: {e}", args.name)))?;
    check_vendor(&args.vendor).map_err(|e| CliError::bad_input(format!("--vendor `{}`: {e}", args.vendor)))?;
    let sdk = match &args.sdk_path {
        None => format!("version = \"{SDK_VERSION}\""),
        Some(path) => format!("path = {}", sdk_path(path).map_err(CliError::bad_input)?),
    };
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    check_dir(&dir).map_err(CliError::bad_input)?;
    let names = Names::of(&args.name, &args.vendor, &sdk);
    for template in TEMPLATES {
        let path = dir.join(template.path);
        write_new(&path, &names.fill(template.text))
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))?;
    }
    println!("created plugin `{}` for {} in {}", args.name, args.vendor, dir.display());
    for template in TEMPLATES {
        println!("  {}", template.path);
    }
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  cargo test");
    println!("  cargo build-plugin");
    println!("  bmc-rotate plugin test target/wasm32-wasip2/plugin/{}.wasm --persona dmtf-generic", names.lib);
    Ok(ExitCode::SUCCESS)
}

/// The words the templates are filled with.
struct Names {
    name: String,
    lib: String,
    type_name: String,
    vendor: String,
    sdk: String,
}

/// Names the generated code imports from the SDK's prelude or its tests use: a plugin type
/// may not shadow them.
const TAKEN: &[&str] = &[
    "Auth",
    "Bmc",
    "HttpError",
    "IfMatch",
    "JsonBody",
    "Level",
    "Method",
    "MockHost",
    "PasswordPolicy",
    "PluginError",
    "PluginInfo",
    "ProbeResult",
    "Redfish",
    "RedfishError",
    "Reply",
    "Request",
    "Resource",
    "Response",
    "Secret",
    "Self",
    "ServiceRoot",
    "Target",
    "Value",
    "VendorPlugin",
];

impl Names {
    fn of(name: &str, vendor: &str, sdk: &str) -> Names {
        let camel: String = name
            .split(['-', '_'])
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            })
            .collect();
        let type_name = if TAKEN.contains(&camel.as_str()) { format!("{camel}Plugin") } else { camel };
        Names {
            name: name.to_owned(),
            lib: name.replace('-', "_"),
            type_name,
            vendor: vendor.to_owned(),
            sdk: sdk.to_owned(),
        }
    }

    fn fill(&self, template: &str) -> String {
        template
            .replace("{{name}}", &self.name)
            .replace("{{lib}}", &self.lib)
            .replace("{{type}}", &self.type_name)
            .replace("{{vendor}}", &self.vendor)
            .replace("{{sdk}}", &self.sdk)
    }
}

/// Rust's keywords and the crates every build links: names cargo refuses for a package.
const RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// A crate name that is also a good plugin id: `[a-z][a-z0-9-]*`, at most 64 characters, no
/// doubled, leading or trailing `-`, not a Rust keyword nor the SDK's own name.
fn check_name(name: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected lower-case letters, digits and `-`, starting with a letter, e.g. `acme-bmc`";
    if name.is_empty() || name.len() > 64 {
        return Err(format!("{} characters; {EXPECTED}, at most 64 characters", name.len()));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("it must start with a lower-case letter; {EXPECTED}"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(format!("`{}` is not allowed; {EXPECTED}", c.escape_default()));
    }
    if name.ends_with('-') || name.contains("--") {
        return Err(format!("a `-` must sit between two words; {EXPECTED}"));
    }
    let lib = name.replace('-', "_");
    if RESERVED.contains(&lib.as_str()) {
        return Err("it is a Rust keyword or a built-in crate's name; pick another, e.g. `acme-bmc`".into());
    }
    if lib == "bmc_plugin_sdk" {
        return Err("it is the SDK's own name; pick your plugin's, e.g. `acme-bmc`".into());
    }
    Ok(())
}

/// A vendor name that goes into Rust and TOML strings as it is: letters, digits, spaces and
/// `.,&()+-_/`, at most 64 characters, no leading or trailing space.
fn check_vendor(vendor: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected the vendor as its service root's `Vendor` shows it: letters, digits, spaces and \
                            .,&()+-_/, e.g. `Acme` or `Acme Systems, Inc.`";
    if vendor.trim().is_empty() || vendor.chars().count() > 64 {
        return Err(format!("{EXPECTED}, 1 to 64 characters"));
    }
    if vendor.trim() != vendor {
        return Err(format!("leading or trailing space; {EXPECTED}"));
    }
    let allowed = |c: char| c.is_alphanumeric() || " .,&()+-_/".contains(c);
    if let Some(c) = vendor.chars().find(|c| !allowed(*c)) {
        return Err(format!("`{}` is not allowed; {EXPECTED}", c.escape_default()));
    }
    Ok(())
}

/// The SDK directory as a TOML string: absolute, and holding the `bmc-plugin-sdk` package.
fn sdk_path(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let absolute = path.canonicalize().map_err(|e| format!("--sdk-path {shown}: {e}"))?;
    let manifest = absolute.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| {
        format!(
            "--sdk-path {shown}: cannot read {}: {e}; give the bmc-plugin-sdk crate's directory",
            manifest.display()
        )
    })?;
    let parsed: toml::Table = text.parse().map_err(|e| format!("--sdk-path {shown}: {}: {e}", manifest.display()))?;
    let package = parsed.get("package").and_then(|p| p.get("name")).and_then(toml::Value::as_str);
    if package != Some("bmc-plugin-sdk") {
        return Err(format!(
            "--sdk-path {shown}: {} is package {}, not bmc-plugin-sdk",
            manifest.display(),
            package.map_or_else(|| "(none)".to_owned(), |p| format!("`{p}`"))
        ));
    }
    let absolute = absolute.to_str().ok_or_else(|| format!("--sdk-path {shown}: the path is not UTF-8"))?;
    Ok(toml::Value::String(absolute.to_owned()).to_string())
}

/// A directory the crate may be written into: missing (created) or empty.
fn check_dir(dir: &Path) -> Result<(), String> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(format!("{} exists and is not empty; nothing was written", dir.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() => Err(format!("{} exists and is not a directory; nothing was written", dir.display())),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    }
}

/// Writes a file that must not exist yet, creating its directory.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_names_and_plugin_ids() {
        for good in ["acme-bmc", "acme", "x9", "supermicro-x13"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "0 characters"),
            ("Acme", "start with a lower-case letter"),
            ("9acme", "start with a lower-case letter"),
            ("acme_bmc", "`_` is not allowed"),
            ("acme bmc", "` ` is not allowed"),
            ("acme-", "between two words"),
            ("acme--bmc", "between two words"),
            ("self", "Rust keyword"),
            ("test", "built-in crate"),
            ("bmc-plugin-sdk", "the SDK's own name"),
        ] {
            let error = check_name(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(check_name(&"a".repeat(65)).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn vendors_go_into_strings_as_they_are() {
        for good in ["Acme", "Acme Systems, Inc.", "Super Micro (SMC)", "Ünicode AG"] {
            assert_eq!(check_vendor(good), Ok(()), "{good}");
        }
        for bad in ["", " Acme", "Ac\"me", "Ac\\me", "Acme\n", "{{name}}"] {
            assert!(check_vendor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let names = Names::of("acme-bmc", "Acme", "version = \"0.2\"");
        assert_eq!((names.lib.as_str(), names.type_name.as_str()), ("acme_bmc", "AcmeBmc"));
        for template in TEMPLATES {
            let text = names.fill(template.text);
            assert!(!text.contains("{{"), "{}: {}", template.path, &text[text.find("{{").unwrap()..][..40]);
        }
        assert_eq!(Names::of("bmc", "Acme", "").type_name, "BmcPlugin", "never shadows the SDK's `Bmc`");
        assert_eq!(Names::of("vendor-plugin", "Acme", "").type_name, "VendorPluginPlugin");
    }

    #[test]
    fn a_non_empty_directory_is_refused() {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-plugin-new-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(check_dir(&dir), Ok(()));
        assert_eq!(check_dir(&dir.join("missing")), Ok(()));
        std::fs::write(dir.join("file"), "x").unwrap();
        assert!(check_dir(&dir).unwrap_err().contains("is not empty"));
        assert!(check_dir(&dir.join("file")).unwrap_err().contains("not a directory"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_sdk_path_must_hold_the_sdk() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
        let quoted = sdk_path(&sdk).unwrap();
        let parsed: toml::Table = format!("path = {quoted}").parse().expect("a TOML string");
        let path = Path::new(parsed["path"].as_str().unwrap());
        assert!(path.is_absolute() && path.ends_with("sdk"), "{quoted}");
        let host = sdk_path(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_err();
        assert!(host.contains("package `bmc-rotate`, not bmc-plugin-sdk"), "{host}");
        assert!(sdk_path(Path::new("/nonexistent/sdk")).unwrap_err().starts_with("--sdk-path /nonexistent/sdk: "));
    }
}
