//! One integration-test binary: every test drives the built binaries, most of them through real
//! clients (docker CLI, a real engine, skopeo, podman, buildah, docker-py) against a real
//! registry on loopback.

mod harness;

mod audit_log;
mod cli;
mod contract;
mod crash;
mod descriptions;
mod docker_py;
mod docs;
mod e2e_docker;
mod e2e_engine;
mod e2e_podman;
mod e2e_tokens;
mod engine;
mod export;
mod failures;
mod faults;
mod hostile;
mod hygiene;
mod import;
mod install;
mod keychain;
mod openbao;
mod providers;
mod secret_service;
mod stress;
mod tamper;
mod token_server;
mod token_vault;
mod unlock;
mod vectors;
mod wire;
