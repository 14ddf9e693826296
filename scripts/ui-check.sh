#!/usr/bin/env bash
# The web console (/ui) in a real browser: Debian's Chromium driven by
# Playwright for Python (pinned, from PyPI, into target/ui-venv; Playwright's
# own browser download is never used), with pytest, against the debug
# server binary (crates/server/tests/console). scripts/test.sh runs it.
# Usage: scripts/ui-check.sh [--screenshots DIR] [PYTEST ARGS...]
#   --screenshots docs/ui refreshes the screenshots the README links
#   (default: target/ui-screenshots); `-k cluster` runs some tests only.
# Needs: chromium (apt-get install chromium), python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION=1.65.2
PYTEST_VERSION=8.3.5
venv=target/ui-venv
chromium=${CHROMIUM:-/usr/bin/chromium}

screenshots=target/ui-screenshots
if [ "${1:-}" = "--screenshots" ]; then
    screenshots=${2:?--screenshots needs a directory}
    shift 2
fi

if [ ! -x "$chromium" ]; then
    echo "ui-check: no Chromium at $chromium: apt-get install chromium (or set CHROMIUM)" >&2
    exit 1
fi
if ! "$venv/bin/python" -c "import playwright, pytest, sys; from importlib.metadata import version; sys.exit(version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "playwright==$PLAYWRIGHT_VERSION" "pytest==$PYTEST_VERSION"
fi

cargo build --locked --quiet -p bitcask-server
BITCASK_SERVER="$PWD/target/debug/bitcask-server" CHROMIUM="$chromium" \
    UI_SCREENSHOTS="$(realpath -m "$screenshots")" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -s crates/server/tests/console "$@"
