#!/usr/bin/env bash
# Mutation testing of the engine's durability code with cargo-mutants: each
# mutant (a changed operator, a function body replaced by a default) must
# make some test of the engine fail. Slow (every mutant is a build and a
# run of the engine's tests), so not part of .ci/run; results go into
# docs/RELIABILITY.md by hand.
#
#   scripts/mutants.sh [FILE ...]
#
# Default files: the durability code named in docs/RELIABILITY.md. Needs
# cargo-mutants (cargo install cargo-mutants --locked). Output in
# target/mutants (mutants.out/caught.txt, missed.txt, timeout.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    files=(
        crates/bitcask/src/durability.rs
        crates/bitcask/src/datafile.rs
        crates/bitcask/src/hint.rs
        crates/bitcask/src/merge.rs
        crates/bitcask/src/recovery.rs
        crates/bitcask/src/disk.rs
    )
fi
args=()
for f in "${files[@]}"; do args+=(--file "$f"); done
# cargo-mutants exits 2 when a mutant survives: go on to the next run.
status=0
cargo mutants --package bitcask "${args[@]}" --timeout-multiplier 3 \
    --output target/mutants/files || status=$?
# Rotation and close live in db.rs among much else: only their functions
# (--re filters every file of a run, hence a run of its own).
if [ $# -eq 0 ]; then
    cargo mutants --package bitcask --file crates/bitcask/src/db.rs \
        --re 'rotate|close|seal|sync' --timeout-multiplier 3 \
        --output target/mutants/db || status=$?
fi
exit "$status"
