#!/usr/bin/env bash
# Instructions per request of the sidecar's one-hop HTTP path, and of `weft-bench floor` (hyper
# and tokio alone) on the same path: a count that, unlike req/s or CPU time, does not drift
# between runs on a shared machine, so a change worth 1 % shows (docs/benchmarks.md, "Session 8").
#
# usage: scripts/proxy-instructions.sh [BIN_DIR] [REQUESTS]   (root; needs valgrind and oha)
#   BIN_DIR   holds weft-proxy and weft-bench (default target/release)
#   REQUESTS  measured requests per proxy (default 20000), after 2000 unmeasured
#
# In a network namespace of its own (only loopback; the service VIP is 198.18.200.4, from the
# benchmarking range): `weft-bench responder` (1 KiB responses) on 127.0.0.1:19082; the proxy
# under `valgrind --tool=callgrind`, its outbound listener bound on the VIP, so the original
# destination is the VIP and the request takes the sidecar's outbound path (route, retry policy
# as Istio's default, LEAST_REQUEST pool, metrics on, access log off); oha sends REQUESTS
# requests over 16 keep-alive connections. callgrind counts user-space instructions (Ir) only,
# in all threads, from the zeroing after warm-up to the dump after the last response. Prints
# `<name> Ir/request <n>` for each proxy; the profiles stay in the output directory for
# callgrind_annotate.
set -euo pipefail

bin=${1:-target/release}
requests=${2:-20000}
out=${OUT:-target/weft-bench/instructions}
ns="weft-ir-$$"
vip=198.18.200.4
mkdir -p "$out"
for tool in valgrind callgrind_control oha curl; do
  command -v "$tool" >/dev/null || { echo "proxy-instructions: $tool is missing (make bench-deps)" >&2; exit 1; }
done
config="$out/config.yaml"

cleanup() {
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  sleep 0.5
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add "$vip/32" dev lo
in_ns() { ip netns exec "$ns" "$@"; }

cat > "$config" <<EOF
node: {id: "sidecar~198.18.200.13~client.bench~bench.svc.cluster.local", namespace: bench, workload_name: client, service_account: client, labels: {app: client}, ip_addresses: [198.18.200.13], trust_domain: cluster.local, proxy_type: sidecar}
outbound_traffic_policy: ALLOW_ANY
inbound: {default_mtls_mode: STRICT, upstream: ORIGINAL_DESTINATION, ports: [], authorization_policies: [], jwt_rules: []}
outbound:
  - name: plain.bench.svc.cluster.local:9082
    hostname: plain.bench.svc.cluster.local
    addresses: [$vip]
    port: 9082
    protocol: HTTP
    http:
      virtual_hosts:
        - name: plain.bench.svc.cluster.local:9082
          domains: [plain.bench.svc.cluster.local, "plain.bench.svc.cluster.local:9082", $vip, "$vip:9082"]
          routes:
            - name: default
              match: []
              action:
                route:
                  clusters: [{cluster: "outbound|9082||plain.bench.svc.cluster.local", weight: 100}]
                  retry: {attempts: 2, retry_on: [connect-failure, refused-stream, unavailable, cancelled, retriable-status-codes], retriable_status_codes: [503], backoff_base_ms: 25}
    tcp: []
clusters:
  - name: "outbound|9082||plain.bench.svc.cluster.local"
    lb_policy: LEAST_REQUEST
    transport: {mode: DISABLE}
    protocol: HTTP
    h2_upgrade: DEFAULT
    connection_pool: {tcp: {connect_timeout_ms: 10000}, http: {}}
    endpoints:
      - {address: 127.0.0.1, port: 19082, labels: {app: server}, weight: 1, has_sidecar: true, identity: "spiffe://cluster.local/ns/bench/sa/server"}
EOF

in_ns "$bin/weft-bench" responder --listen 127.0.0.1:19082 > "$out/responder.log" 2>&1 &

# measure NAME URL COMMAND...: Ir per request of COMMAND serving REQUESTS requests to URL.
measure() {
  local name=$1 url=$2
  shift 2
  rm -f "$out/$name".callgrind.*
  # Not through in_ns: `ip netns exec` then execs valgrind, so $! is valgrind's pid.
  ip netns exec "$ns" valgrind --tool=callgrind --callgrind-out-file="$out/$name.callgrind.%p" "$@" \
    > "$out/$name.log" 2>&1 &
  local pid=$!
  local ready=0
  for _ in $(seq 1 300); do
    if in_ns curl -s -o /dev/null -m 1 "$url"; then ready=1; break; fi
    sleep 0.5
  done
  [ "$ready" = 1 ] || { echo "proxy-instructions: $name never answered on $url (see $out/$name.log)" >&2; exit 1; }
  in_ns oha -n 2000 -c 16 --no-tui "$url" > /dev/null
  in_ns callgrind_control -z "$pid" > /dev/null
  in_ns oha -n "$requests" -c 16 --no-tui "$url" > "$out/$name.oha.txt"
  in_ns callgrind_control -d "$pid" > /dev/null
  sleep 1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  grep -q 'Success rate:.*100.00%' "$out/$name.oha.txt" \
    || { echo "proxy-instructions: $name: not every request succeeded (see $out/$name.oha.txt)" >&2; exit 1; }
  local dump="$out/$name.callgrind.$pid.1" total
  [ -f "$dump" ] || { echo "proxy-instructions: $name: no callgrind dump $dump" >&2; exit 1; }
  total=$(grep -h '^summary:' "$dump" | awk '{print $2}')
  echo "$name Ir/request $((total / requests))"
}

measure weft-proxy "http://$vip:9082/" "$bin/weft-proxy" run --config "$config" \
  --outbound-addr "$vip:9082" --inbound-addr 127.0.0.1:15006 --status-addr 127.0.0.1:15020 \
  --health-addr 127.0.0.1:15021 --prometheus-addr 127.0.0.1:15090 --admin-addr 127.0.0.1:15000 \
  --access-log off --concurrency 2
measure floor "http://127.0.0.1:10013/" "$bin/weft-bench" floor --listen 127.0.0.1:10013 \
  --upstream 127.0.0.1:19082 --workers 2
