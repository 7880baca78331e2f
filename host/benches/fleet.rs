//! fleet-bench: whole rotations (preflight, change, verify, PEP) of N simulated BMCs with
//! injected per-request latency and bounded concurrency, through the real plugins, sandbox,
//! gateway, journal and native PEP client. `cargo bench -p bmc-rotate --bench fleet`
//! (`-- --quick` for the small cases only; `-- N LATENCY_MS CONCURRENCY` for one case; `--resume`
//! adds, after each rotation, a `resume` doing the same work — see [`resume_case`];
//! `--stamps S N C` rotates S stamps of N BMCs each at 0 ms, C stamps at once — see
//! [`stamps_case`]; `--fixed RUNS` times the `bmc-rotate` binary on one 16-BMC stamp with a cold
//! and a warm plugin cache — see `external::fixed_case`; `--peers N LATENCY_MS CONCURRENCY` compares it
//! with Ansible — see `external::peers_case`; `--compile` times compiling the plugins under each Cranelift
//! configuration — see [`compile_case`]).
//!
//! The lab runs in a child process (this same binary, re-executed), so CPU time and peak RSS
//! are the tool's alone. For each case it prints the wall time, the CPU time per BMC, the peak
//! RSS, and the ideal wall time at that latency: for each phase (preflight, change, change of
//! the BMCs that cannot go back), the most requests one BMC makes in it (they are sequential)
//! times the latency times the number of waves (BMCs in the phase / concurrency, rounded up).
//! The PEP (checked in preflight, told at the end) is timed apart.

use bmc_lab::FleetSpec;
use bmc_lab::pep::PepConfig;
use bmc_rotate::demo::{LAB_CLOUDADMIN_PASSWORD, LAB_PEP_DEADLINE, StampLab};
use bmc_rotate::fleet::engine::{self, Observer, PepStep, Phase, Preflight, RotationOptions, RunOutcome, RunSecrets};
use bmc_rotate::fleet::journal;
use bmc_rotate::fleet::members;
use bmc_rotate::gateway::Limits;
use bmc_rotate::pep::native::NativeClient;
use bmc_rotate::pep::{BmcCredential, PepAction, PepEndpoint, PepRequest, PepTarget, Progress, quiet};
use bmc_rotate::runtime::{Runtime, RuntimeConfig};
use secrecy::SecretString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OLD: &str = "Bench-Old_2024x";
const NEW: &str = "Bench-New_2025y";
/// What the resume case sets (XCC's reuse cycle refuses going back to OLD).
const THIRD: &str = "Bench-Thd_2026z";
const PERSONAS: [&str; 3] = ["dell-idrac9", "hpe-ilo5", "lenovo-xcc2"];

/// `[[group]]` lines for N BMCs, as many of each of `personas` (a third each of [`PERSONAS`]).
fn groups(n: u32, latency_ms: u64, personas: &[&str]) -> String {
    let mut groups = String::new();
    let kinds = personas.len() as u32;
    for (i, persona) in personas.iter().enumerate() {
        let count = n / kinds + u32::from((i as u32) < n % kinds);
        if count > 0 {
            groups.push_str(&format!(
                "[[group]]\npersona = \"{persona}\"\ncount = {count}\nfaults = {{ latency_ms = {latency_ms} }}\n"
            ));
        }
    }
    groups
}

/// The child: serve N BMCs (as many of each of `personas`) and a PEP, write the inventory and,
/// for the peers, `bmcs.txt` (name, address, default administrator, certificate file per line)
/// and the certificates; print each BMC's request count whenever a line arrives on stdin, exit
/// when stdin closes.
async fn serve_lab(n: u32, latency_ms: u64, dir: PathBuf, personas: Vec<String>) {
    let personas: Vec<&str> = personas.iter().map(String::as_str).collect();
    let groups = groups(n, latency_ms, &personas);
    let spec =
        FleetSpec::parse(&format!("stamp = \"bench\"\npassword = \"{OLD}\"\nuser = \"azsbmc\"\n{groups}")).unwrap();
    let stamp = StampLab::start(spec, PepConfig::default(), &dir).await.unwrap();
    let mut bmcs = String::new();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    for bmc in stamp.lab.bmcs() {
        let cert = dir.join("certs").join(format!("{}.crt", bmc.name()));
        std::fs::write(&cert, bmc.cert_pem()).unwrap();
        let admin = bmc.persona().profile().default_account.1;
        bmcs.push_str(&format!("{} {} {admin} {}\n", bmc.name(), bmc.addr(), cert.display()));
    }
    std::fs::write(dir.join("bmcs.txt"), bmcs).unwrap();
    println!("ready");
    // The servers run on the runtime's workers; this thread answers request-count queries.
    for _ in std::io::stdin().lock().lines().map_while(Result::ok) {
        let counts: Vec<String> = stamp.lab.bmcs().iter().map(|b| b.state().requests().len().to_string()).collect();
        println!("{}", counts.join(" "));
    }
}

/// The child of the multi-stamp case: S stamps of N BMCs at 0 ms, each with its own PEP (one
/// ERCS VM), inventories in `dir/sNNNN/inventory.toml`; exits when stdin closes.
async fn serve_stamps(stamps: u32, n: u32, dir: PathBuf) {
    let mut labs = Vec::new();
    for s in 0..stamps {
        let name = stamp_name(s);
        let text = format!("stamp = \"{name}\"\npassword = \"{OLD}\"\nuser = \"azsbmc\"\n{}", groups(n, 0, &PERSONAS));
        let pep = PepConfig { endpoints: 1, ..PepConfig::default() };
        labs.push(StampLab::start(FleetSpec::parse(&text).unwrap(), pep, &dir.join(&name)).await.unwrap());
    }
    println!("ready");
    for _ in std::io::stdin().lock().lines().map_while(Result::ok) {}
    drop(labs);
}

fn stamp_name(s: u32) -> String {
    format!("s{s:04}")
}

/// The lab child for `args`, once it says it is ready.
fn spawn_lab(args: &[&str]) -> Child {
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(process.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready", "the lab child did not start");
    Child { process, out }
}

/// What `rotate` runs with by default, at `concurrency`.
fn rotation_options(concurrency: usize) -> RotationOptions {
    RotationOptions {
        concurrency,
        rollback_on_pep_failure: true,
        cancel: bmc_rotate::fleet::cancel::Cancel::new(),
        ledger: bmc_rotate::fleet::ledger::Ledger::new(),
        snmp: bmc_rotate::fleet::engine::SnmpMode::Require,
    }
}

/// One stamp's whole rotation, as `rotate` runs it for each of several stamps: load the
/// inventory and plugins, preflight (PEP check included), change, verify, tell the PEP.
async fn rotate_stamp(runtime: Arc<Runtime>, plugins: Arc<Path>, dir: PathBuf, concurrency: usize) {
    let limits = Limits { request_timeout: Duration::from_secs(120), ..Limits::default() };
    let (inventory, members) =
        members::load(&dir.join("inventory.toml"), None, &[&*plugins], &runtime, limits).await.unwrap();
    let secrets = RunSecrets { old: Arc::new(SecretString::from(OLD)), new: Some(Arc::new(SecretString::from(NEW))) };
    let options = rotation_options(concurrency);
    let observer = Arc::new(engine::Silent);
    let preflighted =
        match engine::preflight(members, &inventory.stamp, secrets, Some(pep_step(&inventory)), &options, observer)
            .await
        {
            Preflight::Passed(preflighted) => preflighted,
            Preflight::Stopped(report) => panic!("stamp {} failed preflight: {:?}", inventory.stamp, report.notes),
        };
    let journal = journal::start_run(&dir.join("run.jsonl"), &inventory, OLD, NEW, true).unwrap();
    let report = preflighted.execute(journal).await.unwrap();
    assert_eq!(report.outcome, RunOutcome::Rotated, "stamp {}: {:?}", inventory.stamp, report.notes);
}

/// Many stamps in one process: S stamps of N BMCs at 0 ms, `stamp_concurrency` at once, every
/// stamp its own inventory, plugins, journal and PEP session, on the command line's one-thread
/// runtime. Reports the wall time, the CPU per BMC (everything: loading, preflight, PEP, change,
/// verify, journal) and per stamp, and the peak RSS. Then the PEP step alone (the preflight
/// check and the credential store, each a session of its own) on `PEP_SAMPLE` stamps one after
/// another, for its CPU per stamp.
async fn stamps_case(runtime: Runtime, plugins: &Path, stamps: u32, n: u32, stamp_concurrency: usize) {
    const PEP_SAMPLE: u32 = 50;
    let dir = std::env::temp_dir().join(format!("bmc-rotate-fleet-bench-stamps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let lab_started = Instant::now();
    let child = spawn_lab(&["--serve-stamps", &stamps.to_string(), &n.to_string(), dir.to_str().unwrap()]);
    let lab_start = lab_started.elapsed();
    let runtime = Arc::new(runtime);
    let plugins: Arc<Path> = Arc::from(plugins);
    let (cpu0, _) = rusage();
    let started = Instant::now();
    let mut queue = (0..stamps).map(stamp_name);
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < stamp_concurrency
            && let Some(name) = queue.next()
        {
            running.spawn(rotate_stamp(runtime.clone(), plugins.clone(), dir.join(name), 16));
        }
        match running.join_next().await {
            Some(done) => done.unwrap(),
            None => break,
        }
    }
    let wall = started.elapsed();
    let (cpu1, max_rss_kib) = rusage();
    let bmcs = f64::from(stamps * n);
    println!(
        "{stamps:>4} stamps × {n} BMCs, 0 ms, {stamp_concurrency} stamps at once (16 BMCs each): wall {:>6.2}s  CPU/BMC {:>5.2} ms  CPU/stamp {:>6.1} ms  peak RSS {:>5} MiB  (lab start {:.1}s, not counted)",
        wall.as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64() * 1000.0 / bmcs,
        (cpu1 - cpu0).as_secs_f64() * 1000.0 / f64::from(stamps),
        max_rss_kib / 1024,
        lab_start.as_secs_f64(),
    );

    // The PEP step alone: check, then store (the credential the run stored: harmless again).
    let sample = stamps.min(PEP_SAMPLE);
    let (mut check, mut store) = (Duration::ZERO, Duration::ZERO);
    for s in 0..sample {
        let inventory =
            bmc_rotate::fleet::inventory::Inventory::load(&dir.join(stamp_name(s)).join("inventory.toml")).unwrap();
        let step = pep_step(&inventory);
        let user = Some(inventory.bmc_user.clone());
        let check_request =
            PepRequest { action: PepAction::Check { bmc_user: user.clone(), readiness: false }, close: None };
        let credential = BmcCredential { user, password: SecretString::from(NEW), bypass_bmc_update: true };
        let store_request = PepRequest { action: PepAction::SetCredential(credential), close: None };
        let c0 = rusage().0;
        bmc_rotate::pep::run(&step.client, &step.target, &check_request, &quiet()).await.unwrap();
        let c1 = rusage().0;
        bmc_rotate::pep::run(&step.client, &step.target, &store_request, &quiet()).await.unwrap();
        check += c1 - c0;
        store += rusage().0 - c1;
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(sample);
    println!(
        "      PEP step alone, {sample} stamps one after another: CPU/stamp {:.1} ms (check {:.1} ms + store {:.1} ms)",
        per(check + store),
        per(check),
        per(store)
    );
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

struct Child {
    process: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Child {
    /// Requests each BMC has answered so far.
    fn requests(&mut self) -> Vec<usize> {
        writeln!(self.process.stdin.as_mut().unwrap(), "count").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.split_whitespace().map(|n| n.parse().unwrap()).collect()
    }
}

/// A phase boundary: which phase starts, over how many BMCs, and the counters at that moment.
#[derive(Clone)]
struct Mark {
    phase: Phase,
    bmcs: usize,
    requests: Vec<usize>,
    at: Instant,
    cpu: Duration,
}

/// Records the lab's request counts and our CPU time at each phase boundary, and when the PEP
/// step ended (the run then checks SNMPv3 on every BMC again, still under the PEP's mark).
struct Phases {
    child: Mutex<Child>,
    marks: Mutex<Vec<Mark>>,
    pep_done: Mutex<Option<Mark>>,
}

impl Observer for Phases {
    fn phase(&self, phase: Phase, total: usize) {
        let requests = self.child.lock().unwrap().requests();
        self.marks.lock().unwrap().push(Mark { phase, bmcs: total, requests, at: Instant::now(), cpu: rusage().0 });
    }
    fn advanced(&self, bmc: &str, _: bool, _: &str) {
        if bmc == "PEP" {
            let requests = self.child.lock().unwrap().requests();
            let mark = Mark { phase: Phase::Pep, bmcs: 0, requests, at: Instant::now(), cpu: rusage().0 };
            *self.pep_done.lock().unwrap() = Some(mark);
        }
    }
    fn note(&self, _: &str) {}
    fn pep_progress(&self) -> Progress {
        quiet()
    }
}

fn rusage() -> (Duration, u64) {
    bmc_rotate::platform::resource_usage()
}

/// The BMCs hold NEW after the rotation: a run from NEW to THIRD whose journal holds only its
/// start record (a crash right after it) is converged by `resume` alone — verify every BMC,
/// change and verify each, tell the PEP — so its wall time compares with the rotation's.
async fn resume_case(
    runtime: &Runtime,
    plugins: &Path,
    dir: &Path,
    concurrency: usize,
    pep: PepStep<NativeClient>,
) -> Duration {
    use bmc_rotate::fleet::engine::ResumeOptions;
    let limits = Limits { request_timeout: Duration::from_secs(120), ..Limits::default() };
    let (inventory, members) =
        members::load(&dir.join("inventory.toml"), None, &[plugins], runtime, limits).await.unwrap();
    let path = dir.join("back.jsonl");
    drop(journal::start_run(&path, &inventory, NEW, THIRD, true).unwrap());
    let (old, new) = (Arc::new(SecretString::from(NEW)), Arc::new(SecretString::from(THIRD)));
    let options = ResumeOptions::new(&inventory.stamp, concurrency);
    let started = Instant::now();
    let report = engine::resume(&path, members, old, new, Some(pep), Arc::new(engine::Silent), &options).await.unwrap();
    let wall = started.elapsed();
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:?}", report.notes);
    wall
}

fn pep_step(inventory: &bmc_rotate::fleet::inventory::Inventory) -> PepStep<NativeClient> {
    let settings = inventory.pep.as_ref().unwrap();
    PepStep {
        client: NativeClient,
        target: PepTarget::new(
            settings.endpoints.iter().map(|e| PepEndpoint { tls: None, ..e.clone() }).collect(),
            settings.cloudadmin.clone(),
            SecretString::from(LAB_CLOUDADMIN_PASSWORD),
            LAB_PEP_DEADLINE,
        ),
        close: None,
        readiness: false,
    }
}

async fn case(runtime: &Runtime, plugins: &Path, n: u32, latency_ms: u64, concurrency: usize, with_resume: bool) {
    let dir = std::env::temp_dir()
        .join(format!("bmc-rotate-fleet-bench-{}-{n}-{latency_ms}-{concurrency}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let child = spawn_lab(&["--serve-lab", &n.to_string(), &latency_ms.to_string(), dir.to_str().unwrap()]);

    let limits = Limits { request_timeout: Duration::from_secs(120), ..Limits::default() };
    let cpu_plan = rusage().0;
    let (inventory, members) =
        members::load(&dir.join("inventory.toml"), None, &[plugins], runtime, limits).await.unwrap();
    let pep = pep_step(&inventory);
    let pep_again = pep_step(&inventory);
    let observer = Arc::new(Phases { child: Mutex::new(child), marks: Mutex::default(), pep_done: Mutex::default() });
    let secrets = RunSecrets { old: Arc::new(SecretString::from(OLD)), new: Some(Arc::new(SecretString::from(NEW))) };
    let options = rotation_options(concurrency);
    let journal_path = dir.join("run.jsonl");
    let (cpu0, _) = rusage();
    let started = Instant::now();
    let preflighted = match engine::preflight(members, "bench", secrets, Some(pep), &options, observer.clone()).await {
        Preflight::Passed(preflighted) => preflighted,
        Preflight::Stopped(report) => panic!("the bench fleet failed preflight: {:?}", report.notes),
    };
    let journal = journal::start_run(&journal_path, &inventory, OLD, NEW, true).unwrap();
    let report = preflighted.execute(journal).await.unwrap();
    let wall = started.elapsed();
    let (cpu1, max_rss_kib) = rusage();
    assert_eq!(report.outcome, RunOutcome::Rotated, "{:?}", report.notes);

    // Ideal: per phase, the most requests one BMC made in it × latency × waves of `concurrency`.
    let final_counts = observer.child.lock().unwrap().requests();
    let total_requests: usize = final_counts.iter().sum();
    let mut marks = observer.marks.lock().unwrap().clone();
    let snmp_after_from = marks.len();
    marks.extend(observer.pep_done.lock().unwrap().clone());
    let mut ideal = Duration::ZERO;
    let mut pep_time = Duration::ZERO;
    let mut breakdown = vec![format!("plan {:.2}", (cpu0 - cpu_plan).as_secs_f64() * 1000.0 / n as f64)];
    for (i, mark) in marks.iter().enumerate() {
        let (next, next_at, next_cpu) = marks.get(i + 1).map(|m| (m.requests.clone(), m.at, m.cpu)).unwrap_or((
            final_counts.clone(),
            started + wall,
            cpu1,
        ));
        // After the PEP step: the SNMPv3 check of every BMC again, at the run's concurrency.
        let after_pep = i == snmp_after_from;
        breakdown.push(format!(
            "{} {:.2}",
            if after_pep { "SNMPv3 after" } else { mark.phase.label() },
            (next_cpu - mark.cpu).as_secs_f64() * 1000.0 / n as f64
        ));
        if mark.phase == Phase::Pep && !after_pep {
            // The PEP is checked in preflight and told at the end: both are per stamp.
            pep_time += next_at - mark.at;
            continue;
        }
        let most = next.iter().zip(&mark.requests).map(|(b, a)| b - a).max().unwrap_or(0);
        let bmcs = if after_pep { n as usize } else { mark.bmcs };
        let waves = (bmcs as f64 / concurrency as f64).ceil();
        ideal += Duration::from_secs_f64(most as f64 * latency_ms as f64 / 1000.0 * waves);
    }
    let ratio = if ideal.is_zero() {
        String::from("   -")
    } else {
        format!("{:.2}", (wall - pep_time).as_secs_f64() / ideal.as_secs_f64())
    };
    println!(
        "{n:>5} BMCs {latency_ms:>3} ms c={concurrency:<4} wall {:>7.2}s (PEP {:>5.2}s)  ideal {:>6.2}s  wall-PEP/ideal {ratio:>5}  CPU/BMC {:>6.2} ms  peak RSS {:>5} MiB  requests {total_requests}",
        wall.as_secs_f64(),
        pep_time.as_secs_f64(),
        ideal.as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64() * 1000.0 / n as f64,
        max_rss_kib / 1024,
    );
    println!("      CPU ms per BMC by phase: {}", breakdown.join(", "));
    if with_resume {
        let resumed = resume_case(runtime, plugins, &dir, concurrency, pep_again).await;
        println!(
            "      resume of the same {n} BMCs (verify, change + verify, PEP): wall {:>7.2}s  (rotate {:.2}s)",
            resumed.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
    drop(observer);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cases that run other programs (`--fixed`, `--peers`): their CPU time is the children's,
/// read with `getrusage(RUSAGE_CHILDREN)`, which Windows does not have.
#[cfg(unix)]
mod external {
    use super::*;

    /// The peer comparison's fleet: two generations of each vendor, as in issue 20's reference run.
    const PEER_PERSONAS: &str = "dell-idrac9,dell-idrac10,hpe-ilo5,hpe-ilo6,lenovo-xcc2,lenovo-xcc3";
    /// The Ansible `.ci/ansible.sh` and `lab/conformance/clients.sh` install (community.general
    /// comes with the `ansible` package).
    const ANSIBLE_CORE: &str = "2.19.14";
    const ANSIBLE: &str = "12.3.0";

    /// A finished child process: its wall time, the CPU time (user + system) of it and every
    /// descendant it waited for, and the largest peak RSS among them.
    struct Measured {
        wall: Duration,
        cpu: Duration,
        peak_rss_mib: u64,
    }

    /// CPU time and largest peak RSS (KiB) of this process's children that have been waited for.
    fn children_usage() -> (Duration, u64) {
        // SAFETY: getrusage fills a plain struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid, writable rusage for the call to fill.
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        (tv(usage.ru_utime) + tv(usage.ru_stime), usage.ru_maxrss as u64)
    }

    /// Runs `command` to its end (it must succeed). The lab child is still running, so the CPU
    /// counted is this command's and its descendants' alone.
    fn measure(mut command: Command) -> Measured {
        let cpu0 = children_usage().0;
        let started = Instant::now();
        let out = command.stdin(Stdio::null()).output().unwrap();
        let wall = started.elapsed();
        let (cpu1, rss_kib) = children_usage();
        assert!(
            out.status.success(),
            "{:?} failed ({}):\n{}\n{}",
            command.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Measured { wall, cpu: cpu1 - cpu0, peak_rss_mib: rss_kib / 1024 }
    }

    /// The `bmc-rotate` binary rotating the lab stamp in `dir` from `from` to `to` (a whole run:
    /// plan, preflight with the PEP check, change, verify, journal, PEP store), with its compiled
    /// plugins cached in `cache`.
    fn rotate_command(dir: &Path, cache: &Path, from: &str, to: &str, concurrency: usize, run: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"));
        command
            .args(["rotate", "--inventory"])
            .arg(dir.join("inventory.toml"))
            .arg("--plugin-dir")
            .arg(bmc_tests::vendor_plugin_dir())
            .arg("--audit-log")
            .arg(dir.join("audit.jsonl"))
            .arg("--journal")
            .arg(dir.join(format!("{run}.jsonl")))
            .args(["--bmc-password", "env:BENCH_FROM", "--new-password", "env:BENCH_TO"])
            .args(["--cloudadmin-password", "env:BENCH_CLOUDADMIN", "--concurrency"])
            .arg(concurrency.to_string())
            .args(["--yes", "--output", "json"])
            .env("BMC_ROTATE_CACHE_DIR", cache)
            .env("XDG_STATE_HOME", dir.join("state"))
            .env("BENCH_FROM", from)
            .env("BENCH_TO", to)
            .env("BENCH_CLOUDADMIN", LAB_CLOUDADMIN_PASSWORD);
        command
    }

    /// The password of the `k`th run of a sequence (each new, so no BMC's history refuses it; no
    /// character three times in a row, which some BMCs refuse).
    fn nth_password(k: usize) -> String {
        format!("Bench-Run{k}_Xy")
    }

    /// A fresh scratch directory for a case.
    fn scratch(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bmc-rotate-fleet-bench-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `--fixed RUNS`: the fixed cost of a run. One 16-BMC stamp at 0 ms rotated RUNS times by the
    /// `bmc-rotate` binary, alternately with an empty plugin cache (every plugin the inventory uses
    /// compiled) and a warm one; per run the process's wall time, CPU time and peak RSS.
    pub(super) fn fixed_case(runs: usize) {
        let dir = scratch("fixed");
        let _lab = spawn_lab(&["--serve-lab", "16", "0", dir.to_str().unwrap()]);
        let warm_cache = dir.join("warm-cache");
        let mut from = OLD.to_owned();
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for k in 0..runs * 2 {
            let to = nth_password(k);
            let is_cold = k % 2 == 0;
            let cache = if is_cold { dir.join(format!("cold-cache-{k}")) } else { warm_cache.clone() };
            if !is_cold && !warm_cache.exists() {
                // Fill the warm cache with one dry run first.
                let mut fill = rotate_command(&dir, &warm_cache, &from, &to, 16, "fill");
                fill.arg("--dry-run");
                measure(fill);
            }
            let m = measure(rotate_command(&dir, &cache, &from, &to, 16, &format!("run-{k}")));
            println!(
                "   16 BMCs 0 ms, bmc-rotate rotate, {} plugin cache: wall {:>5.3}s  CPU {:>4.0} ms  peak RSS {:>4} MiB",
                if is_cold { "cold" } else { "warm" },
                m.wall.as_secs_f64(),
                m.cpu.as_secs_f64() * 1000.0,
                m.peak_rss_mib
            );
            if is_cold {
                cold.push(m)
            } else {
                warm.push(m)
            };
            from = to;
        }
        for (label, runs) in [("cold", &cold), ("warm", &warm)] {
            let range = |f: &dyn Fn(&Measured) -> f64| {
                let values: Vec<f64> = runs.iter().map(f).collect();
                (values.iter().cloned().fold(f64::MAX, f64::min), values.iter().cloned().fold(0.0, f64::max))
            };
            let (w0, w1) = range(&|m| m.wall.as_secs_f64());
            let (c0, c1) = range(&|m| m.cpu.as_secs_f64() * 1000.0);
            println!("      {label}: wall {w0:.3}–{w1:.3} s, CPU {c0:.0}–{c1:.0} ms over {} runs", runs.len());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The venv's `ansible-playbook`, installed as the CI scripts install it when missing.
    fn ansible_playbook() -> PathBuf {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("ansible-venv");
        let playbook = venv.join("bin/ansible-playbook");
        let general = std::fs::read_dir(venv.join("lib"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|python| python.path().join("site-packages/ansible_collections/community/general").exists());
        if general != Some(true) {
            eprintln!("installing ansible-core {ANSIBLE_CORE} and ansible {ANSIBLE} into {}", venv.display());
            let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?} failed");
            ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            ok(Command::new(venv.join("bin/pip"))
                .args(["install", "-q"])
                .args([format!("ansible-core=={ANSIBLE_CORE}"), format!("ansible=={ANSIBLE}")]));
        }
        playbook
    }

    /// `--peers N LATENCY CONCURRENCY`: the same stamp (N BMCs, as many of each of
    /// [`PEER_PERSONAS`], every answer delayed by LATENCY ms, the lab in its own process) rotated by
    /// the `bmc-rotate` binary with an empty plugin cache (the whole run: preflight, PEP check,
    /// change, verify, PEP store) and changed by Ansible's `community.general.redfish_command
    /// UpdateUserPassword` (the change alone, an administrator account setting the rotation
    /// account's password, certificates verified, CONCURRENCY forks). Reports each one's wall time
    /// and CPU per BMC (the process and everything it waited for), and the ratios.
    pub(super) fn peers_case(n: u32, latency_ms: u64, concurrency: usize) {
        let playbook = ansible_playbook();
        let dir = scratch("peers");
        let _lab =
            spawn_lab(&["--serve-lab", &n.to_string(), &latency_ms.to_string(), dir.to_str().unwrap(), PEER_PERSONAS]);
        let ours = measure(rotate_command(&dir, &dir.join("cold-cache"), OLD, NEW, concurrency, "peers"));

        let mut hosts = format!(
            "all:\n  vars:\n    ansible_connection: local\n    ansible_python_interpreter: {}\n    admin_password: \"{OLD}\"\n    rotation_user: azsbmc\n    new_password: \"{THIRD}\"\n  hosts:\n",
            playbook.with_file_name("python").display()
        );
        for line in std::fs::read_to_string(dir.join("bmcs.txt")).unwrap().lines() {
            let [name, addr, admin, cert] = line.split(' ').collect::<Vec<_>>()[..] else { panic!("bmcs.txt: {line}") };
            hosts.push_str(&format!(
                "    {name}:\n      baseuri: \"{addr}\"\n      admin_user: \"{admin}\"\n      ca_path: {cert}\n"
            ));
        }
        std::fs::write(dir.join("hosts.yml"), hosts).unwrap();
        std::fs::write(dir.join("change.yml"), ANSIBLE_CHANGE).unwrap();
        let mut ansible = Command::new(&playbook);
        ansible
            .arg("-f")
            .arg(concurrency.to_string())
            .arg("-i")
            .arg(dir.join("hosts.yml"))
            .arg(dir.join("change.yml"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
            .env("ANSIBLE_HOME", dir.join("ansible-home"))
            .env("XDG_CACHE_HOME", dir.join("xdg-cache"));
        let theirs = measure(ansible);

        let per_bmc = |m: &Measured| m.cpu.as_secs_f64() * 1000.0 / f64::from(n);
        println!("{n} BMCs ({PEER_PERSONAS}), {latency_ms} ms, {concurrency} at once, the lab in its own process:");
        for (who, m) in [
            ("bmc-rotate rotate (whole run, cold plugin cache)", &ours),
            ("Ansible UpdateUserPassword (change only)", &theirs),
        ] {
            println!(
                "   {who:<50} wall {:>6.2}s  CPU/BMC {:>7.2} ms  peak RSS {:>4} MiB",
                m.wall.as_secs_f64(),
                per_bmc(m),
                m.peak_rss_mib
            );
        }
        println!(
            "   Ansible / bmc-rotate: CPU per BMC {:.0}×, wall {:.1}×",
            per_bmc(&theirs) / per_bmc(&ours),
            theirs.wall.as_secs_f64() / ours.wall.as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The Ansible side of `--peers`: the change, as `lab/conformance/clients.yml` makes it.
    const ANSIBLE_CHANGE: &str = r#"- name: Rotation account's password through Redfish
  hosts: all
  gather_facts: false
  tasks:
    - name: UpdateUserPassword
      community.general.redfish_command:
        category: Accounts
        command: UpdateUserPassword
        baseuri: "{{ baseuri }}"
        username: "{{ admin_user }}"
        password: "{{ admin_password }}"
        account_username: "{{ rotation_user }}"
        account_password: "{{ new_password }}"
        validate_certs: true
        ca_path: "{{ ca_path }}"
      no_log: true
"#;
}

/// `--compile`: what compiling the vendor plugins costs under each Cranelift configuration the
/// engine could use (the engine's own settings otherwise): CPU time (all threads; compilation is
/// parallel) and wall time to compile the three plugins a stamp of iDRACs, iLOs and XCCs uses,
/// best of three.
fn compile_case() {
    use wasmtime::{OptLevel, RegallocAlgorithm};
    let dir = bmc_tests::vendor_plugin_dir();
    let plugins: Vec<Vec<u8>> = ["dell_idrac", "hpe_ilo", "lenovo_xcc"]
        .iter()
        .map(|p| std::fs::read(dir.join(format!("{p}.wasm"))).unwrap())
        .collect();
    let configurations = [
        ("opt speed, backtracking (the engine's)", OptLevel::Speed, RegallocAlgorithm::Backtracking),
        ("opt speed, single-pass regalloc", OptLevel::Speed, RegallocAlgorithm::SinglePass),
        ("opt none, backtracking", OptLevel::None, RegallocAlgorithm::Backtracking),
        ("opt none, single-pass regalloc", OptLevel::None, RegallocAlgorithm::SinglePass),
    ];
    for (label, opt, regalloc) in configurations {
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .cranelift_opt_level(opt)
            .cranelift_regalloc_algorithm(regalloc)
            .parallel_compilation(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let mut best: Option<(Duration, Duration, usize)> = None;
        for _ in 0..3 {
            let cpu0 = rusage().0;
            let started = Instant::now();
            let mut code = 0;
            for bytes in &plugins {
                code += wasmtime::component::Component::new(&engine, bytes).unwrap().serialize().unwrap().len();
            }
            let measured = (started.elapsed(), rusage().0 - cpu0, code);
            if best.is_none_or(|b| measured.1 < b.1) {
                best = Some(measured);
            }
        }
        let (wall, cpu, code) = best.unwrap();
        println!(
            "   {label:<40} 3 plugins: CPU {:>4.0} ms  wall {:>4.0} ms  compiled {:>5} KiB",
            cpu.as_secs_f64() * 1000.0,
            wall.as_secs_f64() * 1000.0,
            code / 1024
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The lab children hold a connection per BMC, too.
    let _ = bmc_rotate::platform::raise_open_file_limit();
    if args.get(1).map(String::as_str) == Some("--serve-lab") {
        // One thread for the whole lab: the tool under test keeps the machine's other core.
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (n, latency) = (args[2].parse().unwrap(), args[3].parse().unwrap());
        let personas =
            args.get(5).map_or(PERSONAS.map(String::from).to_vec(), |p| p.split(',').map(String::from).collect());
        runtime.block_on(serve_lab(n, latency, PathBuf::from(&args[4]), personas));
        return;
    }
    if args.get(1).map(String::as_str) == Some("--serve-stamps") {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (stamps, n) = (args[2].parse().unwrap(), args[3].parse().unwrap());
        runtime.block_on(serve_stamps(stamps, n, PathBuf::from(&args[4])));
        return;
    }
    if args.iter().any(|a| a == "--compile") {
        compile_case();
        return;
    }
    #[cfg(unix)]
    if let Some(at) = args.iter().position(|a| a == "--fixed") {
        external::fixed_case(args.get(at + 1).and_then(|a| a.parse().ok()).unwrap_or(5));
        return;
    }
    #[cfg(unix)]
    if let Some(at) = args.iter().position(|a| a == "--peers") {
        let number = |i: usize, default: u64| args.get(at + i).and_then(|a| a.parse().ok()).unwrap_or(default);
        external::peers_case(number(1, 60) as u32, number(2, 20), number(3, 16) as usize);
        return;
    }
    #[cfg(not(unix))]
    if args.iter().any(|a| a == "--fixed" || a == "--peers") {
        eprintln!("--fixed and --peers measure child processes with getrusage: run them on Linux");
        std::process::exit(2);
    }
    if let Some(at) = args.iter().position(|a| a == "--stamps") {
        let number = |i: usize| -> u32 { args.get(at + i).and_then(|a| a.parse().ok()).expect("--stamps S N C") };
        let plugins = bmc_tests::vendor_plugin_dir();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(stamps_case(
            Runtime::new(RuntimeConfig::default()).unwrap(),
            &plugins,
            number(1),
            number(2),
            number(3) as usize,
        ));
        return;
    }
    let plugins = bmc_tests::vendor_plugin_dir();
    let with_resume = args.iter().any(|a| a == "--resume");
    let args: Vec<String> = args.into_iter().filter(|a| a != "--resume").collect();
    let cases: Vec<(u32, u64, usize)> = match args.iter().position(|a| a == "--quick") {
        Some(_) => vec![(16, 0, 16), (256, 0, 16), (256, 50, 256)],
        None => match (args.get(1).and_then(|a| a.parse().ok()), args.get(2), args.get(3)) {
            (Some(n), Some(l), Some(c)) => vec![(n, l.parse().unwrap(), c.parse().unwrap())],
            _ => {
                let mut all = Vec::new();
                for n in [16, 256, 4096] {
                    for latency in [0, 50] {
                        for concurrency in [16, 256] {
                            all.push((n, latency, concurrency));
                        }
                    }
                }
                all
            }
        },
    };
    // The same runtime as the command line: one thread.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let rt = Runtime::new(RuntimeConfig::default()).unwrap();
        println!("fleet-bench: plugins from {}\n", plugins.display());
        for (n, latency, concurrency) in cases {
            case(&rt, &plugins, n, latency, concurrency, with_resume).await;
        }
    });
}
