//! `bmc-lab self-check`: proves that one lab process serves a large fleet within the machine's
//! descriptor limit while a client holds a connection to every BMC. It starts `bmc-lab serve` as
//! a child process (each process has its own limit, and a client with 10,000 connections in the
//! lab's own process would need twice the descriptors), then from this process opens a TLS
//! connection to every BMC (pinned to its certificate), keeps them all open, and GETs the service
//! root over each one. It reports the lab's start time, resident memory and descriptors, and
//! fails if any BMC did not answer.

use crate::fleet::Inventory;
use crate::persona::Persona;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::client::TlsStream;

/// Connections being opened at once.
const OPENING: usize = 128;

/// Trusts, for each address, exactly the certificate the inventory pins there.
#[derive(Debug)]
struct Pins {
    by_address: HashMap<IpAddr, [u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pins {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ServerName::IpAddress(ip) = server_name else {
            return Err(rustls::Error::General("connect by address".into()));
        };
        let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        match self.by_address.get(&IpAddr::from(*ip)) {
            Some(pin) if *pin == digest => Ok(ServerCertVerified::assertion()),
            _ => Err(rustls::Error::General(format!("certificate {} is not the pinned one", hex::encode(digest)))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What the self-check measured.
#[derive(Debug)]
pub struct Measured {
    /// BMCs served.
    pub bmcs: usize,
    /// From starting the lab process to its "serving" line.
    pub start: Duration,
    /// Opening every connection (TCP and TLS), all held.
    pub connect: Duration,
    /// One GET of the service root over each held connection.
    pub get: Duration,
    /// The lab's resident memory with every connection open, KiB.
    pub lab_rss_kib: u64,
    /// The lab's open descriptors with every connection open.
    pub lab_descriptors: usize,
    /// This client's open descriptors then.
    pub client_descriptors: usize,
    /// The descriptor limit (soft) of both processes.
    pub descriptor_limit: u64,
}

/// Runs the self-check with `bmcs` BMCs (a mix of every persona), with `lab` the bmc-lab
/// executable and `scratch` a directory for the spec and the inventory.
pub async fn self_check(lab: &Path, bmcs: usize, scratch: &Path) -> anyhow::Result<Measured> {
    // Each process holds one descriptor per connection, plus a few of its own.
    let limit = descriptor_limit();
    anyhow::ensure!(
        limit == 0 || limit >= bmcs as u64 + 64,
        "the descriptor limit ({limit}, `ulimit -n`) is too low for {bmcs} connections in each process"
    );
    std::fs::create_dir_all(scratch)?;
    let spec = scratch.join("fleet.toml");
    let per = bmcs.div_ceil(Persona::ALL.len());
    let mut text = String::from("stamp = \"self-check\"\npassword = \"Self-Check-1\"\n");
    let mut left = bmcs;
    for (i, persona) in Persona::ALL.iter().enumerate() {
        let count = if i + 1 == Persona::ALL.len() { left } else { per.min(left) };
        text.push_str(&format!("[[group]]\npersona = \"{}\"\ncount = {count}\n", persona.name()));
        left -= count;
    }
    std::fs::write(&spec, text)?;
    let inventory_path = scratch.join("inventory.toml");
    let _ = std::fs::remove_file(&inventory_path);

    let started = Instant::now();
    let mut child = Command::new(lab)
        .arg("serve")
        .arg("--fleet")
        .arg(&spec)
        .arg("--inventory-out")
        .arg(&inventory_path)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()?;
    let child_pid = child.id();
    let stdout = child.stdout.take().expect("piped");
    let ready = tokio::task::spawn_blocking(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if line?.starts_with("serving ") {
                return Ok(true);
            }
        }
        Ok::<bool, std::io::Error>(false)
    });
    let outcome = async {
        anyhow::ensure!(ready.await??, "the lab stopped before serving (see its error above)");
        let start = started.elapsed();
        let inventory: Inventory = toml::from_str(&std::fs::read_to_string(&inventory_path)?)?;
        let held = reach(&inventory, start).await?;
        Ok(held)
    }
    .await;
    // Measured while every connection is held, before anything is closed.
    let lab_rss_kib = rss_kib(child_pid).unwrap_or(0);
    let lab_descriptors = descriptors(&format!("/proc/{child_pid}/fd"));
    let client_descriptors = descriptors("/proc/self/fd");
    let _ = child.kill();
    let _ = child.wait();
    let mut measured = outcome?;
    measured.lab_rss_kib = lab_rss_kib;
    measured.lab_descriptors = lab_descriptors;
    measured.client_descriptors = client_descriptors;
    Ok(measured)
}

/// Opens a pinned TLS connection to every BMC of `inventory`, holds them all, then GETs the
/// service root over each. The connections stay open until the returned value's caller is done
/// measuring (they are leaked into a task that never ends: the process exits after measuring).
async fn reach(inventory: &Inventory, start: Duration) -> anyhow::Result<Measured> {
    let mut by_address = HashMap::new();
    let mut targets = Vec::new();
    for bmc in &inventory.bmc {
        let addr: SocketAddr = bmc.address.parse()?;
        let pin = bmc.tls.strip_prefix("sha256:").and_then(|h| hex::decode(h).ok()).and_then(|d| d.try_into().ok());
        let pin: [u8; 32] = pin.ok_or_else(|| anyhow::anyhow!("{}: no sha256 pin", bmc.name))?;
        by_address.insert(addr.ip(), pin);
        targets.push((bmc.name.clone(), addr));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pins { by_address, algorithms }))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));

    let opened = Instant::now();
    let gate = Arc::new(Semaphore::new(OPENING));
    let mut opening = tokio::task::JoinSet::new();
    for (i, (name, addr)) in targets.iter().cloned().enumerate() {
        let (gate, connector) = (gate.clone(), connector.clone());
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open gate");
            let tcp = TcpStream::connect(addr).await.map_err(|e| anyhow::anyhow!("{name} at {addr}: {e}"))?;
            let tls = connector
                .connect(ServerName::IpAddress(addr.ip().into()), tcp)
                .await
                .map_err(|e| anyhow::anyhow!("{name} at {addr}: TLS: {e}"))?;
            Ok::<_, anyhow::Error>((i, tls))
        });
    }
    let mut held: Vec<Option<TlsStream<TcpStream>>> = (0..targets.len()).map(|_| None).collect();
    while let Some(result) = opening.join_next().await {
        let (i, tls) = result??;
        held[i] = Some(tls);
    }
    let connect = opened.elapsed();

    let got = Instant::now();
    let mut getting = tokio::task::JoinSet::new();
    for (i, stream) in held.iter_mut().enumerate() {
        let mut stream = stream.take().expect("every connection opened");
        let (name, addr) = targets[i].clone();
        let gate = gate.clone();
        getting.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("get gate");
            let body = get_service_root(&mut stream, addr).await.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            anyhow::ensure!(body.contains("\"@odata.id\""), "{name}: not a service root: {body}");
            Ok((i, stream))
        });
    }
    while let Some(result) = getting.join_next().await {
        let (i, stream) = result??;
        held[i] = Some(stream);
    }
    let get = got.elapsed();
    // Held open until the process ends, so the measurements see every connection.
    std::mem::forget(held);
    Ok(Measured {
        bmcs: targets.len(),
        start,
        connect,
        get,
        lab_rss_kib: 0,
        lab_descriptors: 0,
        client_descriptors: 0,
        descriptor_limit: descriptor_limit(),
    })
}

/// `GET /redfish/v1/` over a kept-alive connection; the body of a 200.
async fn get_service_root(stream: &mut TlsStream<TcpStream>, addr: SocketAddr) -> anyhow::Result<String> {
    let request = format!("GET /redfish/v1/ HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buffer)).await??;
        anyhow::ensure!(n > 0, "the connection closed before the answer was complete");
        answer.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&answer);
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        let length = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .ok_or_else(|| anyhow::anyhow!("no Content-Length: {head}"))?;
        if body.len() >= length {
            anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "answered {}", head.lines().next().unwrap_or(""));
            return Ok(body.to_owned());
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn descriptors(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn descriptor_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or("");
    line.split_whitespace().nth(3).and_then(|v| v.parse().ok()).unwrap_or(0)
}
