#!/usr/bin/env bash
# A local three-node cluster for trying it out (docs/CLUSTER.md).
#
#   scripts/cluster.sh [DIR]
#
# Starts nodes 1, 2 and 3 of one cluster on this machine:
#   node N: HTTP on 127.0.0.1:800N, RESP on 127.0.0.1:638N, peers on
#   127.0.0.1:900N, data in DIR/nodeN (default DIR: ./cluster-data),
# with a cluster token made once in DIR/token. Runs in the foreground;
# Ctrl-C stops all three. Run it again on the same DIR to restart the same
# cluster (the nodes then find their membership on disk). Try:
#   curl -X PUT localhost:8001/kv/hello -d '{"value": "world"}' -H 'content-type: application/json'
#   curl localhost:8003/kv/hello
#   curl localhost:8002/cluster
#   redis-cli -p 6382 incr counter
# Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-./cluster-data}
cargo build --release --locked -p bitcask-server
bin=target/release/bitcask-server
mkdir -p "$dir"
if [ ! -s "$dir/token" ]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/token")
fi
members="1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003"
pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM
for n in 1 2 3; do
    founding=()
    # A first start founds the cluster; a restart finds it on disk.
    [ -e "$dir/node$n/NODE" ] || founding=(--initial-cluster "$members")
    "$bin" --node-id "$n" --port "800$n" --resp-port "638$n" --peer-port "900$n" \
        --data-dir "$dir/node$n" --cluster-token-file "$dir/token" "${founding[@]}" &
    pids+=($!)
done
echo "three nodes running: HTTP 8001-8003, RESP 6381-6383, peers 9001-9003; Ctrl-C stops them" >&2
wait
