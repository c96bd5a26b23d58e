//! Helpers shared by the integration tests: ulp distances and the list of
//! backends this machine can run.
#![allow(dead_code)]

pub mod reference;

use simd_attention::Backend;
use std::path::{Path, PathBuf};

/// Distance from `got` to the exact `want`, in units of the f32 ulp at `want`.
/// Equal non-finite values (and NaN against NaN) are 0 apart.
pub fn ulp_error(got: f32, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    let rounded = want as f32;
    if rounded.is_infinite() || got.is_infinite() {
        return if got == rounded { 0.0 } else { f64::INFINITY };
    }
    let a = want.abs().max(f32::MIN_POSITIVE as f64);
    let ulp = 2f64.powi(a.log2().floor() as i32 - 23);
    (got as f64 - want).abs() / ulp
}

/// Backends this CPU runs. With `SIMD_ATTENTION_REQUIRE_BACKENDS=a,b` set,
/// panics if one of those is missing, so a CI run cannot pass on the
/// portable path alone by accident.
pub fn backends() -> Vec<Backend> {
    if let Ok(required) = std::env::var("SIMD_ATTENTION_REQUIRE_BACKENDS") {
        for name in required.split(',').filter(|s| !s.is_empty()) {
            let b = Backend::from_name(name).unwrap_or_else(|| panic!("unknown backend {name}"));
            assert!(b.is_available(), "backend {name} is required but this CPU cannot run it");
        }
    }
    Backend::ALL.into_iter().filter(|b| b.is_available()).collect()
}

/// Deterministic xorshift for tests that want many values without proptest.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u32() as f64 / 2f64.powi(31) - 1.0) as f32
    }
}

/// A golden case from `tests/data` (see `../shared/golden/README.md`).
pub struct Golden {
    bytes: Vec<u8>,
}

impl Golden {
    pub fn load(name: &str) -> Golden {
        let path = format!("{}/tests/data/{name}.safetensors", env!("CARGO_MANIFEST_DIR"));
        Golden { bytes: std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")) }
    }

    fn tensors(&self) -> safetensors::SafeTensors<'_> {
        safetensors::SafeTensors::deserialize(&self.bytes).unwrap()
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors().tensor(name).is_ok()
    }

    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.tensors().tensor(name).unwrap().shape().to_vec()
    }

    /// An F32 tensor's values.
    pub fn f32s(&self, name: &str) -> Vec<f32> {
        let st = self.tensors();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("no tensor {name}"));
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
        t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// An I64 tensor's values, as lengths.
    pub fn lens(&self, name: &str) -> Vec<usize> {
        let st = self.tensors();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("no tensor {name}"));
        assert_eq!(t.dtype(), safetensors::Dtype::I64, "{name}");
        t.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize).collect()
    }

    pub fn meta(&self, key: &str) -> Option<String> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(&self.bytes).unwrap();
        meta.metadata().as_ref().and_then(|m| m.get(key).cloned())
    }
}

/// `|got − want| ≤ atol + rtol·|want|` everywhere (the golden tolerance).
pub fn assert_allclose(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol + rtol * w.abs(), "{what}[{i}]: got {g}, want {w}");
    }
}

/// One test's folder for the files it writes, under cargo's `target/tmp`
/// (never the system temp folder), removed when the test ends, failed or
/// not, so test runs leave nothing behind.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh folder named after the test and this process.
    pub fn new(test: &str) -> Scratch {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// The path of file `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command that runs the test binary `exe`: directly, or through the
/// runner in `SIMD_ATTENTION_TEST_RUNNER` (`tests/aarch64.sh` sets it to
/// qemu-user, since an emulated test cannot start a foreign binary itself).
pub fn command(exe: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    match std::env::var("SIMD_ATTENTION_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut cmd = std::process::Command::new(words.next().expect("a runner"));
            cmd.args(words).arg(exe);
            cmd
        }
        _ => std::process::Command::new(exe),
    }
}
