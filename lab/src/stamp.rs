//! A whole stamp for rehearsals (`bmc-lab stamp`): the fleet a spec describes and a
//! privileged-endpoint simulator, with everything an operator's commands need written into one
//! directory — and read back from it, so a lab restarted on the same directory is the same
//! stamp: the same addresses, the same certificates (so the inventory's pins still hold), the
//! same passwords on every account and in the PEP.
//!
//! The directory:
//!
//! | File | Mode | What |
//! |---|---|---|
//! | `inventory.toml` | 0644 | the inventory bmc-rotate reads: every BMC with its `sha256:` pin, and the `[pep]` table |
//! | `cloudadmin-password` | 0600 | the CloudAdmin password the PEP takes (the lab's default unless the file was edited) |
//! | `bmc-password` | 0600 | the password every account started with (the spec's `password`) |
//! | `ports.toml` | 0644 | the BMCs' port and the ERCS VMs' ports, kept for a restart |
//! | `tls/NAME.crt`, `tls/NAME.key` | 0644, 0600 | each BMC's certificate and private key (`tls/` is 0700) |
//! | `state.json` | 0600 | every BMC's accounts (salted hashes and the salt, never a password) and the credential the PEP stores (in clear, as the PEP holds it) |
//!
//! `state.json` is written within a second of a change and when the lab stops on SIGINT or
//! SIGTERM; a lab killed otherwise may lose the last second.

use crate::fleet::{FleetSpec, Lab};
use crate::https::loopback_address;
use crate::introspect::Introspection;
use crate::pep::{PepConfig, PepSimulator};
use crate::tls::TlsIdentity;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How many ERCS VMs a stamp has.
const ERCS_VMS: u16 = 3;

/// The ports a stamp directory was first served on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Ports {
    /// Every BMC's port (each BMC has its own loopback address).
    bmcs: u16,
    /// The ERCS VMs' WinRM ports on 127.0.0.1.
    ercs: Vec<u16>,
}

/// What `state.json` holds.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedState {
    bmcs: BTreeMap<String, crate::bmc::BmcSnapshot>,
    pep: Option<SavedCredential>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedCredential {
    user: Option<String>,
    password: String,
}

impl Drop for SavedCredential {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// How to start a stamp.
#[derive(Clone, Debug, Default)]
pub struct StampOptions {
    /// `--port-base N`: the BMCs on port N, the ERCS VMs on N+1 to N+3. Without it a new
    /// directory gets free ports, and a restarted one the ports it had.
    pub port_base: Option<u16>,
    /// Where to serve introspection (loopback), if at all.
    pub introspect: Option<SocketAddr>,
}

/// A running stamp and its directory.
pub struct Stamp {
    dir: PathBuf,
    lab: Lab,
    pep: Arc<PepSimulator>,
    introspection: Option<Introspection>,
}

impl Stamp {
    /// Starts the stamp `spec` describes in `dir` (created if missing), restoring what the
    /// directory holds from an earlier run.
    pub async fn start(spec: FleetSpec, dir: &Path, options: &StampOptions) -> anyhow::Result<Stamp> {
        private_dir(dir)?;
        let ports = ports(dir, options.port_base)?;
        let tls = dir.join("tls");
        private_dir(&tls)?;
        let lab = Lab::start_with(spec.clone(), ports.bmcs, &mut |name, ip| identity(&tls, name, ip)).await?;

        let password_file = dir.join("cloudadmin-password");
        let mut config = PepConfig { endpoints: ERCS_VMS as usize, ..PepConfig::default() };
        match std::fs::read_to_string(&password_file) {
            Ok(text) => config.password = zeroize::Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", password_file.display())),
        }
        write_private(&password_file, &format!("{}\n", config.password.as_str()))?;
        write_private(&dir.join("bmc-password"), &format!("{}\n", spec.password))?;
        let binds: Vec<SocketAddr> = ports.ercs.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect();
        let pep = PepSimulator::start_on(config, &binds).await.context("cannot start the privileged endpoint")?;
        pep.set_faults(crate::pep::PepFaults { not_ready: spec.pep_not_ready.clone(), ..Default::default() });
        let ports = Ports { bmcs: lab.port(), ercs: pep.addrs().iter().map(SocketAddr::port).collect() };
        std::fs::write(dir.join("ports.toml"), toml::to_string(&ports)?)?;

        let stamp = Stamp { dir: dir.to_owned(), lab, pep: Arc::new(pep), introspection: None };
        stamp.restore()?;
        std::fs::write(dir.join("inventory.toml"), stamp.inventory_toml())?;
        let introspection = match options.introspect {
            Some(bind) => Some(Introspection::serve(bind, stamp.lab.bmcs(), Some(stamp.pep.clone())).await?),
            None => None,
        };
        Ok(Stamp { introspection, ..stamp })
    }

    /// The BMCs.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The privileged endpoint.
    pub fn pep(&self) -> &Arc<PepSimulator> {
        &self.pep
    }

    /// Where introspection listens, if it does.
    pub fn introspection(&self) -> Option<SocketAddr> {
        self.introspection.as_ref().map(Introspection::addr)
    }

    /// The inventory: every BMC pinned, and the PEP's endpoints and account.
    pub fn inventory_toml(&self) -> String {
        let endpoints: Vec<String> = self.pep.addrs().iter().map(|a| format!("\"{a}\"")).collect();
        format!(
            "{}\n[pep]\nendpoints = [{}]\ncloudadmin = '{}'\n",
            self.lab.inventory_toml(),
            endpoints.join(", "),
            self.pep.account()
        )
    }

    fn restore(&self) -> anyhow::Result<()> {
        let path = self.dir.join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let saved: SavedState =
            serde_json::from_str(&text).with_context(|| format!("{}: not a saved lab state", path.display()))?;
        for bmc in self.lab.bmcs() {
            if let Some(snapshot) = saved.bmcs.get(bmc.name()) {
                bmc.state()
                    .restore(snapshot)
                    .map_err(|e| anyhow::anyhow!("{}: {}: {e}", path.display(), bmc.name()))?;
            }
        }
        if let Some(credential) = saved.pep {
            self.pep.set_stored(credential.user.as_deref(), &credential.password);
        }
        Ok(())
    }

    /// Writes `state.json` now.
    pub fn save(&self) -> anyhow::Result<()> {
        let bmcs = self.lab.bmcs().iter().map(|b| (b.name().to_owned(), b.state().snapshot())).collect();
        let pep = self.pep.stored().map(|s| SavedCredential { user: s.user.clone(), password: s.password.to_string() });
        let text = zeroize::Zeroizing::new(serde_json::to_string(&SavedState { bmcs, pep })?);
        let path = self.dir.join("state.json");
        let partial = self.dir.join("state.json.partial");
        write_private(&partial, &text)?;
        std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Serves until SIGINT or SIGTERM, saving the state within a second of each change and once
    /// more at the end.
    pub async fn serve_until_stopped(&self) -> anyhow::Result<()> {
        let mut terminate = terminate()?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut saved = (self.lab.changes(), self.pep.store_count());
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.as_mut() => break,
                _ = tick.tick() => {}
            }
            let now = (self.lab.changes(), self.pep.store_count());
            if now != saved {
                self.save()?;
                saved = now;
            }
        }
        self.save()
    }

    /// A summary for the operator: where everything is.
    pub fn summary(&self) -> String {
        let bmcs = self.lab.bmcs();
        let last = loopback_address(bmcs.len().saturating_sub(1));
        let mut out = format!(
            "stamp {}: {} BMCs at 127.0.0.1 to {last}, port {}\n",
            self.lab.spec().stamp,
            bmcs.len(),
            self.lab.port()
        );
        for (i, addr) in self.pep.addrs().iter().enumerate() {
            out.push_str(&format!("ERCS{:02} http://{addr}/wsman ({})\n", i + 1, self.pep.account()));
        }
        if let Some(addr) = self.introspection() {
            out.push_str(&format!("introspection http://{addr}/\n"));
        }
        out.push_str(&format!("inventory {}\n", self.dir.join("inventory.toml").display()));
        out
    }
}

/// The ports to serve on: those the directory was first served on, unless `--port-base` says
/// otherwise (and then they must agree, or the inventory would be wrong).
fn ports(dir: &Path, port_base: Option<u16>) -> anyhow::Result<Ports> {
    let path = dir.join("ports.toml");
    let recorded = match std::fs::read_to_string(&path) {
        Ok(text) => Some(toml::from_str::<Ports>(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let asked = match port_base {
        Some(base) => {
            anyhow::ensure!(
                base.checked_add(ERCS_VMS).is_some(),
                "--port-base {base}: needs {ERCS_VMS} ports above it"
            );
            anyhow::ensure!(base != 0, "--port-base 0: give a port, or leave it out for free ones");
            Some(Ports { bmcs: base, ercs: (1..=ERCS_VMS).map(|i| base + i).collect() })
        }
        None => None,
    };
    match (recorded, asked) {
        (Some(recorded), Some(asked)) if recorded != asked => anyhow::bail!(
            "{} was stamped on port {} (ERCS on {:?}); --port-base {} would move every address and void its \
             inventory: leave --port-base out, or use a new directory",
            dir.display(),
            recorded.bmcs,
            recorded.ercs,
            asked.bmcs
        ),
        (Some(ports), _) | (None, Some(ports)) => Ok(ports),
        (None, None) => Ok(Ports { bmcs: 0, ercs: vec![0; ERCS_VMS as usize] }),
    }
}

/// The BMC's saved identity, or a new one, saved.
fn identity(tls: &Path, name: &str, ip: std::net::IpAddr) -> anyhow::Result<TlsIdentity> {
    let (cert, key) = (tls.join(format!("{name}.crt")), tls.join(format!("{name}.key")));
    if cert.exists() || key.exists() {
        let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
        let key_pem = zeroize::Zeroizing::new(read(&key)?);
        return TlsIdentity::from_pem(&read(&cert)?, &key_pem).with_context(|| format!("{}", cert.display()));
    }
    let identity = TlsIdentity::self_signed(&[name, &ip.to_string()])?;
    write_private(&key, &identity.key_pem())?;
    std::fs::write(&cert, identity.cert_pem()).with_context(|| format!("cannot write {}", cert.display()))?;
    Ok(identity)
}

fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    owner_only(dir, 0o700).with_context(|| format!("cannot make {} private", dir.display()))
}

/// SIGTERM on Unix; on Windows (the lab linked into `bmc-rotate.exe`) Ctrl-C alone stops it.
#[cfg(unix)]
fn terminate() -> std::io::Result<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(Box::pin(async move {
        signal.recv().await;
    }))
}

#[cfg(not(unix))]
fn terminate() -> std::io::Result<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
    Ok(Box::pin(std::future::pending()))
}

/// Unix modes; on Windows (the lab linked into `bmc-rotate.exe demo`) the files keep the ACL of
/// the directory they are written to: lab secrets are throwaway.
#[cfg(unix)]
fn owner_only(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn owner_only(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Writes a file only its owner can read, whatever mode it had.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Created 0600, so no other user can open it in the moment before the chmod below.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    owner_only(path, 0o600)?;
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}
