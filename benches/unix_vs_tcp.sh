#!/usr/bin/env bash
# Echo throughput over Unix sockets next to TCP, in the same run: the yardstick load
# generator has no Unix mode, so the load is the getty echo_client (64 connections x
# 16 frames in flight x 64 B), pinned to one core, and echo_server (one arbiter) to the
# other. Rounds alternate the transports; each line is one round.
#   bash benches/unix_vs_tcp.sh [ROUNDS] [FRAMES_PER_CONN]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
frames=${2:-20000}
cargo build --release --quiet --example echo_server --example echo_client
bin=target/release/examples
sock=$(mktemp -u /tmp/getty-bench-XXXXXX.sock)

run() { # transport, server args..., -- client args...
  local transport=$1; shift
  local server_args=() client_args=()
  while [[ $1 != -- ]]; do server_args+=("$1"); shift; done; shift
  client_args=("$@")
  local out; out=$(mktemp)
  taskset -c 0 "$bin/echo_server" --threads 1 "${server_args[@]}" >"$out" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do grep -q '^listening on' "$out" && break; sleep 0.05; done
  local addr; addr=$(sed -n 's/^listening on //p' "$out")
  [[ $transport == tcp ]] && client_args=(--addr "$addr")
  taskset -c 1 "$bin/echo_client" "${client_args[@]}" --conns 64 --depth 16 --size 64 \
    --frames "$frames" | sed -n "s/.* in \(.*\) s, \(.*\) frames\/s/$transport \2 frames\/s (\1 s)/p"
  kill -TERM "$pid"; wait "$pid" || true; rm -f "$out"
}

for round in $(seq "$rounds"); do
  echo "round $round"
  run tcp --addr 127.0.0.1:0 --
  run unix --transport unix --path "$sock" -- --transport unix --path "$sock"
done
