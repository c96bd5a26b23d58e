//! What the firmware occupies, read from the linker's symbols, and the
//! stack's high-water mark, measured by painting.
//!
//! `cortex-m-rt` (feature `paint-stack`) fills the stack region, from
//! `_stack_end` (the end of `.bss`) up to `_stack_start` (the top of RAM),
//! with `0xCCCCCCCC` before `main`. [`repaint_stack`] does it again below
//! the current frame before each check; after it, the lowest word that
//! lost its paint is as deep as the stack went.

use crate::check::{Tally, Usage};
use crate::golden;
use cortex_m_semihosting::hprintln;

const PAINT: u32 = 0xcccc_cccc;

unsafe extern "C" {
    static __stext: u32;
    static __etext: u32;
    static __srodata: u32;
    static __erodata: u32;
    static __sdata: u32;
    static __edata: u32;
    static __sbss: u32;
    static __ebss: u32;
    static _stack_end: u32;
    static _stack_start: u32;
}

fn span(start: *const u32, end: *const u32) -> usize {
    end as usize - start as usize
}

/// Paints the free stack below this function's frame.
#[inline(never)]
pub fn repaint_stack() {
    let bottom = &raw const _stack_end as usize;
    // Leave this frame and a margin for the calls below untouched.
    let top = cortex_m::register::msp::read() as usize - 64;
    let mut p = bottom;
    while p < top {
        // SAFETY: [_stack_end, sp − 64) is RAM that only the stack uses
        // (there is no heap), below every live frame; word-aligned because
        // the linker script aligns _stack_end to 4.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes of stack used since the last paint: from the top of RAM down to
/// the lowest word that lost its paint.
pub fn stack_high_water() -> usize {
    let (bottom, top) = (&raw const _stack_end as usize, &raw const _stack_start as usize);
    let mut p = bottom;
    // SAFETY: reads of word-aligned RAM inside the stack region.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    top - p
}

/// Prints flash and RAM use, and the decode's RAM against its target.
pub fn report(tally: &Tally, decode: Usage) {
    let text = span(&raw const __stext, &raw const __etext);
    let rodata = span(&raw const __srodata, &raw const __erodata);
    let data = span(&raw const __sdata, &raw const __edata);
    let bss = span(&raw const __sbss, &raw const __ebss);
    let weights = golden::REVERSE_BAHDANAU.bytes();
    let cases = golden::ALL_CASES.iter().map(|c| c.bytes()).sum::<usize>();
    let arena = crate::ARENA_FLOATS * 4;
    hprintln!(
        "flash: .text {} B; .rodata {} B = weights {} B + golden cases {} B + other {} B",
        text,
        rodata,
        weights,
        cases,
        rodata.saturating_sub(weights + cases)
    );
    hprintln!(
        "ram: .data {} B, .bss {} B (arena {} B, largest check used {} B); stack high-water {} B",
        data,
        bss,
        arena,
        tally.scratch * 4,
        tally.stack
    );
    let statics = data + bss - arena;
    let total = decode.scratch * 4 + decode.stack + statics;
    hprintln!(
        "decode ram: scratch {} B + stack {} B + other statics {} B = {} B (target 98304 B, weights aside)",
        decode.scratch * 4,
        decode.stack,
        statics,
        total
    );
}
