#!/usr/bin/env bash
# Times the CLI's offline commands on a store of N records (default 1,000,000)
# of 12-byte keys and 100-byte values: import, check, export, and repair of
# one flipped byte. Numbers go into docs/BENCHMARKS.md ("CLI offline commands").
#
#   scripts/cli-bench.sh [N]
set -euo pipefail
n=${1:-1000000}
cargo build --release -q -p bitcask-cli
bin=$PWD/target/release/bitcask
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
value=$(printf 'v%.0s' $(seq 1 100))
seq 0 $((n - 1)) | awk -v v="$value" '{printf "{\"key\":\"key-%08d\",\"value\":\"%s\"}\n", $1, v}' >"$work/in.jsonl"
cd "$work"
t() { local what=$1; shift; /usr/bin/time -f "$what: %e s, max RSS %M KiB" "$@" >/dev/null; }
t import "$bin" --data-dir store import in.jsonl
t check "$bin" --data-dir store check
t export "$bin" --data-dir store export -o out.jsonl
cmp -s in.jsonl out.jsonl && echo "export == import input"
file=$(ls store/*.data | head -1)
size=$(stat -c %s "$file")
printf '\x55' | dd of="$file" bs=1 seek=$((size / 2)) conv=notrunc status=none
t "check (damaged)" "$bin" --data-dir store check || true
t repair "$bin" --data-dir store repair
"$bin" --data-dir store stats | head -1
