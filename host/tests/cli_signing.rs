//! Signed plugins end to end: the stock `minisign` tool signs a real vendor plugin, `plugins
//! install` puts it in place with a profile requiring that key, and `rotate --dry-run` against a
//! lab stamp takes it, while an unsigned, stranger-signed or tampered copy is refused before it is
//! compiled. Also the release script (`release/sign-plugins.sh`) with a throwaway key.

use bmc_lab::FleetSpec;
use bmc_lab::pep::PepConfig;
use bmc_rotate::demo::{LAB_CLOUDADMIN_PASSWORD, StampLab};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const USER: &str = "azsbmc";
const OLD: &str = "Sig-Old_Pass-1";
/// The profile the lab's iDRAC10 persona names.
const PROFILE: &str = "dell-poweredge-r770";

/// The stock signer; missing it is a failure, not a skip: these tests are how CI knows signing
/// works.
fn minisign(args: &[&str]) -> Output {
    let out = Command::new("minisign").args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `minisign` ({e}): the signing tests use the stock minisign tool as vendors do; install it \
             with `apt-get install minisign`"
        )
    });
    assert!(out.status.success(), "minisign {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A fresh key pair without a password: (public key line, secret key file, key id).
fn keypair(dir: &Path, name: &str) -> (String, PathBuf, String) {
    let (public, secret) = (dir.join(format!("{name}.pub")), dir.join(format!("{name}.key")));
    minisign(&["-G", "-f", "-W", "-p", public.to_str().unwrap(), "-s", secret.to_str().unwrap()]);
    let text = std::fs::read_to_string(&public).unwrap();
    let id = text.lines().next().unwrap().rsplit(' ').next().unwrap().to_owned();
    (text.lines().nth(1).unwrap().to_owned(), secret, id)
}

fn sign(file: &Path, secret: &Path, comment: &str) {
    minisign(&["-S", "-s", secret.to_str().unwrap(), "-m", file.to_str().unwrap(), "-t", comment]);
}

fn fresh(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-signing-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bmc_rotate(args: &[&str], profile_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bmc-rotate"))
        .args(args)
        .env("BMC_ROTATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-signing-cache"))
        .env("BMC_ROTATE_PROFILE_DIR", profile_dir)
        .env("XDG_STATE_HOME", Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-signing-state"))
        .env("SIG_OLD", OLD)
        .env("SIG_CLOUD", LAB_CLOUDADMIN_PASSWORD)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `rotate --dry-run --yes --output json` of the inventory, with the lab's secrets.
fn dry_run_args(inventory: &str) -> Vec<&str> {
    vec![
        "rotate",
        "--inventory",
        inventory,
        "--bmc-password",
        "env:SIG_OLD",
        "--cloudadmin-password",
        "env:SIG_CLOUD",
        "--new-password",
        "env:SIG_CLOUD",
        "--dry-run",
        "--yes",
        "--output",
        "json",
    ]
}

/// `rotate --dry-run` of the stamp with these plugins and the profiles of `profile_dir`.
fn dry_run(stamp: &StampLab, plugins: &Path, profile_dir: &Path) -> Output {
    let mut args = dry_run_args(stamp.inventory.to_str().unwrap());
    args.extend(["--plugin-dir", plugins.to_str().unwrap()]);
    bmc_rotate(&args, profile_dir)
}

fn copy_dell(to: &Path) -> PathBuf {
    let file = to.join("dell_idrac.wasm");
    std::fs::copy(bmc_tests::vendor_plugin_dir().join("dell_idrac.wasm"), &file).unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minisigned_plugin_installs_pinned_to_its_key_and_nothing_else_passes() {
    let work = fresh("e2e");
    let (vendor_key, vendor_secret, vendor_id) = keypair(&work, "vendor");
    let (_, stranger_secret, stranger_id) = keypair(&work, "stranger");
    let (download, plugins, profiles) = (work.join("download"), work.join("plugins"), work.join("profiles"));
    std::fs::create_dir_all(&download).unwrap();
    let plugin = copy_dell(&download);
    sign(&plugin, &vendor_secret, "acme dell-idrac release");
    let plugin_arg = plugin.to_str().unwrap();
    let pub_file = work.join("vendor.pub");

    // Install: checked, copied with its signature, compiled, and a profile written that pins it.
    let install = |extra: &[&str]| {
        let mut args = vec!["plugins", "install", plugin_arg, "--profile", PROFILE, "--dir", plugins.to_str().unwrap()];
        args.extend_from_slice(extra);
        bmc_rotate(&args, &profiles)
    };
    let out = install(&["--signer", pub_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&format!("signed by key {vendor_id} (trusted comment \"acme dell-idrac release\"): verified")),
        "{shown}"
    );
    assert!(shown.contains("compiled into the cache"), "{shown}");
    assert!(plugins.join("dell_idrac.wasm.minisig").exists());
    let profile = std::fs::read_to_string(profiles.join(format!("{PROFILE}.toml"))).unwrap();
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&plugin).unwrap()))
    };
    assert!(profile.contains(&format!("plugin_sha256 = \"{sha256}\"")), "{profile}");
    assert!(profile.contains(&format!("signers = [\"{vendor_key}\"]")), "{profile}");

    // Once written, the profile is not replaced without --force.
    let out = install(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("exists; give --force"), "{}", text(&out.stderr));

    // inspect names the signer and says it verified under the installed profile.
    let out = bmc_rotate(
        &["plugins", "inspect", plugins.join("dell_idrac.wasm").to_str().unwrap(), "--output", "json"],
        &profiles,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signature = &json["signature"];
    assert_eq!(signature["key_id"], vendor_id.as_str(), "{json}");
    assert_eq!(signature["trusted_comment"], "acme dell-idrac release");
    assert_eq!(signature["verified"], true);
    assert_eq!(signature["trusted_by"], serde_json::json!([PROFILE]));
    let out = bmc_rotate(&["plugins", "inspect", plugins.join("dell_idrac.wasm").to_str().unwrap()], &profiles);
    assert!(
        text(&out.stdout).contains(&format!("key {vendor_id}, trusted comment \"acme dell-idrac release\": verified"))
    );

    // The rotation takes it.
    let stamp_dir = work.join("stamp");
    let spec = FleetSpec::parse(&format!(
        "stamp = \"signing\"\npassword = \"{OLD}\"\nuser = \"{USER}\"\n[fleet]\ndell-idrac10 = 1\n"
    ))
    .unwrap();
    let stamp = StampLab::start(spec, PepConfig::default(), &stamp_dir).await.unwrap();
    let out = tokio::task::block_in_place(|| dry_run(&stamp, &plugins, &profiles));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report"]["outcome"], "dry-run");
    assert_eq!(json["plan"]["bmcs"][0]["plugin_sha256"], sha256.as_str(), "{json}");

    // Unsigned: refused, before compiling.
    let installed = plugins.join("dell_idrac.wasm");
    let signature_file = plugins.join("dell_idrac.wasm.minisig");
    let good_signature = std::fs::read(&signature_file).unwrap();
    std::fs::remove_file(&signature_file).unwrap();
    let out = tokio::task::block_in_place(|| dry_run(&stamp, &plugins, &profiles));
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains(&format!("{} is not signed", installed.display())), "{err}");
    assert!(
        err.contains(&format!("not compiled: every profile in use requires a plugin signed by key {vendor_id}")),
        "{err}"
    );

    // Signed by a stranger: refused, naming the stranger's key.
    sign(&installed, &stranger_secret, "not acme");
    let out = tokio::task::block_in_place(|| dry_run(&stamp, &plugins, &profiles));
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains(&format!("is signed by key {stranger_id}, which is not trusted here")), "{err}");

    // Tampered after signing (still a valid component, one custom section more): refused.
    std::fs::write(&signature_file, &good_signature).unwrap();
    let stock = std::fs::read(&installed).unwrap();
    std::fs::write(&installed, bmc_tests::with_custom_section(&stock, "extra", b"x")).unwrap();
    let out = tokio::task::block_in_place(|| dry_run(&stamp, &plugins, &profiles));
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains(&format!("{}: BAD signature by key {vendor_id}", installed.display())), "{err}");
    assert_eq!(stamp.holding(USER, OLD), 1, "nothing was changed");

    // install refuses the same three, and writes nothing.
    let before = std::fs::read(&installed).unwrap();
    let refused = |file: &Path| {
        let out = bmc_rotate(
            &[
                "plugins",
                "install",
                file.to_str().unwrap(),
                "--profile",
                PROFILE,
                "--dir",
                plugins.to_str().unwrap(),
                "--force",
            ],
            &profiles,
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        text(&out.stderr)
    };
    let unsigned = copy_dell(&work);
    let err = refused(&unsigned);
    assert!(err.contains("is not signed") && err.contains(&format!("signed by key {vendor_id}")), "{err}");
    sign(&unsigned, &stranger_secret, "not acme");
    let err = refused(&unsigned);
    assert!(err.contains(&format!("signed by key {stranger_id}")) && err.contains("not trusted"), "{err}");
    sign(&unsigned, &vendor_secret, "acme");
    std::fs::write(&unsigned, bmc_tests::with_custom_section(&stock, "extra", b"y")).unwrap();
    let err = refused(&unsigned);
    assert!(err.contains(&format!("BAD signature by key {vendor_id}")), "{err}");
    assert_eq!(std::fs::read(&installed).unwrap(), before);

    // A plugin no profile asks a signature of installs unsigned; without --profile the pin is
    // printed, not written.
    let elsewhere = work.join("elsewhere");
    let plain = copy_dell(&fresh("e2e-plain"));
    let out = bmc_rotate(
        &["plugins", "install", plain.to_str().unwrap(), "--dir", elsewhere.to_str().unwrap()],
        &work.join("no-profiles"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("not signed") && shown.contains(&format!("plugin_sha256 = \"{sha256}\"")), "{shown}");
    assert!(!shown.contains("signers") && !work.join("no-profiles").exists(), "{shown}");
    assert!(elsewhere.join("dell_idrac.wasm").exists() && !elsewhere.join("dell_idrac.wasm.minisig").exists());
}

#[test]
fn plugins_list_shows_who_signed_each_plugin_and_whether_it_verified() {
    let work = fresh("list");
    let (_, vendor_secret, vendor_id) = keypair(&work, "vendor");
    let (_, stranger_secret, stranger_id) = keypair(&work, "stranger");
    let (plugins, profiles) = (work.join("plugins"), work.join("profiles"));
    let download = work.join("download");
    std::fs::create_dir_all(&download).unwrap();
    let dell = copy_dell(&download);
    sign(&dell, &vendor_secret, "acme");
    let pub_file = work.join("vendor.pub");
    let args = ["plugins", "install", dell.to_str().unwrap(), "--dir", plugins.to_str().unwrap()];
    let out =
        bmc_rotate(&[&args[..], &["--profile", PROFILE, "--signer", pub_file.to_str().unwrap()]].concat(), &profiles);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Beside it: one unsigned, one signed by a key no profile trusts, one altered after signing.
    let vendor = bmc_tests::vendor_plugin_dir();
    for file in ["hpe_ilo.wasm", "lenovo_xcc.wasm", "generic_redfish.wasm"] {
        std::fs::copy(vendor.join(file), plugins.join(file)).unwrap();
    }
    sign(&plugins.join("lenovo_xcc.wasm"), &stranger_secret, "someone");
    let generic = plugins.join("generic_redfish.wasm");
    sign(&generic, &vendor_secret, "acme");
    let stock = std::fs::read(&generic).unwrap();
    std::fs::write(&generic, bmc_tests::with_custom_section(&stock, "extra", b"x")).unwrap();

    let out = bmc_rotate(&["plugins", "list", "--dir", plugins.to_str().unwrap(), "--output", "json"], &profiles);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let signature = |file: &str| rows.iter().find(|r| r["file"] == file).unwrap()["signature"].clone();
    let dell = signature("dell_idrac.wasm");
    assert_eq!((&dell["verified"], &dell["key_id"]), (&true.into(), &vendor_id.as_str().into()), "{dell}");
    assert_eq!(dell["trusted_by"], serde_json::json!([PROFILE]));
    assert_eq!(
        (&signature("hpe_ilo.wasm")["signed"], &signature("hpe_ilo.wasm")["verified"]),
        (&false.into(), &false.into())
    );
    let lenovo = signature("lenovo_xcc.wasm");
    assert_eq!((&lenovo["verified"], &lenovo["key_id"]), (&false.into(), &stranger_id.as_str().into()), "{lenovo}");
    let bad = signature("generic_redfish.wasm");
    assert_eq!(bad["verified"], false);
    assert!(bad["problem"].as_str().unwrap().contains("BAD signature"), "{bad}");

    let table = text(&bmc_rotate(&["plugins", "list", "--dir", plugins.to_str().unwrap()], &profiles).stdout);
    let line = |file: &str| table.lines().find(|l| l.starts_with(file)).unwrap_or_default().to_owned();
    assert!(table.lines().next().unwrap().ends_with("SIGNATURE"), "{table}");
    assert!(line("dell_idrac.wasm").ends_with(&format!("verified {vendor_id}")), "{table}");
    assert!(line("hpe_ilo.wasm").ends_with("unsigned"), "{table}");
    assert!(line("lenovo_xcc.wasm").ends_with(&format!("untrusted {stranger_id}")), "{table}");
    assert!(line("generic_redfish.wasm").ends_with("BAD"), "{table}");
}

#[test]
fn the_release_script_signs_the_shipped_plugins_with_the_release_key() {
    let work = fresh("release");
    let (public, secret, id) = keypair(&work, "release");
    let dist = work.join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    for name in ["dell_idrac", "hpe_ilo", "lenovo_xcc", "generic_redfish"] {
        std::fs::copy(bmc_tests::vendor_plugin_dir().join(format!("{name}.wasm")), dist.join(format!("{name}.wasm")))
            .unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../release/sign-plugins.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&dist)
        .env("BMC_ROTATE_RELEASE_SECRET_KEY", &secret)
        .env("BMC_ROTATE_RELEASE_PUBKEY", &public)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));

    // A profile trusting the release key (as a release build's built-ins do) verifies each.
    let profiles = work.join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("release.toml"),
        format!(
            "description = \"r\"\nplugin = \"hpe-ilo\"\nplugin_version = \"^0.2\"\ndefault_account = \"a\"\n\
             tls = \"system\"\nsigners = [\"{public}\"]\n"
        ),
    )
    .unwrap();
    for name in ["dell_idrac", "hpe_ilo", "lenovo_xcc", "generic_redfish"] {
        let out = bmc_rotate(
            &["plugins", "inspect", dist.join(format!("{name}.wasm")).to_str().unwrap(), "--output", "json"],
            &profiles,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["signature"]["key_id"], id.as_str());
        assert_eq!(json["signature"]["verified"], true, "{json}");
        let comment = json["signature"]["trusted_comment"].as_str().unwrap();
        assert!(comment.starts_with("bmc-rotate ") && comment.contains(&format!("{name}.wasm")), "{comment}");
    }

    // Without a key the script stops before signing anything.
    let out =
        Command::new("bash").arg(&script).arg(&dist).env_remove("BMC_ROTATE_RELEASE_SECRET_KEY").output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("BMC_ROTATE_RELEASE_SECRET_KEY"), "{}", text(&out.stderr));
}

/// On a packaged system the release's plugin directory belongs to the package manager: an operator
/// installs a vendor's plugin into their own directory, and `rotate` reads both, each profile taking
/// the file it pins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_release_reads_its_own_plugins_and_the_ones_the_operator_installed() {
    let work = fresh("layout");
    // The release layout: PREFIX/bin/bmc-rotate and PREFIX/lib/bmc-rotate/plugins (a copy, not a
    // link: the binary finds its plugins from its resolved path).
    let (bin, release) = (work.join("usr/bin"), work.join("usr/lib/bmc-rotate/plugins"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&release).unwrap();
    let exe = bin.join("bmc-rotate");
    std::fs::copy(env!("CARGO_BIN_EXE_bmc-rotate"), &exe).unwrap();
    std::fs::copy(bmc_tests::vendor_plugin_dir().join("hpe_ilo.wasm"), release.join("hpe_ilo.wasm")).unwrap();
    let (data, profiles, download) = (work.join("data"), work.join("profiles"), work.join("download"));
    std::fs::create_dir_all(&download).unwrap();
    let (_, vendor_secret, vendor_id) = keypair(&work, "vendor");
    let dell = copy_dell(&download);
    sign(&dell, &vendor_secret, "acme");
    let installed = |args: &[&str]| {
        Command::new(&exe)
            .args(args)
            .env_remove("BMC_ROTATE_PLUGIN_DIR")
            .env("XDG_DATA_HOME", &data)
            .env("BMC_ROTATE_CACHE_DIR", work.join("cache"))
            .env("BMC_ROTATE_PROFILE_DIR", &profiles)
            .env("XDG_STATE_HOME", work.join("state"))
            .env("SIG_OLD", OLD)
            .env("SIG_CLOUD", LAB_CLOUDADMIN_PASSWORD)
            .output()
            .unwrap()
    };

    let pub_file = work.join("vendor.pub");
    let out = installed(&[
        "plugins",
        "install",
        dell.to_str().unwrap(),
        "--profile",
        PROFILE,
        "--signer",
        pub_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let user_dir = data.join("bmc-rotate/plugins");
    assert!(user_dir.join("dell_idrac.wasm").is_file() && user_dir.join("dell_idrac.wasm.minisig").is_file());
    assert!(!release.join("dell_idrac.wasm").exists(), "the release's directory is the package manager's");

    let out = installed(&["plugins", "list", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let files: Vec<&str> = rows.iter().map(|r| r["file"].as_str().unwrap()).collect();
    let expected = [release.join("hpe_ilo.wasm"), user_dir.join("dell_idrac.wasm")];
    assert_eq!(files, expected.iter().map(|p| p.to_str().unwrap()).collect::<Vec<_>>(), "whole paths, release first");
    assert_eq!(rows[1]["signature"]["key_id"], vendor_id.as_str());

    // One BMC per directory: the iLO's built-in profile pins the release's file, the iDRAC's
    // installed profile the operator's.
    let spec = FleetSpec::parse(&format!(
        "stamp = \"layout\"\npassword = \"{OLD}\"\nuser = \"{USER}\"\n[fleet]\ndell-idrac10 = 1\nhpe-ilo6 = 1\n"
    ))
    .unwrap();
    let stamp = StampLab::start(spec, PepConfig::default(), &work.join("stamp")).await.unwrap();
    let inventory = stamp.inventory.to_str().unwrap();
    let out = tokio::task::block_in_place(|| installed(&dry_run_args(inventory)));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["report"]["outcome"], "dry-run", "{json}");
    let plugins: Vec<&str> =
        json["plan"]["bmcs"].as_array().unwrap().iter().map(|b| b["plugin"].as_str().unwrap()).collect();
    assert_eq!(plugins.len(), 2, "{json}");
    assert!(
        plugins.iter().any(|p| p.starts_with("dell-idrac")) && plugins.iter().any(|p| p.starts_with("hpe-ilo")),
        "{json}"
    );
}
