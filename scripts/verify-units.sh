#!/usr/bin/env bash
# Check the systemd units with `systemd-analyze verify`.
#
# Usage: scripts/verify-units.sh [UNIT_FILE...]   (default: deploy/*.service)
#
# The units are copied to a temporary directory and checked there; the files
# in deploy/ are never changed. `verify` insists that ExecStart= binaries
# exist, so in the copies /usr/local/bin/faena-* points at the binaries of
# $FAENA_BIN_DIR (default target/release) when they are built, else at
# /bin/true. A template (name@.service) is also checked as an instance,
# faena-worker@default\x2csunat.service (what systemd-escape gives for the
# queue list "default,sunat").
#
# Fails on any error, and on any warning about these units (an unknown key or
# a bad value is only a warning to systemd, which then ignores the line).
# Messages about other units (system ones pulled in by After=/Wants=) are
# shown but do not fail. Without systemd-analyze it prints
# "systemd-analyze not available: skipped" and exits 0.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze not available: skipped"
  exit 0
fi

BIN_DIR=${FAENA_BIN_DIR:-target/release}
[[ $BIN_DIR == /* ]] || BIN_DIR=$ROOT/$BIN_DIR

if (($#)); then
  UNITS=("$@")
else
  shopt -s nullglob
  UNITS=(deploy/*.service)
  shopt -u nullglob
fi
((${#UNITS[@]})) || {
  echo "verify-units: no unit files found" >&2
  exit 1
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/faena-units.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# Options this systemd-analyze knows (older ones lack some).
OPTS=()
help=$(systemd-analyze --help 2>&1 || true)
[[ $help == *--man* ]] && OPTS+=(--man=no)
# Only errors in our units fail verify, not errors of system units they name.
[[ $help == *--recursive-errors* ]] && OPTS+=(--recursive-errors=no)

# bin_for NAME: the binary to run in the temporary copy.
bin_for() {
  if [[ -x $BIN_DIR/$1 && ! -d $BIN_DIR/$1 ]]; then
    printf '%s' "$BIN_DIR/$1"
  else
    printf '%s' /bin/true
  fi
}

failed=0
for src in "${UNITS[@]}"; do
  [[ -f $src ]] || {
    echo "verify-units: $src: no such file" >&2
    failed=1
    continue
  }
  name=$(basename "$src")
  copy=$TMP/$name
  cp "$src" "$copy"
  # Point every /usr/local/bin/faena* at a binary that exists here.
  while read -r path; do
    sed -i "s|$path|$(bin_for "$(basename "$path")")|g" "$copy"
  done < <(grep -o '/usr/local/bin/faena[A-Za-z0-9_-]*' "$copy" | sort -u)

  targets=("$copy")
  if [[ $name == *@.service ]]; then
    instance=$TMP/${name%@.service}@default\\x2csunat.service
    cp "$copy" "$instance"
    targets+=("$instance")
  fi

  for unit in "${targets[@]}"; do
    shown=${unit#"$TMP"/}
    status=0
    out=$(systemd-analyze verify "${OPTS[@]}" "$unit" 2>&1) || status=$?
    ours=$(grep -F -e "$TMP/" -e "${shown%%@*}" <<<"$out" || true)
    if ((status != 0)) || [[ -n $ours ]]; then
      echo "FAIL $src (checked as $shown):"
      while IFS= read -r line; do printf '  %s\n' "${line//"$TMP"\//}"; done <<<"$out"
      failed=1
    else
      echo "ok   $src (checked as $shown)"
      if [[ -n $out ]]; then
        echo "  (messages about other units, not ours:)"
        while IFS= read -r line; do printf '    %s\n' "$line"; done <<<"$out"
      fi
    fi
  done
done

if ((failed)); then
  echo "verify-units: systemd-analyze verify found problems" >&2
  exit 1
fi
