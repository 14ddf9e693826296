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
# shellcheck source=scripts/lib/resp-server.sh
. scripts/lib/resp-server.sh
trap stop_resp_server EXIT
start_resp_server ./target/debug/bitcask-server || exit 1

"$venv/bin/python" scripts/redis_py_check.py "$resp_port"
