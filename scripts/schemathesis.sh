#!/usr/bin/env bash
# Property-based testing of the HTTP API from its own OpenAPI document:
# schemathesis (PyPI) generates requests for every operation and checks the
# answers against the document (status codes, shapes, no server errors).
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]
#
# Installs schemathesis into a virtualenv under target/ on first use.
set -euo pipefail
examples=${1:-200}
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q schemathesis
fi
cargo build --release -q -p bitcask-server
work=$(mktemp -d)
port=18333
target/release/bitcask-server --port $port --sync never --data-dir "$work/data" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.1; done
"$venv/bin/schemathesis" --config-file scripts/schemathesis.toml run \
    "http://127.0.0.1:$port/openapi.json" --checks all --max-examples "$examples"
