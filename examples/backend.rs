//! Prints the SIMD backend the kernels run on, and every backend this CPU
//! can run: `cargo run --release --example backend`.

use simd_attention::Backend;

fn main() {
    println!("backend: {}", simd_attention::backend());
    let available: Vec<&str> = Backend::ALL.into_iter().filter(|b| b.is_available()).map(Backend::name).collect();
    println!("available: {}", available.join(", "));
}
