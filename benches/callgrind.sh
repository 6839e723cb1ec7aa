#!/usr/bin/env bash
# Instructions per echoed frame of one echo server, counted by callgrind: unlike wall or
# CPU time, the count barely moves with what else the machine is doing, so it shows
# changes of a few percent that timed runs on a shared 2-core machine cannot.
#
#   bash benches/callgrind.sh NAME PORT SERVER-COMMAND...
#   env: LOADGEN (default ../shared/yardstick/target/release/loadgen), CONNS (64),
#        DEPTH (16), SIZE (64), DURATION (6 s counted, after a 3 s warm-up),
#        PROTO (tcp; ws for a WebSocket server at /ws: loadgen's --proto),
#        KEEP (set: keep the callgrind output for callgrind_annotate)
# e.g. DEPTH=1 bash benches/callgrind.sh getty 7300 \
#        target/release/examples/echo_server --addr 127.0.0.1:7300 --threads 1
#
# The server runs under valgrind on CPU 0 and the yardstick's loadgen drives it from
# CPU 1. Counting starts after the warm-up (callgrind_control -z) and is dumped when
# the load ends; the figure is the server's user-space instructions over the frames
# loadgen received meanwhile. Under valgrind the server is ~50x slower, so at depth 16
# batches are larger than in a timed run: depth 1 (one frame per read) shows the cost
# per batch, depth 16 the cost per frame.
set -euo pipefail
[ $# -ge 3 ] || { sed -n 5,10p "$0"; exit 2; }
name=$1 port=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
LOADGEN=${LOADGEN:-$here/../shared/yardstick/target/release/loadgen}
CONNS=${CONNS:-64} DEPTH=${DEPTH:-16} SIZE=${SIZE:-64} DURATION=${DURATION:-6}
PROTO=${PROTO:-tcp}
command -v valgrind >/dev/null || { apt-get update && apt-get install -y valgrind; }
work=$(mktemp -d /tmp/getty-callgrind-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/out.%p" "$@" \
  >/dev/null 2>"$work/valgrind.log" &
pid=$!
# However the script ends, the server under valgrind goes with it.
trap 'kill -9 "$pid" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
hex=$(printf '%04X' "$port")
listening() { grep -qE "^ *[0-9]+: 0100007F:$hex 00000000:0000 0A" /proc/net/tcp; }
for _ in $(seq 300); do
  listening && break
  sleep 0.1
done
listening || { echo "the server did not listen on 127.0.0.1:$port within 30 s" >&2; exit 1; }
taskset -c 1 "$LOADGEN" --proto "$PROTO" --addr "127.0.0.1:$port" --conns "$CONNS" --depth "$DEPTH" \
  --size "$SIZE" --duration "$DURATION" --warmup 3 --json >"$work/load.json" &
load=$!
sleep 3
callgrind_control -z "$pid" >/dev/null 2>&1
wait "$load"
callgrind_control -d "$pid" >/dev/null 2>&1
kill -INT "$pid" 2>/dev/null || true
sleep 1
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true

dump=$(ls "$work"/out.*.1)
[ -n "${KEEP:-}" ] && echo "callgrind output kept: $dump" >&2
python3 - "$name" "$dump" "$work/load.json" "$CONNS" "$DEPTH" "$SIZE" <<'EOF'
import json, sys
name, dump, load, conns, depth, size = sys.argv[1:]
ir = next(int(l.split()[1]) for l in open(dump) if l.startswith("summary:"))
frames = json.load(open(load))["frames"]
print(f"{name}: {conns} x {depth} x {size} B, {frames} frames, {ir} instructions, "
      f"{ir / frames:.0f} per frame")
EOF
