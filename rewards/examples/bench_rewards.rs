//! Prints math-reward throughput: `cargo run --release -p r1kit-rewards --example bench_rewards [ROUNDS]`.

fn main() {
    let rounds = std::env::args().nth(1).and_then(|r| r.parse().ok()).unwrap_or(3);
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/data"));
    match r1kit_rewards::bench::bench_rewards(dir, rounds) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
