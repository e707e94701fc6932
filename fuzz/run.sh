#!/usr/bin/env bash
# Runs every vodtask fuzz target for SECONDS each (default 20) and fails if
# any of them finds a crash (a panic, an abort, a timeout, or an
# out-of-memory). Needs the nightly toolchain; installs cargo-fuzz if missing.
#
#   fuzz/run.sh [SECONDS]
#
# Environment:
#   VODTASK_FUZZ_SANITIZER  none (default) or address. none: safe Rust's
#                           panics, overflow checks and debug assertions are
#                           all caught without a sanitizer, the build takes
#                           about 25% less CPU and inputs run ~5x faster.
#                           address adds ASAN, which checks the unsafe code
#                           of dependencies (not C code such as SQLite: the
#                           flags do not reach it); use it for long campaigns.
#   VODTASK_FUZZ_DEV=1      build unoptimised (--dev): about half the build
#                           time, but inputs run ~40x slower.
#   VODTASK_FUZZ_STRICT=1   grpc_requests also fails on an INTERNAL or
#                           UNKNOWN answer (see src/lib.rs).
#   VODTASK_FUZZ_EXACT_FLOATS=1  floats kept as JSON must read back
#                           bit-exact (see src/lib.rs).
#   VODTASK_FUZZ_STATS=1    grpc_requests and spec_conversion print how many
#                           answers of each code each method gave.
#   VODTASK_FUZZ_TARGETS    the targets to run, space separated (default all).
#
# New inputs go to a scratch corpus that is dropped afterwards; the
# committed corpus (fuzz/corpus/<target>) is only read. Crashing inputs are
# kept in fuzz/artifacts/<target>/; reproduce one with
#   cargo +nightly fuzz run --sanitizer none <target> fuzz/artifacts/<target>/<file>
set -euo pipefail

seconds="${1:-20}"
sanitizer="${VODTASK_FUZZ_SANITIZER:-none}"
build=(--sanitizer "$sanitizer")
if [ "${VODTASK_FUZZ_DEV:-}" = 1 ]; then
    build+=(--dev)
fi
targets=(${VODTASK_FUZZ_TARGETS:-grpc_requests spec_conversion parsers envelope})

cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

# The engine of grpc_requests and spec_conversion keeps a data dir in
# TMPDIR for the life of the process (libFuzzer ends with exit()).
scratch="$(mktemp -d "${TMPDIR:-/tmp}/vodtask-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"

start=$(date +%s)
cargo +nightly fuzz build "${build[@]}"
echo "fuzz/run.sh: built all targets in $(( $(date +%s) - start )) s"

failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "$scratch/corpus/$target"
    echo "fuzz/run.sh: $target for ${seconds} s"
    if ! cargo +nightly fuzz run "${build[@]}" "$target" \
        "$scratch/corpus/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz/run.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz/run.sh: no crash in ${targets[*]} ($(( $(date +%s) - start )) s in all)"
