//! Escrow: the new password goes to the operator's vault before the first BMC changes.
//!
//! Azure Stack Hub's privileged endpoint stores the BMC credential but never gives it back, so a
//! new password that lives only in this process and on the BMCs is one crash away from a stamp
//! nobody can log in to. The escrow command (`--escrow-command`) is run by the system shell and
//! receives the new password on its standard input — never in its arguments or environment,
//! which other users of the machine can read — and must exit 0 before anything changes. After the
//! run it is called again, with no secret, and `BMC_ROTATE_EVENT=rotated` or `rolled-back`, so
//! the vault can mark the version current or discard it.
//!
//! The command is the operator's, not the plugin's: it is trusted with the password, but it
//! still gets a cleared environment (an allow-list, plus the names the operator passes) so a
//! token that happens to be exported for something else does not leak into a vault tool's logs.

use crate::gateway::echo::EchoDetector;
use secrecy::{ExposeSecret, SecretString};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the escrow command is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Store this password (on standard input): nothing has changed yet.
    Store,
    /// Every BMC and Azure Stack hold the escrowed password: make it the current version.
    Rotated,
    /// The run returned every BMC to the old password: the escrowed one was never used.
    RolledBack,
}

impl Event {
    /// The value of `BMC_ROTATE_EVENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Store => "store",
            Event::Rotated => "rotated",
            Event::RolledBack => "rolled-back",
        }
    }
}

/// Variables the command inherits whatever the operator passes: enough to find programs and
/// read the user's configuration (`az`, `vault` and `op` keep theirs under `$HOME`).
const INHERITED: &[&str] = crate::platform::SHELL_ENV;

/// Most bytes of the command's error output kept for the message.
const STDERR_KEPT: usize = 16 * 1024;

/// Lines of the command's error output quoted in a failure.
const STDERR_LINES: usize = 5;

/// The escrow command and how it runs.
#[derive(Clone, Debug)]
pub struct Escrow {
    command: String,
    pass_env: Vec<String>,
    timeout: Duration,
}

/// The run a call belongs to, for the command's environment.
#[derive(Clone, Copy, Debug)]
pub struct RunInfo<'a> {
    /// The stamp (`BMC_ROTATE_STAMP`).
    pub stamp: &'a str,
    /// The BMC account rotated (`BMC_ROTATE_BMC_USER`).
    pub bmc_user: &'a str,
}

impl Escrow {
    /// The command (run by `/bin/sh -c`), the names of further environment variables it may
    /// see, and how long it may take.
    pub fn new(command: String, pass_env: Vec<String>, timeout: Duration) -> Result<Escrow, String> {
        if command.trim().is_empty() {
            return Err("--escrow-command is empty; expected a command line, e.g. `vault kv put …`".into());
        }
        for name in &pass_env {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                // Not repeated: a `NAME=value` given by mistake may hold a token.
                return Err("--escrow-env takes the name of an environment variable (letters, digits, _), not a \
                            value; the value given is not repeated here"
                    .into());
            }
            if name.starts_with("BMC_ROTATE_") {
                return Err(format!("--escrow-env {name}: BMC_ROTATE_* variables are set by bmc-rotate itself"));
            }
        }
        if timeout.is_zero() {
            return Err("--escrow-timeout must be at least 1 second".into());
        }
        Ok(Escrow { command, pass_env, timeout })
    }

    /// Hands `password` to the vault. `Ok` only when the command read it and exited 0 in time.
    pub async fn store(&self, run: RunInfo<'_>, password: &SecretString) -> Result<(), String> {
        self.run(run, Event::Store, Some(password)).await
    }

    /// Tells the vault how the run ended (no secret).
    pub async fn notify(&self, run: RunInfo<'_>, event: Event) -> Result<(), String> {
        self.run(run, event, None).await
    }

    /// A warning when the command looks like it writes to a Key Vault of an Azure Stack Hub
    /// stamp — possibly the one being rotated, whose outage would take the recovery password
    /// with it. Public Azure's and the sovereign clouds' vault domains do not warn.
    pub fn warning(&self) -> Option<String> {
        let lower = self.command.to_ascii_lowercase();
        let stack = lower.contains("azurestack") || lower.contains(".vault.local.");
        stack.then(|| {
            "the escrow command seems to write to an Azure Stack Hub Key Vault: if that is the stamp being \
             rotated, the password that recovers it is out of reach when the stamp is down; escrow to a vault \
             outside the stamp"
                .to_owned()
        })
    }

    async fn run(&self, run: RunInfo<'_>, event: Event, password: Option<&SecretString>) -> Result<(), String> {
        let (mut command, shell_form) = crate::platform::shell(&self.command);
        command.env_clear();
        for name in INHERITED.iter().copied().chain(self.pass_env.iter().map(String::as_str)) {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("BMC_ROTATE_EVENT", event.as_str())
            .env("BMC_ROTATE_STAMP", run.stamp)
            .env("BMC_ROTATE_BMC_USER", run.bmc_user)
            .stdin(if password.is_some() { Stdio::piped() } else { Stdio::null() })
            // A vault tool may print what it stored (`az keyvault secret set` prints the value):
            // nothing the command writes to standard output is read or shown.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("the escrow command could not be started: {e} (it runs as `{shell_form}`)"))?;
        let pid = child.id();
        let mut stdin = child.stdin.take();
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let work = async {
            // Exactly the password, no newline: `az … --file /dev/stdin` would store one. A
            // command that exits without reading it (a missing program) may close the pipe first;
            // its exit status then says more than the broken pipe.
            let mut unread = None;
            if let (Some(pipe), Some(password)) = (stdin.as_mut(), password) {
                unread = pipe.write_all(password.expose_secret().as_bytes()).await.err();
            }
            // Closing standard input tells the command the password is complete.
            drop(stdin.take());
            let mut kept = Vec::new();
            let read = (&mut stderr).take(STDERR_KEPT as u64).read_to_end(&mut kept).await;
            // Whatever lies beyond the kept part is drained, so the command never blocks on a full pipe.
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            let status = child.wait().await.map_err(|e| format!("the escrow command could not be waited for: {e}"))?;
            Ok::<_, String>((status, read.map(|_| kept).unwrap_or_default(), unread))
        };
        let (status, stderr) = match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok((status, _, Some(e)))) if status.success() => {
                return Err(format!(
                    "the escrow command exited 0 without reading the password from its standard input ({e}); the \
                     password is only ever given there"
                ));
            }
            Ok(done) => done.map(|(status, stderr, _)| (status, stderr))?,
            Err(_) => {
                kill_group(pid);
                return Err(format!("the escrow command did not finish within {} s", self.timeout.as_secs()));
            }
        };
        if status.success() {
            return Ok(());
        }
        let said = quote_stderr(&stderr, password);
        Err(format!("the escrow command failed ({status}){said}"))
    }
}

/// `sh -c COMMAND`: operators write recipes with pipes and `$BMC_ROTATE_STAMP`.
/// Ends the command and anything it started (it leads its own process group).
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        crate::platform::kill_tree(pid);
    }
}

/// The last lines of the command's error output, unless they hold the password in any form the
/// echo detector knows (a vault tool reporting what it refused): then none of it.
fn quote_stderr(stderr: &[u8], password: Option<&SecretString>) -> String {
    if let Some(password) = password {
        let mut detector = EchoDetector::new();
        detector.add_secret(password);
        if detector.found_in(stderr) {
            return ": its error output held the password and is not shown".into();
        }
    }
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(STDERR_LINES)..];
    format!(": {}", tail.join(" | "))
}

// The commands are /bin/sh scripts; `cmd_tests` below are Windows' own.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    const RUN: RunInfo<'static> = RunInfo { stamp: "stamp-a", bmc_user: "azsbmc" };

    fn escrow(command: &str) -> Escrow {
        Escrow::new(command.into(), vec![], Duration::from_secs(10)).expect("valid")
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[tokio::test]
    async fn the_password_arrives_on_stdin_exactly_and_nowhere_else() {
        let dir = tempdir();
        let out = dir.join("got");
        let argv_env = dir.join("argv-env");
        let script = format!(
            "cat > {out}; printf '%s\\n' \"$0 $*\" > {ae}; env >> {ae}",
            out = out.display(),
            ae = argv_env.display()
        );
        escrow(&script).store(RUN, &secret("Brand-New-Pw-9")).await.expect("stored");
        assert_eq!(std::fs::read(&out).unwrap(), b"Brand-New-Pw-9");
        let seen = std::fs::read_to_string(&argv_env).unwrap();
        assert!(!seen.contains("Brand-New-Pw-9"), "argv or environment: {seen}");
        assert!(seen.contains("BMC_ROTATE_EVENT=store"));
        assert!(seen.contains("BMC_ROTATE_STAMP=stamp-a"));
        assert!(seen.contains("BMC_ROTATE_BMC_USER=azsbmc"));
    }

    #[tokio::test]
    async fn the_environment_is_cleared_to_the_allow_list_and_the_names_passed() {
        // cargo sets both for the test process; only the one passed may reach the command.
        let dir = tempdir();
        let env = dir.join("env");
        let command = format!("env > {}", env.display());
        let escrow = Escrow::new(command, vec!["CARGO_PKG_NAME".into()], Duration::from_secs(10)).unwrap();
        escrow.notify(RUN, Event::Rotated).await.expect("ran");
        let seen = std::fs::read_to_string(&env).unwrap();
        assert!(seen.contains("CARGO_PKG_NAME=bmc-rotate"), "{seen}");
        assert!(!seen.contains("CARGO_MANIFEST_DIR"), "{seen}");
        assert!(seen.contains("BMC_ROTATE_EVENT=rotated"));
        let names: Vec<&str> = seen.lines().filter_map(|l| l.split_once('=').map(|(n, _)| n)).collect();
        for name in names {
            let allowed = INHERITED.contains(&name)
                || name.starts_with("BMC_ROTATE_")
                || name == "CARGO_PKG_NAME"
                // Set by the shell itself.
                || ["PWD", "SHLVL", "_", "OLDPWD"].contains(&name);
            assert!(allowed, "{name} reached the escrow command");
        }
    }

    #[tokio::test]
    async fn a_failure_quotes_the_commands_last_lines_but_never_the_password() {
        let err = escrow("cat >/dev/null; echo 'vault: permission denied' >&2; exit 3")
            .store(RUN, &secret("Brand-New-Pw-9"))
            .await
            .unwrap_err();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("vault: permission denied"), "{err}");

        let err = escrow("read -r pw; echo \"refused $pw\" >&2; exit 1")
            .store(RUN, &secret("Brand-New-Pw-9"))
            .await
            .unwrap_err();
        assert!(!err.contains("Brand-New-Pw-9"), "{err}");
        assert!(err.contains("not shown"), "{err}");
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_with_everything_it_started() {
        let dir = tempdir();
        let pid_file = dir.join("pid");
        let command = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let escrow = Escrow::new(command, vec![], Duration::from_secs(1)).unwrap();
        let err = escrow.notify(RUN, Event::RolledBack).await.unwrap_err();
        assert!(err.contains("did not finish within 1 s"), "{err}");
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        // The grandchild is gone (or a zombie about to be reaped by init).
        std::thread::sleep(Duration::from_millis(200));
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z "), "sleep survived: {state}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_failure_not_a_pass() {
        let err = escrow("definitely-not-a-vault-cli-xyz put").store(RUN, &secret("Brand-New-Pw-9")).await;
        assert!(err.unwrap_err().contains("failed (exit status: 127)"));
    }

    #[test]
    fn bad_settings_are_refused_with_what_was_expected() {
        assert!(Escrow::new("  ".into(), vec![], Duration::from_secs(1)).unwrap_err().contains("empty"));
        let err = Escrow::new("x".into(), vec!["VAULT_TOKEN=s.abc".into()], Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("takes the name"), "{err}");
        assert!(!err.contains("s.abc"), "{err}");
        assert!(Escrow::new("x".into(), vec!["BMC_ROTATE_EVENT".into()], Duration::from_secs(1)).is_err());
        assert!(Escrow::new("x".into(), vec![], Duration::ZERO).is_err());
    }

    #[test]
    fn a_stamp_key_vault_warns_and_public_azure_does_not() {
        assert!(
            escrow("az keyvault secret set --id https://kv1.vault.local.azurestack.external/secrets/bmc")
                .warning()
                .is_some()
        );
        assert!(escrow("az keyvault secret set --vault-name ops-kv --name bmc --file /dev/stdin").warning().is_none());
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-escrow-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}

/// The same contract through `cmd.exe`: the password arrives on standard input exactly and
/// never in the environment, the events are named, and a failure reports the exit code and the
/// command's last error line.
#[cfg(all(test, windows))]
mod cmd_tests {
    use super::*;

    const RUN: RunInfo<'static> = RunInfo { stamp: "stamp-a", bmc_user: "azsbmc" };

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-escrow-cmd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn the_password_arrives_on_stdin_through_cmd() {
        let dir = tempdir("stdin");
        let (out, env) = (dir.join("got"), dir.join("env"));
        let command = format!("more > \"{}\" & set > \"{}\"", out.display(), env.display());
        let escrow = Escrow::new(command, vec![], Duration::from_secs(10)).unwrap();
        escrow.store(RUN, &SecretString::from("Brand-New-Pw-9".to_owned())).await.expect("stored");
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(got.trim_end(), "Brand-New-Pw-9");
        let seen = std::fs::read_to_string(&env).unwrap();
        assert!(!seen.contains("Brand-New-Pw-9"), "environment: {seen}");
        assert!(seen.contains("BMC_ROTATE_EVENT=store") && seen.contains("BMC_ROTATE_STAMP=stamp-a"), "{seen}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_failure_reports_the_exit_code_and_the_last_error_line() {
        let escrow =
            Escrow::new("echo vault: permission denied 1>&2 & exit 3".into(), vec![], Duration::from_secs(10)).unwrap();
        let err = escrow.notify(RUN, Event::Rotated).await.unwrap_err();
        assert!(err.contains("exit code: 3") && err.contains("vault: permission denied"), "{err}");
    }
}
