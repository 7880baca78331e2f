//! The command line: argument parsing, dispatch, exit codes.

mod args;
mod audit;
#[cfg(feature = "lab")]
mod demo;
mod discover;
mod discover_x509;
mod docs;
mod escrow;
mod onboard;
pub mod pep;
mod plan;
mod plugin_new;
mod plugin_test;
mod plugins;
mod plugins_install;
mod profiles;
mod progress;
mod render;
mod rotate;
mod signals;
mod stamps;

use clap::{Parser, Subcommand, ValueEnum};
use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, documented in the README.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The command failed (a plugin refused to load, a BMC was unreachable, ...).
    pub const FAILED: u8 = 1;
    /// Bad input: arguments, files or settings that are wrong. Nothing was changed.
    pub const BAD_INPUT: u8 = 2;
    /// A rotation failed and every BMC was rolled back to the old password.
    pub const ROLLED_BACK: u8 = 3;
    /// The outcome is not known everywhere (a lost answer, a crash): run again or `resume`.
    pub const NEEDS_RESUME: u8 = 4;
}

/// Why a command did not do its job: the exit code and what to tell the operator. Commands
/// return it and [`main`] prints it, once, so no code path prints an error and forgets the code
/// (or the other way round).
#[derive(Debug)]
pub struct CliError {
    /// The exit code, one of [`exit`].
    pub code: u8,
    /// One `error:` line each: an inventory can be wrong in several places at once, and the
    /// operator should see them all in one go.
    pub messages: Vec<String>,
    /// What to do about it, printed after the errors as `hint:`.
    pub hint: Option<String>,
}

impl CliError {
    /// One error with this exit code.
    pub fn new(code: u8, message: impl Display) -> CliError {
        CliError { code, messages: vec![message.to_string()], hint: None }
    }

    /// Arguments, files or settings are wrong; nothing was changed.
    pub fn bad_input(message: impl Display) -> CliError {
        CliError::new(exit::BAD_INPUT, message)
    }

    /// The command failed.
    pub fn failed(message: impl Display) -> CliError {
        CliError::new(exit::FAILED, message)
    }

    /// Nothing to do, found before any work began (and before any secret was asked for): exit
    /// code 0, the message printed as a `note:` rather than an error, so a script that repeats a
    /// command until it succeeds stops here.
    pub fn nothing_to_do(message: impl Display) -> CliError {
        CliError::new(exit::OK, message)
    }

    /// Adds what the operator can do next.
    pub fn with_hint(mut self, hint: impl Display) -> CliError {
        self.hint = Some(hint.to_string());
        self
    }

    /// The stable word for what went wrong, by exit code: `bad-input` (2), `failed` (1),
    /// `needs-resume` (4); `nothing-to-do` (0) for a note.
    pub fn kind(&self) -> &'static str {
        match self.code {
            exit::OK => "nothing-to-do",
            exit::BAD_INPUT => "bad-input",
            exit::NEEDS_RESUME => "needs-resume",
            exit::ROLLED_BACK => "rolled-back",
            _ => "failed",
        }
    }

    /// Prints the error: `error:` lines on stderr for people and, under `--output json` (or
    /// `jsonl`), one JSON object on stdout too, where a script reads everything else.
    fn report(&self, errors: Errors) -> ExitCode {
        let label = if self.code == exit::OK { "note" } else { "error" };
        let json = serde_json::json!({
            "kind": self.kind(),
            "exit_code": self.code,
            "messages": self.messages,
            "hint": self.hint,
        });
        // Always for people on stderr; for scripts on stdout as well, where they read the rest.
        for message in &self.messages {
            eprintln!("{label}: {message}");
        }
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
        match errors {
            Errors::Text => {}
            Errors::Json => {
                let document = serde_json::json!({ label: json });
                println!("{}", serde_json::to_string_pretty(&document).expect("serialisable"));
            }
            Errors::Event => {
                let mut event = json;
                event["event"] = label.into();
                println!("{event}");
            }
        }
        ExitCode::from(self.code)
    }
}

/// What every command returns: the exit code of a job done (whose outcome, good or bad, is in
/// the output already), or the error [`main`] prints.
pub type CmdResult = Result<ExitCode, CliError>;

/// What `--version` prints: the release, the commit when the build recorded one
/// (`BMC_ROTATE_COMMIT`), the plugin API range and the plugin each built-in profile pins — what
/// an operator needs to tell whether a plugin file will be accepted.
static LONG_VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut text = env!("CARGO_PKG_VERSION").to_owned();
    if let Some(commit) = option_env!("BMC_ROTATE_COMMIT") {
        text.push_str(&format!(" (commit {commit})"));
    }
    text.push_str(&format!("\nplugin API: {}", crate::runtime::wit::supported()));
    text.push_str(&match crate::runtime::signature::release_key() {
        Some(Ok(key)) => format!("\nrelease signing key: {key}; built-in profiles require its signature"),
        Some(Err(e)) => format!("\nrelease signing key: BROKEN: {e}"),
        None => "\nrelease signing key: none (a build without BMC_ROTATE_RELEASE_PUBKEY)".to_owned(),
    });
    text.push_str("\nbuilt-in profiles:");
    for profile in crate::fleet::profiles::Profiles::built_in().iter() {
        text.push_str(&format!(
            "\n  {:<30} {} {}  sha256 {}",
            profile.name,
            profile.plugin,
            profile.plugin_version,
            profile.plugin_sha256.as_deref().unwrap_or("(not pinned)")
        ));
    }
    text
});

/// Rotate BMC passwords across an Azure Stack Hub fleet through sandboxed vendor plugins.
#[derive(Debug, Parser)]
#[command(name = "bmc-rotate", version, long_version = LONG_VERSION.as_str(), propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Log verbosity: error, warn, info, debug or trace (or a tracing filter such as
    /// `bmc_rotate=debug`). Logs go to stderr (or --log-file) and never contain secrets.
    /// wasmtime, cranelift and the HTTP/TLS stacks stay at `warn` unless named
    /// (`--log bmc_rotate=debug,wasmtime=debug`).
    #[arg(long, global = true, env = "BMC_ROTATE_LOG", default_value = "warn")]
    log: String,

    /// Write the log to this file instead of stderr: appended to, never truncated, created with
    /// mode 0600, plain text without colour.
    #[arg(long, global = true, env = "BMC_ROTATE_LOG_FILE", value_name = "FILE")]
    log_file: Option<PathBuf>,

    /// Where compiled plugins are cached (created private to you: mode 0700, or an owner-only
    /// ACL on Windows). [default: $XDG_CACHE_HOME/bmc-rotate/wasm; %LOCALAPPDATA%\bmc-rotate\wasm]
    #[arg(long, global = true, env = "BMC_ROTATE_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile plugins every time instead of using the cache.
    #[arg(long, global = true)]
    no_cache: bool,

    #[command(subcommand)]
    command: Command,
}

/// How a command's errors are printed: for people, or as JSON where its `--output` sends JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Errors {
    Text,
    Json,
    /// One `{"event": "error", …}` line, as the last of a `jsonl` stream.
    Event,
}

impl Command {
    fn errors(&self) -> Errors {
        let one = |output: &Output| if *output == Output::Json { Errors::Json } else { Errors::Text };
        match self {
            Command::Rotate { output, .. } | Command::Resume { output, .. } => match output {
                RunOutput::Table => Errors::Text,
                RunOutput::Json => Errors::Json,
                RunOutput::Jsonl => Errors::Event,
            },
            Command::Status { output, .. }
            | Command::Pep(PepCommand::Check { output, .. })
            | Command::Pep(PepCommand::SetCredential { output, .. })
            | Command::Profiles(ProfilesCommand::List { output, .. })
            | Command::Profiles(ProfilesCommand::Show { output, .. })
            | Command::Plugins(PluginsCommand::List { output, .. })
            | Command::Plugins(PluginsCommand::Inspect { output, .. })
            | Command::Plugins(PluginsCommand::Install(plugins_install::InstallArgs { output, .. })) => one(output),
            Command::Discover(args) => one(&args.output),
            Command::Onboard(args) => one(&args.output),
            Command::Plugins(PluginsCommand::Test(args)) => one(&args.output),
            _ => Errors::Text,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect, test and create vendor plugins (WebAssembly components).
    #[command(subcommand, visible_alias = "plugin")]
    Plugins(PluginsCommand),
    /// Hardware profiles: which plugin rotates which server model's BMC.
    #[command(subcommand, visible_alias = "profile")]
    Profiles(ProfilesCommand),
    /// Rotate the BMC password of a whole stamp: preflight every BMC, change them all, verify,
    /// roll back on any failure, then store the new credential through the privileged endpoint.
    /// Secrets read from stdin come one per line: current BMC password, new BMC password,
    /// CloudAdmin password, transcript share password.
    Rotate {
        #[command(flatten)]
        stamp: stamps::StampsArgs,
        #[command(flatten)]
        args: rotate::RotateArgs,
        #[command(flatten)]
        sources: rotate::Sources,
        /// Output: a table, one JSON report, or JSON lines as the run goes.
        #[arg(long, value_enum, default_value_t = RunOutput::Table)]
        output: RunOutput,
    },
    /// Converge an interrupted or failed run from its journal: find what each BMC holds, finish
    /// (or finish rolling back) and tell the privileged endpoint. Stdin order: old BMC password,
    /// new BMC password, CloudAdmin password. With several inventories, each stamp's journal
    /// (`--journal` naming `{stamp}`, or its last run in the audit log) converges on its own.
    Resume {
        #[command(flatten)]
        args: rotate::ResumeArgs,
        #[command(flatten)]
        sources: rotate::Sources,
        /// Output: a table, one JSON report, or JSON lines as the run goes.
        #[arg(long, value_enum, default_value_t = RunOutput::Table)]
        output: RunOutput,
    },
    /// Find the BMCs at some addresses and write their inventory: per address a TLS handshake
    /// that records the certificate (its SHA-256 becomes the pin) and an anonymous
    /// `GET /redfish/v1/` (never a credential) for vendor, product and hardware profile. Exit
    /// code 0 if every address answered, 1 if some did not (listed on stderr and in the file).
    Discover(discover::DiscoverArgs),
    /// Put the stamp's BMC account on a node being added to the stamp: check the stamp password
    /// with one login on another BMC, log in to the new BMC with its factory or installer
    /// account, create or enable the stamp's `bmc_user` with the stamp password, and verify it by
    /// logging in. At most one failed login per BMC. Stdin order: stamp password, factory password.
    Onboard(onboard::OnboardArgs),
    /// Show where a run stands, from its journal alone (contacts nothing). Exit code 0 if the
    /// run converged, 4 if it needs `resume`. With several inventories: each stamp's last run
    /// and a summary, the exit code the worst stamp's.
    Status {
        #[command(flatten)]
        runs: stamps::StatusArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The privileged-endpoint step on its own: check the PEP, or store a BMC credential.
    #[command(subcommand)]
    Pep(PepCommand),
    /// The audit log: one hash-chained line per rotate, resume and credential update.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run the whole tool against a lab on loopback: simulated iDRAC, iLO and XCC BMCs and a
    /// privileged endpoint; one full rotation, then one with an injected failure that rolls
    /// back. Builds the vendor plugins first when run from the source tree (`cargo run`),
    /// otherwise uses the installed ones.
    #[cfg(feature = "lab")]
    Demo {
        /// Use the plugins in this directory (dell_idrac.wasm, hpe_ilo.wasm, lenovo_xcc.wasm).
        /// [default: built from the source tree under `cargo run`, else the installed plugins,
        /// PREFIX/lib/bmc-rotate/plugins beside the binary, else $XDG_DATA_HOME/bmc-rotate/plugins]
        #[arg(long, env = "BMC_ROTATE_PLUGIN_DIR", value_name = "DIR")]
        plugin_dir: Option<PathBuf>,
        /// Simulated BMCs per lab persona (eight vendor generations and a generic Redfish BMC).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
        per_generation: u32,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages: `bmc-rotate.1` and one per subcommand (`bmc-rotate-rotate.1`, …) into
    /// DIR, or the main page to stdout without --out (`bmc-rotate man | man -l -`).
    Man {
        /// The directory to write the pages into (created if missing), e.g.
        /// /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PepCommand {
    /// Connect to the privileged endpoint, authenticate, detect the BMC credential cmdlet and
    /// print the call a rotation would make. Changes nothing.
    Check {
        #[command(flatten)]
        stamp: pep::StampArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Store a new BMC credential in Azure Stack Hub (Set-BmcCredential, or Set-BmcPassword on
    /// pre-1907 stamps), for BMCs already rotated another way. When several secrets come from
    /// stdin they are read one per line: new BMC password, CloudAdmin password, share password.
    SetCredential {
        #[command(flatten)]
        stamp: pep::StampArgs,
        /// Where to read the new BMC password: prompt, env:VAR, file:PATH (mode 0600) or stdin.
        #[arg(long, value_name = "SOURCE", default_value = "prompt", value_parser = args::SecretSourceParser)]
        new_password: crate::secrets::SecretSource,
        /// Let Set-BmcCredential push the credential to the BMCs as well. By default it gets
        /// -BypassBMCUpdate: the BMCs already hold the password, only the store is updated.
        #[arg(long)]
        update_bmcs: bool,
        /// Where to read the transcript share's password (when the inventory names a share).
        #[arg(long, value_name = "SOURCE", value_parser = args::SecretSourceParser)]
        transcripts_password: Option<crate::secrets::SecretSource>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
enum ProfilesCommand {
    /// List the profiles: built-in ones and the user's (which override built-ins of the same name).
    List {
        /// The user profile directory.
        /// [default: $XDG_CONFIG_HOME/bmc-rotate/profiles]
        #[arg(long, env = "BMC_ROTATE_PROFILE_DIR", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Show one profile in full.
    Show {
        /// The profile name, e.g. `dell-poweredge-r640`.
        name: String,
        /// The user profile directory.
        #[arg(long, env = "BMC_ROTATE_PROFILE_DIR", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    /// List the plugins of a directory: id, version, vendor, families, API version and signature.
    /// A plugin that cannot be loaded is listed with the reason, and the exit code is 1.
    List {
        /// The plugin directory (every `*.wasm` in it).
        /// [default: PREFIX/lib/bmc-rotate/plugins beside the binary, and $XDG_DATA_HOME/bmc-rotate/plugins]
        #[arg(long, env = "BMC_ROTATE_PLUGIN_DIR", value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The user profile directory, whose `signers` (with the built-ins') verify the signatures.
        /// [default: $XDG_CONFIG_HOME/bmc-rotate/profiles]
        #[arg(long, env = "BMC_ROTATE_PROFILE_DIR", value_name = "DIR")]
        profile_dir: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Show everything about one plugin: identity, API version, default password policy, SHA-256,
    /// and the interfaces it imports and exports.
    Inspect {
        /// The plugin file (`.wasm` component).
        file: PathBuf,
        /// Its detached minisign signature. [default: FILE.minisig]
        #[arg(long, value_name = "FILE.minisig")]
        signature: Option<PathBuf>,
        /// The user profile directory, whose `signers` (with the built-ins') verify the signature.
        /// [default: $XDG_CONFIG_HOME/bmc-rotate/profiles]
        #[arg(long, env = "BMC_ROTATE_PROFILE_DIR", value_name = "DIR")]
        profile_dir: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Install a plugin: check its signature (if it has one, or its profile requires one), API
    /// version and manifest, copy it and its signature into the plugin directory, compile it
    /// into the cache, and write (--profile NAME) or print the profile lines pinning it.
    Install(plugins_install::InstallArgs),
    /// Run the conformance suite. Against simulated BMCs of the plugin's vendor (in-process, on
    /// loopback; builds with the lab): probe, verify, refused credentials, self-change,
    /// reconcile, policy refusal, lost answers, a 500, a dead BMC, and another vendor's BMC.
    /// Against a real BMC (--bmc): verify, probe and its live policy, one wrong password (exactly
    /// one failed login on that BMC), and with --allow-change a change and its way back. Exit
    /// code 0 only if all pass.
    Test(plugin_test::TestArgs),
    /// Create a plugin crate of its own: a DMTF-standard password change through the SDK, its
    /// capability manifest, MockHost unit tests and a README (build, test, sign, ship).
    New(plugin_new::NewArgs),
}

/// Reads one secret; a source that cannot give it is bad input.
fn read_secret(
    reader: &mut crate::secrets::SecretReader,
    source: &crate::secrets::SecretSource,
    what: &str,
) -> Result<secrecy::SecretString, CliError> {
    reader.read(source, what).map_err(CliError::bad_input)
}

/// Takes the stamp's lock for `command` (`fleet::lock`), held until the value drops; refused at
/// once, before anything is contacted or a secret is asked for, when another process holds it.
/// Refused is exit code 1, not 2: nothing about the operator's input is wrong, nothing was
/// changed, and the same command succeeds once the other run has ended.
fn lock_stamp(
    inventory: &crate::fleet::inventory::Inventory,
    command: &str,
    journal: Option<&std::path::Path>,
) -> Result<crate::fleet::lock::StampLock, CliError> {
    use crate::fleet::lock::{Holder, LockError, StampLock, address_digest};
    let Some(dir) = crate::paths::locks() else {
        return Err(CliError::bad_input(
            "no place for the stamp lock: set XDG_STATE_HOME or HOME (locks live in $XDG_STATE_HOME/bmc-rotate/locks)",
        ));
    };
    let digest = address_digest(inventory.bmcs.iter().map(|b| crate::fleet::inventory::canonical_address(&b.endpoint)));
    let me = Holder::me(command, &inventory.stamp, journal, digest);
    match StampLock::acquire(&dir, &me) {
        Ok(lock) => {
            if let Some(old) = &lock.taken_over {
                eprintln!(
                    "note: taking over the lock of pid {}, which is no longer running; the stamp was being {}",
                    old.pid,
                    old.describe()
                );
                if let Some(journal) = &old.journal {
                    let journal = crate::fleet::lock::printable(journal);
                    eprintln!("note: `bmc-rotate status --journal {journal}` shows where that run stopped");
                }
            }
            Ok(lock)
        }
        Err(e @ LockError::Held { .. }) => {
            let resume = match &e {
                LockError::Held { holder: Some(holder), .. } => match &holder.journal {
                    Some(j) => format!(" and run `bmc-rotate resume --journal {}`", crate::fleet::lock::printable(j)),
                    None => String::new(),
                },
                _ => String::new(),
            };
            Err(CliError::failed(format!("{e}; nothing was changed")).with_hint(format!(
                "wait for that run to end; if it is stuck, stop it (the lock goes with the process){resume}"
            )))
        }
        Err(e @ LockError::BadStamp(_)) => Err(CliError::bad_input(e)),
        Err(e @ LockError::Io(_)) => Err(CliError::failed(format!("{e}; nothing was changed"))),
    }
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned text for people.
    Table,
    /// JSON for programs.
    Json,
}

/// How a run (`rotate`, `resume`) is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunOutput {
    /// Progress on stderr, then an aligned report for people.
    Table,
    /// One JSON document at the end.
    Json,
    /// One JSON object per line on stdout as the run goes (phases, BMCs, PEP, notes), the last
    /// one the report: for orchestrators that follow a run live.
    Jsonl,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let errors = cli.command.errors();
    match start(cli) {
        Ok(code) => code,
        Err(error) => error.report(errors),
    }
}

fn start(cli: Cli) -> CmdResult {
    init_logging(&cli.log, cli.log_file.as_deref())?;
    // One thread: the work is waiting on BMCs, and plugin calls are tens of microseconds. The
    // fleet benchmark measured a third less CPU per BMC than with a work-stealing pool, whose
    // cross-thread wake-ups cost more than they save here.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> CmdResult {
    let cache_dir = if cli.no_cache { None } else { cli.cache_dir.or_else(crate::paths::plugin_cache) };
    match cli.command {
        Command::Plugins(PluginsCommand::List { dir, profile_dir, output }) => {
            plugins::list(dir, profile_dir, output, cache_dir).await
        }
        Command::Plugins(PluginsCommand::Inspect { file, signature, profile_dir, output }) => {
            plugins::inspect(&file, signature, profile_dir, output, cache_dir).await
        }
        Command::Plugins(PluginsCommand::Install(args)) => plugins_install::install(args, cache_dir).await,
        Command::Plugins(PluginsCommand::Test(args)) => plugin_test::run(args, cache_dir).await,
        Command::Plugins(PluginsCommand::New(args)) => plugin_new::run(args),
        Command::Profiles(ProfilesCommand::List { dir, output }) => profiles::list(dir, output),
        Command::Profiles(ProfilesCommand::Show { name, dir, output }) => profiles::show(&name, dir, output),
        Command::Rotate { stamp, args, sources, output } => {
            stamps::rotate(stamp, args, sources, output, cache_dir).await
        }
        Command::Resume { args, sources, output } => stamps::resume(args, sources, output, cache_dir).await,
        Command::Status { runs, output } => stamps::status(runs, output),
        Command::Discover(args) => discover::discover(args).await,
        Command::Onboard(args) => onboard::run(args, cache_dir).await,
        Command::Audit(command) => audit::run(command),
        #[cfg(feature = "lab")]
        Command::Demo { plugin_dir, per_generation } => demo::demo(plugin_dir, per_generation, cache_dir).await,
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { out } => docs::man(out.as_deref()),
        Command::Pep(PepCommand::Check { stamp, output }) => pep::check(stamp, output).await,
        Command::Pep(PepCommand::SetCredential { stamp, new_password, update_bmcs, transcripts_password, output }) => {
            pep::set_credential(stamp, new_password, update_bmcs, transcripts_password, output).await
        }
    }
}

/// Dependencies whose own debug output would drown ours: held at `warn` unless the filter names
/// them (`--log bmc_rotate=debug,wasmtime=debug`).
const QUIET_DEPENDENCIES: &[&str] =
    &["wasmtime", "cranelift", "hyper", "hyper_util", "h2", "reqwest", "rustls", "tokio_rustls"];

/// The operator's filter with [`QUIET_DEPENDENCIES`] added where it does not name them.
fn log_filter(spec: &str) -> String {
    let mut filter = spec.to_owned();
    for dependency in QUIET_DEPENDENCIES {
        if !spec.contains(dependency) {
            filter.push_str(&format!(",{dependency}=warn"));
        }
    }
    filter
}

fn init_logging(spec: &str, file: Option<&std::path::Path>) -> Result<(), CliError> {
    use std::io::IsTerminal;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(spec))
        .map_err(|e| CliError::bad_input(format!("--log: `{spec}`: {e}")))?;
    let (writer, colour) = match file {
        // A file is read later, with a pager or grep: never colour.
        Some(path) => (BoxMakeWriter::new(std::sync::Mutex::new(open_log_file(path)?)), false),
        // Colour only for a person at a terminal: a file, a pipe or NO_COLOR gets plain text.
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        ),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colour)
        .with_target(false)
        .try_init()
        .map_err(|e| CliError::failed(format!("cannot start logging: {e}")))
}

/// Opens `--log-file` for appending: a log of an earlier run may be what explains this one, so it
/// is never truncated. Created 0600 (a log names BMCs, addresses and accounts); a symlink or
/// anything but a regular file is refused, so a planted link cannot redirect the appends.
fn open_log_file(path: &std::path::Path) -> Result<std::fs::File, CliError> {
    use crate::platform::{is_link_refusal, make_private, not_following, owner_only};
    let refuse = |why: String| CliError::bad_input(format!("--log-file {}: {why}", path.display()));
    let file =
        owner_only(not_following(std::fs::OpenOptions::new().append(true).create(true))).open(path).map_err(|e| {
            match is_link_refusal(&e) {
                true => refuse("is a symbolic link; give the file itself".into()),
                false => refuse(e.to_string()),
            }
        })?;
    let meta = file.metadata().map_err(|e| refuse(e.to_string()))?;
    if meta.is_symlink() {
        return Err(refuse("is a symbolic link; give the file itself".into()));
    }
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    make_private(&file).map_err(|e| refuse(format!("cannot make it private: {e}")))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dependencies_stay_quiet_unless_named() {
        assert_eq!(log_filter("debug").matches("=warn").count(), QUIET_DEPENDENCIES.len());
        let named = log_filter("bmc_rotate=debug,wasmtime=debug");
        assert!(named.starts_with("bmc_rotate=debug,wasmtime=debug,cranelift=warn"), "{named}");
        assert!(!named.contains("wasmtime=warn"), "{named}");
    }
}
