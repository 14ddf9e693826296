#!/usr/bin/env bash
# The Python package (crates/python): pip builds and installs it through
# maturin (the standard build-system hook, as a user would) into a fresh
# virtual environment, then its pytest suite runs against it, with the
# Rust CLI for the tests that read Python's data from Rust and back.
# Usage: scripts/python-check.sh (scripts/test.sh runs it).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTEST_VERSION=9.2.0
HYPOTHESIS_VERSION=6.170.27
venv=target/python-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    "pytest==$PYTEST_VERSION" "hypothesis==$HYPOTHESIS_VERSION"
"$venv/bin/pip" install --quiet --disable-pip-version-check ./crates/python

cargo build --locked --quiet -p bitcask-cli
# From outside the source tree, so that `import bitcask` is the installed
# package, not crates/python/python.
cd crates/python/tests
BITCASK_CLI="$OLDPWD/target/debug/bitcask" "../../../$venv/bin/python" -m pytest -q -p no:cacheprovider .
