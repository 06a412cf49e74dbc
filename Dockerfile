# One image with the three binaries; the Helm chart picks the command per component.
#   docker build -t ghcr.io/netwarden/netwarden:0.1.0 .
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpcap-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
      -p netwarden-sensor -p netwarden-engine -p netwarden-operator \
    && install -D -t /out target/release/netwarden-sensor target/release/netwarden-engine \
         target/release/netwarden-operator

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpcap0.8 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# Non-root by default; the sensor's pod runs it as root with only NET_RAW and NET_ADMIN.
USER 65532:65532
ENTRYPOINT []
CMD ["netwarden-engine", "--help"]
