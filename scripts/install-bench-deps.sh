#!/usr/bin/env bash
# Installs what the proxy comparison benchmark (`weft-bench`, `make bench`) needs, and only what
# is missing: HAProxy and nginx (the peer proxies) and valgrind (instruction counts) from the
# distribution (Debian/Ubuntu), and the load generator oha, pinned, with `cargo install --locked`
# when the distribution has no package.
# Prints what it installs; prints nothing and changes nothing when everything is present.
# The packages' own services are NOT started: the benchmark runs its own instances inside
# network namespaces (a temporary policy-rc.d keeps the maintainer scripts from starting them).
set -euo pipefail

OHA_VERSION="${OHA_VERSION:-1.16.0}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "installing $* needs root" >&2; exit 1; fi
}

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
# Instruction counts per request (scripts/proxy-instructions.sh, `make bench-instructions`).
command -v valgrind >/dev/null || need+=(valgrind)
command -v curl >/dev/null || need+=(curl)
oha_from_apt=0
if ! command -v oha >/dev/null; then
  if apt-cache policy oha 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    need+=(oha); oha_from_apt=1
  fi
fi

if [ "${#need[@]}" -gt 0 ]; then
  echo "install-bench-deps: installing from apt: ${need[*]}"
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    made_policy=1
  fi
  cleanup() { if [ "$made_policy" = 1 ]; then as_root rm -f "$policy"; fi; }
  trap cleanup EXIT
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v oha >/dev/null && [ "$oha_from_apt" = 0 ]; then
  installed="$(cargo install --list 2>/dev/null | sed -n 's/^oha v\([0-9.]*\):$/\1/p')"
  if [ "$installed" != "$OHA_VERSION" ]; then
    echo "install-bench-deps: cargo install oha --version $OHA_VERSION --locked (a few minutes on 2 cores)"
    cargo install oha --version "$OHA_VERSION" --locked --quiet
  fi
fi
command -v oha >/dev/null || { echo "install-bench-deps: oha is not on PATH (add ~/.cargo/bin)" >&2; exit 1; }
