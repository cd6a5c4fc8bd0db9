# syntax=docker/dockerfile:1
# The weft-operator image: build with `docker build -f images/operator.Dockerfile .` from the
# repository root (the whole workspace is the build context; .dockerignore drops target/).

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the target directory between builds; the binary is
# copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p weft-operator --bin weft-operator \
    && install -D -m 0755 target/release/weft-operator /out/weft-operator

# glibc and libgcc only (the binary uses rustls with ring: no OpenSSL), no shell, user nonroot.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/weft-operator /usr/local/bin/weft-operator
# distroless's nonroot user; the Deployment sets the same UID with runAsNonRoot.
USER 65532:65532
EXPOSE 15012 15014 9443
ENTRYPOINT ["/usr/local/bin/weft-operator"]
