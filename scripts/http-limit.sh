#!/usr/bin/env bash
# How close the HTTP API comes to the HTTP stack's own limit here: GET at
# 64 connections under oha against bitcask-server (random keys among
# 10,000 of 100-byte values, as scripts/net-bench.sh) and against a bare
# hyper server answering the same JSON (crates/server/examples/hyper_hello.rs:
# same hyper, tokio and allocator; no routing, middleware or store),
# alternating, ROUNDS times. Prints each run and the ratio of the medians.
#
#   scripts/http-limit.sh [SECONDS] [ROUNDS]
#
# Needs oha (cargo install oha --locked) and curl. Numbers go into
# docs/BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
rounds=${2:-3}
port=18410
hello_port=18411
# Two builds: an example pulls in the package's dev-dependencies, and
# built in one invocation with it the server would carry their features
# too (the engine's failpoints, tokio's test clock, which takes a lock on
# every timer operation).
cargo build --release -q -p bitcask-server --bin bitcask-server
cargo build --release -q -p bitcask-server --example hyper_hello
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
RUST_LOG=warn target/release/bitcask-server --port $port --sync 1s --data-dir "$work/d" >/dev/null 2>&1 &
pids+=($!)
target/release/examples/hyper_hello $hello_port &
pids+=($!)
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.1; done
until curl -sf "http://127.0.0.1:$hello_port/" >/dev/null; do sleep 0.1; done
value=$(printf 'v%.0s' $(seq 1 100))
url="http://127.0.0.1:$port/kv/key-[0-9]{4}00000"
oha --no-tui -n 20000 -c 16 -m PUT -H 'content-type: application/json' \
    -d "{\"value\":\"$value\"}" --rand-regex-url "$url" >/dev/null
measure() { # label url-args...
    local out
    out=$(oha --no-tui -z "${secs}s" -c 64 "${@:2}")
    printf "%-8s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n" "$1" \
        "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
        "$(awk '/50.00% in/ {print $3}' <<<"$out")" \
        "$(awk '/99.00% in/ {print $3}' <<<"$out")"
}
results=$(for _ in $(seq 1 "$rounds"); do
    measure bitcask --rand-regex-url "$url"
    # The same random keys: oha shares the two cores, so its own work per
    # request must be the same against both servers.
    measure hyper --rand-regex-url "http://127.0.0.1:$hello_port/kv/key-[0-9]{4}00000"
done | tee /dev/stderr)
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ours=$(grep '^bitcask' <<<"$results" | awk '{print $2}' | median)
limit=$(grep '^hyper' <<<"$results" | awk '{print $2}' | median)
awk -v o="$ours" -v l="$limit" 'BEGIN {printf "median: bitcask %.0f req/s, bare hyper %.0f req/s: %.0f%% of the limit\n", o, l, 100 * o / l}'
