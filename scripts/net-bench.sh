#!/usr/bin/env bash
# Network benchmark, everything in one run on this machine:
#   - the HTTP API under oha: GET and PUT at 1 and 64 connections;
#   - the RESP listener and a real redis-server under redis-benchmark: SET
#     and GET, not pipelined (-P 1) and pipelined (-P 16), alternating
#     between the two servers, ROUNDS times.
#
#   scripts/net-bench.sh [SECONDS] [REQUESTS] [ROUNDS]
#
# SECONDS per oha run (default 10); REQUESTS per redis-benchmark run (default
# 500000); ROUNDS of the RESP comparison (default 2). One bitcask-server
# serves both protocols with --sync 1s, the nearest to redis-server's
# `appendonly yes`, `appendfsync everysec` (BITCASK_BENCH_SYNC overrides;
# BITCASK_BENCH_FLAGS adds server flags). Keys: 16 bytes ("key-NNNN00000"
# over HTTP, redis-benchmark's "key:NNNNNNNNNNNN" with -r 100000), values
# 100 bytes. Needs oha (cargo install oha --locked) and redis-server,
# redis-benchmark, redis-cli (apt-get install redis-server redis-tools).
# BITCASK_BENCH_BIN runs another build of the server (to compare two
# commits: build the other in a worktree with its own target directory).
# Numbers go into docs/BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
requests=${2:-500000}
rounds=${3:-2}
sync=${BITCASK_BENCH_SYNC:-1s}
http_port=18321
resp_port=16380
redis_port=16390
bin=${BITCASK_BENCH_BIN:-target/release/bitcask-server}
[ -n "${BITCASK_BENCH_BIN:-}" ] || cargo build --release -q -p bitcask-server
work=$(mktemp -d)
cleanup() {
    redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true
    if [ -n "${server:-}" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
# shellcheck disable=SC2086 # BITCASK_BENCH_FLAGS is a list of flags
RUST_LOG=warn "$bin" --port $http_port --resp-port $resp_port \
    --sync "$sync" --data-dir "$work/bitcask" ${BITCASK_BENCH_FLAGS:-} >"$work/bitcask.log" 2>&1 &
server=$!
mkdir -p "$work/redis"
redis-server --port $redis_port --appendonly yes --appendfsync everysec --save '' \
    --dir "$work/redis" --daemonize yes --logfile "$work/redis.log"
until curl -sf "http://127.0.0.1:$http_port/health" >/dev/null; do sleep 0.1; done
for port in $resp_port $redis_port; do
    until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.1; done
done
echo "machine: $(nproc) CPUs, $(uname -r); bitcask-server --sync $sync; redis-server $(redis-server --version | awk '{print $3}') appendfsync everysec"

# --- HTTP -------------------------------------------------------------------
value=$(printf 'v%.0s' $(seq 1 100))
url="http://127.0.0.1:$http_port/kv/key-[0-9]{4}00000"
# 10,000 keys, so GETs hit.
oha --no-tui -n 10000 -c 16 -m PUT -H 'content-type: application/json' \
    -d "{\"value\":\"$value\"}" --rand-regex-url "$url" >/dev/null
http() { # label, oha args... -> "label req/s p50 p99 success"
    local label=$1
    shift
    # oha prints each latency with its unit (ms, secs, ...): normalise to ms.
    oha --no-tui -z "${secs}s" "$@" --rand-regex-url "$url" | awk -v label="$label" '
        function ms(v, unit) { return unit == "secs" ? v * 1000 : unit == "us" || unit == "µs" ? v / 1000 : v }
        /Requests\/sec/ {rps=$2}
        /Success rate/ {ok=$3}
        /50.00% in/ {p50=ms($3, $4)}
        /99.00% in/ {p99=ms($3, $4)}
        END {printf "%-22s %10.0f req/s  p50 %6.2f ms  p99 %6.2f ms  success %s\n", label, rps, p50, p99, ok}'
}
echo
echo "HTTP (oha, ${secs}s each)"
for conns in 1 64; do
    http "GET, $conns conn" -c "$conns"
    http "PUT, $conns conn" -c "$conns" -m PUT -H 'content-type: application/json' \
        -d "{\"value\":\"$value\"}"
done

# --- RESP against Redis -----------------------------------------------------
resp() { # port pipeline -> "SET/s GET/s"
    redis-benchmark -p "$1" -t set,get -d 100 -r 100000 -n "$requests" -c 50 -P "$2" -q 2>/dev/null |
        tr '\r' '\n' | awk '/^(SET|GET): [0-9]/ {printf "%12s", $2}'
}
echo
echo "RESP (redis-benchmark -c 50 -d 100 -r 100000 -n $requests), alternating"
printf "%-6s %-8s %-9s %12s%12s\n" round server pipeline "SET/s" "GET/s"
for round in $(seq 1 "$rounds"); do
    for pipeline in 1 16; do
        printf "%-6s %-8s %-9s %s\n" "$round" bitcask "-P $pipeline" "$(resp $resp_port "$pipeline")"
        printf "%-6s %-8s %-9s %s\n" "$round" redis "-P $pipeline" "$(resp $redis_port "$pipeline")"
    done
done
