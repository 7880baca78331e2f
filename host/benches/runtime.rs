//! Runtime and gateway benchmarks: `cargo bench -p bmc-rotate --bench runtime`.
//!
//! Prints median and p95 for: plugin cold load (compile), warm load from the disk cache (a new
//! process's first load), warm load from memory, instantiate + call of a trivial export, and the
//! gateway's overhead per request over a raw reqwest call to the same loopback HTTPS server; then
//! how long the host takes to refuse each attack of the hostile guest, and the process's peak RSS
//! after it.

use bmc_lab::HttpsServer;
use bmc_rotate::gateway::Outbound;
use bmc_rotate::gateway::{Auth, Endpoint, Gateway, Limits, Method, Request, TlsPolicy, client_config};
use bmc_rotate::runtime::{CallContext, Runtime, RuntimeConfig, SecretBindings, SecretName, Target};
use bmc_tests::mini_bmc::MiniBmc;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The process's peak resident set, in MiB.
fn peak_rss_mib() -> u64 {
    bmc_rotate::platform::resource_usage().1 / 1024
}

fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn report(name: &str, samples: Vec<Duration>) -> Duration {
    let n = samples.len();
    let (median, p95) = stats(samples);
    println!("{name:<44} median {:>10.1?}   p95 {:>10.1?}   (n={n})", median, p95);
    median
}

fn config(cache_dir: Option<std::path::PathBuf>) -> RuntimeConfig {
    RuntimeConfig { cache_dir, ..RuntimeConfig::default() }
}

#[tokio::main]
async fn main() {
    let file = bmc_tests::wasm("guest_sample");
    let bytes = std::fs::read(&file).expect("run `cargo test -p bmc-tests --no-run` first to build the components");
    println!("plugin: {} ({} KiB)\n", file.display(), bytes.len() / 1024);

    // Cold: a new runtime without cache each time.
    let mut cold = Vec::new();
    for _ in 0..5 {
        let runtime = Runtime::new(config(None)).unwrap();
        let started = Instant::now();
        runtime.load_bytes(bytes.clone(), "bench".into()).await.unwrap();
        cold.push(started.elapsed());
    }
    report("load, cold (validate + compile + info)", cold);

    // Warm from disk: a new runtime (as a new process would have) over a populated cache.
    let cache = std::env::temp_dir().join(format!("bmc-rotate-bench-cache-{}", std::process::id()));
    Runtime::new(config(Some(cache.clone()))).unwrap().load_bytes(bytes.clone(), "bench".into()).await.unwrap();
    let mut disk = Vec::new();
    for _ in 0..20 {
        let runtime = Runtime::new(config(Some(cache.clone()))).unwrap();
        let started = Instant::now();
        let plugin = runtime.load_bytes(bytes.clone(), "bench".into()).await.unwrap();
        disk.push(started.elapsed());
        assert!(plugin.from_cache);
    }
    report("load, warm from disk cache (new process)", disk);
    let _ = std::fs::remove_dir_all(&cache);

    // Warm from memory.
    let runtime = Runtime::new(config(None)).unwrap();
    let plugin = runtime.load_bytes(bytes.clone(), "bench".into()).await.unwrap();
    let mut memory = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        runtime.load_bytes(bytes.clone(), "bench".into()).await.unwrap();
        memory.push(started.elapsed());
    }
    report("load, warm from memory (same process)", memory);

    // Instantiate + call: a fresh store and instance per call, as every job gets.
    let mut calls = Vec::new();
    for i in 0..2_000 {
        let started = Instant::now();
        plugin.call_info().await.result.unwrap();
        if i >= 100 {
            calls.push(started.elapsed());
        }
    }
    report("instantiate + call `info` (fresh store)", calls);

    // Gateway overhead against the raw client, same server, same TLS, keep-alive.
    let router = axum::Router::new().route(
        "/redfish/v1/",
        axum::routing::get(|| async { axum::Json(serde_json::json!({"RedfishVersion": "1.15.0", "Vendor": "Bench"})) }),
    );
    let server = HttpsServer::start_local(router).await.unwrap();
    let tls = TlsPolicy::PinnedSha256(server.sha256());
    let raw = reqwest::Client::builder().use_preconfigured_tls(client_config(&tls).unwrap()).build().unwrap();
    let url = format!("https://127.0.0.1:{}/redfish/v1/", server.addr().port());
    let gateway =
        Gateway::pinned(Endpoint::new("127.0.0.1", server.addr().port()), server.addr(), tls, Limits::default())
            .unwrap();
    let request =
        Request { method: Method::Get, path: "/redfish/v1/".into(), headers: vec![], auth: Auth::None, body: vec![] };
    let (mut raw_samples, mut gw_samples) = (Vec::new(), Vec::new());
    for i in 0..3_000 {
        let started = Instant::now();
        let body = raw.get(&url).send().await.unwrap().bytes().await.unwrap();
        let raw_time = started.elapsed();
        let started = Instant::now();
        let answer = gateway.send(&request, None).await.unwrap();
        let gw_time = started.elapsed();
        assert_eq!(answer.body.len(), body.len());
        if i >= 200 {
            raw_samples.push(raw_time);
            gw_samples.push(gw_time);
        }
    }
    let raw_median = report("GET over keep-alive TLS, raw reqwest", raw_samples);
    let gw_median = report("GET over keep-alive TLS, through the gateway", gw_samples);
    println!("{:<44} median {:>10.1?}", "gateway overhead per request", gw_median.saturating_sub(raw_median));

    // Hostile guests, each against a BMC that would answer: the time until the host has refused or
    // contained the attack, and the peak RSS of this process after it (a 64 MiB job budget).
    println!();
    let hostile = std::fs::read(bmc_tests::wasm("guest_hostile")).unwrap();
    let hostile = runtime.load_bytes(hostile, "hostile".into()).await.unwrap();
    let bmc = MiniBmc::start(&[("root", "Bench-Pw-1")]).await;
    let addr = bmc.server().addr();
    let tls = TlsPolicy::PinnedSha256(bmc.server().sha256());
    let gateway: Arc<dyn Outbound> =
        Arc::new(Gateway::pinned(Endpoint::new("127.0.0.1", addr.port()), addr, tls, Limits::default()).unwrap());
    for (attack, what) in [
        ("oversize", "8 Basic requests with 4 MiB user names + an 8 MiB log line"),
        ("flood", "100,000 log lines"),
        ("grow", "memory bomb"),
        ("spin", "infinite loop, 2 s budget"),
    ] {
        let secrets = SecretBindings::new()
            .bind(SecretName::LoginPassword, Arc::new(SecretString::from("Bench-Pw-1".to_owned())))
            .bind(SecretName::NewPassword, Arc::new(SecretString::from("Bench-Pw-2".to_owned())));
        let ctx = CallContext { gateway: Some(gateway.clone()), secrets, budget: Some(Duration::from_secs(2)) };
        let target = Target { address: "bench".into(), account: attack.into(), login_account: "root".into() };
        let started = Instant::now();
        let outcome = hostile.change_password(ctx, &target).await;
        let elapsed = started.elapsed();
        let verdict = match &outcome.result {
            Ok(()) => format!("contained ({} log lines suppressed)", outcome.log_suppressed),
            Err(e) => e.to_string().chars().take(60).collect(),
        };
        println!("hostile `{attack}` ({what}): {elapsed:>9.1?}, peak RSS {} MiB — {verdict}", peak_rss_mib());
    }
}
