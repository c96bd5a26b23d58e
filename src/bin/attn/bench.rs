//! `attn bench`: the standard workloads ([`crate::workloads`]), timed end
//! to end, held against the roofline of the core they run on.
//!
//! The two roofs are measured in the same run, before and after the
//! workloads (the better of the two is kept), on the same pool of
//! `--threads` threads and the same backend ([`simd_attention::roofline`]):
//! the FMA peak (register-resident loops on every thread at once) and the
//! read bandwidth (multi-stream sums over [`READ_BYTES`], split between the
//! threads), each the best of [`ROOF_ROUNDS`] rounds of all threads' work
//! over one wall-clock interval. Then each workload is built once, run once
//! to warm up, and timed `samples` times; the median, minimum and maximum
//! per unit are reported with the workload's share of its roof.

use crate::roofline_chart::{self, Point, Roofs};
use crate::workloads::{Bound, WORKLOADS, prepare};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use simd_attention::roofline;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

/// What one `attn bench` run does.
pub struct BenchArgs<'a> {
    pub workloads: Option<&'a str>,
    pub threads: usize,
    pub samples: usize,
    pub json: bool,
    pub plot: Option<&'a Path>,
}

/// Rounds of each roof measurement; the best is kept, as a roof is what
/// the machine can do, not what it does on average.
const ROOF_ROUNDS: usize = 5;
/// The most threads a pool may have: far past any core count, short of
/// exhausting memory on thread stacks.
const MAX_THREADS: usize = 4096;
/// The most timed samples per workload: enough for any statistic, few
/// enough that the sample buffers can never fail to allocate.
const MAX_SAMPLES: usize = 1_000_000;
/// Bytes of the bandwidth sum: 256 MiB, far past the last-level cache.
const READ_BYTES: usize = 256 << 20;
/// FMA-loop iterations per round (≈ 30 ms at 250 GFLOP/s with 16 lanes).
const FMA_ITERATIONS: usize = 20_000_000;

struct Measured {
    name: String,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    samples: usize,
    flop: f64,
    bytes: f64,
    bound: Bound,
}

impl Measured {
    fn gflops(&self) -> f64 {
        self.flop / (self.median_ms * 1e6)
    }

    fn gbs(&self) -> f64 {
        self.bytes / (self.median_ms * 1e6)
    }

    /// The share of its roof the median reaches.
    fn share(&self, roofs: Roofs) -> f64 {
        match self.bound {
            Bound::Compute => self.gflops() / roofs.fma_gflops,
            Bound::Memory => self.gbs() / roofs.read_gbs,
        }
    }
}

/// Both roofs on every thread of `pool` at once: each round's work summed
/// over the threads, over one wall-clock interval around all of them (so
/// threads that share a core are not counted twice), best of the rounds.
fn measure_roofs(pool: &rayon::ThreadPool, threads: usize, progress: &ProgressBar) -> Roofs {
    let best_rate = |work: &(dyn Fn(usize) -> f64 + Sync)| {
        (0..ROOF_ROUNDS)
            .map(|_| {
                let start = Instant::now();
                let done: f64 = pool.broadcast(|ctx| work(ctx.index())).iter().sum();
                done / start.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max)
    };
    progress.set_message("roofline: FMA peak");
    let fma_flops = best_rate(&|_| roofline::fma_flops(FMA_ITERATIONS));
    progress.set_message("roofline: read bandwidth");
    let data = vec![1.0f32; READ_BYTES / 4];
    let part = data.len() / threads;
    let read_bytes = best_rate(&|t| roofline::read_bytes(&data[t * part..(t + 1) * part]).0);
    Roofs { fma_gflops: fma_flops / 1e9, read_gbs: read_bytes / 1e9 }
}

pub fn bench(args: BenchArgs<'_>) -> Result<(), String> {
    let BenchArgs { workloads, threads, samples, json, plot } = args;
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(format!("--threads: expected 1 to {MAX_THREADS}, got {threads}"));
    }
    if !(5..=MAX_SAMPLES).contains(&samples) {
        return Err(format!("--samples: expected 5 to {MAX_SAMPLES}, got {samples}"));
    }
    if let Some(path) = plot {
        roofline_chart::check_path(path)?;
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
    let progress = ProgressBar::with_draw_target(
        Some((names.len() * (samples + 1)) as u64),
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    progress.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} samples  {msg}").map_err(|e| e.to_string())?);
    let measure = || {
        pool.install(|| simd_attention::simd::with_backend(backend, || measure_roofs(&pool, threads, &progress)))
            .map_err(|e| e.to_string())
    };
    let mut results = Vec::new();
    let mut roofs = measure()?;
    for name in &names {
        progress.set_message(name.to_string());
        let mut work = prepare(name)?;
        let mut times = Vec::with_capacity(samples);
        for sample in 0..=samples {
            let start = Instant::now();
            pool.install(|| simd_attention::simd::with_backend(backend, || (work.run)()))
                .map_err(|e| e.to_string())??;
            if sample > 0 {
                times.push(start.elapsed().as_secs_f64() * 1e3 / work.units);
            }
            progress.inc(1);
        }
        times.sort_by(f64::total_cmp);
        results.push(Measured {
            name: name.to_string(),
            median_ms: times[times.len() / 2],
            min_ms: times[0],
            max_ms: times[times.len() - 1],
            samples,
            flop: work.flop,
            bytes: work.bytes,
            bound: work.bound,
        });
    }
    // Measured again at the end: a roof is the best the machine did, and
    // on a shared machine a neighbour may have held it down at the start.
    let end = measure()?;
    roofs = Roofs { fma_gflops: roofs.fma_gflops.max(end.fma_gflops), read_gbs: roofs.read_gbs.max(end.read_gbs) };
    progress.finish_and_clear();
    if json {
        print_json(backend, threads, roofs, &results);
    } else {
        print_table(backend, threads, samples, roofs, &results);
    }
    if let Some(path) = plot {
        let points: Vec<Point> = results
            .iter()
            .map(|r| Point { name: r.name.clone(), intensity: r.flop / r.bytes, gflops: r.gflops() })
            .collect();
        let cpu = cpu_name().unwrap_or_else(|| "this CPU".to_string());
        let title = format!("{cpu}, {backend}, {threads} thread(s)");
        roofline_chart::write_chart(path, roofs, &points, &title)?;
    }
    Ok(())
}

fn print_json(backend: simd_attention::Backend, threads: usize, roofs: Roofs, results: &[Measured]) {
    let bound = |r: &Measured, b: Bound, value: f64| {
        if r.bound == b { serde_json::json!(value) } else { serde_json::Value::Null }
    };
    let doc = serde_json::json!({
        "backend": backend.name(),
        "threads": threads,
        "roofline": { "fma_gflops": roofs.fma_gflops, "read_gbs": roofs.read_gbs },
        "results": results.iter().map(|r| serde_json::json!({
            "workload": r.name, "median_ms": r.median_ms, "min_ms": r.min_ms, "max_ms": r.max_ms, "samples": r.samples,
            "flop": bound(r, Bound::Compute, r.flop), "bytes": bound(r, Bound::Memory, r.bytes),
            "roof_share": r.share(roofs),
        })).collect::<Vec<_>>(),
    });
    println!("{doc}");
}

fn print_table(backend: simd_attention::Backend, threads: usize, samples: usize, roofs: Roofs, results: &[Measured]) {
    println!(
        "backend {backend}, {threads} thread(s), {samples} samples after a warm-up; times per call, step or token"
    );
    println!(
        "roofline: FMA peak {:.1} GFLOP/s, read bandwidth {:.1} GB/s (ridge at {:.1} FLOP/byte)",
        roofs.fma_gflops,
        roofs.read_gbs,
        roofs.fma_gflops / roofs.read_gbs
    );
    println!("{:<18} {:>10} {:>10} {:>10}  {:>14}  of roof", "workload", "median ms", "min ms", "max ms", "rate");
    for r in results {
        let rate = match r.bound {
            Bound::Compute => format!("{:.1} GFLOP/s", r.gflops()),
            Bound::Memory => format!("{:.1} GB/s", r.gbs()),
        };
        println!(
            "{:<18} {:>10.4} {:>10.4} {:>10.4}  {rate:>14}  {:5.1} %",
            r.name,
            r.median_ms,
            r.min_ms,
            r.max_ms,
            100.0 * r.share(roofs)
        );
    }
}

/// The CPU's model name, from `/proc/cpuinfo` where there is one.
fn cpu_name() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}
