//! The binary as an operator runs it: exit codes, tables, JSON and error messages.

use bmc_tests::wasm;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-artifact-cache");
    Command::new(env!("CARGO_BIN_EXE_bmc-rotate")).args(args).env("BMC_ROTATE_CACHE_DIR", cache).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn inspect_prints_identity_version_and_digest() {
    let file = wasm("guest_sample");
    let out = run(&["plugins", "inspect", file.to_str().unwrap(), "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["id"], "sample");
    assert_eq!(json["api_version"], "0.2.0");
    assert_eq!(json["policy"]["min_length"], 8);
    assert_eq!(json["sha256"].as_str().unwrap().len(), 64);
    assert!(json["imports"].as_array().unwrap().iter().any(|i| i == "bmc:plugin/http@0.2.0"));

    let table = run(&["plugins", "inspect", file.to_str().unwrap()]);
    let table = text(&table.stdout);
    assert!(table.lines().any(|l| l.starts_with("api version:") && l.ends_with(" 0.2.0")), "{table}");
    assert_eq!(json["capabilities"][0], "GET /redfish/v1/**");
    assert!(table.contains("PATCH {account} password=/Password"), "{table}");
}

#[test]
fn inspect_explains_a_refusal() {
    let out = run(&["plugins", "inspect", wasm("guest_future_api").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("targets plugin API 9.0.0") && err.contains("supports API ^0.2.0"), "{err}");
}

#[test]
fn list_shows_every_plugin_and_fails_if_one_is_refused() {
    let dir = wasm("guest_sample").parent().unwrap().to_owned();
    let out = run(&["plugins", "list", "--dir", dir.to_str().unwrap(), "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let sample = rows.iter().find(|r| r["file"] == "guest_sample.wasm").unwrap();
    assert_eq!(sample["id"], "sample");
    let refused = rows.iter().find(|r| r["file"] == "guest_forbidden_imports.wasm").unwrap();
    assert!(refused["error"].as_str().unwrap().contains("wasi:sockets"));
}

#[test]
fn list_marks_files_that_share_a_plugin_id() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-duplicate-plugins");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sample = std::fs::read(wasm("guest_sample")).unwrap();
    std::fs::write(dir.join("guest_sample.wasm"), &sample).unwrap();
    std::fs::write(dir.join("other_sample.wasm"), bmc_tests::with_custom_section(&sample, "x", b"foreign")).unwrap();
    std::fs::copy(wasm("hpe_ilo"), dir.join("hpe_ilo.wasm")).unwrap();

    let out = run(&["plugins", "list", "--dir", dir.to_str().unwrap(), "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = |file: &str| rows.iter().find(|r| r["file"] == file).unwrap().clone();
    let (a, b, ilo) = (row("guest_sample.wasm"), row("other_sample.wasm"), row("hpe_ilo.wasm"));
    assert_eq!((&a["duplicate"], &a["same_id_as"]), (&true.into(), &serde_json::json!(["other_sample.wasm"])));
    assert_eq!((&b["duplicate"], &b["same_id_as"]), (&true.into(), &serde_json::json!(["guest_sample.wasm"])));
    assert_eq!((&ilo["duplicate"], &ilo["same_id_as"]), (&false.into(), &serde_json::json!([])));
    assert_ne!(a["sha256"], b["sha256"]);
    assert_eq!(a["sha256"].as_str().unwrap().len(), 64);

    let table = text(&run(&["plugins", "list", "--dir", dir.to_str().unwrap()]).stdout);
    let line = |file: &str| table.lines().find(|l| l.starts_with(file)).unwrap_or_default().to_owned();
    assert!(line("guest_sample.wasm").contains("sample (DUPLICATE)"), "{table}");
    assert!(line("other_sample.wasm").contains("sample (DUPLICATE)"), "{table}");
    assert!(!line("hpe_ilo.wasm").contains("DUPLICATE"), "{table}");
    assert!(
        table.contains(&format!(
            "DUPLICATE: guest_sample.wasm (sha256 {}) has plugin id `sample`, like other_sample.wasm",
            a["sha256"].as_str().unwrap()
        )) && table.contains("pin"),
        "{table}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_directory_is_bad_input() {
    let out = run(&["plugins", "list", "--dir", "/nonexistent/plugins"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error: plugin directory /nonexistent/plugins does not exist"), "{stderr}");
    // Where plugins go, under the flag this command takes, and where to get them.
    let hint = stderr.lines().find(|l| l.starts_with("hint: ")).unwrap_or_else(|| panic!("no hint: {stderr}"));
    assert!(hint.contains("bmc-rotate/plugins") && hint.contains("--dir DIR"), "{hint}");
    assert!(hint.contains("target/wasm/wasm32-wasip2/plugin/"), "{hint}");

    // An empty directory is listed as empty, with the same hint.
    let empty = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-no-plugins");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(&["plugins", "list", "--dir", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("no plugins (*.wasm) in"), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("hint: `bmc-rotate plugins install FILE.wasm` puts a plugin in"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_explains_the_commands() {
    let out = run(&["plugins", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("list") && help.contains("inspect"), "{help}");
    let bad = run(&["plugins", "frobnicate"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[cfg(feature = "lab")]
#[test]
fn plugin_test_passes_every_vendor_plugin_against_its_personas() {
    for (name, personas) in [("dell_idrac", 2), ("hpe_ilo", 3), ("lenovo_xcc", 3)] {
        let out = run(&["plugin", "test", wasm(name).to_str().unwrap(), "--output", "json"]);
        let verdicts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let failed: Vec<_> = verdicts.iter().filter(|v| v["passed"] != true).collect();
        assert!(failed.is_empty(), "{name}: {failed:#?}");
        assert_eq!(out.status.code(), Some(0), "{name}");
        assert_eq!(
            verdicts.len(),
            1 + personas * 10 + 1,
            "{name}: the capability check, every scenario on every persona, plus another vendor"
        );
        assert_eq!(verdicts[0]["scenario"], "capabilities within the vendor profile", "{name}");
        // Each verdict says what it expected.
        let expected =
            |scenario: &str| verdicts.iter().find(|v| v["scenario"] == scenario).unwrap()["expected"].clone();
        assert_eq!(expected("verify accepts the password"), "success", "{name}");
        assert_eq!(expected("a hung change is ambiguous"), "ambiguous", "{name}");
        assert_eq!(expected("a 500 is an error, not a success"), "protocol or ambiguous", "{name}");
        assert_eq!(expected("another vendor is refused"), "unsupported", "{name}");
    }
}

#[cfg(feature = "lab")]
#[test]
fn plugin_test_fails_a_plugin_that_does_not_fit() {
    // The sample plugin speaks plain Redfish: against an XCC it cannot send If-Match and never
    // identifies the vendor, so the suite must fail it, with a table that says why.
    let out = run(&["plugin", "test", wasm("guest_sample").to_str().unwrap(), "--persona", "lenovo-xcc2"]);
    assert_eq!(out.status.code(), Some(1));
    let table = text(&out.stdout);
    assert!(table.contains("FAIL") && table.contains("failed"), "{table}");
    // A vendor the lab does not simulate runs against the standard persona, where the sample's
    // `account-not-found` for a service without AccountService is not the `unsupported` expected.
    let generic = run(&["plugin", "test", wasm("guest_sample").to_str().unwrap()]);
    assert_eq!(generic.status.code(), Some(1), "{}", text(&generic.stderr));
    let table = text(&generic.stdout);
    assert!(table.contains("against dmtf-generic") && table.contains("11 passed, 1 failed"), "{table}");
    assert!(table.contains("expected unsupported; got: `account-not-found`"), "{table}");
}

#[test]
fn profiles_list_show_and_user_overrides() {
    let out = run(&["profiles", "list", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(all.iter().any(|p| p["name"] == "hpe-proliant-dl380-gen11" && p["plugin"] == "hpe-ilo"));

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("user-profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hpe-proliant-dl380-gen11.toml"),
        "description = \"site override\"\nplugin = \"hpe-ilo\"\nplugin_version = \"^0.1\"\ndefault_account = \"azsbmc\"\ntls = \"system\"\n",
    )
    .unwrap();
    let out = run(&["profiles", "show", "hpe-proliant-dl380-gen11", "--dir", dir.to_str().unwrap()]);
    let shown = text(&out.stdout);
    assert!(shown.contains("site override") && shown.contains("azsbmc"), "{shown}");
    let missing = run(&["profiles", "show", "hpe-proliant-dl999"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("there are:"));
}

#[cfg(not(feature = "lab"))]
#[test]
fn a_production_build_has_no_lab_commands() {
    for args in [&["demo"][..], &["plugin", "test", "x.wasm"][..]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn audit_verify_finds_a_removed_record() {
    use bmc_rotate::fleet::audit::{AuditEntry, append};
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = dir.join("audit.jsonl");
    for stamp in ["east", "west", "north"] {
        append(&log, &AuditEntry::now("rotate", stamp, vec!["node01".into()], "rotated", None)).unwrap();
    }
    let out = run(&["audit", "verify", "--audit-log", log.to_str().unwrap(), "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["records"], 3);
    assert_eq!(json["head"].as_str().unwrap().len(), 64);

    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
    std::fs::write(&log, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    let out = run(&["audit", "verify", "--audit-log", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(":2: the chain breaks here"), "{}", text(&out.stderr));
}

#[test]
fn version_names_the_plugin_api_and_the_pinned_plugins() {
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let version = text(&out.stdout);
    assert!(version.starts_with(&format!("bmc-rotate {}", env!("CARGO_PKG_VERSION"))), "{version}");
    assert!(version.contains("plugin API: ^0.2.0"), "{version}");
    let pinned =
        version.lines().filter(|l| l.contains("sha256 ") && l.trim_start().starts_with("dell-poweredge")).count();
    assert_eq!(pinned, 3, "{version}");
    // `-V` stays one line, for scripts.
    assert_eq!(text(&run(&["-V"]).stdout).lines().count(), 1);
}

#[test]
fn logs_to_a_pipe_are_plain_and_free_of_dependency_chatter() {
    let file = wasm("guest_sample");
    let out = run(&["--log", "debug", "plugins", "inspect", file.to_str().unwrap(), "--no-cache"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = text(&out.stderr);
    assert!(!log.contains('\u{1b}'), "colour codes in a piped log: {log:?}");
    assert!(!log.contains("memory pool"), "wasmtime's debug lines at --log debug: {log}");
}

/// The shell's binary, or `None` (with a note) when it is not installed: CI images need not have
/// zsh or fish, and a missing shell is not a broken completion.
fn shell(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        eprintln!("note: {name} is not installed; its completion test is skipped");
    }
    found
}

/// The completion script for `shell`, written where the shell can source it.
fn completion_script(shell: &str, file: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("completions-{shell}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = run(&["completions", shell]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::write(dir.join(file), &out.stdout).unwrap();
    dir.join(file)
}

/// What each typed line must offer at TAB: a subcommand's options, and nested subcommands.
const COMPLETED: &[(&str, &[&str])] = &[
    ("bmc-rotate rotate --", &["--inventory", "--dry-run", "--new-password", "--log-file"]),
    ("bmc-rotate resume --", &["--journal", "--allow-inventory-change"]),
    ("bmc-rotate pep ", &["check", "set-credential"]),
    ("bmc-rotate pep set-credential --", &["--update-bmcs", "--new-password"]),
    ("bmc-rotate plugins ", &["list", "inspect"]),
    ("bmc-rotate plugins list --", &["--dir", "--output"]),
];

fn assert_offers(shell: &str, line: &str, offered: &[String]) {
    let (_, wanted) = COMPLETED.iter().find(|(l, _)| *l == line).unwrap();
    for word in *wanted {
        assert!(offered.iter().any(|o| o == word), "{shell}: `{line}<TAB>` does not offer {word}: {offered:?}");
    }
    // Only the subcommand's own words: `rotate --` must not offer `resume`'s `--journal`-only options.
    if line.ends_with("rotate --") {
        assert!(!offered.iter().any(|o| o == "--allow-inventory-change"), "{shell}: {offered:?}");
    }
}

#[test]
fn bash_completes_subcommands_and_their_options() {
    let Some(bash) = shell("bash") else { return };
    let script = completion_script("bash", "bmc-rotate.bash");
    // Sourced as bash-completion would, then the registered function called the way bash calls
    // it at TAB: COMP_WORDS/COMP_CWORD set, and the command, current and previous words as $1-$3.
    let driver = r#"
source "$1"
spec=$(complete -p bmc-rotate) || exit 3
fn=${spec##*-F }; fn=${fn%% *}
shift
for line in "$@"; do
    read -r -a COMP_WORDS <<<"$line"
    [[ "$line" == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMP_LINE="$line"; COMP_POINT=${#line}; COMPREPLY=()
    "$fn" bmc-rotate "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "$line|${COMPREPLY[*]}"
done
"#;
    let mut command = std::process::Command::new(bash);
    command.args(["--norc", "--noprofile", "-c", driver, "bash", script.to_str().unwrap()]);
    command.args(COMPLETED.iter().map(|(line, _)| *line));
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for (line, _) in COMPLETED {
        let offered = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{line}|")))
            .unwrap_or_else(|| panic!("no answer for `{line}`: {stdout}"));
        assert_offers("bash", line, &offered.split_whitespace().map(String::from).collect::<Vec<_>>());
    }
}

#[test]
fn fish_completes_subcommands_and_their_options() {
    let Some(fish) = shell("fish") else { return };
    let script = completion_script("fish", "bmc-rotate.fish");
    for (line, _) in COMPLETED {
        let out = std::process::Command::new(&fish)
            .args(["--no-config", "-c", &format!("source {}; complete -C '{line}'", script.display())])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        // One candidate a line, its description after a tab.
        let offered: Vec<String> =
            text(&out.stdout).lines().map(|l| l.split('\t').next().unwrap_or_default().to_owned()).collect();
        assert_offers("fish", line, &offered);
    }
}

#[test]
fn zsh_completes_subcommands_and_their_options() {
    let Some(zsh) = shell("zsh") else { return };
    let script = completion_script("zsh", "_bmc-rotate");
    // zsh completes only in an interactive line editor: drive one in a pseudo-terminal (zpty),
    // with compadd wrapped to record every candidate offered at TAB.
    let driver = r#"
zmodload zsh/zpty || exit 3
zpty -b z zsh -f -i
zpty -w z "PS1=''; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'compadd() { local -a hits; builtin compadd -O hits "$@"; print -rl -- "HIT:"${^hits} >> '"$2"'; builtin compadd "$@" }'
zpty -w z "bindkey '^I' complete-word"
zpty -n -w z "$3"$'\t'
for i in {1..100}; do [[ -s $2 ]] && break; sleep 0.1; done
sleep 0.5
zpty -d z
"#;
    for (line, _) in COMPLETED {
        let hits = script.with_file_name("hits");
        let _ = std::fs::remove_file(&hits);
        let out = std::process::Command::new(&zsh)
            .args(["-f", "-c", driver, "zsh"])
            .args([script.parent().unwrap().to_str().unwrap(), hits.to_str().unwrap(), line])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let offered: Vec<String> = std::fs::read_to_string(&hits)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("HIT:"))
            .map(String::from)
            .collect();
        assert_offers("zsh", line, &offered);
    }
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("man-pages");
    let _ = std::fs::remove_dir_all(&dir);
    let out = run(&["man", "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let top = page("bmc-rotate.1");
    assert!(top.contains(".TH bmc-rotate 1"), "not a roff page: {top}");
    let subcommands = top.split(".SH SUBCOMMANDS").nth(1).expect("a SUBCOMMANDS section");
    for sub in ["rotate", "resume", "status", "pep", "plugins", "profiles", "audit", "completions"] {
        assert!(subcommands.contains(&format!("bmc\\-rotate\\-{sub}(1)")), "{sub} missing: {subcommands}");
    }
    for nested in ["bmc-rotate-rotate.1", "bmc-rotate-pep-set-credential.1", "bmc-rotate-plugins-list.1"] {
        assert!(page(nested).contains(".SH OPTIONS"), "{nested}");
    }
    assert!(page("bmc-rotate-rotate.1").contains("\\-\\-inventory"));
    // Without --out: the top page on stdout, for `bmc-rotate man | man -l -`.
    let stdout = run(&["man"]);
    assert_eq!(stdout.status.code(), Some(0));
    assert!(text(&stdout.stdout).contains(".TH bmc-rotate 1"));
}

#[test]
#[cfg(unix)] // modes and symlink(2)
fn a_log_file_is_private_appended_to_and_never_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-log-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("run.log");
    let file = wasm("guest_sample");
    let inspect = |log: &std::path::Path| {
        // --no-cache: a compile is what logs at debug.
        run(&[
            "--log",
            "debug",
            "--no-cache",
            "--log-file",
            log.to_str().unwrap(),
            "plugins",
            "inspect",
            file.to_str().unwrap(),
        ])
    };
    let out = inspect(&log);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "the log went to the file, not stderr");
    assert_eq!(std::fs::metadata(&log).unwrap().permissions().mode() & 0o777, 0o600);
    let first = std::fs::read_to_string(&log).unwrap();
    assert!(first.contains("DEBUG"), "{first}");
    assert!(!first.contains('\u{1b}'), "{first:?}");

    let out = inspect(&log);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let both = std::fs::read_to_string(&log).unwrap();
    assert!(both.starts_with(&first) && both.len() > first.len(), "the second run must append");

    let link = dir.join("link.log");
    std::os::unix::fs::symlink(dir.join("elsewhere.log"), &link).unwrap();
    let out = inspect(&link);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is a symbolic link"), "{}", text(&out.stderr));
    assert!(!dir.join("elsewhere.log").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[cfg(unix)] // util-linux `script`
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    // util-linux `script` runs the command with a pseudo-terminal as its stderr.
    let Some(script) = shell("script") else { return };
    let file = wasm("guest_sample");
    let command = format!(
        "{} --log debug plugins inspect {} --no-cache >/dev/null",
        env!("CARGO_BIN_EXE_bmc-rotate"),
        file.display()
    );
    let on_terminal = |no_color: Option<&str>| {
        let mut c = Command::new(&script);
        c.args(["-qec", &command, "/dev/null"]).env_remove("NO_COLOR");
        if let Some(value) = no_color {
            c.env("NO_COLOR", value);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        text(&out.stdout)
    };
    let coloured = on_terminal(None);
    assert!(coloured.contains("DEBUG") && coloured.contains('\u{1b}'), "no colour on a terminal: {coloured:?}");
    let plain = on_terminal(Some("1"));
    assert!(plain.contains("DEBUG") && !plain.contains('\u{1b}'), "colour despite NO_COLOR: {plain:?}");
}
