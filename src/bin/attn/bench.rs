//! `attn bench`: the issue-5 workloads, timed end to end.
//!
//! Each workload is built once (f32, uniform inputs of unit variance,
//! weights scaled 1/√fan_in, additive `valid_lens` drawn from [K/2, K]),
//! run once to warm up, then timed `samples` times; the median, minimum and
//! maximum are reported with a throughput in units a reader can hold
//! against the hardware. Every workload runs through the `par` layer in a
//! local rayon pool of `--threads` threads (1 by default, so figures are
//! per core).

use simd_attention::ops::{
    AdditiveAttention, AttentionShape, KeyCache, ScaledDotProductAttention, SdpaMask, SdpaShape, ValidLens,
};
use simd_attention::par;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Every workload, in the order they run.
pub const WORKLOADS: [&str; 6] = ["add-decode", "add-batch", "add-long", "sdpa-512", "sdpa-causal-2048", "sdpa-decode"];

/// xorshift32 uniform values with variance `var`.
fn uniform(len: usize, seed: u32, var: f32) -> Vec<f32> {
    let scale = (3.0 * var).sqrt();
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            scale * (2.0 * ((state >> 8) as f32 / (1u32 << 24) as f32) - 1.0)
        })
        .collect()
}

/// One prepared workload: `run` does one timed unit of work.
struct Prepared {
    run: Box<dyn FnMut() -> Result<(), String> + Send>,
    /// Work per run and its unit, e.g. (q, k, h) terms or FLOP or bytes.
    work: f64,
    unit: &'static str,
}

fn additive(batch: usize, queries: usize, keys: usize, h: usize, steps: usize) -> Result<Prepared, String> {
    let shape = AttentionShape { batch, queries, keys, query_dim: h, key_dim: h, value_dim: h };
    let w_q = uniform(h * h, 1, 1.0 / h as f32);
    let w_k = uniform(h * h, 2, 1.0 / h as f32);
    let w_v = uniform(h, 3, 1.0 / h as f32);
    let q = uniform(batch * queries * h, 4, 1.0);
    let k = uniform(batch * keys * h, 5, 1.0);
    let v = uniform(batch * keys * h, 6, 1.0);
    let lens: Vec<usize> = (0..batch).map(|b| keys / 2 + (b * 7919) % (keys - keys / 2 + 1)).collect();
    let mut out = vec![0.0; batch * queries * h];
    let mut weights = vec![0.0; batch * queries * keys];
    let mut cache_buf = vec![0.0; KeyCache::buffer_len(batch, keys, h, h).map_err(|e| e.to_string())?];
    let run = move || -> Result<(), String> {
        let attn = AdditiveAttention::new(&w_q, &w_k, &w_v, h, h, h).map_err(|e| e.to_string())?;
        if steps == 0 {
            return par::additive(&attn, &shape, &q, &k, &v, ValidLens::PerBatch(&lens), &mut out, Some(&mut weights))
                .map_err(|e| e.to_string());
        }
        // A decoder: one cache, then `steps` single-query steps.
        let cache = par::key_cache(&attn, &shape, &k, &v, &mut cache_buf).map_err(|e| e.to_string())?;
        for _ in 0..steps {
            par::additive_cached(&attn, &cache, queries, &q, ValidLens::PerBatch(&lens), &mut out, Some(&mut weights))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let steps_f = steps.max(1) as f64;
    Ok(Prepared { run: Box::new(run), work: (batch * queries * keys * h) as f64 * steps_f, unit: "(q,k,h)" })
}

fn sdpa(heads: usize, l: usize, s: usize, e: usize, causal: bool) -> Prepared {
    let shape = SdpaShape { batch: 1, q_heads: heads, kv_heads: heads, q_len: l, kv_len: s, qk_dim: e, v_dim: e };
    let q = uniform(heads * l * e, 7, 1.0);
    let k = uniform(heads * s * e, 8, 1.0);
    let v = uniform(heads * s * e, 9, 1.0);
    let mut out = vec![0.0; heads * l * e];
    let op = ScaledDotProductAttention::default();
    let mask = if causal { SdpaMask::Causal } else { SdpaMask::None };
    let run = move || par::sdpa(&op, &shape, &q, &k, &v, mask, &mut out, None).map_err(|e| e.to_string());
    if l == 1 {
        // Decode reads every key and value once: report bandwidth.
        return Prepared { run: Box::new(run), work: (2 * heads * s * e * 4) as f64, unit: "B" };
    }
    let flops = 4.0 * (heads * l * s * e) as f64 * if causal { 0.5 } else { 1.0 };
    Prepared { run: Box::new(run), work: flops, unit: "FLOP" }
}

fn prepare(name: &str) -> Result<Prepared, String> {
    match name {
        "add-decode" => additive(64, 1, 50, 256, 50),
        "add-batch" => additive(32, 64, 64, 256, 0),
        "add-long" => additive(4, 256, 512, 128, 0),
        "sdpa-512" => Ok(sdpa(32, 512, 512, 64, false)),
        "sdpa-causal-2048" => Ok(sdpa(8, 2048, 2048, 64, true)),
        "sdpa-decode" => Ok(sdpa(64, 1, 4096, 128, false)),
        other => Err(format!("--workload: unknown workload `{other}` (known: {})", WORKLOADS.join(", "))),
    }
}

struct Measured {
    name: String,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    samples: usize,
    rate: f64,
    unit: &'static str,
}

pub fn bench(workloads: Option<&str>, threads: usize, samples: usize, json: bool) -> Result<(), String> {
    if threads == 0 {
        return Err("--threads: expected at least 1, got 0".to_string());
    }
    if samples < 5 {
        return Err(format!("--samples: expected at least 5, got {samples}"));
    }
    let names: Vec<&str> = match workloads {
        Some(list) => list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
        None => WORKLOADS.to_vec(),
    };
    // Refuse unknown names before spending any time.
    for name in &names {
        if !WORKLOADS.contains(name) {
            prepare(name)?;
        }
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| format!("--threads: {e}"))?;
    let backend = simd_attention::backend();
    let progress = std::io::stderr().is_terminal();
    let mut results = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut work = prepare(name)?;
        let mut times = Vec::with_capacity(samples);
        for sample in 0..=samples {
            if progress {
                eprint!("\r[{}/{}] {name}: sample {sample}/{samples}   ", i + 1, names.len());
                let _ = std::io::stderr().flush();
            }
            let start = Instant::now();
            pool.install(|| simd_attention::simd::with_backend(backend, || (work.run)()))
                .map_err(|e| e.to_string())??;
            if sample > 0 {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let per_run = if *name == "add-decode" { 50.0 } else { 1.0 };
        results.push(Measured {
            name: name.to_string(),
            median_ms: median / per_run,
            min_ms: times[0] / per_run,
            max_ms: times[times.len() - 1] / per_run,
            samples,
            rate: work.work / (median / 1e3),
            unit: work.unit,
        });
    }
    if progress {
        eprint!("\r{:60}\r", "");
    }
    if json {
        let doc = serde_json::json!({
            "backend": backend.name(),
            "threads": threads,
            "results": results.iter().map(|r| serde_json::json!({
                "workload": r.name, "median_ms": r.median_ms, "min_ms": r.min_ms, "max_ms": r.max_ms, "samples": r.samples,
            })).collect::<Vec<_>>(),
        });
        println!("{doc}");
    } else {
        println!("backend {backend}, {threads} thread(s), {samples} samples after a warm-up; times per call");
        println!("{:<18} {:>10} {:>10} {:>10}  throughput", "workload", "median ms", "min ms", "max ms");
        for r in &results {
            println!(
                "{:<18} {:>10.3} {:>10.3} {:>10.3}  {:.2} G{}/s",
                r.name,
                r.median_ms,
                r.min_ms,
                r.max_ms,
                r.rate / 1e9,
                r.unit
            );
        }
    }
    Ok(())
}
