# Guestpass container image.
#   docker build -t guestpass .
# A .dockerignore listing `target/` keeps the build context small (target/ is gigabytes).

# ---- builder ----------------------------------------------------------------
# Rust >= 1.94 is required (sqlx 0.9); the floating `1` tag tracks current stable.
FROM rust:1-slim-bookworm AS builder
# libpq-dev + pkg-config: diesel's pq-sys links the system libpq.
# Unpinned apt packages (DL3008): take Debian stable's security updates on rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build

# Dependencies first: build them against empty targets, so this layer stays cached
# until Cargo.toml / Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# Real sources. migrations/ (diesel embed_migrations!), templates/ (askama) and assets/ (GraphiQL,
# include_bytes!) are compiled into the binary, so the runtime image needs none of them.
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
COPY assets ./assets
# COPY keeps the files' original mtimes, which can be older than the dummy build:
# touch the crate roots so cargo rebuilds the guestpass crate itself.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/guestpass /usr/local/bin/guestpass

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Numeric uid so orchestrators can verify runAsNonRoot.
RUN groupadd --system --gid 10001 guestpass \
 && useradd --system --uid 10001 --gid guestpass --home-dir /var/lib/guestpass --shell /usr/sbin/nologin guestpass \
 && mkdir -p /var/lib/guestpass/outbox \
 && chown -R guestpass:guestpass /var/lib/guestpass
COPY --from=builder /usr/local/bin/guestpass /usr/local/bin/guestpass

WORKDIR /var/lib/guestpass
# The outbox (.eml files) is only used when GUESTPASS_SMTP_URL is unset.
ENV GUESTPASS_BIND=0.0.0.0:8080 \
    GUESTPASS_OUTBOX_DIR=/var/lib/guestpass/outbox
USER 10001:10001
EXPOSE 8080

# No HEALTHCHECK: the image has no curl/wget. Orchestrators should probe over HTTP:
#   liveness  GET /healthz  (200 while the process serves requests)
#   readiness GET /readyz   (200 when PostgreSQL answers and migrations are current, else 503)
# `serve` needs DATABASE_URL and GUESTPASS_SECRET (32+ chars); it applies migrations itself.
ENTRYPOINT ["guestpass"]
CMD ["serve"]
