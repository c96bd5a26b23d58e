#!/usr/bin/env bash
# Builds the Cortex-M4F firmware and runs it on QEMU's mps2-an386 board,
# with a timeout; exits with the firmware's status (0 only when every
# check matches the host).
#
# Needs the Rust target thumbv7em-none-eabihf and qemu-system-arm
# (Debian's qemu-system-arm); .ci/run installs both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
cargo build --locked --release
elf=target/thumbv7em-none-eabihf/release/simd-attention-cortex-m4
# The firmware finishes in about a second under QEMU; 300 s means it hung.
timeout 300 qemu-system-arm -M mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf"
