//! One integration-test binary: every test drives the built binaries, most of them through real
//! clients (docker CLI, skopeo) against a real registry on loopback.

mod harness;

mod e2e_docker;
mod unlock;
mod vectors;
mod wire;
