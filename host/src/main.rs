//! The `bmc-rotate` command; everything it does is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    bmc_rotate::cli::main()
}
