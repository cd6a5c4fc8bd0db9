# syntax=docker/dockerfile:1
# The weft-proxy image, used by both injected containers: `istio-init` runs `weft-proxy init`
# (traffic capture with iptables) and `istio-proxy` runs `weft-proxy run`. Build with
# `docker build -f images/proxy.Dockerfile .` from the repository root.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p weft-proxy --bin weft-proxy \
    && install -D -m 0755 target/release/weft-proxy /out/weft-proxy

# Not distroless: `weft-proxy init` runs `iptables`/`ip6tables` from PATH, as Istio's
# istio-iptables does, so the runtime needs the iptables package (Debian's default nft
# backend). Same Debian release as the builder, so the binary's glibc matches.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1337 istio-proxy \
    && useradd --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin istio-proxy
COPY --from=builder /out/weft-proxy /usr/local/bin/weft-proxy
# The proxy runs as UID 1337 (Istio's istio-proxy user): the capture rules return traffic from
# that UID untouched, which is how the proxy's own connections escape redirection. The init
# container overrides this with runAsUser 0 and the NET_ADMIN and NET_RAW capabilities (set by
# the injector), because installing iptables rules in the pod's network namespace needs them;
# it exits before the application starts.
USER 1337:1337
ENTRYPOINT ["/usr/local/bin/weft-proxy"]
