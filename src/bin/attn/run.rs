//! `attn run`: one golden-format case in, its results out, written
//! atomically (a temporary file beside the output, renamed on success).

use simd_attention::io::TensorFile;
use simd_attention::io::case::{CaseOutputs, CaseTensor, run_case};
use std::path::{Path, PathBuf};

pub fn run(input: &Path, output: &Path, model: Option<&Path>, threads: Option<usize>) -> Result<(), String> {
    let file = TensorFile::read(input).map_err(|e| e.to_string())?;
    let model = match file.metadata("kind").as_deref() {
        Some("seq2seq_decode") => Some(crate::decode::load_model(model)?),
        _ => None,
    };
    let pool = match threads {
        Some(0) => return Err("--threads: expected at least 1, got 0".to_string()),
        Some(n) => rayon::ThreadPoolBuilder::new().num_threads(n).build(),
        None => rayon::ThreadPoolBuilder::new().build(),
    }
    .map_err(|e| format!("--threads: {e}"))?;
    let results = pool.install(|| run_case(&file, model.as_ref())).map_err(|e| e.to_string())?;
    write_atomically(output, &results)
}

/// Serialises the results to `OUTPUT.tmp-PID` beside `output`, then renames.
fn write_atomically(output: &Path, results: &CaseOutputs) -> Result<(), String> {
    let encoded: Vec<(safetensors::Dtype, &[usize], Vec<u8>)> = results
        .iter()
        .map(|(_, t)| match t {
            CaseTensor::F32(t) => {
                (safetensors::Dtype::F32, &t.shape[..], t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            CaseTensor::I64(t) => {
                (safetensors::Dtype::I64, &t.shape[..], t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
        })
        .collect();
    let views = results
        .iter()
        .zip(&encoded)
        .map(|((name, _), (dtype, shape, bytes))| {
            safetensors::tensor::TensorView::new(*dtype, shape.to_vec(), bytes).map(|v| (*name, v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", output.display()))?;
    let serialized = safetensors::serialize(views, None).map_err(|e| format!("{}: {e}", output.display()))?;
    let mut tmp = output.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::write(&tmp, serialized).and_then(|()| std::fs::rename(&tmp, output));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", output.display())
    })
}
