//! `KvCache`: appends round and quantize as the formats define, attention
//! over the filled prefix is bit-identical to SDPA over the same rows as
//! plain tensors (every storage type, both masks, GQA, every backend, and
//! through `par` at 1–3 threads), and refused appends write nothing.

mod common;
use common::{Rng, backends};
use simd_attention::Error;
use simd_attention::io::StoredTensor;
use simd_attention::ops::{CacheQuery, KvCache, KvCacheShape, ScaledDotProductAttention, SdpaInputs, SdpaMask};
use simd_attention::par;
use simd_attention::simd::with_backend;
use simd_attention::storage::{Storage, StoredMut, bf16, f16, q8_blocks};

/// Owned buffers for a cache of `rows` rows of `width` in `storage`.
enum Buffer {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
    Q8(Vec<i8>, Vec<f32>),
}

impl Buffer {
    fn new(storage: Storage, rows: usize, width: usize) -> Buffer {
        let n = rows * width;
        match storage {
            Storage::F32 => Buffer::F32(vec![f32::NAN; n]),
            Storage::Bf16 => Buffer::Bf16(vec![bf16::NAN; n]),
            Storage::F16 => Buffer::F16(vec![f16::NAN; n]),
            Storage::Q8 => Buffer::Q8(vec![0; n], vec![f32::NAN; rows * q8_blocks(width)]),
        }
    }

    fn as_mut(&mut self) -> StoredMut<'_> {
        match self {
            Buffer::F32(v) => StoredMut::F32(v),
            Buffer::Bf16(v) => StoredMut::Bf16(v),
            Buffer::F16(v) => StoredMut::F16(v),
            Buffer::Q8(v, s) => StoredMut::Q8 { values: v, scales: s },
        }
    }
}

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.unit() * 4.0 - 2.0).collect()
}

/// Rows `0..len` of each head of a `(heads, capacity, width)` f32 tensor.
fn prefix(all: &[f32], heads: usize, capacity: usize, len: usize, width: usize) -> Vec<f32> {
    (0..heads).flat_map(|h| all[h * capacity * width..][..len * width].iter().copied()).collect()
}

#[test]
fn attention_over_the_cache_matches_plain_sdpa_bit_for_bit() {
    let (batch, kv_heads, q_heads, capacity, e, ev) = (2, 2, 4, 4300, 40, 24);
    let shape = KvCacheShape { batch, kv_heads, capacity, qk_dim: e, v_dim: ev };
    let heads = batch * kv_heads;
    let op = ScaledDotProductAttention::default();
    for storage in [Storage::F32, Storage::Bf16, Storage::F16, Storage::Q8] {
        let mut rng = Rng(7);
        let (mut kb, mut vb) = (Buffer::new(storage, heads * capacity, e), Buffer::new(storage, heads * capacity, ev));
        let mut cache = KvCache::new(shape, kb.as_mut(), vb.as_mut()).unwrap();
        // Everything appended so far, as f32 in the cache's layout.
        let (mut all_k, mut all_v) = (vec![0.0; heads * capacity * e], vec![0.0; heads * capacity * ev]);
        // Steps of 1, 3 and 70 positions (a flash step). The step of FILL
        // positions is appended without attending (a flash step that long,
        // on every backend, would be most of the test's time), so that the
        // last step reads past a 4096-key chunk.
        const FILL: usize = 3600;
        for (step, new) in [1usize, 3, 1, 70, 1, 200, 1, 300, 1, FILL, 1].into_iter().enumerate() {
            let (k, v) = (random(&mut rng, heads * new * e), random(&mut rng, heads * new * ev));
            for h in 0..heads {
                let at = h * capacity + cache.len();
                all_k[at * e..(at + new) * e].copy_from_slice(&k[h * new * e..(h + 1) * new * e]);
                all_v[at * ev..(at + new) * ev].copy_from_slice(&v[h * new * ev..(h + 1) * new * ev]);
            }
            cache.append(new, &k, &v).unwrap();
            if new == FILL {
                continue;
            }
            let len = cache.len();
            let key = StoredTensor::from_f32(&prefix(&all_k, heads, capacity, len, e), e, storage).unwrap();
            let value = StoredTensor::from_f32(&prefix(&all_v, heads, capacity, len, ev), ev, storage).unwrap();
            let query = random(&mut rng, batch * q_heads * new * e);
            for (mask, plain) in [(SdpaMask::Causal, SdpaMask::CausalLowerRight), (SdpaMask::None, SdpaMask::None)] {
                let q = CacheQuery { query: query.as_slice().into(), q_heads, q_len: new, mask };
                let sdpa_shape = cache.sdpa_shape(q_heads, new);
                let inputs = SdpaInputs {
                    query: query.as_slice().into(),
                    key: key.as_stored(),
                    value: value.as_stored(),
                    mask: plain,
                };
                for backend in backends() {
                    let (cached, want) = with_backend(backend, || {
                        let mut ws = vec![f32::NAN; cache.workspace_len(&op, q_heads, new).unwrap()];
                        let mut cached = vec![f32::NAN; batch * q_heads * new * ev];
                        cache.attend(&op, q, &mut cached, &mut ws).unwrap();
                        let mut want = vec![f32::NAN; cached.len()];
                        op.forward(&sdpa_shape, inputs, &mut want, None, &mut ws).unwrap();
                        (cached, want)
                    })
                    .unwrap();
                    let same = cached.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{storage:?} step {step} {mask:?} on {backend}: cache and plain SDPA differ");
                }
                for threads in 1..=3 {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let mut parallel = vec![f32::NAN; batch * q_heads * new * ev];
                    pool.install(|| par::sdpa_cached(&op, cache.view(), q, &mut parallel)).unwrap();
                    let mut serial = vec![f32::NAN; parallel.len()];
                    let mut ws = vec![0.0; cache.workspace_len(&op, q_heads, new).unwrap()];
                    cache.attend(&op, q, &mut serial, &mut ws).unwrap();
                    let same = serial.iter().zip(&parallel).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{storage:?} step {step}: {threads} threads differ from serial");
                }
            }
        }
    }
}

/// Appended rows are stored as the formats define: bf16 and f16 round to
/// nearest even (`half`'s `from_f32`), and q8 has per block of 32 the scale
/// `max|x| / 127` and `q = round(x / scale)`, computed here on its own.
#[test]
fn appends_round_and_quantize_as_the_formats_define() {
    let shape = KvCacheShape { batch: 1, kv_heads: 1, capacity: 4, qk_dim: 33, v_dim: 3 };
    let mut rng = Rng(3);
    for storage in [Storage::Bf16, Storage::F16, Storage::Q8] {
        let (mut kb, mut vb) = (Buffer::new(storage, 4, 33), Buffer::new(storage, 4, 3));
        let mut cache = KvCache::new(shape, kb.as_mut(), vb.as_mut()).unwrap();
        let (k, v) = (random(&mut rng, 2 * 33), random(&mut rng, 2 * 3));
        cache.append(2, &k, &v).unwrap();
        match &kb {
            Buffer::Bf16(g) => assert!(g[..66].iter().zip(&k).all(|(g, &x)| *g == bf16::from_f32(x))),
            Buffer::F16(g) => assert!(g[..66].iter().zip(&k).all(|(g, &x)| *g == f16::from_f32(x))),
            Buffer::Q8(g, scales) => {
                // Rows of 33: blocks of 32 and 1.
                for (r, row) in k.chunks(33).enumerate() {
                    for (b, block) in row.chunks(32).enumerate() {
                        let scale = block.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0;
                        assert_eq!(scales[r * 2 + b], scale, "row {r} block {b} scale");
                        for (j, &x) in block.iter().enumerate() {
                            let q = (x / scale).round() as i8;
                            assert_eq!(g[r * 33 + b * 32 + j], q, "row {r} value {}", b * 32 + j);
                        }
                    }
                }
            }
            Buffer::F32(_) => unreachable!(),
        }
    }
}

#[test]
fn refused_appends_write_nothing() {
    let shape = KvCacheShape { batch: 2, kv_heads: 1, capacity: 3, qk_dim: 4, v_dim: 2 };
    let (mut kb, mut vb) = (Buffer::new(Storage::F32, 6, 4), Buffer::new(Storage::F32, 6, 2));
    let mut cache = KvCache::new(shape, kb.as_mut(), vb.as_mut()).unwrap();
    cache.append(2, &[1.0; 16], &[1.0; 8]).unwrap();
    assert_eq!(cache.append(2, &[2.0; 16], &[2.0; 8]), Err(Error::Capacity { arg: "new", capacity: 3, needed: 4 }));
    assert_eq!(cache.append(1, &[2.0; 7], &[2.0; 4]), Err(Error::Length { arg: "key", expected: 8, actual: 7 }));
    assert_eq!(cache.append(1, &[2.0; 8], &[2.0; 5]), Err(Error::Length { arg: "value", expected: 4, actual: 5 }));
    assert_eq!(cache.len(), 2);
    let Buffer::F32(k) = &kb else { unreachable!() };
    // Rows 2 of each head were never written.
    assert!(k[8..12].iter().chain(&k[20..24]).all(|x| x.is_nan()), "a refused append wrote");
    assert!(k[..8].iter().chain(&k[12..20]).all(|&x| x == 1.0));
    // Buffers of the wrong size or of two storage types are refused.
    let mut short = vec![0.0f32; 23];
    let mut v = vec![0.0f32; 12];
    let err = KvCache::new(shape, StoredMut::F32(&mut short), StoredMut::F32(&mut v)).unwrap_err();
    assert_eq!(err, Error::Length { arg: "key", expected: 24, actual: 23 });
    let mut k = vec![0.0f32; 24];
    let mut vh = vec![f16::ZERO; 12];
    let err = KvCache::new(shape, StoredMut::F32(&mut k), StoredMut::F16(&mut vh)).unwrap_err();
    assert_eq!(err, Error::Storage { arg: "value", expected: "f32", actual: "f16" });
}

#[test]
fn a_reopened_cache_continues_where_the_first_stopped() {
    let shape = KvCacheShape { batch: 1, kv_heads: 2, capacity: 5, qk_dim: 3, v_dim: 2 };
    let op = ScaledDotProductAttention::default();
    let mut rng = Rng(11);
    let (k, v, q) = (random(&mut rng, 2 * 5 * 3), random(&mut rng, 2 * 5 * 2), random(&mut rng, 2 * 3));
    let rows = |x: &[f32], n: usize, w: usize, from: usize| -> Vec<f32> {
        (0..2).flat_map(|h| x[(h * 5 + from) * w..][..n * w].iter().copied()).collect()
    };
    let attend = |cache: &KvCache<'_>| {
        let query = CacheQuery { query: q.as_slice().into(), q_heads: 2, q_len: 1, mask: SdpaMask::Causal };
        let mut out = vec![0.0; 4];
        par::sdpa_cached(&op, cache.view(), query, &mut out).unwrap();
        out
    };
    for storage in [Storage::F32, Storage::Bf16, Storage::F16, Storage::Q8] {
        let (mut kb, mut vb) = (Buffer::new(storage, 10, 3), Buffer::new(storage, 10, 2));
        let mut whole = KvCache::new(shape, kb.as_mut(), vb.as_mut()).unwrap();
        whole.append(5, &k, &v).unwrap();
        let want = attend(&whole);
        let (mut kb, mut vb) = (Buffer::new(storage, 10, 3), Buffer::new(storage, 10, 2));
        let mut first = KvCache::new(shape, kb.as_mut(), vb.as_mut()).unwrap();
        first.append(3, &rows(&k, 3, 3, 0), &rows(&v, 3, 2, 0)).unwrap();
        let mut second = KvCache::reopen(shape, kb.as_mut(), vb.as_mut(), 3).unwrap();
        second.append(2, &rows(&k, 2, 3, 3), &rows(&v, 2, 2, 3)).unwrap();
        assert_eq!(second.len(), 5);
        let got = attend(&second);
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{storage:?}: {got:?} vs {want:?}");
        let err = KvCache::reopen(shape, kb.as_mut(), vb.as_mut(), 6).unwrap_err();
        assert_eq!(err, Error::Capacity { arg: "len", capacity: 5, needed: 6 });
    }
}
