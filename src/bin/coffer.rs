//! `coffer`, the command for people: manage the vault behind docker-credential-coffer.

fn main() -> std::process::ExitCode {
    coffer::os::hardening::disable_core_dumps();
    coffer::cli::main()
}
