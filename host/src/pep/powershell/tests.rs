//! The subprocess contract with a stand-in `pwsh` (a shell script that records what it was given
//! and answers one JSON line): secrets only on stdin, the documented PEP procedure in the script,
//! and the answer mapped onto the native client's report and errors.

use super::*;
use crate::pep::{BmcCredential, TranscriptShare, quiet, run};
use secrecy::SecretString;
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
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{0}/argv'\ncat > '{0}/stdin'\necho 'WARNING: noise before the result'\necho '{1}'\n",
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
