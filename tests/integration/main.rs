//! One integration-test binary: every test drives the built binaries, most of them through real
//! clients (docker CLI, skopeo) against a real registry on loopback.

mod harness;
mod secret_service;

mod contract;
mod e2e_docker;
mod import;
mod keychain;
mod vectors;
mod wire;
