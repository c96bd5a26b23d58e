//! The candle peer of `attn bench`: `sdpa-decode`, `sdpa-512`,
//! `sdpa-causal-2048` and `add-batch` as a candle user writes them
//! (`matmul`, `softmax_last_dim`, d2l's additive math with `Linear`), on one
//! thread, printing the same JSON document as `attn bench --json`.
//!
//! Build and run (from the repository root):
//! `cargo build --release --manifest-path benches/peers/candle/Cargo.toml`, then
//! `taskset -c 1 benches/peers/candle/target/release/candle-peer --workload sdpa-decode --samples 7`.
//! `sdpa-decode-kt` (Kᵀ made contiguous outside the timed region) and
//! `sdpa-decode-ktc` (inside it) are variants; `--verify` prints checks.
use candle_core::{Device, Result, Tensor, D};
use candle_nn::{ops::softmax_last_dim, Linear, Module};
use std::{hint::black_box, time::Instant};

struct Rng(u64); // splitmix64 + Box-Muller, fixed seed
impl Rng {
    fn u(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn n(&mut self) -> f32 {
        let (a, b) = (self.u().max(1e-300), self.u());
        ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
    }
    fn t(&mut self, s: &[usize], scale: f32) -> Result<Tensor> {
        let v: Vec<f32> = (0..s.iter().product()).map(|_| self.n() * scale).collect();
        Tensor::from_vec(v, s, &Device::Cpu)
    }
}

fn sdpa(q: &Tensor, kt: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let e = q.dim(D::Minus1)? as f64;
    let mut s = (q.matmul(kt)? * (1.0 / e.sqrt()))?;
    if let Some(m) = mask {
        s = s.broadcast_add(m)?;
    }
    softmax_last_dim(&s)?.matmul(v)
}

type Job = Box<dyn Fn() -> Result<Tensor>>;

fn make(name: &str, rng: &mut Rng) -> Result<Job> {
    let qkv = |rng: &mut Rng, h, l, s, e| -> Result<(Tensor, Tensor, Tensor)> {
        Ok((rng.t(&[h, l, e], 1.0)?, rng.t(&[h, s, e], 1.0)?, rng.t(&[h, s, e], 1.0)?))
    };
    Ok(match name {
        "sdpa-decode" | "sdpa-decode-kt" | "sdpa-decode-ktc" => {
            let (q, k, v) = qkv(rng, 64, 1, 4096, 128)?;
            match name {
                "sdpa-decode" => Box::new(move || sdpa(&q, &k.t()?, &v, None)),
                "sdpa-decode-ktc" => Box::new(move || sdpa(&q, &k.t()?.contiguous()?, &v, None)),
                _ => {
                    let kt = k.t()?.contiguous()?;
                    Box::new(move || sdpa(&q, &kt, &v, None))
                }
            }
        }
        "sdpa-512" => {
            let (q, k, v) = qkv(rng, 32, 512, 512, 64)?;
            Box::new(move || sdpa(&q, &k.t()?, &v, None))
        }
        "sdpa-causal-2048" => {
            let (q, k, v) = qkv(rng, 8, 2048, 2048, 64)?;
            let m: Vec<f32> =
                (0..2048 * 2048).map(|i| if i % 2048 > i / 2048 { f32::NEG_INFINITY } else { 0.0 }).collect();
            let m = Tensor::from_vec(m, (2048, 2048), &Device::Cpu)?;
            Box::new(move || sdpa(&q, &k.t()?, &v, Some(&m)))
        }
        "add-batch" => {
            let (b, nq, nk, d, h) = (32usize, 64usize, 64usize, 256usize, 256usize);
            let (qs, ks, vs) = (rng.t(&[b, nq, d], 1.0)?, rng.t(&[b, nk, d], 1.0)?, rng.t(&[b, nk, d], 1.0)?);
            let sc = 1.0 / (d as f32).sqrt();
            let wq = Linear::new(rng.t(&[h, d], sc)?, None);
            let wk = Linear::new(rng.t(&[h, d], sc)?, None);
            let wv = Linear::new(rng.t(&[1, h], 1.0 / (h as f32).sqrt())?, None);
            let vl: Vec<u32> = (0..b).map(|_| 32 + (rng.u() * 33.0) as u32).collect();
            let vl = Tensor::new(vl, &Device::Cpu)?;
            let ar = Tensor::arange(0u32, nk as u32, &Device::Cpu)?;
            let neg = Tensor::new(-1e6f32, &Device::Cpu)?.broadcast_as((b, nq, nk))?;
            Box::new(move || {
                let qp = wq.forward(&qs)?; // (B,Q,H)
                let kp = wk.forward(&ks)?; // (B,K,H)
                let f = qp.unsqueeze(2)?.broadcast_add(&kp.unsqueeze(1)?)?.tanh()?; // (B,Q,K,H)
                let s = wv.forward(&f)?.squeeze(3)?; // (B,Q,K)
                let keep = ar.unsqueeze(0)?.broadcast_lt(&vl.unsqueeze(1)?)?.unsqueeze(1)?.broadcast_as((b, nq, nk))?;
                let w = softmax_last_dim(&keep.where_cond(&s, &neg)?)?;
                w.matmul(&vs)
            })
        }
        _ => panic!("unknown workload {name}"),
    })
}

fn check(name: &str, out: &Tensor) -> Result<()> {
    let v = out.flatten_all()?.to_vec1::<f32>()?;
    let ok = v.iter().all(|x| x.is_finite());
    eprintln!("[check] {name}: shape {:?} finite={ok} mean={:.5}", out.dims(), v.iter().sum::<f32>() / v.len() as f32);
    assert!(ok, "non-finite output in {name}");
    Ok(())
}

fn main() -> Result<()> {
    std::env::set_var("RAYON_NUM_THREADS", "1"); // before rayon's global pool / gemm read it
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    let args: Vec<String> = std::env::args().collect();
    let get = |f: &str| args.iter().position(|a| a == f).and_then(|i| args.get(i + 1)).cloned();
    let wl = get("--workload").unwrap_or("sdpa-decode,sdpa-512,sdpa-causal-2048,add-batch".into());
    let n: usize = get("--samples").map(|s| s.parse().unwrap()).unwrap_or(7);
    let _json = args.iter().any(|a| a == "--json"); // output is always JSON
    if args.iter().any(|a| a == "--verify") {
        verify()?;
    }

    let mut res = vec![];
    for name in wl.split(',') {
        let mut rng = Rng(0x5EED); // same inputs whatever the order
        let job = make(name, &mut rng)?;
        let warm = job()?; // warm-up
        check(name, &warm)?;
        let mut t: Vec<f64> = (0..n)
            .map(|_| {
                let s = Instant::now();
                black_box(job().unwrap());
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = if n % 2 == 1 { t[n / 2] } else { (t[n / 2 - 1] + t[n / 2]) / 2.0 };
        res.push(format!(
            r#"{{"workload": "{name}", "median_ms": {med:.4}, "min_ms": {:.4}, "max_ms": {:.4}, "samples": {n}}}"#,
            t[0],
            t[n - 1]
        ));
    }
    println!(
        r#"{{"backend": "candle-{}", "threads": {}, "results": [{}]}}"#,
        "0.11.1",
        candle_core::utils::get_num_threads(),
        res.join(", ")
    );
    Ok(())
}

// Light correctness checks on the same code paths (run once, untimed, results to stderr).
fn verify() -> Result<()> {
    let mut rng = Rng(7);
    let (q, k, v) = (rng.t(&[64, 1, 128], 1.0)?, rng.t(&[64, 4096, 128], 1.0)?, rng.t(&[64, 4096, 128], 1.0)?);
    let w = softmax_last_dim(&(q.matmul(&k.t()?)? * (1.0 / 128f64.sqrt()))?)?;
    let dev = (w.sum_keepdim(D::Minus1)? - 1.0)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let a = sdpa(&q, &k.t()?, &v, None)?;
    let b = sdpa(&q, &k.t()?.contiguous()?, &v, None)?;
    let d = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    eprintln!("[verify] decode: max|rowsum-1|={dev:.2e} strided-vs-contiguous kT max diff={d:.2e}");
    let (q, k, v) = (rng.t(&[2, 64, 16], 1.0)?, rng.t(&[2, 64, 16], 1.0)?, rng.t(&[2, 64, 16], 1.0)?);
    let m: Vec<f32> = (0..64 * 64).map(|i| if i % 64 > i / 64 { f32::NEG_INFINITY } else { 0.0 }).collect();
    let o = sdpa(&q, &k.t()?, &v, Some(&Tensor::from_vec(m, (64, 64), &Device::Cpu)?))?;
    let d = (o.narrow(1, 0, 1)? - v.narrow(1, 0, 1)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
    eprintln!(
        "[verify] causal: |out[:,0]-v[:,0]|max={d:.2e} finite={}",
        o.flatten_all()?.to_vec1::<f32>()?.iter().all(|x| x.is_finite())
    );
    Ok(())
}
