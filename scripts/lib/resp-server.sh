# Sourced by the scripts that drive a server's RESP listener
# (redis-cli-check.sh, redis-py-check.sh, redis-tests.sh): starts a server
# on a fresh directory, waits for its store to open and reads its RESP
# port from the JSON log.
#
#   start_resp_server BINARY [FLAGS...]  sets $resp_port, $resp_server (pid)
#                                        and $resp_work (data/, server.log)
#   stop_resp_server                     stops it and removes $resp_work

start_resp_server() {
    local bin=$1
    shift
    resp_work=$(mktemp -d)
    "$bin" --port 0 --resp-port 0 --data-dir "$resp_work/data" --log-format json "$@" \
        2>"$resp_work/server.log" &
    resp_server=$!
    for _ in $(seq 1 300); do
        grep -q '"store open"' "$resp_work/server.log" && break
        kill -0 "$resp_server" 2>/dev/null || { cat "$resp_work/server.log" >&2; return 1; }
        sleep 0.1
    done
    grep -q '"store open"' "$resp_work/server.log" || { echo "the store did not open" >&2; return 1; }
    resp_port=$(grep -o '"resp":"[^"]*"' "$resp_work/server.log" | head -n 1 | sed 's/.*:\([0-9]*\)"$/\1/')
    [ -n "$resp_port" ] || { echo "no RESP port in the log" >&2; return 1; }
}

stop_resp_server() {
    if [ -n "${resp_server:-}" ]; then
        kill "$resp_server" 2>/dev/null || true
        wait "$resp_server" 2>/dev/null || true
        resp_server=
    fi
    if [ -n "${resp_work:-}" ]; then
        rm -rf "$resp_work"
        resp_work=
    fi
}
