#!/usr/bin/env bash
# Usage: scripts/resp-ab.sh OLD_SERVER_BINARY NEW_SERVER_BINARY (release builds); needs redis-tools.
# Alternates two bitcask-server builds under redis-benchmark (RESP), same flags.
set -euo pipefail
OLD=${1:?usage: resp-ab.sh OLD_BINARY NEW_BINARY}
NEW=${2:?usage: resp-ab.sh OLD_BINARY NEW_BINARY}
run() {
  local bin=$1 label=$2 port=$3
  local d; d=$(mktemp -d)
  $bin --port 0 --resp-port $port --data-dir $d/data --sync 1s 2>/dev/null &
  local pid=$!
  for _ in $(seq 1 100); do redis-cli -p $port PING >/dev/null 2>&1 && break; sleep 0.1; done
  for p in 1 16; do
    out=$(redis-benchmark -p $port -t set,get -d 100 -r 100000 -n 300000 -c 50 -P $p -q 2>&1 | tr '\r' '\n' | grep -E "^(SET|GET): [0-9.]+ requests" | awk '{printf "%s %s ", $1, $2}')
    echo "$label P$p $out"
  done
  kill $pid; wait $pid 2>/dev/null || true; rm -rf $d
}
for round in 1 2; do
  run "$OLD" before 16391
  run "$NEW" after 16392
done
