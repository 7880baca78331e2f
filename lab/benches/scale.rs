//! Scale: `cargo bench -p bmc-lab --bench scale [-- BMCS SECONDS WORKERS]` (default 4096 10 128).
//!
//! Starts BMCS simulated BMCs (a persona mix) in one process, then WORKERS clients, each owning a
//! share of the BMCs, run the rotation traffic mix through a plain HTTPS client per BMC (reqwest
//! over rustls, pinned to the BMC's certificate) over keep-alive TLS: session login, GET of the
//! account, PATCH of its password (with If-Match), session logout. Prints requests/s and latency
//! percentiles.

#[path = "../tests/common/mod.rs"]
mod common;

use bmc_lab::{FleetSpec, Lab, SimulatedBmc};
use common::{Method, Pinned, send};
use std::time::{Duration, Instant};

struct Target {
    client: Pinned,
    user: &'static str,
    account: String,
    password: String,
    generation: u64,
}

fn target(bmc: &SimulatedBmc) -> Target {
    let profile = bmc.persona().profile();
    let account = format!("{}/{}", profile.account_collections[0], profile.default_account.0);
    Target {
        client: Pinned::to(bmc),
        user: profile.default_account.1,
        account,
        password: "Bench-Start-1".into(),
        generation: 0,
    }
}

/// One rotation round on one BMC: 4 requests. Returns each request's latency.
async fn round(t: &mut Target, latencies: &mut Vec<Duration>) -> usize {
    let timed = |started: Instant, latencies: &mut Vec<Duration>| latencies.push(started.elapsed());
    let started = Instant::now();
    let login = t
        .client
        .request(Method::POST, "/redfish/v1/SessionService/Sessions")
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"UserName": t.user, "Password": t.password}).to_string());
    let answer = send(login).await.expect("login");
    assert_eq!(answer.status, 201, "login");
    timed(started, latencies);
    let token = answer.header("x-auth-token").expect("token").to_owned();
    let location = answer.header("location").expect("location").to_owned();

    let started = Instant::now();
    let get = t.client.request(Method::GET, &t.account).header("X-Auth-Token", &token);
    let answer = send(get).await.expect("get");
    assert_eq!(answer.status, 200, "get");
    let etag = answer.header("etag").expect("etag").to_owned();
    timed(started, latencies);

    t.generation += 1;
    let next = format!("Bench-Pass-{}x", t.generation);
    let started = Instant::now();
    let patch = t
        .client
        .request(Method::PATCH, &t.account)
        .header("X-Auth-Token", &token)
        .header("If-Match", etag)
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"Password": next}).to_string());
    let answer = send(patch).await.expect("patch");
    assert_eq!(answer.status, 200, "patch: {}", String::from_utf8_lossy(&answer.body));
    t.password = next;
    timed(started, latencies);

    // The change ended the session; the DELETE is what a client sends anyway (401 is fine).
    let started = Instant::now();
    send(t.client.request(Method::DELETE, &location).header("X-Auth-Token", &token)).await.expect("logout");
    timed(started, latencies);
    4
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let bmcs = args.first().copied().unwrap_or(4096) as u32;
    let seconds = args.get(1).copied().unwrap_or(10);
    let workers = args.get(2).copied().unwrap_or(128) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let per = bmcs / 6;
        let spec = FleetSpec::parse(&format!(
            "password = \"Bench-Start-1\"\n[fleet]\ndell-idrac9 = {}\ndell-idrac10 = {per}\nhpe-ilo5 = {per}\nhpe-ilo6 = {per}\nlenovo-xcc2 = {per}\nlenovo-xcc3 = {per}\n",
            bmcs - 5 * per
        ))
        .unwrap();
        let started = Instant::now();
        let lab = Lab::start(spec).await.expect("lab");
        println!("started {} simulated BMCs in {:.1?}", lab.bmcs().len(), started.elapsed());

        let mut shards: Vec<Vec<Target>> = (0..workers).map(|_| Vec::new()).collect();
        for (i, bmc) in lab.bmcs().iter().enumerate() {
            shards[i % workers].push(target(bmc));
        }
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for mut shard in shards {
            tasks.spawn(async move {
                let (mut requests, mut latencies) = (0usize, Vec::new());
                'outer: loop {
                    for t in shard.iter_mut() {
                        if Instant::now() >= deadline {
                            break 'outer;
                        }
                        requests += round(t, &mut latencies).await;
                    }
                }
                (requests, latencies)
            });
        }
        let (mut total, mut latencies) = (0usize, Vec::new());
        while let Some(result) = tasks.join_next().await {
            let (n, l) = result.expect("worker");
            total += n;
            latencies.extend(l);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!("{workers} clients, {:.1?}: {total} requests = {:.0} requests/s", elapsed, total as f64 / elapsed.as_secs_f64());
        println!("latency per request: median {:.1?}, p95 {:.1?}, p99 {:.1?}", at(0.5), at(0.95), at(0.99));
        drop(lab);
    });
}
