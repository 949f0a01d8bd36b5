#!/usr/bin/env bash
# Builds coffer's .deb and .rpm into dist/, each with a .sha256 file beside it. The release
# binaries come first, then the man pages and completions they generate (coffer generate),
# then cargo-deb and cargo-generate-rpm, which only package what is already built. Also the
# source tarball (git archive of HEAD) with the Homebrew formula and the Arch PKGBUILD filled
# in for it: COFFER_SOURCE_URL is where the tarball will be published (default: dist/ itself).
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
scripts/build-release
rm -rf "$release/man" "$release/completions"
"$release/coffer" generate man "$release/man"
gzip -9n "$release"/man/*.1
"$release/coffer" generate completions "$release/completions"

mkdir -p dist
rm -f dist/coffer[_-]*.deb dist/coffer-*.rpm dist/coffer-*.tar.gz dist/*.sha256 dist/coffer.rb dist/PKGBUILD dist/coffer.install
cargo deb --no-build --locked --output dist/
cargo generate-rpm --output dist/

# The source tarball, and the Homebrew formula and Arch PKGBUILD that build from it.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
tarball=coffer-$version.tar.gz
git diff --quiet HEAD || echo "packaging/build.sh: note: $tarball holds the last commit, not uncommitted changes" >&2
git archive --format=tar.gz --prefix="coffer-$version/" --output="dist/$tarball" HEAD
sha=$(sha256sum "dist/$tarball" | cut -d ' ' -f 1)
url=${COFFER_SOURCE_URL:-file://$PWD/dist/$tarball}
for template in packaging/homebrew/coffer.rb packaging/arch/PKGBUILD; do
  sed -e "s|@VERSION@|$version|g" -e "s|@URL@|$url|g" -e "s|@SHA256@|$sha|g" \
    "$template" >"dist/${template##*/}"
done
cp packaging/arch/coffer.install dist/

(
  cd dist
  for package in coffer[_-]*.deb coffer-*.rpm "$tarball"; do
    sha256sum "$package" >"$package.sha256"
  done
  ls -l coffer*
)
echo "packaging/build.sh: built in $(($(date +%s) - started)) s"
