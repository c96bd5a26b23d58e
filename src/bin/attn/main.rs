//! `attn`: the command line of simd-attention.
//!
//! - `attn run INPUT.safetensors -o OUTPUT.safetensors [--threads N]` runs a
//!   case in the golden format and writes its `output` and
//!   `attention_weights`.
//!
//! On any bad input it prints one line to stderr, exits with status 2, and
//! leaves no output file behind: results go to a temporary file in the
//! output's directory that is renamed into place only once complete.

use clap::{Parser, Subcommand};
use simd_attention::io::{LoadError, TensorFile, case::run_case};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "attn", version, about = "Attention on CPUs: run cases, decode, benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one case file (golden format) and write its results.
    Run {
        /// The case: inputs, parameters and `__metadata__["kind"]`.
        input: PathBuf,
        /// Where to write `output` and `attention_weights`.
        #[arg(short, long)]
        output: PathBuf,
        /// Threads for the local rayon pool (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version print to stdout and succeed.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let first = e.to_string();
            eprintln!("attn: {}", first.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Run { input, output, threads } => match run(&input, &output, threads) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("attn: {message}");
                ExitCode::from(2)
            }
        },
    }
}

fn run(input: &Path, output: &Path, threads: Option<usize>) -> Result<(), String> {
    let file = TensorFile::read(input).map_err(|e| e.to_string())?;
    let pool = match threads {
        Some(0) => return Err("--threads: expected at least 1, got 0".to_string()),
        Some(n) => rayon::ThreadPoolBuilder::new().num_threads(n).build(),
        None => rayon::ThreadPoolBuilder::new().build(),
    }
    .map_err(|e| format!("--threads: {e}"))?;
    let results = pool.install(|| run_case(&file)).map_err(|e: LoadError| e.to_string())?;
    write_atomically(output, &results)
}

/// Serialises the results to `OUTPUT.tmp-PID` beside `output`, then renames.
fn write_atomically(output: &Path, results: &simd_attention::io::case::CaseOutputs) -> Result<(), String> {
    let bytes: Vec<Vec<u8>> =
        results.iter().map(|(_, t)| t.data.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let views = results
        .iter()
        .zip(&bytes)
        .map(|((name, t), b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), b).map(|v| (*name, v))
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
