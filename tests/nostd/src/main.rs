//! Runs `vmath`, the masked softmax, the matmul and additive attention with no std, checks the
//! results against libm and exact arithmetic, and exits 0 when all hold.
//!
//! It starts from C's `main` (glibc's start files call it), writes through
//! libc's `write`, and aborts on panic. With `--features alloc` it installs
//! a bump allocator and checks that matrixmultiply really allocated.
#![no_std]
#![no_main]

#[cfg(feature = "alloc")]
extern crate alloc;

use simd_attention::gemm::{MatMut, MatRef, gemm};
use simd_attention::kernels::{Mask, ScoreShape, masked_softmax};
use simd_attention::vmath;

#[link(name = "c")]
unsafe extern "C" {
    fn write(fd: i32, buf: *const u8, count: usize) -> isize;
    fn abort() -> !;
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    say("nostd: panic\n");
    // SAFETY: abort takes no arguments and never returns.
    unsafe { abort() }
}

/// The prebuilt `core` and `alloc` carry unwind tables that name this
/// symbol. With `panic = "abort"` nothing ever unwinds, so it is never called.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}

fn say(s: &str) {
    // SAFETY: s is a valid buffer of s.len() bytes; fd 2 is stderr.
    unsafe { write(2, s.as_ptr(), s.len()) };
}

#[cfg(feature = "alloc")]
mod bump {
    //! A never-freeing allocator over a static arena.
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;
    use core::sync::atomic::{AtomicUsize, Ordering};

    const ARENA: usize = 16 << 20;
    #[repr(C, align(64))]
    struct Arena(UnsafeCell<[u8; ARENA]>);
    // SAFETY: disjoint ranges are handed out through the atomic cursor.
    unsafe impl Sync for Arena {}
    static HEAP: Arena = Arena(UnsafeCell::new([0; ARENA]));
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    pub static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

    pub struct Bump;
    // SAFETY: returns null when full, else a fresh range aligned as asked.
    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let base = HEAP.0.get() as usize;
            let mut next = NEXT.load(Ordering::Relaxed);
            loop {
                let start = (base + next).next_multiple_of(layout.align()) - base;
                let Some(end) = start.checked_add(layout.size()).filter(|&e| e <= ARENA) else {
                    return core::ptr::null_mut();
                };
                match NEXT.compare_exchange(next, end, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
                        return (base + start) as *mut u8;
                    }
                    Err(seen) => next = seen,
                }
            }
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[global_allocator]
    static GLOBAL: Bump = Bump;
}

fn check(ok: bool, what: &str, failures: &mut i32) {
    if !ok {
        say("nostd: FAILED ");
        say(what);
        say("\n");
        *failures += 1;
    }
}

fn check_vmath(failures: &mut i32) {
    let mut x = [0.0f32; 37];
    for (i, v) in x.iter_mut().enumerate() {
        *v = i as f32 * 0.4 - 7.0;
    }
    let (mut t, mut e) = ([0.0f32; 37], [0.0f32; 37]);
    let ran = vmath::tanh(&x, &mut t).is_ok() && vmath::exp(&x, &mut e).is_ok();
    let close = |a: f32, b: f32| (a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(f32::MIN_POSITIVE);
    let tanh_ok = x.iter().zip(&t).all(|(&x, &y)| close(y, libm::tanhf(x)));
    let exp_ok = x.iter().zip(&e).all(|(&x, &y)| close(y, libm::expf(x)));
    check(ran && tanh_ok && exp_ok, "vmath", failures);
    check(vmath::tanh(&x, &mut t[..3]).is_err(), "vmath length check", failures);
}

fn check_softmax(failures: &mut i32) {
    let mut s = [1.0f32, 2.0, 3.0, 4.0, 0.5, 0.5, 9.0, 9.0];
    let shape = ScoreShape { batch: 2, queries: 1, keys: 4 };
    let ran = masked_softmax(&mut s, shape, Mask::ValidLens(&[3, 2])).is_ok();
    let d = libm::expf(1.0) + libm::expf(2.0) + libm::expf(3.0);
    let want = [libm::expf(1.0) / d, libm::expf(2.0) / d, libm::expf(3.0) / d, 0.0, 0.5, 0.5, 0.0, 0.0];
    let ok = s.iter().zip(&want).all(|(&g, &w)| (g - w).abs() <= 1e-6);
    check(ran && ok, "masked_softmax", failures);
}

/// `n × n` small-integer matrices, so the product is exact.
fn check_gemm<const N: usize>(failures: &mut i32, what: &str) {
    let mut a = [[0.0f32; N]; N];
    let mut b = [[0.0f32; N]; N];
    for i in 0..N {
        for j in 0..N {
            a[i][j] = ((i * 7 + j * 3) % 5) as f32 - 2.0;
            b[i][j] = ((i * 5 + j) % 3) as f32 - 1.0;
        }
    }
    let mut c = [[f32::NAN; N]; N];
    let ran = gemm(
        1.0,
        MatRef::new(a.as_flattened(), N, N),
        MatRef::new(b.as_flattened(), N, N),
        0.0,
        MatMut::new(c.as_flattened_mut(), N, N),
    )
    .is_ok();
    let mut ok = ran;
    for i in 0..N {
        for j in 0..N {
            let want: f32 = (0..N).map(|p| a[i][p] * b[p][j]).sum();
            ok &= c[i][j] == want;
        }
    }
    check(ok, what, failures);
}

/// Additive attention on stack buffers: masked key gets 0, weights sum to
/// 1, and the output is the weighted sum of the values.
fn check_additive(failures: &mut i32) {
    use simd_attention::ops::{AdditiveAttention, Attention, AttentionInputs, AttentionShape, ValidLens};
    let (w_q, w_k, w_v) = ([0.5f32, -0.25, 0.1, 0.3], [0.2f32, 0.4, -0.6, 0.1], [1.0f32, -0.5]);
    let attn = AdditiveAttention::new(&w_q, &w_k, &w_v, 2, 2, 2);
    let shape = AttentionShape { batch: 1, queries: 1, keys: 3, query_dim: 2, key_dim: 2, value_dim: 1 };
    let (q, k, v) = ([1.0f32, 2.0], [0.5f32, -1.0, 2.0, 0.0, 1.0, 1.0], [1.0f32, 3.0, 100.0]);
    let (mut out, mut w, mut ws) = ([0.0f32; 1], [0.0f32; 3], [0.0f32; 256]);
    let ran = attn.is_ok_and(|a| {
        a.forward(
            &shape,
            AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: ValidLens::PerBatch(&[2]) },
            &mut out,
            Some(&mut w),
            &mut ws,
        )
        .is_ok()
    });
    let ok = ran && w[2] == 0.0 && (w[0] + w[1] - 1.0).abs() < 1e-6 && (out[0] - (w[0] + 3.0 * w[1])).abs() < 1e-5;
    check(ok, "additive attention", failures);
}

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    let mut failures = 0;
    check_vmath(&mut failures);
    check_softmax(&mut failures);
    check_additive(&mut failures);
    check_gemm::<9>(&mut failures, "gemm (own tiles)");
    check_gemm::<40>(&mut failures, "gemm (large path)");
    #[cfg(feature = "alloc")]
    check(
        bump::ALLOCATIONS.load(core::sync::atomic::Ordering::Relaxed) > 0,
        "matrixmultiply allocated through the bump allocator",
        &mut failures,
    );
    if failures == 0 {
        say(if cfg!(feature = "alloc") { "nostd (alloc): ok\n" } else { "nostd (core only): ok\n" });
    }
    failures
}
