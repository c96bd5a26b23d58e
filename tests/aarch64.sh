#!/usr/bin/env bash
# The whole test suite on aarch64 Linux, under qemu-user: the portable
# `wide` backend compiled to NEON (the only backend an aarch64 CPU gets),
# bit-identical across thread counts as on x86.
#
#   tests/aarch64.sh [extra cargo test arguments]
#
# Needs the Rust target aarch64-unknown-linux-gnu, aarch64-linux-gnu-gcc
# (Debian's gcc-aarch64-linux-gnu) as the linker and qemu-aarch64
# (qemu-user) as the runner; .ci/run installs them. Every test runs, at
# the case counts the tests set: the emulated suite takes a few minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# Tests that start the `attn` binary or themselves go through it too.
export SIMD_ATTENTION_TEST_RUNNER=$CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER
cargo test --locked --all-features --target "$target" "$@"
