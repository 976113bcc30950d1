#!/usr/bin/env bash
# Run faena-api, faena-worker and faena-beat together in the foreground.
#
# Each process's output (stdout and stderr) is prefixed with [api], [worker]
# or [beat]. Ctrl-C or SIGTERM sends SIGTERM to all three and waits for them
# to finish their own graceful shutdown (a second Ctrl-C / SIGTERM kills them).
# If one of them exits on its own, the others are stopped the same way and
# this script exits non-zero, naming the one that died.
#
# The environment (REDIS_URL, DATABASE_URL, FAENA_*) is passed through as is;
# `just up` sets it from var/services.env. FAENA_BIN_DIR overrides the
# directory of the binaries (default target/release).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
  echo "run-all: needs bash >= 5.1 (wait -n -p), this is $BASH_VERSION" >&2
  exit 1
fi

BIN_DIR=${FAENA_BIN_DIR:-target/release}
# FAENA_RUN_SUNAT_SIM=1 (set by `just up` when SUNAT_ENDPOINT is not given) also runs the local
# SUNAT simulator, as [sunat-sim].
NAMES=(api worker beat)
if [[ ${FAENA_RUN_SUNAT_SIM:-} == 1 ]]; then NAMES+=(sunat-sim); fi

binary() { if [[ $1 == sunat-sim ]]; then echo "$BIN_DIR/sunat-sim"; else echo "$BIN_DIR/faena-$1"; fi; }

for name in "${NAMES[@]}"; do
  if [[ ! -x $(binary "$name") ]]; then
    echo "run-all: $(binary "$name") not found; build it first: cargo build --release --bins --features faena-sunat/sim" >&2
    exit 1
  fi
done

FIFO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/faena-run-all.XXXXXX")
declare -A PID_NAME=()
PIDS=()
PREFIX_PIDS=()
STOPPING=

for name in "${NAMES[@]}"; do
  # A FIFO per process, so that both the process and its prefixer are our
  # children: we can signal the one and wait for the other to flush.
  mkfifo "$FIFO_DIR/$name"
  sed -u "s/^/[$name] /" <"$FIFO_DIR/$name" &
  PREFIX_PIDS+=($!)
  "$(binary "$name")" >"$FIFO_DIR/$name" 2>&1 &
  PIDS+=($!)
  PID_NAME[$!]=$name
done

# stop_all: SIGTERM every child still running, then wait for all of them.
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for pid in "${PREFIX_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$FIFO_DIR"
}

on_signal() {
  local sig=$1 pid
  if [[ -n $STOPPING ]]; then
    echo "run-all: second $sig: killing all" >&2
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    return
  fi
  STOPPING=1
  echo "run-all: $sig received: stopping api, worker and beat" >&2
  stop_all
  [[ $sig == INT ]] && exit 130
  exit 143
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

echo "Faena API listening on http://${FAENA_API_BIND:-127.0.0.1:8080}"

died=
status=0
wait -n -p died "${PIDS[@]}" || status=$?
# A signal interrupts `wait`; its trap exits. Getting here means a child ended.
if [[ -z $STOPPING ]]; then
  STOPPING=1
  echo "run-all: ${PID_NAME[$died]:-?} exited on its own (status $status); stopping the others" >&2
  stop_all
  exit 1
fi
