#!/usr/bin/env bash
# The whole test suite: the Rust workspace, then the Python package's
# (built into a fresh virtual environment by pip; needs python3 with venv),
# then the web console's in headless Chromium (needs Debian's chromium).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace --locked
scripts/python-check.sh
scripts/ui-check.sh
