//! Inputs shared by the benchmarks.

/// `len` values uniform in `[-scale, scale]`, from xorshift32 seeded with
/// `seed` (nonzero): the same numbers on every run and every machine.
pub fn uniform(len: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let unit = (state >> 8) as f32 / (1u32 << 24) as f32; // [0, 1)
            scale * (2.0 * unit - 1.0)
        })
        .collect()
}
