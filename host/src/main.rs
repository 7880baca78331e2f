//! The `bmc-rotate` command; everything it does is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    // Before any secret exists: a crash must not write one to a core file.
    if let Err(e) = bmc_rotate::secrets::protect::harden_process() {
        eprintln!("bmc-rotate: cannot disable core dumps ({e}); refusing to handle passwords in a dumpable process");
        return std::process::ExitCode::from(1);
    }
    // Best effort: a run that then meets the lower limit reports each refused connection.
    let _ = bmc_rotate::platform::raise_open_file_limit();
    bmc_rotate::cli::main()
}
