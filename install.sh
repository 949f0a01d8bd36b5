#!/usr/bin/env bash
# Installs coffer from this source tree: builds the two binaries (or takes them from --bin-dir),
# installs them with their man pages and bash, zsh and fish completions under a prefix, and
# makes docker use coffer through `coffer setup docker`, which edits docker's config.json
# (the editing lives in Rust, not here). `./install.sh --uninstall` undoes all of it.
# Runs on Debian/Ubuntu and macOS, so it sticks to bash 3.2 and POSIX tools.
set -euo pipefail

me=install.sh
usage() {
  cat <<'EOF'
Usage: ./install.sh [options]
       ./install.sh --uninstall [options]

Builds coffer (scripts/build-release), installs coffer and docker-credential-coffer with
their man pages and bash, zsh and fish completions, then makes docker use coffer
(`coffer setup docker`: credsStore in config.json, with a backup of the old file).
Running it again changes nothing that is already right.

Options:
  --prefix DIR     install under DIR (default: /usr/local as root, ~/.local otherwise)
  --bin-dir DIR    take coffer and docker-credential-coffer from DIR instead of building
  --yes            answer yes to questions (importing plaintext logins into coffer)
  --no-configure   leave docker's and podman's configuration alone
  --podman         also make podman, skopeo and buildah use coffer (`coffer setup podman`)
  --uninstall      remove what install.sh installed and put docker's credsStore back
  -h, --help       show this text
EOF
}

say() { printf '%s\n' "$*"; }
die() {
  printf '%s: %s\n' "$me" "$*" >&2
  exit 1
}

action=install prefix="" bin_dir="" assume_yes=0 configure=1 podman=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a folder"; bin_dir=$2; shift 2 ;;
    --bin-dir=*) bin_dir=${1#*=}; shift ;;
    --yes | -y) assume_yes=1; shift ;;
    --no-configure) configure=0; shift ;;
    --podman) podman=1; shift ;;
    --uninstall) action=uninstall; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

if [ -z "$prefix" ]; then
  if [ "$(id -u)" -eq 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
fi
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
prefix=${prefix%/}
manifest="$prefix/share/coffer/install-manifest"
coffer="$prefix/bin/coffer"
undo_hint="./install.sh --uninstall --prefix $prefix"

stage=$(mktemp -d "${TMPDIR:-/tmp}/coffer-install.XXXXXX")
# What has happened so far, for the summary; printed even when a step stops the run.
summarized=0 progress="nothing was installed or changed"
stopped() {
  local status=$?
  if [ "$action" = install ] && [ "$summarized" -eq 0 ] && [ "$status" -ne 0 ]; then
    say ""
    say "install.sh stopped before the end: $progress"
    say "undo: $undo_hint"
  fi
  rm -rf "$stage"
}
trap stopped EXIT

# Under sudo, $HOME and the files in it may be root's or the user's depending on the system's
# sudoers; coffer never edits a user's files as root, so it leaves that step to the user.
under_sudo() { [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; }

# Asks on the terminal; "no" when there is none (CI), unless --yes.
ask() {
  [ "$assume_yes" -eq 1 ] && return 0
  { : </dev/tty; } 2>/dev/null || return 1
  printf '%s [y/N] ' "$1" >/dev/tty
  local reply=""
  read -r reply </dev/tty || return 1
  case "$reply" in [yY]*) return 0 ;; *) return 1 ;; esac
}

# ---------------------------------------------------------------------------------- install

binaries() {
  if [ -n "$bin_dir" ]; then
    for program in coffer docker-credential-coffer; do
      [ -x "$bin_dir/$program" ] || die "$bin_dir/$program is missing or not executable"
    done
    return
  fi
  local src
  src=$(cd "$(dirname "$0")" && pwd)
  [ -f "$src/Cargo.toml" ] || die "run install.sh from coffer's source tree, or pass --bin-dir"
  command -v cargo >/dev/null ||
    die "cargo is not installed: install a Rust toolchain (rustup), or pass --bin-dir with built binaries"
  local target=${CARGO_TARGET_DIR:-target}
  case "$target" in /*) ;; *) target="$src/$target" ;; esac
  if [ -x "$target/release/coffer" ]; then
    say "building coffer in release mode (scripts/build-release)"
  else
    say "building coffer in release mode (scripts/build-release); the first build takes a few minutes"
  fi
  (cd "$src" && scripts/build-release)
  bin_dir="$target/release"
}

# mode, source, destination: one line per file to install.
plan() {
  local page name
  printf '755\t%s\t%s\n' "$bin_dir/coffer" "$prefix/bin/coffer"
  printf '755\t%s\t%s\n' "$bin_dir/docker-credential-coffer" "$prefix/bin/docker-credential-coffer"
  for page in "$stage"/man/*.1; do
    printf '644\t%s\t%s\n' "$page" "$prefix/share/man/man1/${page##*/}"
  done
  for name in coffer docker-credential-coffer; do
    printf '644\t%s\t%s\n' "$stage/completions/$name.bash" "$prefix/share/bash-completion/completions/$name"
    printf '644\t%s\t%s\n' "$stage/completions/_$name" "$prefix/share/zsh/site-functions/_$name"
    printf '644\t%s\t%s\n' "$stage/completions/$name.fish" "$prefix/share/fish/vendor_completions.d/$name.fish"
  done
}

# Creates a folder and its missing parents, noting those under the prefix so that uninstalling
# removes them again (when empty) and leaves folders that were there before.
ensure_dir() {
  local dir=$1 missing=""
  while [ ! -d "$dir" ]; do
    missing="$dir
$missing"
    dir=$(dirname "$dir")
  done
  printf '%s' "$missing" | while IFS= read -r dir; do
    [ -n "$dir" ] || continue
    mkdir "$dir"
    case "$dir" in "$prefix" | "$prefix"/*) printf '%s\n' "$dir" >>"$stage/dirs" ;; esac
  done
}

install_files() {
  : >"$stage/files"
  : >"$stage/dirs"
  [ -f "$manifest" ] && sed -n 's/^dir //p' "$manifest" >>"$stage/dirs"
  added=0 updated=0 unchanged=0
  local mode src dest
  while IFS=$'\t' read -r mode src dest; do
    ensure_dir "$(dirname "$dest")"
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
      unchanged=$((unchanged + 1))
    else
      if [ -e "$dest" ]; then updated=$((updated + 1)); else added=$((added + 1)); fi
      # A copy beside the target renamed over it: a running coffer is never half-written.
      cp "$src" "$dest.install-$$"
      chmod "$mode" "$dest.install-$$"
      mv -f "$dest.install-$$" "$dest"
    fi
    printf '%s\n' "$dest" >>"$stage/files"
  done < <(plan)

  # Files an earlier install put there that this version no longer has.
  if [ -f "$manifest" ]; then
    sed -n 's/^file //p' "$manifest" | while IFS= read -r old; do
      grep -qxF "$old" "$stage/files" || rm -f "$old"
    done
  fi

  ensure_dir "$(dirname "$manifest")"
  {
    say "# Written by coffer's install.sh: what \`install.sh --uninstall\` removes."
    sed 's/^/file /' "$stage/files"
    sort -u "$stage/dirs" | sed 's/^/dir /'
  } >"$stage/manifest"
  if ! cmp -s "$stage/manifest" "$manifest"; then
    cp "$stage/manifest" "$manifest.install-$$"
    mv -f "$manifest.install-$$" "$manifest"
  fi
}

# Runs a `coffer setup` and shows what it said; returns its status.
setup() {
  local status=0
  "$coffer" setup "$@" >"$stage/setup.out" 2>&1 || status=$?
  sed 's/^/  /' "$stage/setup.out"
  return $status
}

configure_docker() {
  if under_sudo; then
    docker_status="left alone: run \`coffer setup docker\` as $SUDO_USER, without sudo"
    return
  fi
  local found
  found=$(command -v docker-credential-coffer || true)
  if [ -z "$found" ]; then
    docker_status="left alone: $prefix/bin is not on PATH, so docker could not run the helper"
    next="$next
  add $prefix/bin to PATH (e.g. in ~/.profile), open a new shell, then: coffer setup docker"
    return
  fi
  if [ "$found" != "$prefix/bin/docker-credential-coffer" ]; then
    say "warning: PATH finds $found before the one just installed"
  fi
  if ! setup docker; then
    docker_status="NOT configured: see the message above"
    failed=1
    return
  fi
  docker_status="uses coffer (coffer setup docker; undo: coffer setup --undo docker)"
  progress="files installed; docker uses coffer"
  if grep -q '^unencrypted:' "$stage/setup.out"; then
    if ask "Move those logins into coffer and remove them from the file (coffer import docker --scrub)?"; then
      # A typo at the passphrase prompt must not cost the rest of the install.
      if "$coffer" import docker --scrub; then
        plaintext_status="moved into coffer and scrubbed from config.json (coffer import docker --scrub)"
      else
        plaintext_status="NOT moved: the import failed (see above); config.json still holds them"
        next="$next
  coffer import docker --scrub      move the plaintext logins into coffer (failed this time)"
        failed=1
      fi
    else
      plaintext_status="left in config.json, unencrypted"
      next="$next
  coffer import docker --scrub      move the plaintext logins into coffer"
    fi
  fi
}

configure_podman() {
  if [ "$podman" -eq 1 ]; then
    if under_sudo; then
      podman_status="left alone: run \`coffer setup podman\` as $SUDO_USER, without sudo"
    elif setup podman; then podman_status="uses coffer (coffer setup podman)"; else
      podman_status="NOT configured: see the message above"
      failed=1
    fi
  elif podman_set_up; then
    podman_status="uses coffer (set up earlier; undo: coffer setup --undo podman)"
  fi
}

# Whether an earlier \`coffer setup podman\` left its drop-in, so a re-run reports it truly.
podman_set_up() {
  local drop_in="$HOME/.config/containers/registries.conf.d/coffer.conf"
  # shellcheck disable=SC2016 # the backquotes are part of the text looked for
  [ -f "$drop_in" ] && grep -q '^# Written by `coffer setup podman`' "$drop_in"
}

install() {
  binaries
  "$bin_dir/coffer" generate man "$stage/man"
  "$bin_dir/coffer" generate completions "$stage/completions"
  install_files
  progress="files installed under $prefix; docker and podman not configured"
  failed=0 next="" docker_status="left alone (--no-configure)" podman_status="left alone (--podman sets it up)"
  plaintext_status="none found"
  if [ "$configure" -eq 1 ]; then
    configure_docker
    configure_podman
  else
    plaintext_status="not looked for (--no-configure)"
  fi

  say ""
  say "$("$coffer" --version) is installed under $prefix ($added new, $updated updated, $unchanged unchanged files)"
  say "  programs     $prefix/bin/coffer, $prefix/bin/docker-credential-coffer"
  say "  man pages    $prefix/share/man/man1 (man coffer, man docker-credential-coffer)"
  say "  completions  bash, zsh ($prefix/share/zsh/site-functions must be in fpath), fish"
  say "  docker       $docker_status"
  say "  podman       $podman_status"
  say "  plaintext    $plaintext_status"
  say "next:"
  [ -z "$next" ] || say "${next#?}"
  say "  coffer doctor                     check the whole set-up"
  say "  docker login REGISTRY             keep a registry's password in coffer"
  say "undo: $undo_hint"
  summarized=1
  return $failed
}

# -------------------------------------------------------------------------------- uninstall

uninstall() {
  if [ ! -f "$manifest" ]; then
    local other found=""
    # The coffer on PATH first: that is the installation the user means.
    for other in "$(dirname "$(dirname "$(command -v coffer 2>/dev/null || echo /x/x)")")" /usr/local "$HOME/.local"; do
      [ "$other" != "$prefix" ] && [ -f "$other/share/coffer/install-manifest" ] && found=$other && break
    done
    if [ -n "$found" ]; then
      die "install.sh installed coffer under $found, not under $prefix: run ./install.sh --uninstall --prefix $found"
    fi
    say "nothing to remove: install.sh has not installed coffer under $prefix (nor under /usr/local or ~/.local)"
    return 0
  fi
  if [ "$configure" -eq 1 ] && [ -x "$coffer" ]; then
    if under_sudo; then
      say "note: if $SUDO_USER ran \`coffer setup docker\`, they must run \`coffer setup --undo docker\`"
      say "      before the helper goes, or their docker commands fail; this run changes root's files only"
    else
      setup --undo docker ||
        die "docker's configuration was not restored, so nothing was removed; fix the problem above, or run again with --no-configure"
      setup --undo podman ||
        die "podman's configuration was not restored, so nothing was removed; fix the problem above, or run again with --no-configure"
    fi
  fi
  local removed=0 path
  while IFS= read -r path; do
    if [ -e "$path" ] || [ -L "$path" ]; then
      rm -f "$path"
      removed=$((removed + 1))
    fi
  done < <(sed -n 's/^file //p' "$manifest")
  # Deepest first, and only the folders install.sh created, once they are empty.
  local dirs
  dirs=$(sed -n 's/^dir //p' "$manifest" | sort -r)
  rm -f "$manifest"
  while IFS= read -r path; do
    [ -z "$path" ] || rmdir "$path" 2>/dev/null || true
  done <<<"$dirs"
  say ""
  say "coffer is uninstalled from $prefix ($removed files removed)"
  say "  kept: the vault and coffer's settings (coffer's data and config folders), and the"
  say "        backups of docker's config.json; delete them yourself if you no longer want them"
}

case "$action" in
  install) install ;;
  uninstall) uninstall ;;
esac
