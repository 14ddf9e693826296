#!/usr/bin/env bash
# redis-py (from PyPI, pinned) against the RESP listener: the default
# transaction pipeline, WATCH retries, setex/getex, scan_iter and RESP3
# (scripts/redis_py_check.py). .ci/run runs it after the test suite.
# Usage: scripts/redis-py-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PY_VERSION=8.2.0
venv=target/redis-py-venv
if ! "$venv/bin/python" -c "import redis, sys; sys.exit(redis.__version__ != '$REDIS_PY_VERSION')" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "redis==$REDIS_PY_VERSION"
fi

cargo build --locked --quiet -p bitcask-server
work=$(mktemp -d)
./target/debug/bitcask-server --port 0 --resp-port 0 --data-dir "$work/data" \
    --log-format json 2>"$work/server.log" &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
    grep -q '"store open"' "$work/server.log" && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
port=$(grep -o '"resp":"[^"]*"' "$work/server.log" | head -n 1 | sed 's/.*:\([0-9]*\)"$/\1/')
[ -n "$port" ] || { echo "no RESP port in the log" >&2; exit 1; }

"$venv/bin/python" scripts/redis_py_check.py "$port"
