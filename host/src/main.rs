fn main() -> std::process::ExitCode {
    bmc_rotate::cli::main()
}
