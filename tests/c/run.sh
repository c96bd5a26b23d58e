#!/usr/bin/env bash
# The C API end to end (issue 14 item 3):
#  1. builds the host static library (`cargo rustc --lib --crate-type
#     staticlib --features capi`, default features) and checks that it
#     exports every function include/simd_attention.h declares;
#  2. compiles tests/c/*.c with `gcc -std=c11 -Wall -Wextra -Werror`, links
#     it against that library and runs it: the golden cases of tests/data
#     through the C API, then the bad-argument codes (one line per check);
#  3. builds the no_std static library for thumbv7em-none-eabihf (release)
#     and checks its symbols the same way ("skipped: ..." without the
#     target).
# Prints one line per step and a summary; exits 1 if anything failed.
# Honours CARGO_TARGET_DIR.
set -uo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
build_dir="$target_dir/capi-test"
mkdir -p "$build_dir"
passed=0
failed=0
pass() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

nm_tool=""
for tool in nm llvm-nm arm-none-eabi-nm; do
    if command -v "$tool" >/dev/null; then nm_tool="$tool"; break; fi
done

# The functions the header declares: every `simd_attention_*(` at the
# start of a declaration.
declared="$(grep -oE '^[a-z][a-z ]*\*?simd_attention_[a-z0-9_]+\(' include/simd_attention.h |
    grep -oE 'simd_attention_[a-z0-9_]+' | sort -u)"

# check_symbols <label> <archive>: each declared function is a defined
# global symbol of the archive.
check_symbols() {
    local label="$1" archive="$2" exported missing
    if [ -z "$nm_tool" ]; then
        echo "skipped: $label symbols: no nm"
        return
    fi
    exported="$("$nm_tool" -g --defined-only "$archive" 2>/dev/null | awk '$2 == "T" {print $3}' | sort -u)"
    missing="$(comm -23 <(echo "$declared") <(echo "$exported"))"
    if [ -n "$missing" ]; then
        fail "$label: $(echo "$missing" | wc -l) declared functions not exported: $(echo $missing)"
    else
        pass "$label exports all $(echo "$declared" | wc -l) functions of include/simd_attention.h"
    fi
}

echo "=== host static library"
host_lib="$target_dir/debug/libsimd_attention.a"
if cargo rustc --locked --quiet --lib --crate-type staticlib --features capi; then
    pass "cargo rustc --lib --crate-type staticlib --features capi"
    check_symbols "host libsimd_attention.a" "$host_lib"
else
    fail "cargo rustc --lib --crate-type staticlib --features capi"
fi

echo "=== C program against the host library"
if ! command -v gcc >/dev/null; then
    echo "skipped: gcc unavailable"
elif [ ! -f "$host_lib" ]; then
    fail "no host library to link"
elif gcc -std=c11 -Wall -Wextra -Werror -O1 -Iinclude -o "$build_dir/capi_test" tests/c/*.c "$host_lib" \
    -lm -lpthread -ldl; then
    pass "gcc -std=c11 -Wall -Wextra -Werror tests/c/*.c + libsimd_attention.a"
    if "$build_dir/capi_test" tests/data; then
        pass "capi_test: golden cases and bad-argument codes"
    else
        fail "capi_test: see the FAIL lines above"
    fi
else
    fail "gcc could not build tests/c"
fi

echo "=== thumbv7em-none-eabihf static library"
target=thumbv7em-none-eabihf
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "skipped: the $target target is not installed (rustup target add $target)"
elif cargo rustc --locked --quiet --lib --crate-type staticlib --no-default-features --features capi \
    --target "$target" --release; then
    pass "cargo rustc --lib --crate-type staticlib --no-default-features --features capi --target $target --release"
    check_symbols "$target libsimd_attention.a" "$target_dir/$target/release/libsimd_attention.a"
else
    fail "the $target static library did not build"
fi

echo "tests/c/run.sh: $passed/$((passed + failed)) steps passed"
[ "$failed" -eq 0 ]
