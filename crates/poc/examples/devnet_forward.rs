//! Times weight generation and one reference forward pass for the devnet model:
//! `cargo run -p gonka-poc --release --example devnet_forward`.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use gonka_poc::{ModelSpec, forward_last, nonce_distance, nonce_input, target, weights};
use gonka_primitives::Hash;

fn main() {
    let spec = ModelSpec::devnet();
    let hash = Hash::digest(b"timing");
    let started = Instant::now();
    let model = weights(&spec, &hash).expect("devnet spec is valid");
    println!("weights ({} parameters): {:?}", spec.parameter_count(), started.elapsed());
    let goal = target(&spec, &hash);
    let input = nonce_input(&spec, &hash, &[2; 33], 0);
    let runs = 200;
    let started = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(forward_last(&model, std::hint::black_box(&input)).expect("input fits"));
    }
    println!("forward_last: {:?} per pass", started.elapsed() / runs);
    let started = Instant::now();
    for nonce in 0..u64::from(runs) {
        std::hint::black_box(nonce_distance(&model, &goal, &hash, &[2; 33], nonce).expect("input fits"));
    }
    println!(
        "nonce_distance (input + permutation + forward + distance): {:?} per nonce",
        started.elapsed() / runs
    );
}
