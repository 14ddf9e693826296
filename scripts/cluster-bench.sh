#!/usr/bin/env bash
# Three-node bitcask cluster against a three-node etcd cluster, side by side
# on this machine (docs/BENCHMARKS.md, "Replicated cluster against etcd"):
#
#   scripts/cluster-bench.sh [SECONDS] [ROUNDS] [CONNECTIONS]
#
# Both clusters run at once (the idle one only sends heartbeats); the load
# alternates between them, ROUNDS times (default 2), SECONDS per run (default
# 10), CONNECTIONS per run (default 64), all through the same load generator
# (oha, HTTP/1.1 keep-alive) and the same kind of request:
#   - PUT of one key with a 100-byte value: ours `PUT /kv/bench`, etcd's JSON
#     gateway `POST /v3/kv/put` (etcd's own HTTP API; base64 key and value);
#   - linearizable GET: ours `GET /kv/bench`, etcd `POST /v3/kv/range`
#     (linearizable is the default of both);
#   - stale GET: ours `GET /kv/bench?consistency=stale`, etcd's range with
#     "serializable": true (answered from the node's own state).
# etcd's own clients speak gRPC, and its JSON gateway forwards each request
# to that gRPC server inside the process, which costs etcd a hop; so etcd
# runs each load a second time through its gRPC API, driven by
# scripts/etcd-load (a Rust client on as many connections, one request in
# flight each, like oha). Compare against the better of etcd's two lines.
# Each load runs against the leader and against a follower of each cluster.
# A single bitcask node (`--sync 1s`) runs the GETs too, for the stale-read
# aim (>= 0.8x one node).
#
# Durability is alike: etcd fsyncs its WAL before acknowledging (batched);
# our nodes fsync their raft logs before acknowledging (group commit), the
# stores run with the default `--sync never` (the log is the durable copy).
#
# Needs oha (cargo install oha --locked), protoc for etcd-load's build
# (apt-get install protobuf-compiler) and etcd (apt-get install
# etcd-server; the package's systemd unit is not used: this script starts
# its own three members on loopback ports and stops them at the end).
# BITCASK_BENCH_BIN runs another build of the server. Numbers go into
# docs/BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-2}
conns=${3:-64}
bin=${BITCASK_BENCH_BIN:-target/release/bitcask-server}
[ -n "${BITCASK_BENCH_BIN:-}" ] || cargo build --release -q --locked -p bitcask-server
command -v oha >/dev/null || { echo "needs oha: cargo install oha --locked" >&2; exit 1; }
command -v etcd >/dev/null || { echo "needs etcd: apt-get install etcd-server" >&2; exit 1; }
command -v protoc >/dev/null || { echo "needs protoc (for etcd-load): apt-get install protobuf-compiler" >&2; exit 1; }
cargo build --release -q --locked --manifest-path scripts/etcd-load/Cargo.toml
etcd_load=scripts/etcd-load/target/release/etcd-load

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- start both clusters and one single node ---------------------------------
members="1=127.0.0.1:19101,2=127.0.0.1:19102,3=127.0.0.1:19103"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
for n in 1 2 3; do
    RUST_LOG=warn "$bin" --node-id "$n" --port "1810$n" --peer-port "1910$n" \
        --data-dir "$work/bitcask$n" --cluster-token-file "$work/token" \
        --initial-cluster "$members" >"$work/bitcask$n.log" 2>&1 &
    pids+=($!)
done
RUST_LOG=warn "$bin" --port 18100 --sync 1s --data-dir "$work/single" >"$work/single.log" 2>&1 &
pids+=($!)
etcd_members="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for n in 1 2 3; do
    etcd --name "e$n" --data-dir "$work/etcd$n" \
        --listen-client-urls "http://127.0.0.1:2379$n" --advertise-client-urls "http://127.0.0.1:2379$n" \
        --listen-peer-urls "http://127.0.0.1:2380$n" --initial-advertise-peer-urls "http://127.0.0.1:2380$n" \
        --initial-cluster "$etcd_members" --initial-cluster-state new \
        --initial-cluster-token bench --log-level warn >"$work/etcd$n.log" 2>&1 &
    pids+=($!)
done

# Our leader: the leader_id of /cluster once one is known.
ours_leader=""
for _ in $(seq 1 300); do
    ours_leader=$(curl -sf http://127.0.0.1:18101/cluster | sed -n 's/.*"leader_id":\([0-9]\).*/\1/p' || true)
    [ -n "$ours_leader" ] && break
    sleep 0.1
done
[ -n "$ours_leader" ] || { echo "bitcask cluster elected no leader; logs in $work" >&2; cat "$work"/bitcask1.log >&2; exit 1; }
ours_follower=$(( ours_leader % 3 + 1 ))
until curl -sf http://127.0.0.1:18100/health >/dev/null; do sleep 0.1; done

# etcd's leader: the member whose status names itself as leader.
etcd_leader=""
for _ in $(seq 1 300); do
    for n in 1 2 3; do
        status=$(curl -sf -X POST -d '{}' "http://127.0.0.1:2379$n/v3/maintenance/status" || true)
        me=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<<"$status")
        leader=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<<"$status")
        if [ -n "$me" ] && [ "$me" = "$leader" ]; then etcd_leader=$n; fi
    done
    [ -n "$etcd_leader" ] && break
    sleep 0.1
done
[ -n "$etcd_leader" ] || { echo "etcd elected no leader; logs in $work" >&2; cat "$work"/etcd1.log >&2; exit 1; }
etcd_follower=$(( etcd_leader % 3 + 1 ))

value=$(printf 'v%.0s' $(seq 1 100))
key64=$(printf bench | base64)
value64=$(printf '%s' "$value" | base64 -w0)
ours_put=(-m PUT -H 'content-type: application/json' -d "{\"value\":\"$value\"}")
etcd_put=(-m POST -H 'content-type: application/json' -d "{\"key\":\"$key64\",\"value\":\"$value64\"}")
etcd_get=(-m POST -H 'content-type: application/json' -d "{\"key\":\"$key64\"}")
etcd_stale=(-m POST -H 'content-type: application/json' -d "{\"key\":\"$key64\",\"serializable\":true}")
# The key exists before any GET.
curl -sf -X PUT "http://127.0.0.1:1810$ours_leader/kv/bench" "${ours_put[@]:2:4}" >/dev/null
curl -sf -X PUT http://127.0.0.1:18100/kv/bench "${ours_put[@]:2:4}" >/dev/null
curl -sf "http://127.0.0.1:2379$etcd_leader/v3/kv/put" -d "{\"key\":\"$key64\",\"value\":\"$value64\"}" >/dev/null

run() { # label url oha-args... -> one line: label req/s p50 p99 success
    local label=$1 url=$2
    shift 2
    # oha prints each latency with its unit (ms, secs, ...): normalise to ms.
    oha --no-tui -z "${secs}s" -c "$conns" "$@" "$url" | awk -v label="$label" '
        function ms(v, unit) { return unit == "secs" ? v * 1000 : unit == "us" || unit == "µs" ? v / 1000 : v }
        /Requests\/sec/ {rps=$2}
        /Success rate/ {ok=$3}
        /50.00% in/ {p50=ms($3, $4)}
        /99.00% in/ {p99=ms($3, $4)}
        END {printf "%-44s %10.0f req/s  p50 %6.2f ms  p99 %6.2f ms  success %s\n", label, rps, p50, p99, ok}'
}

echo "machine: $(nproc) CPUs, $(uname -r); $(etcd --version | head -1); oha $(oha --version | awk '{print $2}')"
echo "bitcask leader: node $ours_leader, follower: node $ours_follower; etcd leader: e$etcd_leader, follower: e$etcd_follower"
echo "${secs}s per run, $conns connections, one key, 100-byte value"
for round in $(seq 1 "$rounds"); do
    echo
    echo "round $round"
    for side in leader follower; do
        if [ $side = leader ]; then o=$ours_leader e=$etcd_leader; else o=$ours_follower e=$etcd_follower; fi
        ours="http://127.0.0.1:1810$o/kv/bench"
        etcd="http://127.0.0.1:2379$e/v3/kv"
        run "bitcask PUT, $side" "$ours" "${ours_put[@]}"
        run "etcd    PUT, $side" "$etcd/put" "${etcd_put[@]}"
        "$etcd_load" "etcd    PUT, $side, gRPC" "http://127.0.0.1:2379$e" put "$secs" "$conns"
        run "bitcask linearizable GET, $side" "$ours"
        run "etcd    linearizable GET, $side" "$etcd/range" "${etcd_get[@]}"
        "$etcd_load" "etcd    linearizable GET, $side, gRPC" "http://127.0.0.1:2379$e" get "$secs" "$conns"
        run "bitcask stale GET, $side" "$ours?consistency=stale"
        run "etcd    serializable GET, $side" "$etcd/range" "${etcd_stale[@]}"
        "$etcd_load" "etcd    serializable GET, $side, gRPC" "http://127.0.0.1:2379$e" serializable "$secs" "$conns"
    done
    run "bitcask single node GET" "http://127.0.0.1:18100/kv/bench"
    run "bitcask single node PUT (--sync 1s)" "http://127.0.0.1:18100/kv/bench" "${ours_put[@]}"
done
