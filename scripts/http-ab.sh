#!/usr/bin/env bash
# Quick A/B of two server builds over HTTP: PUT then GET at 64 connections
# under oha, each build in turn, ROUNDS times (the full side by side with
# Redis is scripts/net-bench.sh).
#
#   scripts/http-ab.sh OLD_BIN NEW_BIN [SECONDS] [ROUNDS]
#
# Build the other commit in a worktree with its own target directory:
#   git worktree add /tmp/old HEAD~1
#   (cd /tmp/old && CARGO_TARGET_DIR=/tmp/oldtarget cargo build --release -p bitcask-server)
# Extra environment for both servers can be given as VAR=value before the
# command. Needs oha (cargo install oha --locked) and curl.
set -euo pipefail
old=$1
new=$2
secs=${3:-6}
rounds=${4:-3}
port=18400
value=$(printf 'v%.0s' $(seq 1 100))
url="http://127.0.0.1:$port/kv/key-[0-9]{4}00000"
run() { # label binary
    local work
    work=$(mktemp -d)
    RUST_LOG=warn "$2" --port $port --sync 1s --data-dir "$work/d" >/dev/null 2>&1 &
    local pid=$!
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.1; done
    oha --no-tui -n 10000 -c 16 -m PUT -H 'content-type: application/json' \
        -d "{\"value\":\"$value\"}" --rand-regex-url "$url" >/dev/null
    local put get
    put=$(oha --no-tui -z "${secs}s" -c 64 -m PUT -H 'content-type: application/json' \
        -d "{\"value\":\"$value\"}" --rand-regex-url "$url" | awk '/Requests\/sec/ {print $2}')
    get=$(oha --no-tui -z "${secs}s" -c 64 --rand-regex-url "$url" | awk '/Requests\/sec/ {print $2}')
    printf "%-4s PUT %8.0f/s  GET %8.0f/s\n" "$1" "$put" "$get"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
for _ in $(seq 1 "$rounds"); do
    run old "$old"
    run new "$new"
done
