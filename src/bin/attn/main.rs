//! `attn`: the command line of simd-attention.
//!
//! - `attn demo [--heatmap FILE]`: the trained Bahdanau model reverses
//!   random digit strings; prints each, the exact-match count, the time per
//!   decoded token and one attention map.
//! - `attn decode [--model MODEL] [--heatmap FILE] TOKENS...`: decodes one
//!   source; the first line of stdout is the output up to `<eos>`.
//! - `attn run INPUT -o OUTPUT [--model MODEL] [--threads N]`: runs a case
//!   in the golden format and writes its results.
//! - `attn bench [--workload a,b] [--threads N] [--json] [--plot FILE]`:
//!   measures the core's roofline, times the standard workloads against
//!   it, and draws the roofline chart.
//!
//! Any bad input prints one line to stderr, exits with status 2, and leaves
//! no output file behind.

mod bench;
mod decode;
mod heatmap;
mod picture;
mod roofline_chart;
mod run;
mod workloads;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "attn", version, about = "Attention on CPUs: demo, decode, run cases")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reverse random digit strings with the embedded trained model.
    Demo {
        /// Also draw one example's attention to FILE (.png or .svg).
        #[arg(long)]
        heatmap: Option<PathBuf>,
        /// How many strings to decode.
        #[arg(long, default_value_t = 8)]
        count: usize,
        /// Seed for the random strings (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Decode one source, e.g. `attn decode 3 1 4 1 5 9`.
    Decode {
        /// A d2l Bahdanau seq2seq in safetensors (default: the embedded one).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Also draw the attention to FILE (.png or .svg).
        #[arg(long)]
        heatmap: Option<PathBuf>,
        /// Source tokens, from the model's vocabulary.
        #[arg(required = true)]
        tokens: Vec<String>,
    },
    /// Measure this core's roofline and time the standard workloads against it (add-decode, add-batch,
    /// add-long, sdpa-512, sdpa-causal-2048, sdpa-decode, seq2seq-token-b1, seq2seq-token-b64, and
    /// with K and V stored narrower: sdpa-decode-bf16, sdpa-decode-f16, sdpa-decode-q8, sdpa-512-bf16).
    Bench {
        /// Comma-separated workloads to run (default: all; an empty list, `--workload ,`, measures the roofline alone).
        #[arg(long)]
        workload: Option<String>,
        /// Threads for the local rayon pool.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Timed samples per workload, after one warm-up run (at least 5).
        #[arg(long, default_value_t = 7)]
        samples: usize,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// Also draw the roofline chart to FILE (.png or .svg).
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Run one case file (golden format) and write its results.
    Run {
        /// The case: inputs, parameters and `__metadata__["kind"]`.
        input: PathBuf,
        /// Where to write the results (`output`/`tokens`, `attention_weights`).
        #[arg(short, long)]
        output: PathBuf,
        /// The model for `seq2seq_decode` cases (default: the embedded one).
        #[arg(long)]
        model: Option<PathBuf>,
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
            let text = e.to_string();
            eprintln!("attn: {}", text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Demo { heatmap, count, seed } => decode::demo(heatmap.as_deref(), count, seed),
        Command::Decode { model, heatmap, tokens } => decode::decode(model.as_deref(), heatmap.as_deref(), &tokens),
        Command::Run { input, output, model, threads } => run::run(&input, &output, model.as_deref(), threads),
        Command::Bench { workload, threads, samples, json, plot } => bench::bench(bench::BenchArgs {
            workloads: workload.as_deref(),
            threads,
            samples,
            json,
            plot: plot.as_deref(),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("attn: {message}");
            ExitCode::from(2)
        }
    }
}
