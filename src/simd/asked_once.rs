//! A yes-or-no question about the CPU, asked once: the kernels that pay
//! only on some cores (`kernels::bf16_pair_tile`, `kernels::q8_key_pass`)
//! ask it on every call, so every call after the first is one relaxed
//! atomic load.

use core::sync::atomic::{AtomicU8, Ordering};

/// A cached answer, for a `static`.
pub(crate) struct AskedOnce(AtomicU8);

impl AskedOnce {
    /// Not asked yet.
    pub(crate) const fn new() -> AskedOnce {
        AskedOnce(AtomicU8::new(0))
    }

    /// The answer, asking `question` the first time. Threads that race on
    /// the first call each ask, and get the same answer.
    #[inline]
    pub(crate) fn get(&self, question: fn() -> bool) -> bool {
        // 0: not asked yet; 1: yes; 2: no.
        match self.0.load(Ordering::Relaxed) {
            0 => {
                let yes = question();
                self.0.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
                yes
            }
            answer => answer == 1,
        }
    }
}
