#!/usr/bin/env bash
# Install the system tools the test suite runs, when they are missing.
#
# Usage: scripts/test-deps.sh
#
# Today that is supervisord and supervisorctl (Debian package `supervisor`),
# used by crates/worker/tests/supervisor.rs, and chromium (Debian packages
# `chromium` and `chromium-driver`), used by crates/api/tests/board.rs.
# Nothing is done when they are on PATH already. Otherwise the package is installed with apt-get (Debian/Ubuntu
# only; `apt-get update` runs once, before the first install; sudo is used
# only when not root). The test starts its own supervisord with its own
# config, socket and pid file under a temporary directory; on a machine with
# systemd, Debian's package also enables the machine's supervisor service,
# which the tests never use.
#
# Progress and errors go to stderr.
set -euo pipefail

log() { printf 'test-deps: %s\n' "$*" >&2; }
die() {
  printf 'test-deps: error: %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf '  %s\n' "$line" >&2; done
  exit 1
}

as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run: $*" "run this script as root, or install sudo, or install the packages yourself"
  fi
}

APT_UPDATED=
apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    die "missing packages: $* (and no apt-get: this is not Debian/Ubuntu)" \
      "install them with your package manager, then re-run the tests"
  log "installing from the distribution: $*"
  if [[ -z $APT_UPDATED ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
      die "apt-get update failed" "check the network / apt sources, then re-run: $0"
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
    die "apt-get install $* failed" "see apt's output above; install the packages yourself, then re-run: $0"
}

have() { command -v "$1" >/dev/null 2>&1; }

pkgs=()
if ! have supervisord || ! have supervisorctl; then pkgs+=(supervisor); fi

# Headless Chromium (Debian packages `chromium` and `chromium-driver`), used by
# crates/api/tests/board.rs to load the apalis-board dashboard and take a screenshot.
if ! have chromium || ! have chromedriver; then pkgs+=(chromium chromium-driver); fi

if ((${#pkgs[@]})); then
  apt_install "${pkgs[@]}"
  if ! have supervisord || ! have supervisorctl; then
    die "supervisord/supervisorctl not found even after installing supervisor"
  fi
  if ! have chromium; then
    die "chromium not found even after installing chromium"
  fi
  log "installed: ${pkgs[*]}"
fi
