//! The subprocess contract with a stand-in `pwsh` (a shell script that records what it was given
//! and answers one JSON line): secrets only on stdin and never in its environment, the documented
//! PEP procedure in the script, TLS policies it cannot honour refused before it starts, and the
//! answer mapped onto the native client's report and errors.

use super::*;
use crate::pep::{BmcCredential, TranscriptShare, quiet, run};
use secrecy::SecretString;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const CLOUD: &str = "Cloud-Canary-71";
const NEW: &str = "Bmc-Canary-93";
const SHARE: &str = "Share-Canary-55";

fn fake_pwsh(dir: &Path, answer: &str) -> PowerShellClient {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("pwsh");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{0}/argv'\n/usr/bin/env > '{0}/env'\ncat > '{0}/stdin'\necho 'WARNING: noise before the result'\necho '{1}'\n",
        dir.display(),
        answer
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    PowerShellClient { executable: path }
}

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("bmc-rotate-pwsh-{}-{name}", std::process::id()))
}

fn target() -> PepTarget {
    PepTarget {
        endpoints: vec![PepEndpoint::http("10.0.0.4")],
        user: r"AZURESTACK\CloudAdmin".into(),
        password: SecretString::from(CLOUD),
        deadline: Duration::from_secs(30),
        operation_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(5),
    }
}

fn request() -> PepRequest {
    PepRequest {
        action: PepAction::SetCredential(BmcCredential {
            user: Some("bmcadmin".into()),
            password: SecretString::from(NEW),
            bypass_bmc_update: true,
        }),
        close: Some(TranscriptShare {
            path: r"\\hlh\transcripts".into(),
            user: r"HLH\ops".into(),
            password: SecretString::from(SHARE),
        }),
    }
}

fn decoded_script(argv: &str) -> String {
    let b64 = argv.lines().last().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let units: Vec<u16> = bytes.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).unwrap()
}

#[tokio::test]
async fn secrets_go_over_stdin_and_the_script_follows_the_documented_procedure() {
    let dir = scratch("ok");
    let client = fake_pwsh(
        &dir,
        r#"{"status":"ok","cmdlet":"Set-BmcCredential","bmc_user":true,"bypass":true,"output":["done"],"warnings":[],"stored":true,"closed":true}"#,
    );
    let report = run(&client, &target(), &request(), &quiet()).await.unwrap();
    assert!(report.stored && report.transcripts_closed);
    assert_eq!(report.call, "Set-BmcCredential -BmcPassword <SecureString> -BmcUser 'bmcadmin' -BypassBMCUpdate");
    assert_eq!(report.output, ["done"]);

    let argv = std::fs::read_to_string(dir.join("argv")).unwrap();
    let stdin = std::fs::read_to_string(dir.join("stdin")).unwrap();
    assert_eq!(stdin, format!("{CLOUD}\n{NEW}\n{SHARE}\n"), "every secret, in order, on stdin");
    let script = decoded_script(&argv);
    for secret in [CLOUD, NEW, SHARE] {
        assert!(!argv.contains(secret) && !script.contains(secret), "no secret on the command line");
    }
    assert!(argv.starts_with("-NoLogo\n-NoProfile\n-NonInteractive\n-EncodedCommand\n"), "{argv}");
    for expected in [
        "-ConfigurationName PrivilegedEndpoint",
        "-Culture en-US -UICulture en-US",
        "Get-Command -Name Set-BmcCredential -Syntax",
        "Set-BmcCredential -BmcPassword $using:new -BmcUser $using:user -BypassBMCUpdate",
        r"Close-PrivilegedEndpoint -TranscriptsPathDestination '\\hlh\transcripts' -Credential $using:shareCred",
        "Remove-PSSession",
    ] {
        assert!(script.contains(expected), "script lacks `{expected}`:\n{script}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn failures_map_onto_the_same_errors_as_the_native_client() {
    let cases = [
        (r#"{"status":"error","stage":"auth","message":"Access is denied."}"#, "refused the credential"),
        (r#"{"status":"error","stage":"no-cmdlet"}"#, "neither Set-BmcCredential nor Set-BmcPassword"),
        (
            r#"{"status":"error","stage":"rejected","cmdlet":"Set-BmcCredential","message":"BMC 10.0.1.5 did not respond"}"#,
            "Set-BmcCredential failed on http://10.0.0.4:5985/wsman: BMC 10.0.1.5 did not respond",
        ),
    ];
    for (i, (answer, expected)) in cases.iter().enumerate() {
        let dir = scratch(&format!("fail{i}"));
        let error = run(&fake_pwsh(&dir, answer), &target(), &request(), &quiet()).await.unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
    let missing = PowerShellClient { executable: "/nonexistent/pwsh".into() };
    let error = run(&missing, &target(), &request(), &quiet()).await.unwrap_err();
    assert!(error.to_string().contains("cannot start /nonexistent/pwsh"), "{error}");
}

/// Set only in a re-run of the test binary (not with `set_var`, which would race with the other
/// tests' threads), with a value shaped like a secret given as `env:VAR`.
const CANARY_VAR: &str = "BMC_ROTATE_CLOUDADMIN_CANARY";
const CANARY_VALUE: &str = "Env-Secret-Canary-38";
/// What `/bin/sh` adds to the environment it was given.
const SHELL_OWN: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];

#[tokio::test]
async fn the_child_sees_only_the_allow_listed_environment() {
    const NAME: &str = "pep::powershell::tests::the_child_sees_only_the_allow_listed_environment";
    if std::env::var_os(CANARY_VAR).is_none() {
        // Re-run this very test in a process whose environment holds the canary.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CANARY_VAR, CANARY_VALUE)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("1 passed"), "the re-run did not run the test: {stdout}");
        return;
    }
    assert_eq!(std::env::var(CANARY_VAR).unwrap(), CANARY_VALUE, "the parent holds the canary");
    let dir = scratch("env");
    let client = fake_pwsh(
        &dir,
        r#"{"status":"ok","cmdlet":"Set-BmcCredential","bmc_user":true,"bypass":true,"output":[],"warnings":[],"stored":true,"closed":true}"#,
    );
    run(&client, &target(), &request(), &quiet()).await.unwrap();
    let env = std::fs::read_to_string(dir.join("env")).unwrap();
    assert!(!env.contains(CANARY_VAR) && !env.contains(CANARY_VALUE), "the canary reached the child:\n{env}");
    for secret in [CLOUD, NEW, SHARE] {
        assert!(!env.contains(secret));
    }
    let names: Vec<&str> = env.lines().filter_map(|line| line.split_once('=').map(|(name, _)| name)).collect();
    for name in &names {
        assert!(
            INHERITED_ENV.contains(name) || FIXED_ENV.iter().any(|(n, _)| n == name) || SHELL_OWN.contains(name),
            "`{name}` is not on the allow-list:\n{env}"
        );
    }
    if std::env::var_os("PATH").is_some() {
        assert!(names.contains(&"PATH"), "PATH is passed on:\n{env}");
    }
    assert!(env.lines().any(|l| l == "POWERSHELL_TELEMETRY_OPTOUT=1"), "{env}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_child_environment_is_the_allow_list_of_the_parent() {
    let parent = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/home/ops"),
        ("BMC_ROTATE_CLOUDADMIN", CLOUD),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("https_proxy", "http://user:pw@proxy:3128"),
        ("LD_PRELOAD", "/tmp/evil.so"),
        ("POWERSHELL_TELEMETRY_OPTOUT", "0"),
    ];
    let env = child_environment(parent.iter().map(|(n, v)| (OsString::from(n), OsString::from(v))));
    let env: Vec<(String, String)> =
        env.into_iter().map(|(n, v)| (n.into_string().unwrap(), v.into_string().unwrap())).collect();
    let expected = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/home/ops"),
        ("POWERSHELL_TELEMETRY_OPTOUT", "1"),
        ("POWERSHELL_UPDATECHECK", "Off"),
    ];
    assert_eq!(env, expected.map(|(n, v)| (n.to_owned(), v.to_owned())));
}

#[tokio::test]
async fn a_tls_policy_powershell_cannot_honour_is_refused_before_it_starts() {
    let pinned = format!("sha256:{}", "ab".repeat(32));
    for (i, policy) in [pinned.as_str(), "ca-file:/etc/pep-ca.pem", "insecure"].into_iter().enumerate() {
        let dir = scratch(&format!("tls{i}"));
        let client = fake_pwsh(&dir, r#"{"status":"ok","cmdlet":"Set-BmcCredential","stored":true}"#);
        let mut target = target();
        // The refused policy on the second endpoint: nothing may run for the first either.
        let mut https: PepEndpoint = "https://10.0.0.5".parse().unwrap();
        https.tls = Some(policy.parse().unwrap());
        target.endpoints.push(https);
        let error = run(&client, &target, &request(), &quiet()).await.unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, PepError::BadInput(_)), "{message}");
        assert!(
            message.contains(&format!("tls = \"{policy}\"")) && message.contains("--pep-client native"),
            "{message}"
        );
        assert!(!dir.join("argv").exists() && !dir.join("stdin").exists(), "PowerShell was started");
        std::fs::remove_dir_all(dir).unwrap();
    }

    // The system's trust store is what -UseSSL does: accepted.
    let dir = scratch("tls-system");
    let client = fake_pwsh(&dir, r#"{"status":"ok","cmdlet":"Set-BmcCredential","stored":true}"#);
    let target = PepTarget { endpoints: vec!["https://10.0.0.5".parse().unwrap()], ..target() };
    run(&client, &target, &request(), &quiet()).await.unwrap();
    let script = decoded_script(&std::fs::read_to_string(dir.join("argv")).unwrap());
    assert!(script.contains("-Port 5986 -UseSSL"), "{script}");
    std::fs::remove_dir_all(dir).unwrap();
}
