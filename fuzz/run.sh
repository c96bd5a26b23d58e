#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] [TARGET...]: runs each named cargo-fuzz target (all
# of them when none is named) for SECONDS (default 60)
# under AddressSanitizer on the stable toolchain (RUSTC_BOOTSTRAP=1 lets it
# take cargo-fuzz's -Z flags), installing cargo-fuzz first if it is missing.
# New inputs go to a scratch corpus; the committed seeds in corpus/ are read
# only. Crashes land in fuzz/artifacts/<target>/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
if ! command -v cargo-fuzz >/dev/null; then
    timeout 900 cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
targets="${*:-$(cargo fuzz list)}"
cargo fuzz build --sanitizer address
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $targets; do
    mkdir -p "$work/$target"
    echo "=== $target ($seconds s)"
    log="$work/$target.log"
    status=0
    cargo fuzz run --sanitizer address "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=8192 -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|thread .* panicked)' "$log" || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz target $target failed; reproducer under fuzz/artifacts/$target/"
        exit 1
    fi
done
