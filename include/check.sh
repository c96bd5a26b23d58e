#!/usr/bin/env bash
# Checks that include/simd_attention.h is what cbindgen generates from
# src/capi/ with cbindgen.toml: regenerates it into a temporary file and
# diffs. Exits 1 on a difference (regenerate with the command in
# cbindgen.toml), 0 when it matches, and 0 with "skipped: ..." when
# cbindgen is not installed (install it with `cargo install cbindgen
# --locked`; .ci/run does, under a timeout).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cbindgen >/dev/null; then
    echo "skipped: cbindgen unavailable"
    exit 0
fi

# The header was generated with this version; another may format it
# differently (.ci/run installs this one).
pinned=0.29.4
found="$(cbindgen --version | awk '{print $2}')"
[ "$found" = "$pinned" ] || echo "note: cbindgen $found, the header was generated with $pinned"

fresh="$(mktemp "${TMPDIR:-/tmp}/simd_attention.h.XXXXXX")"
trap 'rm -f "$fresh"' EXIT
cbindgen --quiet --config cbindgen.toml --output "$fresh" src/capi/mod.rs
if diff -u include/simd_attention.h "$fresh"; then
    echo "include/simd_attention.h: matches src/capi/ (cbindgen $found)"
else
    echo "include/simd_attention.h is stale: run" >&2
    echo "  cbindgen --quiet --config cbindgen.toml --output include/simd_attention.h src/capi/mod.rs" >&2
    exit 1
fi
