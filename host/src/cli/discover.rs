//! `bmc-rotate discover`: finds the BMCs at some addresses and writes the inventory for them.
//!
//! Per address: one TLS handshake that accepts any certificate and records it (its SHA-256
//! becomes the pin), then one anonymous `GET /redfish/v1/`. No credential is ever sent — the
//! certificate was not verified, so nothing secret may travel over that connection; the service
//! root is readable without logging in and says enough to pick a hardware profile.

use super::discover_x509::{CertSummary, summarise};
use super::{CliError, CmdResult, Output, exit, render};
use crate::fleet::inventory::{Inventory, canonical_address, check_stamp_name};
use crate::fleet::profiles::{HardwareProfile, Profiles};
use crate::gateway::{Auth, Endpoint, Failure, Gateway, Limits, Method, Request, fingerprint};
use crate::runtime::contract::{MAX_NAME_LEN, untrusted};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Most addresses one `discover` contacts: a typo such as `/16` for `/24` must not sweep a
/// network, and a stamp has at most a few hundred BMCs.
pub const MAX_ADDRESSES: usize = 4096;

/// `discover`'s options.
#[derive(Debug, clap::Args)]
pub struct DiscoverArgs {
    /// What to look at: addresses (`10.0.0.5`, `bmc01:8443`, `[fd00::5]:443`), IPv4 ranges
    /// (`10.0.0.5-10.0.0.20`, `10.0.0.0/28`, without the network and broadcast addresses) or
    /// files of these, one a line (`#` starts a comment). At most 4096 addresses in all.
    #[arg(required = true, value_name = "ADDRESS|RANGE|FILE")]
    targets: Vec<String>,
    /// Write the inventory to this new file (an existing file is never overwritten).
    #[arg(long, value_name = "FILE", requires = "stamp")]
    out: Option<PathBuf>,
    /// The stamp's name, written into the inventory.
    #[arg(long)]
    stamp: Option<String>,
    /// The account to rotate, written into the inventory as `bmc_user`.
    #[arg(long, default_value = "azsbmc", value_name = "USER")]
    bmc_user: String,
    /// BMC names are this prefix and a number: node01, node02, …
    #[arg(long, default_value = "node", value_name = "PREFIX")]
    name_prefix: String,
    /// The HTTPS port of addresses that do not give one (and of every address of a range).
    #[arg(long, default_value_t = 443, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Addresses contacted at once (1 to 512).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,
    /// How long one address may take: connection, handshake and answer (`5s`, `1m`).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = super::args::parse_duration)]
    timeout: Duration,
    /// The user profile directory (adds to and overrides the built-in profiles).
    /// [default: $XDG_CONFIG_HOME/bmc-rotate/profiles]
    #[arg(long, env = "BMC_ROTATE_PROFILE_DIR", value_name = "DIR")]
    profile_dir: Option<PathBuf>,
    /// Output format of the findings on stdout.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub(super) output: Output,
}

/// What one address turned out to be.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The BMC's name in the inventory; none when the address failed.
    pub name: Option<String>,
    /// The address, as it is written into the inventory.
    pub address: String,
    /// The certificate presented, if a handshake got that far.
    pub certificate: Option<Certificate>,
    /// What the service root said.
    pub redfish: Option<ServiceRoot>,
    /// The hardware profile that fits, when exactly one does.
    pub profile: Option<String>,
    /// The profiles that may fit, when not exactly one does.
    pub candidates: Vec<String>,
    /// Why the profile is left to the operator.
    pub profile_note: Option<String>,
    /// Why this address is not in the inventory.
    pub error: Option<String>,
}

/// A BMC's certificate as the operator needs it to check the pin out of band.
#[derive(Clone, Debug, Serialize)]
pub struct Certificate {
    /// SHA-256 of the DER encoding, hex.
    pub sha256: String,
    /// The inventory's TLS policy for it: `sha256:HEX`.
    pub pin: String,
    /// Subject, issuer and validity; absent if the certificate could not be read.
    #[serde(flatten)]
    pub summary: Option<CertSummary>,
    /// Why subject, issuer and validity are missing.
    pub unreadable: Option<String>,
    /// Whether its validity has ended.
    pub expired: bool,
}

/// The service root's answer to an anonymous GET.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServiceRoot {
    /// `Vendor`, or the OEM section's name.
    pub vendor: Option<String>,
    /// `Product`.
    pub product: Option<String>,
    /// `RedfishVersion`.
    pub redfish_version: Option<String>,
    /// `UUID`.
    pub uuid: Option<String>,
    /// The controller family the root names (HPE: `Oem.Hpe.Manager[0].ManagerType`).
    pub family: Option<String>,
    /// The firmware version, where the root gives it.
    pub firmware: Option<String>,
    /// The server's service tag or serial number, where the root gives it (Dell:
    /// `Oem.Dell.ServiceTag`): what the operator matches against the asset list.
    pub serial: Option<String>,
}

/// `bmc-rotate discover`.
pub async fn discover(args: DiscoverArgs) -> CmdResult {
    if let Some(out) = &args.out {
        refuse_existing(out)?;
        check_header(&args)?;
    }
    let endpoints = expand(&args.targets, args.port).map_err(CliError::bad_input)?;
    let profiles = Profiles::load(args.profile_dir.clone().or_else(crate::paths::profiles).as_deref())
        .map_err(CliError::bad_input)?;
    let mut findings = scan(endpoints, args.concurrency as usize, args.timeout).await;
    let mut number = 0;
    for finding in &mut findings {
        if finding.error.is_none() {
            number += 1;
            finding.name = Some(format!("{}{number:02}", args.name_prefix));
            match_profile(finding, &profiles);
        }
    }
    let failed: Vec<&Finding> = findings.iter().filter(|f| f.error.is_some()).collect();
    for finding in &failed {
        eprintln!("failed: {}: {}", finding.address, finding.error.as_deref().unwrap_or_default());
    }
    print_findings(&findings, &args);
    if let Some(out) = &args.out {
        write_inventory(out, &args, &findings, &profiles)?;
    }
    Ok(ExitCode::from(if failed.is_empty() { exit::OK } else { exit::FAILED }))
}

fn refuse_existing(out: &Path) -> Result<(), CliError> {
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(CliError::bad_input(format!("{} exists; discover never overwrites a file", out.display()))
            .with_hint("give --out a new file name, or move the old inventory away"));
    }
    Ok(())
}

/// Checks the stamp, account and name prefix the way `rotate` will read them, before anything
/// is contacted: an inventory that `rotate` refuses for its header is no use.
fn check_header(args: &DiscoverArgs) -> Result<(), CliError> {
    let stamp = args.stamp.as_deref().unwrap_or_default();
    check_stamp_name(stamp).map_err(|e| CliError::bad_input(format!("--stamp: {e}")))?;
    let probe = format!(
        "stamp = {}\nbmc_user = {}\nprofile = \"any\"\n[[bmc]]\nname = {}\naddress = \"127.0.0.1\"\n",
        quoted(stamp),
        quoted(&args.bmc_user),
        quoted(&format!("{}01", args.name_prefix))
    );
    Inventory::parse(Path::new("--bmc-user/--name-prefix"), &probe).map_err(CliError::bad_input)?;
    Ok(())
}

/// A TOML basic string: the `toml` crate's quoting, so no value can end the string early.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The endpoints the operator's arguments name, in order, each once.
pub fn expand(targets: &[String], port: u16) -> Result<Vec<Endpoint>, String> {
    let mut endpoints = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |endpoint: Endpoint, endpoints: &mut Vec<Endpoint>| -> Result<(), String> {
        if seen.insert(canonical_address(&endpoint)) {
            endpoints.push(endpoint);
        }
        if endpoints.len() > MAX_ADDRESSES {
            return Err(format!(
                "more than {MAX_ADDRESSES} addresses: discover looks at most at {MAX_ADDRESSES} at once; split the ranges"
            ));
        }
        Ok(())
    };
    for target in targets {
        let file = Path::new(target);
        if range(target, port)?.is_none() && file.is_file() {
            let text = crate::files::read_bounded(file, "the address file", 1 << 20).map_err(|e| e.to_string())?;
            let text = String::from_utf8(text).map_err(|_| format!("{target}: not UTF-8 text"))?;
            for (i, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                for endpoint in one(line, port).map_err(|e| format!("{target}, line {}: {e}", i + 1))? {
                    add(endpoint, &mut endpoints)?;
                }
            }
        } else {
            for endpoint in one(target, port)? {
                add(endpoint, &mut endpoints)?;
            }
        }
    }
    Ok(endpoints)
}

/// One address or range.
fn one(text: &str, port: u16) -> Result<Vec<Endpoint>, String> {
    if let Some(range) = range(text, port)? {
        return Ok(range);
    }
    let mut endpoint: Endpoint = text.parse().map_err(|e| format!("{e} (nor a range such as 10.0.0.5-10.0.0.20)"))?;
    let explicit_port = text.rsplit_once(':').is_some_and(|(host, _)| !host.contains(':') || host.ends_with(']'));
    if !explicit_port {
        endpoint.port = port;
    }
    Ok(vec![endpoint])
}

/// `A-B` or `A/N` over IPv4, capped at [`MAX_ADDRESSES`]; `None` when `text` is neither.
fn range(text: &str, port: u16) -> Result<Option<Vec<Endpoint>>, String> {
    let text = text.trim();
    let (first, last) = if let Some((a, b)) = text.split_once('-') {
        let (Ok(a), Ok(b)) = (a.trim().parse::<Ipv4Addr>(), b.trim().parse::<Ipv4Addr>()) else {
            return Ok(None);
        };
        if u32::from(a) > u32::from(b) {
            return Err(format!("`{text}`: the range ends before it starts"));
        }
        (u32::from(a), u32::from(b))
    } else if let Some((a, n)) = text.split_once('/') {
        let (Ok(a), Ok(n)) = (a.parse::<Ipv4Addr>(), n.parse::<u32>()) else { return Ok(None) };
        if n > 32 {
            return Err(format!("`{text}`: an IPv4 prefix is 0 to 32 bits"));
        }
        let mask = if n == 0 { 0 } else { u32::MAX << (32 - n) };
        let (network, broadcast) = (u32::from(a) & mask, u32::from(a) | !mask);
        // Hosts only: the network and broadcast addresses of a /30 or wider are no BMC.
        if n < 31 { (network + 1, broadcast - 1) } else { (network, broadcast) }
    } else {
        return Ok(None);
    };
    let count = (last - first) as usize + 1;
    if count > MAX_ADDRESSES {
        return Err(format!(
            "`{text}` holds {count} addresses; discover looks at most at {MAX_ADDRESSES} at once: split the range"
        ));
    }
    Ok(Some((first..=last).map(|ip| Endpoint::new(Ipv4Addr::from(ip).to_string(), port)).collect()))
}

/// Looks at every endpoint, `concurrency` at a time; findings in the order of `endpoints`.
async fn scan(endpoints: Vec<Endpoint>, concurrency: usize, timeout: Duration) -> Vec<Finding> {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut jobs = tokio::task::JoinSet::new();
    for (i, endpoint) in endpoints.into_iter().enumerate() {
        let permits = permits.clone();
        jobs.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
            (i, look(endpoint, timeout).await)
        });
    }
    let mut findings = Vec::new();
    while let Some(done) = jobs.join_next().await {
        findings.push(done.expect("a discover job never panics"));
    }
    findings.sort_by_key(|(i, _)| *i);
    findings.into_iter().map(|(_, f)| f).collect()
}

/// One address: handshake, certificate, anonymous service root — all within `timeout`.
async fn look(endpoint: Endpoint, timeout: Duration) -> Finding {
    let mut finding = Finding {
        name: None,
        address: endpoint.to_string(),
        certificate: None,
        redfish: None,
        profile: None,
        candidates: Vec::new(),
        profile_note: None,
        error: None,
    };
    let limits = Limits { connect_timeout: timeout, request_timeout: timeout, ..Limits::default() };
    let gateway = std::sync::Mutex::new(None::<Arc<Gateway>>);
    let work = async {
        let addr = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| format!("cannot resolve: {e}"))?
            .next()
            .ok_or("cannot resolve: no address found")?;
        let observer = Arc::new(Gateway::observe(endpoint.clone(), addr, limits).map_err(|e| e.to_string())?);
        *gateway.lock().expect("gateway") = Some(observer.clone());
        service_root(&observer).await
    };
    let answer = match tokio::time::timeout(timeout, work).await {
        Ok(answer) => answer,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    };
    let observer = gateway.lock().expect("gateway").take();
    finding.certificate = observer.and_then(|g| g.presented_certificate()).map(|der| certificate(&der));
    match answer {
        Ok(root) => finding.redfish = Some(root),
        Err(e) => finding.error = Some(untrusted(&e, 512)),
    }
    finding
}

/// `GET /redfish/v1/` without any credential: the one request discover sends.
async fn service_root(gateway: &Gateway) -> Result<ServiceRoot, String> {
    let request = Request {
        method: Method::Get,
        path: "/redfish/v1/".into(),
        headers: vec![("Accept".into(), "application/json".into()), ("OData-Version".into(), "4.0".into())],
        auth: Auth::None,
        body: Vec::new(),
    };
    let response = gateway.send(&request, None).await.map_err(failure)?;
    if response.status != 200 {
        return Err(format!("not a Redfish service: GET /redfish/v1/ answered HTTP {}", response.status));
    }
    let root: Value = serde_json::from_slice(&response.body)
        .map_err(|_| "not a Redfish service: GET /redfish/v1/ did not answer JSON".to_owned())?;
    if root.get("RedfishVersion").is_none() && !root["@odata.type"].as_str().is_some_and(|t| t.contains("ServiceRoot"))
    {
        return Err("not a Redfish service: the answer to GET /redfish/v1/ is no service root".into());
    }
    Ok(read_root(&root))
}

/// Why an address gave no answer, for the operator.
fn failure(failure: Failure) -> String {
    match failure {
        Failure::Connect(reason) => format!("no connection: {reason}"),
        Failure::NoResponse(reason) => format!("no answer: {reason}"),
        Failure::TooLarge(reason) => format!("not a Redfish service: {reason}"),
        Failure::Denied(reason) | Failure::Forbidden(reason) => reason,
        Failure::CertificateChanged { pinned, presented } => crate::gateway::certificate_changed(&pinned, &presented),
    }
}

/// What a service root says about the BMC. Every string is the network's: escaped and capped.
pub fn read_root(root: &Value) -> ServiceRoot {
    let text = |v: &Value| v.as_str().filter(|s| !s.trim().is_empty()).map(|s| untrusted(s.trim(), MAX_NAME_LEN));
    let oem = root["Oem"].as_object();
    let oem_vendor = oem.and_then(|o| {
        ["Dell", "Hpe", "Hp", "Lenovo"].into_iter().find(|k| o.contains_key(*k)).map(|k| match k {
            "Hpe" | "Hp" => "HPE".to_owned(),
            other => other.to_owned(),
        })
    });
    let hpe = &root["Oem"]["Hpe"]["Manager"][0];
    let hp = &root["Oem"]["Hp"]["Manager"][0];
    let manager = if hpe.is_object() { hpe } else { hp };
    ServiceRoot {
        vendor: text(&root["Vendor"]).or(oem_vendor),
        product: text(&root["Product"]),
        redfish_version: text(&root["RedfishVersion"]),
        uuid: text(&root["UUID"]),
        family: text(&manager["ManagerType"]),
        firmware: text(&manager["ManagerFirmwareVersion"]),
        serial: text(&root["Oem"]["Dell"]["ServiceTag"]),
    }
}

fn certificate(der: &[u8]) -> Certificate {
    let sha256 = hex::encode(fingerprint(der));
    let (summary, unreadable) = match summarise(der) {
        Ok(summary) => (Some(summary), None),
        Err(e) => (None, Some(e)),
    };
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let expired = summary.as_ref().is_some_and(|s| s.not_after_unix < now);
    Certificate { pin: format!("sha256:{sha256}"), sha256, summary, unreadable, expired }
}

/// The plugin each vendor's BMCs need.
fn vendor_plugin(vendor: &str) -> Option<&'static str> {
    match vendor.to_ascii_lowercase().as_str() {
        "dell" | "dell inc." => Some("dell-idrac"),
        "hpe" | "hp" => Some("hpe-ilo"),
        "lenovo" => Some("lenovo-xcc"),
        _ => None,
    }
}

/// `iLO 5` and `iLO5` are one family.
fn same_family(a: &str, b: &str) -> bool {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    squeeze(a) == squeeze(b)
}

/// Picks the hardware profile from what the root says: the vendor's plugin, then the family,
/// then the product in the profile's description. Anything but one answer is left to the
/// operator, with the candidates.
fn match_profile(finding: &mut Finding, profiles: &Profiles) {
    let root = finding.redfish.clone().unwrap_or_default();
    let Some(vendor) = root.vendor.as_deref() else {
        finding.profile_note = Some("the service root names no vendor; choose the profile".into());
        return;
    };
    let plugin = vendor_plugin(vendor);
    // An explicit profile (the generic one fits every Redfish BMC) is the operator's choice alone.
    let by_vendor: Vec<&HardwareProfile> = profiles
        .iter()
        .filter(|p| !p.explicit)
        .filter(|p| {
            Some(p.plugin.as_str()) == plugin
                || p.description.to_ascii_lowercase().starts_with(&vendor.to_ascii_lowercase())
        })
        .collect();
    if by_vendor.is_empty() {
        finding.profile_note =
            Some(format!("no hardware profile is for {vendor} BMCs; write one (see `bmc-rotate profiles show`)"));
        return;
    }
    let mut fits = by_vendor.clone();
    if let Some(family) = &root.family {
        let of_family: Vec<&HardwareProfile> =
            fits.iter().copied().filter(|p| p.families.iter().any(|f| same_family(f, family))).collect();
        if !of_family.is_empty() {
            fits = of_family;
        }
    }
    if fits.len() > 1
        && let Some(product) = &root.product
    {
        let lower = product.to_ascii_lowercase();
        let of_product: Vec<&HardwareProfile> =
            fits.iter().copied().filter(|p| p.description.to_ascii_lowercase().contains(&lower)).collect();
        if !of_product.is_empty() {
            fits = of_product;
        }
    }
    if let [only] = fits.as_slice() {
        finding.profile = Some(only.name.clone());
        return;
    }
    finding.candidates = fits.iter().map(|p| p.name.clone()).collect();
    finding.profile_note = Some(format!(
        "{} profiles fit {vendor} {}: the anonymous service root does not tell them apart; choose the server's",
        fits.len(),
        root.product.as_deref().unwrap_or("BMCs")
    ));
}

/// The inventory, in the layout of `inventory.example.toml`, with what discover saw as comments.
pub fn inventory_text(stamp: &str, bmc_user: &str, findings: &[Finding], profiles: &Profiles) -> String {
    let mut text = String::from(
        "# bmc-rotate inventory, written by `bmc-rotate discover`. It never holds a secret — passwords come\n\
         # from a prompt, an environment variable, a 0600 file or stdin (see `bmc-rotate rotate --help`).\n\
         # Before the first rotation: fill in [pep], choose a profile where discover could not, and check\n\
         # every pinned certificate out of band (the BMC's console or its vendor's tools).\n\n",
    );
    text.push_str(&format!(
        "{:<35} # the stamp's name, for reports, the journal and the audit log\n",
        format!("stamp = {}", quoted(stamp))
    ));
    text.push_str(&format!(
        "{:<35} # the account rotated on every BMC (1–16 characters)\n\n",
        format!("bmc_user = {}", quoted(bmc_user))
    ));
    text.push_str(
        "# [pep]                             # the privileged endpoint: up to three ERCS VMs, tried in order\n\
         # endpoints = [\"10.20.30.224\", \"10.20.30.225\", \"10.20.30.226\"]   # WinRM on 5985; https://IP for 5986\n\
         # cloudadmin = 'AZURESTACK\\CloudAdmin' # single quotes keep the backslash\n",
    );
    for finding in findings.iter().filter(|f| f.error.is_none()) {
        text.push('\n');
        text.push_str(&bmc_table(finding, profiles));
    }
    let failed: Vec<&Finding> = findings.iter().filter(|f| f.error.is_some()).collect();
    if !failed.is_empty() {
        text.push_str("\n# Not written (no Redfish service found there):\n");
        for finding in failed {
            text.push_str(&format!("#   {}: {}\n", finding.address, finding.error.as_deref().unwrap_or_default()));
        }
    }
    text
}

fn bmc_table(finding: &Finding, profiles: &Profiles) -> String {
    let root = finding.redfish.clone().unwrap_or_default();
    let unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    let mut text = format!(
        "[[bmc]]\n# {} {}, Redfish {}, firmware {}{}\n",
        unknown(&root.vendor),
        unknown(&root.product),
        unknown(&root.redfish_version),
        root.firmware.clone().unwrap_or_else(|| "not in the service root".into()),
        root.family.as_ref().map(|f| format!(", {f}")).unwrap_or_default()
    );
    if let Some(uuid) = &root.uuid {
        text.push_str(&format!("# service UUID {uuid}\n"));
    }
    if let Some(serial) = &root.serial {
        text.push_str(&format!("# service tag {serial}\n"));
    }
    if let Some(cert) = &finding.certificate {
        match &cert.summary {
            Some(s) => {
                text.push_str(&format!("# certificate subject: {}\n# certificate issuer:  {}\n", s.subject, s.issuer));
                let expired = if cert.expired { " (EXPIRED)" } else { "" };
                text.push_str(&format!("# valid from {} to {}{expired}\n", s.not_before, s.not_after));
            }
            None => text
                .push_str(&format!("# certificate unreadable: {}\n", cert.unreadable.as_deref().unwrap_or_default())),
        }
        text.push_str("# pin learnt by discover: verify it out of band before the first rotation\n");
    }
    text.push_str(&format!("name = {}\n", quoted(finding.name.as_deref().unwrap_or_default())));
    text.push_str(&format!("address = {}\n", quoted(&finding.address)));
    match &finding.profile {
        Some(profile) => text.push_str(&format!("profile = {}\n", quoted(profile))),
        None => {
            text.push_str(&format!("# profile: {}.\n", finding.profile_note.as_deref().unwrap_or("choose one")));
            text.push_str("# Remove the `#` before the server's profile:\n");
            for name in &finding.candidates {
                let description = profiles.get(name).map(|p| p.description.clone()).unwrap_or_default();
                text.push_str(&format!("{:<35} # {description}\n", format!("# profile = {}", quoted(name))));
            }
            if finding.candidates.is_empty() {
                text.push_str("# profile = \"…\"                   # see `bmc-rotate profiles list`\n");
            }
        }
    }
    if let Some(cert) = &finding.certificate {
        text.push_str(&format!("tls = {}\n", quoted(&cert.pin)));
    }
    text
}

fn write_inventory(out: &Path, args: &DiscoverArgs, findings: &[Finding], profiles: &Profiles) -> Result<(), CliError> {
    if findings.iter().all(|f| f.error.is_some()) {
        return Err(CliError::failed(format!(
            "no Redfish service answered at any of the {} addresses; {} was not written",
            findings.len(),
            out.display()
        )));
    }
    let text = inventory_text(args.stamp.as_deref().unwrap_or_default(), &args.bmc_user, findings, profiles);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(out).map_err(|e| {
        CliError::failed(format!("cannot create {}: {e} (discover never overwrites a file)", out.display()))
    })?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", out.display())))?;
    let undecided = findings.iter().filter(|f| f.error.is_none() && f.profile.is_none()).count();
    eprintln!("wrote {}: fill in [pep] and check every pin out of band before the first rotation", out.display());
    if undecided > 0 {
        eprintln!(
            "note: {undecided} BMCs need a profile chosen in {} (the candidates are listed there)",
            out.display()
        );
    }
    Ok(())
}

fn print_findings(findings: &[Finding], args: &DiscoverArgs) {
    match args.output {
        Output::Json => {
            let json = serde_json::json!({
                "stamp": args.stamp,
                "out": args.out.as_ref().map(|p| p.display().to_string()),
                "bmcs": findings.iter().filter(|f| f.error.is_none()).collect::<Vec<_>>(),
                "failed": findings.iter().filter(|f| f.error.is_some()).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&json).expect("serialisable"));
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = findings.iter().filter(|f| f.error.is_none()).map(row).collect();
            let header = ["NAME", "ADDRESS", "VENDOR", "PRODUCT", "PROFILE", "SHA-256", "SUBJECT", "VALID UNTIL"];
            print!("{}", render::table(&header, &rows));
        }
    }
}

fn row(finding: &Finding) -> Vec<String> {
    let root = finding.redfish.clone().unwrap_or_default();
    let cert = finding.certificate.as_ref();
    let summary = cert.and_then(|c| c.summary.as_ref());
    let until = summary.map(|s| s.not_after.trim_end_matches(" UTC").to_owned()).unwrap_or_else(|| "?".into());
    vec![
        finding.name.clone().unwrap_or_default(),
        finding.address.clone(),
        root.vendor.unwrap_or_else(|| "?".into()),
        root.product.unwrap_or_else(|| "?".into()),
        finding.profile.clone().unwrap_or_else(|| format!("? ({} candidates)", finding.candidates.len())),
        cert.map(|c| format!("{}…", &c.sha256[..16])).unwrap_or_else(|| "-".into()),
        summary.map(|s| s.subject.clone()).unwrap_or_else(|| "?".into()),
        if cert.is_some_and(|c| c.expired) { format!("{until} EXPIRED") } else { until },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(targets: &[&str]) -> Result<Vec<String>, String> {
        let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        expand(&targets, 443).map(|e| e.iter().map(Endpoint::to_string).collect())
    }

    #[test]
    fn addresses_ranges_and_prefixes_expand_in_order_once() {
        assert_eq!(
            addresses(&["10.0.0.5", "bmc01:8443", "[fd00::5]:444", "fd00::6"]).unwrap(),
            ["10.0.0.5:443", "bmc01:8443", "[fd00::5]:444", "[fd00::6]:443"]
        );
        assert_eq!(
            addresses(&["10.0.0.254-10.0.1.1"]).unwrap(),
            ["10.0.0.254:443", "10.0.0.255:443", "10.0.1.0:443", "10.0.1.1:443"]
        );
        let prefix = addresses(&["10.0.0.0/28"]).unwrap();
        assert_eq!((prefix.len(), prefix[0].as_str(), prefix[13].as_str()), (14, "10.0.0.1:443", "10.0.0.14:443"));
        assert_eq!(addresses(&["10.0.0.7/32", "10.0.0.7", "10.0.0.7:443"]).unwrap().len(), 1, "one BMC once");
        assert_eq!(expand(&["10.0.0.5".into()], 8443).unwrap()[0].port, 8443);
    }

    #[test]
    fn too_many_or_malformed_addresses_are_refused_with_the_reason() {
        assert!(addresses(&["10.0.0.0/16"]).unwrap_err().contains("holds 65534 addresses"));
        assert!(addresses(&["10.0.0.0/20", "10.0.16.0/20"]).unwrap_err().contains("more than 4096"));
        assert!(addresses(&["10.0.0.9-10.0.0.1"]).unwrap_err().contains("ends before it starts"));
        assert!(addresses(&["10.0.0.0/33"]).unwrap_err().contains("0 to 32"));
        assert!(addresses(&["https://bmc01"]).is_err());
        assert_eq!(addresses(&["bmc-01", "bmc-02.lab"]).unwrap(), ["bmc-01:443", "bmc-02.lab:443"], "names with `-`");
    }

    #[test]
    fn a_file_lists_addresses_and_ranges_with_comments() {
        let file = std::env::temp_dir().join(format!("bmc-rotate-discover-{}.txt", std::process::id()));
        std::fs::write(&file, "# rack 1\n10.0.0.1   # node01\n\n10.0.0.2-10.0.0.3\nbmc04:8443\n").unwrap();
        let found = addresses(&[file.to_str().unwrap()]);
        std::fs::write(&file, "10.0.0.1\nnot an address\n").unwrap();
        let bad = addresses(&[file.to_str().unwrap()]);
        std::fs::remove_file(&file).ok();
        assert_eq!(found.unwrap(), ["10.0.0.1:443", "10.0.0.2:443", "10.0.0.3:443", "bmc04:8443"]);
        assert!(bad.unwrap_err().contains(", line 2: "));
    }

    fn found(root: Value) -> Finding {
        Finding {
            name: Some("node01".into()),
            address: "10.0.0.5:443".into(),
            certificate: None,
            redfish: Some(read_root(&root)),
            profile: None,
            candidates: Vec::new(),
            profile_note: None,
            error: None,
        }
    }

    #[test]
    fn the_family_in_an_hpe_root_picks_one_profile() {
        let root = serde_json::json!({"RedfishVersion": "1.13.0", "Vendor": "HPE", "Product": "ProLiant DL380 Gen10",
            "Oem": {"Hpe": {"Manager": [{"ManagerType": "iLO 5", "ManagerFirmwareVersion": "2.55"}]}}});
        let mut finding = found(root);
        match_profile(&mut finding, &Profiles::built_in());
        assert_eq!(finding.profile.as_deref(), Some("hpe-proliant-dl380-gen10"));
        assert_eq!(finding.redfish.as_ref().unwrap().firmware.as_deref(), Some("2.55"));
    }

    #[test]
    fn a_root_that_does_not_decide_leaves_the_candidates_to_the_operator() {
        let root = serde_json::json!({"RedfishVersion": "1.20.0", "Product": "Integrated Dell Remote Access Controller",
            "Oem": {"Dell": {"ServiceTag": "7XK2Q93"}}});
        let mut finding = found(root);
        assert_eq!(finding.redfish.as_ref().unwrap().vendor.as_deref(), Some("Dell"), "from the OEM section");
        match_profile(&mut finding, &Profiles::built_in());
        assert_eq!(finding.profile, None);
        assert!(finding.candidates.len() >= 3 && finding.candidates.iter().all(|c| c.starts_with("dell-")));
        let text = inventory_text("s1", "azsbmc", &[finding], &Profiles::built_in());
        assert!(
            text.contains("# profile = \"dell-poweredge-r640\"") && text.contains("# service tag 7XK2Q93"),
            "{text}"
        );
        assert!(!text.lines().any(|l| l.starts_with("profile")), "{text}");
    }

    #[test]
    fn the_generic_profile_is_never_discovered() {
        let profiles = Profiles::built_in();
        let generic = profiles.get("generic-redfish").unwrap();
        assert!(generic.explicit);
        // The lab's dmtf-generic root, roots naming the words of the profile's description, and
        // every vendor's: none gets it, as the choice or as a candidate.
        let roots = [
            serde_json::json!({"RedfishVersion": "1.18.0", "Vendor": "Generic", "Product": "Redfish Service"}),
            serde_json::json!({"RedfishVersion": "1.18.0", "Vendor": "Any", "Product": "DMTF Redfish (DSP0266) BMC"}),
            serde_json::json!({"RedfishVersion": "1.18.0", "Vendor": "DMTF", "Product": "Redfish"}),
            serde_json::json!({"RedfishVersion": "1.18.0", "Vendor": "Supermicro", "Product": "X12"}),
            serde_json::json!({"RedfishVersion": "1.18.0"}),
            serde_json::json!({"RedfishVersion": "1.18.0", "Vendor": "Dell", "Product": "Integrated Dell Remote Access Controller"}),
            serde_json::json!({"RedfishVersion": "1.13.0", "Vendor": "HPE", "Product": "ProLiant DL380 Gen10"}),
            serde_json::json!({"RedfishVersion": "1.17.0", "Vendor": "Lenovo", "Product": "ThinkSystem"}),
        ];
        for root in &roots {
            let mut finding = found(root.clone());
            match_profile(&mut finding, &profiles);
            assert_ne!(finding.profile.as_deref(), Some("generic-redfish"), "{root}");
            assert!(!finding.candidates.iter().any(|c| c == "generic-redfish"), "{root}: {:?}", finding.candidates);
            let text = inventory_text("s1", "azsbmc", &[finding], &profiles);
            assert!(!text.contains("generic-redfish"), "{root}: {text}");
        }
        // The flag is what keeps it out: the same profile without it fits a root named like it.
        let mut unflagged = profiles.clone();
        unflagged.insert(HardwareProfile { explicit: false, ..generic.clone() });
        let mut finding = found(roots[1].clone());
        match_profile(&mut finding, &unflagged);
        assert_eq!(finding.profile.as_deref(), Some("generic-redfish"));
    }

    #[test]
    fn network_text_cannot_add_lines_to_the_inventory() {
        let root = serde_json::json!({"RedfishVersion": "1", "Vendor": "Acme\nprofile = \"x\"", "Product": "P"});
        let text = inventory_text("s1", "azsbmc", &[found(root)], &Profiles::built_in());
        assert!(!text.lines().any(|l| l.starts_with("profile")), "{text}");
        assert!(text.contains("Acme\\u{a}profile"), "{text}");
    }
}
