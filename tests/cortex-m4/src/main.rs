//! Cortex-M4F firmware (QEMU `mps2-an386`) that runs the engine's no_std,
//! no-alloc core on golden cases and says whether each matches the host:
//! - the demo model's greedy decode of every sequence of
//!   `seq2seq-reverse-decode` (tokens up to `<eos>` exact, weights within
//!   5e-5);
//! - additive attention through a `KeyCache`;
//! - SDPA, on both the streamed decode path and the flash tiles, with f32,
//!   bf16, f16 and q8 keys and values.
//!
//! All scratch is one static arena; each check takes exactly the
//! `workspace_len` its op asks for. It prints one line per check, the
//! flash and RAM the firmware uses, and `cortex-m4: N/N checks match the
//! host`, then exits through semihosting with 0 only when all match.
#![no_std]
#![no_main]

mod additive;
mod check;
mod golden;
mod memory;
mod sdpa;
mod seq2seq;

use check::Tally;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

/// Scratch for every check, in `f32`s: the most any check takes, its op's
/// `workspace_len` plus its outputs. That is `sdpa-bf16-all-bf16` on the
/// flash path, 21,216 floats (the 64 × 256 score tile alone is 64 KB); the
/// decode takes 6,950. A check that would need more fails and says how
/// much, so the figure cannot silently go stale.
pub const ARENA_FLOATS: usize = 21 * 1024;

#[entry]
fn main() -> ! {
    let arena: &'static mut [f32; ARENA_FLOATS] =
        cortex_m::singleton!(: [f32; ARENA_FLOATS] = [0.0; ARENA_FLOATS]).unwrap_or_else(|| fail("arena taken"));
    hprintln!("cortex-m4: backend {}", simd_attention::backend().name());
    let mut tally = Tally::default();
    let decode = seq2seq::run(&mut tally, arena);
    additive::run(&mut tally, arena);
    sdpa::run(&mut tally, arena);
    memory::report(&tally, decode);
    hprintln!("cortex-m4: {}/{} checks match the host", tally.passed, tally.total);
    exit(if tally.passed == tally.total && tally.total > 0 { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE })
}

/// Ends the run: QEMU exits with `status`; a real board, which ignores the
/// semihosting call without a debugger, sleeps.
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Stops the firmware with a failure status.
fn fail(why: &str) -> ! {
    hprintln!("cortex-m4: {}", why);
    exit(debug::EXIT_FAILURE)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("cortex-m4: panic: {}", info);
    exit(debug::EXIT_FAILURE)
}
