//! One check's outcome, its line of output, and the running tally.

use crate::golden::Missing;
use crate::memory;
use cortex_m_semihosting::hprintln;
use simd_attention::Error;

/// Why a check failed.
pub enum Failure {
    /// The library refused the call.
    Refused(Error),
    /// The case lacks a tensor, or has one of another type or shape.
    Case(&'static str),
    /// A value differs from the expected one beyond the tolerance.
    Mismatch { what: &'static str, index: usize, got: f32, want: f32 },
    /// The arena is too small for the op's workspace.
    Arena { needed: usize },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Refused(e)
    }
}

impl From<Missing> for Failure {
    fn from(m: Missing) -> Self {
        Failure::Case(m.0)
    }
}

/// What a passing check measured: the largest error, the scratch it took
/// (in `f32`s, outputs included) and its stack high-water mark in bytes.
#[derive(Clone, Copy, Default)]
pub struct Usage {
    pub max_error: f32,
    pub scratch: usize,
    pub stack: usize,
}

/// Passed and total checks, and the largest scratch and stack any took.
#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub total: usize,
    pub scratch: usize,
    pub stack: usize,
}

impl Tally {
    /// Runs `body` on a freshly painted stack, prints its line and counts it.
    pub fn check(&mut self, name: &str, body: impl FnOnce() -> Result<Usage, Failure>) -> Usage {
        memory::repaint_stack();
        let result = body();
        let stack = memory::stack_high_water();
        self.total += 1;
        match result {
            Ok(mut usage) => {
                usage.stack = stack;
                self.passed += 1;
                self.scratch = self.scratch.max(usage.scratch);
                self.stack = self.stack.max(stack);
                hprintln!(
                    "ok   {}: max |err| {}e-9, scratch {} B, stack {} B",
                    name,
                    nano(usage.max_error),
                    usage.scratch * 4,
                    stack
                );
                usage
            }
            Err(f) => {
                match f {
                    Failure::Refused(e) => hprintln!("FAIL {}: refused: {}", name, e),
                    Failure::Case(t) => hprintln!("FAIL {}: case has no usable tensor `{}`", name, t),
                    Failure::Mismatch { what, index, got, want } => {
                        hprintln!("FAIL {}: {}[{}] = {}e-9, expected {}e-9", name, what, index, nano(got), nano(want))
                    }
                    Failure::Arena { needed } => {
                        hprintln!(
                            "FAIL {}: needs {} floats of scratch, the arena has {}",
                            name,
                            needed,
                            crate::ARENA_FLOATS
                        )
                    }
                }
                Usage::default()
            }
        }
    }
}

/// `x` in units of 1e-9, rounded toward zero: the firmware prints numbers
/// as integers, which keeps core's float formatting (about 10 KB) out of
/// flash. Saturates beyond ±2·10⁹ units; NaN prints as 0 (a NaN never
/// matches, so its line says FAIL).
fn nano(x: f32) -> i64 {
    (x * 1e9) as i64
}

/// The largest `|got − want|`, or the first element outside
/// `atol + rtol·|want|` (non-finite values never match).
pub fn compare(what: &'static str, got: &[f32], want: &[f32], atol: f32, rtol: f32) -> Result<f32, Failure> {
    if got.len() != want.len() {
        return Err(Failure::Case(what));
    }
    let mut worst = 0.0f32;
    for (index, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        if err.is_nan() || err > atol + rtol * w.abs() {
            return Err(Failure::Mismatch { what, index, got: g, want: w });
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

/// Splits `n` floats off the front of `arena`, or says how many were needed.
pub fn take<'a>(arena: &mut &'a mut [f32], n: usize, used: &mut usize) -> Result<&'a mut [f32], Failure> {
    *used += n;
    if n > arena.len() {
        return Err(Failure::Arena { needed: *used });
    }
    let (head, tail) = core::mem::take(arena).split_at_mut(n);
    *arena = tail;
    Ok(head)
}
