//! `bmc-lab serve --fleet spec.toml [--inventory-out inv.toml]`: runs a simulated fleet until
//! interrupted, prints where each BMC listens and its certificate fingerprint, and writes the
//! inventory bmc-rotate reads.

use bmc_lab::{FleetSpec, Lab};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

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
        Command::Serve { fleet, inventory_out, certs_out } => {
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
            println!("serving {} BMCs; Ctrl-C stops", lab.bmcs().len());
            let _ = tokio::signal::ctrl_c().await;
            ExitCode::SUCCESS
        }
    }
}
