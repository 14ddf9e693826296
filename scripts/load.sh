#!/usr/bin/env bash
# Load test of bitcask-server with oha: GET and PUT at 1 and 64 connections
# for a fixed time each, against a release build on a fresh data directory.
#
#   cargo install oha --locked      # once
#   scripts/load.sh [SECONDS] [SYNC]
#
# SECONDS per run (default 10); SYNC is the server's --sync (default: the
# server's default, 100ms). Results go into docs/BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
sync="${2:-}"
port=18321
cargo build --release --bin bitcask-server >/dev/null 2>&1
dir="$(mktemp -d)"
args=(--port "$port" --data-dir "$dir" --log-format json)
if [[ -n "$sync" ]]; then args+=(--sync "$sync"); fi
RUST_LOG=warn target/release/bitcask-server "${args[@]}" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.1; done

# 10,000 keys of 16 bytes with 100-byte values, so GETs hit.
value=$(printf 'v%.0s' $(seq 1 100))
oha --no-tui -n 10000 -c 16 -m PUT -H 'content-type: application/json' \
  -d "{\"value\":\"$value\"}" --rand-regex-url "http://127.0.0.1:$port/kv/key-[0-9]{4}00000" >/dev/null

for conns in 1 64; do
  echo "== GET, $conns connection(s), ${secs}s"
  oha --no-tui -z "${secs}s" -c "$conns" \
    --rand-regex-url "http://127.0.0.1:$port/kv/key-[0-9]{4}00000" |
    grep -E "Requests/sec|Success rate|50.00% in|99.00% in|99.90% in|responses"
  echo "== PUT, $conns connection(s), ${secs}s"
  oha --no-tui -z "${secs}s" -c "$conns" -m PUT -H 'content-type: application/json' \
    -d "{\"value\":\"$value\"}" --rand-regex-url "http://127.0.0.1:$port/kv/key-[0-9]{4}00000" |
    grep -E "Requests/sec|Success rate|50.00% in|99.00% in|99.90% in|responses"
done
