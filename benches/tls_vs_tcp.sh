#!/usr/bin/env bash
# Echo throughput over TLS next to plain TCP, in the same run: the yardstick load
# generator speaks no TLS, so the load is the getty echo_client, pinned to one core, and
# echo_server (one arbiter) to the other. Two loads: many small frames (16 connections x
# 16 in flight x 64 B) and bulk (4 connections x 16 in flight x 16 KiB). Rounds
# alternate plain and TLS; each line is one run.
#   bash benches/tls_vs_tcp.sh [ROUNDS] [SMALL_FRAMES_PER_CONN] [BULK_FRAMES_PER_CONN]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
small=${2:-100000}
bulk=${3:-10000}
cargo build --release --quiet --example echo_server --example echo_client --example tls_cert
bin=target/release/examples
certs=$(mktemp -d /tmp/getty-tls-bench-XXXXXX)
trap 'rm -rf "$certs"' EXIT
"$bin/tls_cert" --dir "$certs" >/dev/null

run() { # plain|tls conns frames size
  local mode=$1 conns=$2 frames=$3 size=$4 server_tls=() client_tls=()
  if [[ $mode == tls ]]; then
    server_tls=(--tls-cert "$certs/cert.pem" --tls-key "$certs/key.pem")
    client_tls=(--tls-ca "$certs/ca.pem")
  fi
  local out; out=$(mktemp)
  taskset -c 0 "$bin/echo_server" --addr 127.0.0.1:0 --threads 1 --max-frame 65536 \
    "${server_tls[@]}" >"$out" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do grep -q '^listening on' "$out" && break; sleep 0.05; done
  local addr; addr=$(sed -n 's/^listening on //p' "$out")
  taskset -c 1 "$bin/echo_client" --addr "$addr" "${client_tls[@]}" --conns "$conns" \
    --depth 16 --size "$size" --frames "$frames" --timeout 300 2>/dev/null |
    sed -n "s/.* in \(.*\) s, \(.*\) frames\/s/$mode ${conns}x${size} B: \2 frames\/s (\1 s)/p"
  kill -TERM "$pid"; wait "$pid" || true; rm -f "$out"
}

for round in $(seq "$rounds"); do
  echo "round $round"
  for mode in plain tls; do run "$mode" 16 "$small" 64; done
  for mode in plain tls; do run "$mode" 4 "$bulk" 16384; done
done
