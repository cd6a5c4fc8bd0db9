#!/usr/bin/env bash
# Installs the system packages Weft's demo and data-path tests need (Debian/Ubuntu):
# iproute2 (ip netns, veth), iptables (traffic capture), util-linux (setpriv), iputils-ping,
# openssl (the TLS server outside the mesh in the origination tests).
# Does nothing when they are present; needs root (or sudo) otherwise.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v setpriv >/dev/null || need+=(util-linux)
command -v ping >/dev/null || need+=(iputils-ping)
command -v make >/dev/null || need+=(make)
command -v openssl >/dev/null || need+=(openssl)
[ "${#need[@]}" -eq 0 ] && exit 0
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "installing ${need[*]} needs root" >&2; exit 1; fi; }
echo "installing: ${need[*]}"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
