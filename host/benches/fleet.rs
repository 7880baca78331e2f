//! fleet-bench: whole rotations (preflight, change, verify, PEP) of N simulated BMCs with
//! injected per-request latency and bounded concurrency, through the real plugins, sandbox,
//! gateway, journal and native PEP client. `cargo bench -p bmc-rotate --bench fleet`
//! (`-- --quick` for the small cases only; `-- N LATENCY_MS CONCURRENCY` for one case; `--resume`
//! adds, after each rotation, a `resume` doing the same work — see [`resume_case`];
//! `--stamps S N C` rotates S stamps of N BMCs each at 0 ms, C stamps at once — see
//! [`stamps_case`]).
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

/// `[[group]]` lines for N BMCs, a third of each vendor.
fn groups(n: u32, latency_ms: u64) -> String {
    let mut groups = String::new();
    for (i, persona) in PERSONAS.iter().enumerate() {
        let count = n / 3 + u32::from((i as u32) < n % 3);
        if count > 0 {
            groups.push_str(&format!(
                "[[group]]\npersona = \"{persona}\"\ncount = {count}\nfaults = {{ latency_ms = {latency_ms} }}\n"
            ));
        }
    }
    groups
}

/// The child: serve N BMCs (a third of each vendor) and a PEP, write the inventory, print the
/// total request count whenever a line arrives on stdin, exit when stdin closes.
async fn serve_lab(n: u32, latency_ms: u64, dir: PathBuf) {
    let groups = groups(n, latency_ms);
    let spec =
        FleetSpec::parse(&format!("stamp = \"bench\"\npassword = \"{OLD}\"\nuser = \"azsbmc\"\n{groups}")).unwrap();
    let stamp = StampLab::start(spec, PepConfig::default(), &dir).await.unwrap();
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
        let text = format!("stamp = \"{name}\"\npassword = \"{OLD}\"\nuser = \"azsbmc\"\n{}", groups(n, 0));
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

/// Records the lab's request counts and our CPU time at each phase boundary.
struct Phases {
    child: Mutex<Child>,
    marks: Mutex<Vec<Mark>>,
}

impl Observer for Phases {
    fn phase(&self, phase: Phase, total: usize) {
        let requests = self.child.lock().unwrap().requests();
        self.marks.lock().unwrap().push(Mark { phase, bmcs: total, requests, at: Instant::now(), cpu: rusage().0 });
    }
    fn advanced(&self, _: &str, _: bool, _: &str) {}
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
    let observer = Arc::new(Phases { child: Mutex::new(child), marks: Mutex::default() });
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
    let marks = observer.marks.lock().unwrap().clone();
    let mut ideal = Duration::ZERO;
    let mut pep_time = Duration::ZERO;
    let mut breakdown = vec![format!("plan {:.2}", (cpu0 - cpu_plan).as_secs_f64() * 1000.0 / n as f64)];
    for (i, mark) in marks.iter().enumerate() {
        let (next, next_at, next_cpu) = marks.get(i + 1).map(|m| (m.requests.clone(), m.at, m.cpu)).unwrap_or((
            final_counts.clone(),
            started + wall,
            cpu1,
        ));
        breakdown.push(format!(
            "{} {:.2}",
            mark.phase.label(),
            (next_cpu - mark.cpu).as_secs_f64() * 1000.0 / n as f64
        ));
        if mark.phase == Phase::Pep {
            // The PEP is checked in preflight and told at the end: both are per stamp.
            pep_time += next_at - mark.at;
            continue;
        }
        let most = next.iter().zip(&mark.requests).map(|(b, a)| b - a).max().unwrap_or(0);
        let waves = (mark.bmcs as f64 / concurrency as f64).ceil();
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-lab") {
        // One thread for the whole lab: the tool under test keeps the machine's other core.
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (n, latency) = (args[2].parse().unwrap(), args[3].parse().unwrap());
        runtime.block_on(serve_lab(n, latency, PathBuf::from(&args[4])));
        return;
    }
    if args.get(1).map(String::as_str) == Some("--serve-stamps") {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (stamps, n) = (args[2].parse().unwrap(), args[3].parse().unwrap());
        runtime.block_on(serve_stamps(stamps, n, PathBuf::from(&args[4])));
        return;
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
