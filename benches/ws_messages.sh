#!/usr/bin/env bash
# WebSocket echo of text messages, side by side in one run: the getty echo_client in
# message mode (one text message per frame, pinned to CPU 1) against echo servers
# pinned to CPU 0: getty's echo_server in message mode (plain and with permessage-deflate,
# each message on its own or with context takeover), and the yardstick's raw
# tokio-tungstenite and actix-web-actors servers, which echo text as text. The same
# client runs getty's codec mode (binary length-delimited frames) for comparison.
# Prints, per server and round, messages/s and the server's CPU time per message
# (user + system, from /proc), which ranks servers even when the client is the limit.
#   bash benches/ws_messages.sh [ROUNDS] [SECS] [CONNS] [SIZE]
# Default: 3 rounds of 5 s, 64 connections x 16 in flight x 64 B.
# Needs the yardstick built: (cd ../shared/yardstick && cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-5}
conns=${3:-64}
size=${4:-64}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --example echo_server --example echo_client
bin=$target/release/examples
yard=${YARDSTICK:-../shared/yardstick/target/release}
tick_us=$((1000000 / $(getconf CLK_TCK)))

cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

run() { # name, port, client-args (a string), server command...
  local name=$1 port=$2 client=$3; shift 3
  local out; out=$(mktemp)
  taskset -c 0 "$@" >"$out" 2>&1 &
  local pid=$!
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  local before; before=$(cpu_ticks "$pid")
  local line
  # shellcheck disable=SC2086
  line=$(taskset -c 1 "$bin/echo_client" --transport ws --addr "127.0.0.1:$port" $client \
    --conns "$conns" --depth 16 --size "$size" --duration "$secs" 2>/dev/null | tail -2 | tr '\n' ' ')
  local after; after=$(cpu_ticks "$pid")
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; rm -f "$out"
  local received; received=$(sed -n 's/.*received=\([0-9]*\).*/\1/p' <<<"$line")
  local rate; rate=$(sed -n 's/.*s, \([0-9]*\) frames\/s.*/\1/p' <<<"$line")
  if [[ -z $received || $received -eq 0 ]]; then
    echo "$name: FAILED ($line)"
    return
  fi
  awk -v n="$name" -v r="$rate" -v t="$((after - before))" -v u="$tick_us" -v m="$received" \
    'BEGIN { printf "%-26s %9d msg/s  server CPU %.2f us/msg\n", n, r, t * u / m }'
}

for round in $(seq "$rounds"); do
  echo "round $round: ${conns} connections x 16 in flight x ${size} B, ${secs} s"
  run "tokio-tungstenite (text)" 7501 "--messages" "$yard/echo-tokio" --proto ws --addr 127.0.0.1:7501
  run "actix-web-actors (text)" 7502 "--messages" "$yard/echo-actix" --proto ws --addr 127.0.0.1:7502
  run "getty messages (text)" 7503 "--messages" "$bin/echo_server" --transport ws --messages --threads 1 --addr 127.0.0.1:7503
  run "getty messages, deflate" 7504 "--messages --deflate" "$bin/echo_server" --transport ws --messages --deflate --threads 1 --addr 127.0.0.1:7504
  run "getty messages, deflate ctx" 7505 "--messages --deflate-context" "$bin/echo_server" --transport ws --messages --deflate-context --threads 1 --addr 127.0.0.1:7505
  run "getty codec (binary)" 7506 "" "$bin/echo_server" --transport ws --threads 1 --addr 127.0.0.1:7506
done
