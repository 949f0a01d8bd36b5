#!/usr/bin/env bash
# Builds coffer's .deb and .rpm into dist/, each with a .sha256 file beside it. The release
# binaries come first, then the man pages and completions they generate (coffer generate),
# then cargo-deb and cargo-generate-rpm, which only package what is already built.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in deb generate-rpm; do
  cargo "$tool" --version >/dev/null 2>&1 || {
    echo "packaging/build.sh: cargo $tool is missing; install it with: cargo install --locked cargo-$tool" >&2
    exit 1
  }
done

started=$(date +%s)
release=${CARGO_TARGET_DIR:-target}/release
cargo build --release --locked --bins
rm -rf "$release/man" "$release/completions"
"$release/coffer" generate man "$release/man"
gzip -9n "$release"/man/*.1
"$release/coffer" generate completions "$release/completions"

mkdir -p dist
rm -f dist/coffer[_-]*.deb dist/coffer-*.rpm dist/coffer*.sha256
cargo deb --no-build --locked --output dist/
cargo generate-rpm --output dist/
(
  cd dist
  for package in coffer[_-]*.deb coffer-*.rpm; do
    sha256sum "$package" >"$package.sha256"
  done
  ls -l coffer*
)
echo "packaging/build.sh: built in $(($(date +%s) - started)) s"
