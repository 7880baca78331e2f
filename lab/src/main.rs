//! `bmc-lab serve --fleet spec.toml [--inventory-out inv.toml]`: runs a simulated fleet until
//! interrupted, prints where each BMC listens and its certificate fingerprint, and writes the
//! inventory bmc-rotate reads. `bmc-lab pep` runs the privileged-endpoint simulator alone (for
//! PowerShell remoting clients such as pypsrp). `bmc-lab stamp` runs a fleet and a PEP from a
//! directory that keeps the inventory, the secrets and the certificates across restarts.
//! `bmc-lab self-check` proves a large fleet starts and is reachable.

use bmc_lab::pep::{PepConfig, PepPersona, PepSimulator};
use bmc_lab::{FleetSpec, Lab};
use clap::{Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Redfish BMC simulators for bmc-rotate.
#[derive(Parser)]
#[command(name = "bmc-lab", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the fleet a spec describes, on loopback, until Ctrl-C.
    Serve {
        /// The fleet spec (TOML; see the bmc-lab README for the format).
        #[arg(long, value_name = "FILE")]
        fleet: PathBuf,
        /// Where to write the inventory of the running fleet (mode 0644; it holds no secret).
        #[arg(long, value_name = "FILE")]
        inventory_out: Option<PathBuf>,
        /// Write each BMC's certificate as `DIR/NAME.pem` (for clients that take a CA bundle).
        #[arg(long, value_name = "DIR")]
        certs_out: Option<PathBuf>,
        /// Serve introspection (plain HTTP, loopback only) on this address.
        #[arg(long, value_name = "ADDR")]
        introspect: Option<SocketAddr>,
    },
    /// Serve a whole stamp (fleet and PEP) from DIR: inventory, secrets and certificates are
    /// written there, and a restart on the same DIR keeps addresses, pins and passwords.
    Stamp {
        /// The fleet spec (TOML; see the bmc-lab README for the format).
        #[arg(long, value_name = "FILE")]
        fleet: PathBuf,
        /// The stamp's directory (created 0700).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The BMCs on port N (each at its own 127.x.y.z), the ERCS VMs on N+1 to N+3
        /// (default: free ports the first time, the same ones after).
        #[arg(long, value_name = "N")]
        port_base: Option<u16>,
        /// Serve introspection (plain HTTP, loopback only) on this address.
        #[arg(long, value_name = "ADDR")]
        introspect: Option<SocketAddr>,
    },
    /// Start a fleet of N BMCs in a child process, hold a TLS connection to each, GET each
    /// service root, and report start time, memory and descriptors.
    SelfCheck {
        /// How many BMCs.
        #[arg(long, default_value_t = 10_000)]
        bmcs: usize,
    },
    /// Serve a privileged-endpoint simulator (WinRM on HTTP, NTLM, PSRP) until Ctrl-C.
    Pep {
        /// `current` (Set-BmcCredential) or `pre-1907` (Set-BmcPassword).
        #[arg(long, default_value = "current")]
        persona: PepPersona,
        /// How many ERCS VMs to simulate (1 to 3).
        #[arg(long, default_value_t = 3)]
        endpoints: usize,
        /// Address to listen on; each ERCS VM gets a free port.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Read the CloudAdmin password from this environment variable (default: the lab's).
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// Report whether each stored BMC password equals this environment variable's value
        /// (the simulator never prints a password).
        #[arg(long, value_name = "VAR")]
        expect_password_env: Option<String>,
    },
    /// List the personas the lab simulates (name and hardware profile).
    Personas {
        /// Print only the default account's user name of this persona.
        #[arg(long, value_name = "PERSONA")]
        default_user: Option<bmc_lab::Persona>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Personas { default_user: Some(persona) } => {
            println!("{}", persona.profile().default_account.1);
            ExitCode::SUCCESS
        }
        Command::Personas { default_user: None } => {
            for p in bmc_lab::Persona::ALL {
                println!("{:<14} {}", p.name(), p.hardware_profile());
            }
            ExitCode::SUCCESS
        }
        Command::Pep { persona, endpoints, bind, password_env, expect_password_env } => {
            serve_pep(persona, endpoints, bind, password_env, expect_password_env).await
        }
        Command::Stamp { fleet, out, port_base, introspect } => {
            let options = bmc_lab::stamp::StampOptions { port_base, introspect };
            serve_stamp(&fleet, &out, &options).await
        }
        Command::SelfCheck { bmcs } => self_check(bmcs).await,
        Command::Serve { fleet, inventory_out, certs_out, introspect } => {
            let spec = match FleetSpec::load(&fleet) {
                Ok(spec) => spec,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let lab = match Lab::start(spec).await {
                Ok(lab) => lab,
                Err(e) => {
                    eprintln!("error: cannot start the fleet: {e:#}");
                    return ExitCode::from(1);
                }
            };
            print!("{}", lab.table());
            if let Some(path) = inventory_out {
                if let Err(e) = std::fs::write(&path, lab.inventory_toml()) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::from(1);
                }
                println!("inventory written to {}", path.display());
            }
            if let Some(dir) = certs_out {
                for bmc in lab.bmcs() {
                    let path = dir.join(format!("{}.pem", bmc.name()));
                    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, bmc.cert_pem())) {
                        eprintln!("error: cannot write {}: {e}", path.display());
                        return ExitCode::from(1);
                    }
                }
                println!("certificates written to {}", dir.display());
            }
            let _introspection = match introspect {
                Some(bind) => match bmc_lab::introspect::Introspection::serve(bind, lab.bmcs(), None).await {
                    Ok(introspection) => {
                        println!("introspection http://{}/", introspection.addr());
                        Some(introspection)
                    }
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        return ExitCode::from(2);
                    }
                },
                None => None,
            };
            println!("serving {} BMCs; Ctrl-C stops", lab.bmcs().len());
            let _ = tokio::signal::ctrl_c().await;
            ExitCode::SUCCESS
        }
    }
}

async fn serve_stamp(
    fleet: &std::path::Path,
    out: &std::path::Path,
    options: &bmc_lab::stamp::StampOptions,
) -> ExitCode {
    let spec = match FleetSpec::load(fleet) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(bind) = options.introspect.filter(|b| !b.ip().is_loopback()) {
        eprintln!("error: --introspect {bind}: introspection listens on loopback only (127.0.0.1:PORT)");
        return ExitCode::from(2);
    }
    let stamp = match bmc_lab::stamp::Stamp::start(spec, out, options).await {
        Ok(stamp) => stamp,
        Err(e) => {
            eprintln!("error: cannot start the stamp: {e:#}");
            return ExitCode::from(1);
        }
    };
    print!("{}", stamp.summary());
    println!("serving; Ctrl-C or SIGTERM stops (the state is saved in {})", out.display());
    match stamp.serve_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot save the stamp's state: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn self_check(bmcs: usize) -> ExitCode {
    let scratch = std::env::temp_dir().join(format!("bmc-lab-self-check-{}", std::process::id()));
    let measured = match std::env::current_exe() {
        Ok(lab) => bmc_lab::reach::self_check(&lab, bmcs, &scratch).await,
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    match measured {
        Ok(m) => {
            println!("{} BMCs started in {:.2} s (one lab process)", m.bmcs, m.start.as_secs_f64());
            println!(
                "{} TLS connections opened and held in {:.2} s; one GET /redfish/v1/ over each in {:.2} s",
                m.bmcs,
                m.connect.as_secs_f64(),
                m.get.as_secs_f64()
            );
            println!(
                "lab with every connection open: {} MiB resident, {} descriptors (client: {}; limit {} each)",
                m.lab_rss_kib / 1024,
                m.lab_descriptors,
                m.client_descriptors,
                m.descriptor_limit
            );
            println!("self-check passed: every BMC answered");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: self-check failed: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn env_secret(var: &str) -> Result<String, String> {
    std::env::var(var).map_err(|_| format!("environment variable {var} is not set (or not UTF-8)"))
}

async fn serve_pep(
    persona: PepPersona,
    endpoints: usize,
    bind: IpAddr,
    password_env: Option<String>,
    expect_password_env: Option<String>,
) -> ExitCode {
    let mut config = PepConfig { persona, endpoints, ..PepConfig::default() };
    let secrets = password_env
        .as_deref()
        .map(env_secret)
        .transpose()
        .and_then(|password| Ok((password, expect_password_env.as_deref().map(env_secret).transpose()?)));
    let (password, expected) = match secrets {
        Ok(secrets) => secrets,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(password) = password {
        config.password = password.into();
    }
    let binds: Vec<SocketAddr> = (0..endpoints).map(|_| SocketAddr::new(bind, 0)).collect();
    let sim = match PepSimulator::start_on(config, &binds).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("error: cannot start the PEP simulator: {e:#}");
            return ExitCode::from(1);
        }
    };
    for (i, addr) in sim.addrs().iter().enumerate() {
        println!("ERCS{:02} http://{addr}/wsman", i + 1);
    }
    println!("account {}", sim.account());
    println!("serving the privileged endpoint; Ctrl-C stops");
    let mut seen = 0;
    let mut logged = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            _ = tick.tick() => {}
        }
        // Completed SPNEGO handshakes, for the interop check (`lab/conformance/pep.sh`).
        let log = sim.log();
        for entry in log.iter().skip(logged).filter(|e| e.action == "spnego") {
            println!("spnego ERCS{:02} {}", entry.ercs + 1, entry.detail);
        }
        logged = log.len();
        if sim.store_count() == seen {
            continue;
        }
        seen = sim.store_count();
        if let Some(stored) = sim.stored() {
            let verdict = match &expected {
                Some(expected) => format!(" matches-expected={}", stored.password.as_str() == expected.as_str()),
                None => String::new(),
            };
            println!(
                "stored cmdlet={} user={} bypass={} ercs=ERCS{:02}{verdict}",
                stored.cmdlet,
                stored.user.as_deref().unwrap_or("-"),
                stored.bypass_bmc_update,
                stored.ercs + 1
            );
        }
    }
}
