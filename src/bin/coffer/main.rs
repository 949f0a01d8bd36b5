//! `coffer`, the command for people: manage the vault behind docker-credential-coffer.

mod cli;

fn main() -> std::process::ExitCode {
    coffer::os::hardening::disable_core_dumps();
    // This binary links the clouds' SDKs: chain-mode tokens are minted here, not delegated.
    #[cfg(feature = "cloud")]
    coffer::token::chain::mint_in_process(coffer::token::providers::mint_from_identity);
    cli::main()
}
