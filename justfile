# Faena task runner. `just` lists the recipes.
#
# Recipes that need Redis and PostgreSQL first run `scripts/services.sh ensure`
# (machine services if they answer, else project-local ones under ./var; set
# FAENA_FORCE_LOCAL=1 to always use the local ones) and export REDIS_URL and
# DATABASE_URL from the var/services.env it writes.

set shell := ["bash", "-euo", "pipefail", "-c"]
set dotenv-load := false
set positional-arguments

# List the recipes
default:
    @just --list --unsorted

# Make sure Redis and PostgreSQL answer; writes var/services.env
services:
    scripts/services.sh ensure

# Build, migrate, then run api + worker + beat together (Ctrl-C stops them)
up:
    #!/usr/bin/env bash
    set -euo pipefail
    scripts/services.sh ensure
    set -a; source var/services.env; set +a
    cargo build --release --bins --features faena-sunat/sim
    target/release/faena migrate
    # SUNAT: unless SUNAT_ENDPOINT points elsewhere (see the README for SUNAT's beta service), the
    # worker sends to the local simulator with a test company and a throwaway test certificate.
    if [[ -z ${SUNAT_ENDPOINT:-} ]]; then
        export FAENA_RUN_SUNAT_SIM=1
        export SUNAT_ENDPOINT=http://127.0.0.1:8099/ol-ti-itcpfegem-beta/billService
        export FAENA_COMPANY_RUC=${FAENA_COMPANY_RUC:-20100066603}
        export FAENA_COMPANY_NAME=${FAENA_COMPANY_NAME:-"Faena Demo S.A.C."}
        export FAENA_COMPANY_ADDRESS=${FAENA_COMPANY_ADDRESS:-"Av. Demo 123, Lima"}
        export SUNAT_SOL_USER=${SUNAT_SOL_USER:-MODDATOS} SUNAT_SOL_PASSWORD=${SUNAT_SOL_PASSWORD:-moddatos}
        if [[ -z ${SUNAT_CERT_PATH:-} ]]; then
            export SUNAT_CERT_PASSWORD=${SUNAT_CERT_PASSWORD:-faena-dev-cert}
            if [[ ! -s var/sunat/faena-test-cert.p12 ]]; then
                mkdir -p var/sunat
                target/release/sunat-sim cert --dir var/sunat --password "$SUNAT_CERT_PASSWORD" >/dev/null
            fi
            export SUNAT_CERT_PATH=var/sunat/faena-test-cert.p12
        fi
    fi
    # The api needs a JWT secret: one is generated once for this checkout and kept in var/.
    if [[ -z ${FAENA_JWT_SECRET:-} ]]; then
        if [[ ! -s var/jwt-secret ]]; then
            (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > var/jwt-secret)
        fi
        export FAENA_JWT_SECRET="$(cat var/jwt-secret)"
    fi
    echo "Create an admin (once): target/release/faena users create admin --role admin"
    exec scripts/run-all.sh

# Format check, clippy, then the whole test suite against real services
test:
    #!/usr/bin/env bash
    set -euo pipefail
    scripts/services.sh ensure
    scripts/test-deps.sh
    scripts/verify-units.sh
    scripts/check-module-cycles.py
    # A merge's conflict markers must never land (one did, in ARCHITECTURE.md).
    if grep -rIn --exclude-dir={target,var,.git,node_modules} -E '^(<<<<<<<|>>>>>>>)( |$)' .; then
        echo "merge conflict markers above: resolve them"; exit 1
    fi
    set -a; source var/services.env; set +a
    export FAENA_TEST_DATABASE_URL="$DATABASE_URL" FAENA_TEST_REDIS_URL="$REDIS_URL"
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast --no-tests=warn
    else
        cargo test --workspace --no-fail-fast
    fi

# Only the fault-injection suite (also part of `just test`): real binaries killed, paused, stopped
chaos:
    #!/usr/bin/env bash
    set -euo pipefail
    scripts/services.sh ensure
    set -a; source var/services.env; set +a
    export FAENA_TEST_DATABASE_URL="$DATABASE_URL" FAENA_TEST_REDIS_URL="$REDIS_URL"
    cargo build --bins
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run -p faena-chaos --no-fail-fast --run-ignored all
    else
        cargo test -p faena-chaos --no-fail-fast -- --include-ignored
    fi

# Build in release mode and run the benchmark: just bench [ARGS...]
bench *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    scripts/services.sh ensure
    set -a; source var/services.env; set +a
    # Same features as `just up`, so the two share one release build.
    cargo build --release --bins --features faena-sunat/sim
    exec target/release/faena-bench "$@"

# Format the code
fmt:
    cargo fmt --all

# Clippy with warnings as errors
lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Stop the project-local Redis/PostgreSQL under ./var (never the machine's)
stop:
    scripts/services.sh stop
