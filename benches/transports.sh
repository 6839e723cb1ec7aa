#!/usr/bin/env bash
# Echo throughput of every transport, side by side in one run. The yardstick load
# generator speaks only TCP, so the load here is the getty echo_client (pinned to one
# core) against echo_server with one arbiter (pinned to the other), the same two
# programs for every transport; rounds rotate the transports, each line is one run.
#   bash benches/transports.sh [ROUNDS] [FRAMES_PER_CONN] [CONNS] [SIZE]
# Default load: 64 connections x 16 frames in flight x 64 B, 20,000 frames each.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
frames=${2:-20000}
conns=${3:-64}
size=${4:-64}
cargo build --release --quiet --example echo_server --example echo_client --example tls_cert
bin=target/release/examples
work=$(mktemp -d /tmp/getty-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bin/tls_cert" --dir "$work" >/dev/null
tls_server=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
tls_client=(--tls-ca "$work/ca.pem")

run() { # name, server args..., --, client args...
  local name=$1; shift
  local server_args=() client_args=()
  while [[ $1 != -- ]]; do server_args+=("$1"); shift; done; shift
  client_args=("$@")
  local out; out=$(mktemp)
  taskset -c 0 "$bin/echo_server" --threads 1 "${server_args[@]}" >"$out" 2>/dev/null &
  local pid=$!
  for _ in $(seq 200); do grep -q '^listening on' "$out" && break; sleep 0.05; done
  local addr; addr=$(sed -n 's/^listening on //p' "$out")
  local line
  line=$(taskset -c 1 "$bin/echo_client" --addr "$addr" "${client_args[@]}" --conns "$conns" \
    --depth 16 --size "$size" --frames "$frames" --timeout 120 2>/dev/null | grep 'frames/s' || true)
  echo "$name: ${line:-FAILED}" | sed 's/: [0-9]* echoes matched on .* in \(.*\) s, \(.*\) frames\/s/: \2 frames\/s (\1 s)/'
  kill -TERM "$pid"; wait "$pid" || true; rm -f "$out"
}

for round in $(seq "$rounds"); do
  echo "round $round (${conns} connections x 16 in flight x ${size} B, ${frames} frames each)"
  run tcp --addr 127.0.0.1:0 --
  run tls --addr 127.0.0.1:0 "${tls_server[@]}" -- "${tls_client[@]}"
  run quic --transport quic --addr 127.0.0.1:0 "${tls_server[@]}" -- --transport quic "${tls_client[@]}"
  run unix --transport unix --path "$work/echo.sock" -- --transport unix --path "$work/echo.sock"
  run ws --transport ws --addr 127.0.0.1:0 -- --transport ws
  run wss --transport ws --addr 127.0.0.1:0 "${tls_server[@]}" -- --transport ws "${tls_client[@]}"
  run udp --transport udp --addr 127.0.0.1:0 -- --transport udp
done
