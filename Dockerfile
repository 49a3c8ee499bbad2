# Builds emnify-exporter as a static (musl) binary and ships it alone in a distroless, non-root image.
#   docker build -t emnify-exporter .
# Without a container engine (or without pulling base images), scripts/build-image packages an
# already-built static binary into a FROM-scratch image with buildah instead (Containerfile.static).
FROM docker.io/library/rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl

# Distroless static: CA certificates, /etc/passwd with nonroot (65532), no shell, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/emnify-exporter /emnify-exporter
USER 65532:65532
EXPOSE 9853
ENTRYPOINT ["/emnify-exporter"]
