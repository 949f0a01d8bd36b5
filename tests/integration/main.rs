//! One integration-test binary: every test drives the built binaries, most of them through real
//! clients (docker CLI, skopeo) against a real registry on loopback.

mod harness;

mod audit_log;
mod crash;
mod e2e_docker;
mod hostile;
mod hygiene;
mod stress;
mod tamper;
mod vectors;
mod wire;
