# syntax=docker/dockerfile:1
# Faena: one image with every binary (faena, faena-api, faena-worker, faena-beat, faena-bench).
# The command picks the process: deploy/docker-compose.yml runs `faena migrate`, then faena-api,
# faena-worker and faena-beat from it.
#
#   docker build -t faena .
#   docker run --rm --env-file .env faena faena check-infra
#
# Settings come from the environment (see .env.example and the README's settings table). In a
# container set FAENA_API_BIND=0.0.0.0:8080, or the api only listens inside the container.

# ---------------------------------------------------------------- builder --
FROM rust:1-bookworm AS builder
WORKDIR /src

# Only what the build needs (target/ and var/ of a checkout stay out of the image).
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations

# The cache mounts (BuildKit, the default builder since Docker 23) keep the registry and the
# target dir between builds, so the binaries are copied out of target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && cp target/release/faena target/release/faena-api target/release/faena-worker \
       target/release/faena-beat target/release/faena-bench /out/

# ---------------------------------------------------------------- runtime --
FROM debian:bookworm-slim AS runtime

# ca-certificates: the system TLS roots, for outgoing TLS. curl: the api's health check in compose.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

# A dedicated, unprivileged user; /var/lib/faena is the files directory.
# Fixed ids, so volumes and runAsNonRoot-style checks see the same numbers everywhere.
RUN groupadd --system --gid 10001 faena \
 && useradd --system --uid 10001 --gid faena --home-dir /var/lib/faena --no-create-home \
      --shell /usr/sbin/nologin faena \
 && install -d -o faena -g faena -m 0750 /var/lib/faena

COPY --from=builder /out/ /usr/local/bin/

USER faena
WORKDIR /var/lib/faena
ENV FAENA_API_BIND=0.0.0.0:8080
EXPOSE 8080

# SIGTERM is the graceful stop of every process (the default of `docker stop`).
STOPSIGNAL SIGTERM
CMD ["faena", "--help"]
