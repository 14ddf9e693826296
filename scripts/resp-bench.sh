#!/usr/bin/env bash
# redis-benchmark against bitcask-server's RESP listener and against a real
# redis-server, in the same run, alternating, on this machine:
#
#   scripts/resp-bench.sh [REQUESTS] [ROUNDS]
#
# redis-server runs with appendonly yes / appendfsync everysec (its nearest
# durability to an interval sync); bitcask-server with --sync 1s. Each round
# runs `redis-benchmark -t set,get -d 100 -r 100000 -n REQUESTS -c 50` with
# -P 1 and -P 16 against each. Needs redis-server, redis-benchmark
# (apt-get install redis-server redis-tools). Numbers go to docs/BENCHMARKS.md.
set -euo pipefail
requests=${1:-500000}
rounds=${2:-2}
sync=${BITCASK_BENCH_SYNC:-1s}
bitcask_port=16380
redis_port=16390
cargo build --release -q -p bitcask-server
work=$(mktemp -d)
cleanup() {
    redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true
    [ -n "${bitcask_pid:-}" ] && kill "$bitcask_pid" 2>/dev/null && wait "$bitcask_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
target/release/bitcask-server --port 0 --resp-port $bitcask_port --sync "$sync" ${BITCASK_BENCH_FLAGS:-} \
    --data-dir "$work/bitcask" >"$work/bitcask.log" 2>&1 &
bitcask_pid=$!
mkdir -p "$work/redis"
redis-server --port $redis_port --appendonly yes --appendfsync everysec --save '' \
    --dir "$work/redis" --daemonize yes --logfile "$work/redis.log"
for port in $bitcask_port $redis_port; do
    until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.1; done
done
bench() { # port pipeline -> "SET GET" requests per second
    redis-benchmark -p "$1" -t set,get -d 100 -r 100000 -n "$requests" -c 50 -P "$2" -q 2>/dev/null |
        tr '\r' '\n' | awk '/^(SET|GET): [0-9]/ {printf "%s ", $2}'
}
echo "round server pipeline SET/s GET/s"
for round in $(seq 1 "$rounds"); do
    for pipeline in 1 16; do
        echo "$round bitcask -P$pipeline $(bench $bitcask_port "$pipeline")"
        echo "$round redis   -P$pipeline $(bench $redis_port "$pipeline")"
    done
done
