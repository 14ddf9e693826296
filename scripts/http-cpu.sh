#!/usr/bin/env bash
# CPU time per HTTP GET of each server build: every binary in turn serves
# GET at 64 connections under oha (random keys among 10,000 of 100-byte
# values, as scripts/http-limit.sh) while `perf stat` counts the server's
# CPU time; prints requests/s, CPUs busy and microseconds of CPU per
# request (and context switches per request), ROUNDS times. A binary named `hello` is the bare hyper server
# (examples/hyper_hello), the stack's own cost. CPU per request varies
# less between runs than the rate does, because oha shares the machine.
#
#   scripts/http-cpu.sh [SECONDS] [ROUNDS] BIN...
#
# Needs oha (cargo install oha --locked), curl and perf.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=$1
rounds=$2
shift 2
port=18430
value=$(printf 'v%.0s' $(seq 1 100))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
measure() { # binary
    local pid url
    if [ "$1" = hello ]; then
        cargo build --release -q -p bitcask-server --example hyper_hello
        target/release/examples/hyper_hello $port &
        pid=$!
        until curl -sf "http://127.0.0.1:$port/" >/dev/null; do sleep 0.1; done
        url="http://127.0.0.1:$port/kv/key-[0-9]{4}00000"
    else
        rm -rf "$work/d"
        RUST_LOG=warn "$1" --port $port --sync 1s --data-dir "$work/d" >/dev/null 2>&1 &
        pid=$!
        until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.1; done
        url="http://127.0.0.1:$port/kv/key-[0-9]{4}00000"
        oha --no-tui -n 20000 -c 16 -m PUT -H 'content-type: application/json' \
            -d "{\"value\":\"$value\"}" --rand-regex-url "$url" >/dev/null
    fi
    oha --no-tui -z "$((secs + 2))s" -c 64 --rand-regex-url "$url" >"$work/oha" &
    local load=$!
    sleep 1
    local ms
    perf stat -x, -e task-clock,context-switches,cpu-migrations -p "$pid" -o "$work/stat" -- sleep "$secs"
    ms=$(awk -F, '/task-clock/ {print $1}' "$work/stat")
    cs=$(awk -F, '/context-switches/ {print $1}' "$work/stat")
    wait $load
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local rate
    rate=$(awk '/Requests\/sec/ {print $2}' "$work/oha")
    awk -v b="$1" -v r="$rate" -v ms="$ms" -v s="$secs" -v cs="$cs" 'BEGIN {
        printf "%-28s %9.0f req/s  %.2f CPUs  %6.2f us/request  %.3f switches/request\n",
            b, r, ms / 1000 / s, ms * 1000 / s / r, cs / s / r }'
}
for _ in $(seq 1 "$rounds"); do
    for bin in "$@"; do measure "$bin"; done
done
