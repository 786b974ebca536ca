# challenge-server container image.
#
#   docker build -t challenge-server .
#   docker run -p 8080:8080 -v challenge-data:/data \
#     -v "$PWD/site.toml:/etc/challenge-server/site.toml:ro" \
#     -v "$PWD/idp-es256.pub.pem:/etc/challenge-server/idp-es256.pub.pem:ro" \
#     challenge-server serve --config /etc/challenge-server/site.toml
#
# The image listens on 0.0.0.0:8080 and keeps its data in the /data volume (both set by
# environment variables below). On a non-loopback address the server refuses to start
# with the public development key, so mount a site config with your own [[auth.keys]],
# auth.issuer and auth.audience (and the key file it names) as above. A local trial with
# the development key: `docker run -p 127.0.0.1:8080:8080 challenge-server serve
# --insecure-dev-key`. See README.md, "Docker".

# ---- build ------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /build

# Only what the build needs: the manifest and lock file, the sources, the embedded
# default config, and the bench target the manifest declares.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
COPY benches ./benches

# Cache mounts (BuildKit, Docker's default builder since 23.0) keep the registry and the
# target directory between builds; the binary is copied out of the cached target
# directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin challenge-server \
 && install -m 0755 target/release/challenge-server /usr/local/bin/challenge-server

# ---- runtime ----------------------------------------------------------------------
FROM debian:bookworm-slim

# curl only serves the HEALTHCHECK below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 challenge \
 && useradd --system --uid 10001 --gid challenge --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin challenge \
 && mkdir -p /data \
 && chown challenge:challenge /data \
 && chmod 0700 /data

COPY --from=builder /usr/local/bin/challenge-server /usr/local/bin/challenge-server

ENV CHALLENGE_SERVER__SERVER__LISTEN=0.0.0.0:8080 \
    CHALLENGE_SERVER__STORAGE__DATA_DIR=/data

USER challenge:challenge
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# SIGTERM is the graceful shutdown (finish in-flight requests, flush, exit).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1

ENTRYPOINT ["/usr/local/bin/challenge-server"]
CMD ["serve"]
