//! One integration-test binary: every test drives the built binaries, most of them through real
//! clients (docker CLI, skopeo) against a real registry on loopback.

mod harness;

mod e2e_docker;
mod e2e_tokens;
mod providers;
mod token_server;
mod token_vault;
mod vectors;
mod wire;
