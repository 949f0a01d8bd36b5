//! Checks of the built packages, apart from the main suite because they install a .deb
//! system-wide: `cargo test` leaves this target out (`test = false` in Cargo.toml) and
//! scripts/package-test runs it explicitly, as root, after building the packages.

#[path = "../integration/harness.rs"]
mod harness;

mod checks;
