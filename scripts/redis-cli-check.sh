#!/usr/bin/env bash
# The Redis-protocol listener against the real redis-cli and
# redis-benchmark (Debian's redis-tools): commands, `--pipe` mass
# insertion and a short benchmark run. The Rust test suite drives the same
# listener with the `redis` crate and needs no Redis tools; .ci/run runs
# this after it. Usage: scripts/redis-cli-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "needs $tool: apt-get install redis-tools" >&2
        exit 1
    }
done

cargo build --locked --quiet -p bitcask-server
# shellcheck source=scripts/lib/resp-server.sh
. scripts/lib/resp-server.sh
work=$(mktemp -d)
cleanup() {
    stop_resp_server
    rm -rf "$work"
}
trap cleanup EXIT
start_resp_server ./target/debug/bitcask-server || exit 1
port=$resp_port

failures=0
expect() {
    local want=$1
    shift
    local got
    got=$(redis-cli -p "$port" "$@")
    if [ "$got" != "$want" ]; then
        echo "FAIL: redis-cli $*: expected '$want', got '$got'" >&2
        failures=$((failures + 1))
    fi
}

expect PONG PING
expect OK SET greeting "hello world"
expect "hello world" GET greeting
expect 5 INCRBY n 5
expect 2 DBSIZE
expect "" GET missing

# --pipe: 10,000 SETs written as RESP on stdin.
for i in $(seq 0 9999); do
    key="mass:$i"
    value="value-$i"
    printf '*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n' "${#key}" "$key" "${#value}" "$value"
done >"$work/mass.resp"
redis-cli -p "$port" --pipe <"$work/mass.resp" >"$work/pipe.out"
if ! grep -q "errors: 0, replies: 10000" "$work/pipe.out"; then
    echo "FAIL: redis-cli --pipe: $(cat "$work/pipe.out")" >&2
    failures=$((failures + 1))
fi
expect value-9999 GET mass:9999
expect 10002 DBSIZE

# Keyspace notifications (docs/WATCH.md): `redis-cli --csv psubscribe`
# sees a SET and a DEL of a key under its pattern, as against Redis.
expect OK CONFIG SET notify-keyspace-events KEA
redis-cli -p "$port" --csv psubscribe '__keyspace@0__:watched*' >"$work/psub.out" 2>&1 &
subscriber=$!
for _ in $(seq 100); do
    grep -q '"psubscribe"' "$work/psub.out" && break
    sleep 0.05
done
expect OK SET watched:1 v
expect 1 DEL watched:1
for _ in $(seq 100); do
    grep -q '"del"' "$work/psub.out" && break
    sleep 0.05
done
kill "$subscriber" 2>/dev/null || true
wait "$subscriber" 2>/dev/null || true
want='"psubscribe","__keyspace@0__:watched*",1
"pmessage","__keyspace@0__:watched*","__keyspace@0__:watched:1","set"
"pmessage","__keyspace@0__:watched*","__keyspace@0__:watched:1","del"'
if [ "$(grep -v '^Reading messages' "$work/psub.out")" != "$want" ]; then
    echo "FAIL: redis-cli --csv psubscribe: $(cat "$work/psub.out")" >&2
    failures=$((failures + 1))
fi

# redis-benchmark: every request answered (a short run; numbers are in
# docs/BENCHMARKS.md, from longer ones).
# (Its progress lines end in carriage returns.)
redis-benchmark -p "$port" -t set,get -n 20000 -c 8 -P 16 -q 2>&1 | tr '\r' '\n' >"$work/bench.out"
for test in SET GET; do
    if ! grep -Eq "^ *$test: [0-9.]+ requests per second" "$work/bench.out"; then
        echo "FAIL: redis-benchmark $test: $(cat "$work/bench.out")" >&2
        failures=$((failures + 1))
    fi
done

if [ "$failures" -gt 0 ]; then
    echo "redis-cli checks: $failures failed" >&2
    exit 1
fi
echo "redis-cli checks: all passed; $(grep -E ' requests per second' "$work/bench.out" | tr -s ' ' | paste -sd ';' -)"
