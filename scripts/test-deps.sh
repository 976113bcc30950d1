#!/usr/bin/env bash
# Install the system tools the test suite runs, when they are missing.
#
# Usage: scripts/test-deps.sh
#
# Today that is supervisord and supervisorctl (Debian package `supervisor`),
# used by crates/worker/tests/supervisor.rs, and chromium (Debian packages
# `chromium` and `chromium-driver`), used by crates/api/tests/board.rs,
# pdftoppm and pdftotext (Debian package `poppler-utils`), used by
# crates/sunat/tests/printable.rs, and xmllint and xmlsec1 (Debian packages
# `libxml2-utils` and `xmlsec1`), used by crates/sunat/tests/xml.rs.
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

# xmllint (Debian package `libxml2-utils`) validates the UBL XML against the UBL 2.1 schema and
# xmlsec1 (Debian package `xmlsec1`) verifies its XML signature, in crates/sunat/tests/xml.rs.
have xmllint || pkgs+=(libxml2-utils)
have xmlsec1 || pkgs+=(xmlsec1)

# pdftoppm and pdftotext (Debian package `poppler-utils`), used by crates/sunat/tests/printable.rs
# to render the printed receipt's PDF and extract its text.
if ! have pdftoppm || ! have pdftotext; then pkgs+=(poppler-utils); fi

if ((${#pkgs[@]})); then
  apt_install "${pkgs[@]}"
  if ! have supervisord || ! have supervisorctl; then
    die "supervisord/supervisorctl not found even after installing supervisor"
  fi
  if ! have chromium; then
    die "chromium not found even after installing chromium"
  fi
  if ! have xmllint || ! have xmlsec1; then
    die "xmllint/xmlsec1 not found even after installing libxml2-utils and xmlsec1"
  fi
  if ! have pdftoppm || ! have pdftotext; then
    die "pdftoppm/pdftotext not found even after installing poppler-utils"
  fi
  log "installed: ${pkgs[*]}"
fi

# schemathesis (PyPI package `schemathesis`, its CLI is `st`), used by
# crates/api/tests/openapi_fuzz.rs to fuzz the running api against GET /api/openapi.json.
# Installed with pip into python3's environment; the test finds `st` on PATH, in python3's
# scripts directory, or runs `python3 -m schemathesis.cli`.
py_scripts() { python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'; }
has_schemathesis() { have st || python3 -m schemathesis.cli --version >/dev/null 2>&1; }
if ! has_schemathesis; then
  have python3 || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  log "installing from PyPI: schemathesis"
  # Debian's python3 refuses pip installs outside a venv (PEP 668) unless told otherwise.
  python3 -m pip install --quiet schemathesis >&2 ||
    python3 -m pip install --quiet --break-system-packages schemathesis >&2 ||
    die "pip install schemathesis failed" "see pip's output above; install it yourself, then re-run: $0"
  scripts=$(py_scripts)
  case ":$PATH:" in
    *":$scripts:"*) ;;
    *)
      export PATH="$scripts:$PATH"
      log "schemathesis's \`st\` is in $scripts, which is not on PATH (the test finds it there anyway)"
      ;;
  esac
  has_schemathesis || die "schemathesis not found even after pip install schemathesis"
  log "installed: schemathesis"
fi
