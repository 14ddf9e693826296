#!/usr/bin/env bash
# The Python package (crates/python): pip builds its wheel through maturin
# (the standard build-system hook, as `pip install ./crates/python` does),
# installs it into a fresh virtual environment, and runs the pytest suite
# against it, with the Rust CLI for the tests that read Python's data from
# Rust and back.
# Usage: scripts/python-check.sh (scripts/test.sh runs it)
#   EXTRA_PYTHONS="/path/to/python3.9 /path/to/python3.13" runs the suite
#   on those interpreters too (the wheel is abi3: one for CPython >= 3.9).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTEST_VERSION=8.3.5
HYPOTHESIS_VERSION=6.113.0
wheels=target/python-wheels
rm -rf "$wheels"
cargo build --locked --quiet -p bitcask-cli
cli="$PWD/target/debug/bitcask"

run_suite() { # interpreter venv-dir
    rm -rf "$2"
    "$1" -m venv "$2"
    "$2/bin/pip" install --quiet --disable-pip-version-check \
        "pytest==$PYTEST_VERSION" "hypothesis==$HYPOTHESIS_VERSION"
    if [ ! -d "$wheels" ]; then
        "$2/bin/pip" wheel --quiet --disable-pip-version-check --no-deps -w "$wheels" ./crates/python
    fi
    "$2/bin/pip" install --quiet --disable-pip-version-check "$wheels"/bitcask-*.whl
    # From outside the source tree, so that `import bitcask` is the
    # installed package, not crates/python/python.
    (cd crates/python/tests && BITCASK_CLI="$cli" "$OLDPWD/$2/bin/python" -m pytest -q -p no:cacheprovider .)
}

run_suite python3 target/python-venv
for python in ${EXTRA_PYTHONS:-}; do
    echo "== $python"
    run_suite "$python" "target/python-venv-$(basename "$python")-$("$python" -c 'import sys; print(sys.version_info[1])')"
done
