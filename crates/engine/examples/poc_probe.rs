//! Quick timing of the PoC kernel: `cargo run -p gonka-engine --release --example poc_probe`.
#![allow(clippy::print_stdout, clippy::unwrap_used)]
use std::time::Instant;

use candle_core::Device;
use gonka_engine::poc::PocModel;
use gonka_poc::{ModelSpec, nonce_distance};
use gonka_primitives::Hash;

fn main() {
    let spec = ModelSpec::devnet();
    let hash = Hash::digest(b"probe");
    let model = PocModel::new(&spec, &hash, &Device::Cpu).unwrap();
    let key = [2u8; 33];
    let reference = gonka_poc::weights(&spec, &hash).unwrap();
    let target = gonka_poc::target(&spec, &hash);
    let ours = model.distances(&key, &[0, 1, 2, 3]).unwrap();
    for n in 0..4u64 {
        let r = nonce_distance(&reference, &target, &hash, &key, n).unwrap();
        println!("nonce {n}: candle {:?} reference {r}", ours[n as usize]);
    }
    if std::env::var("PROBE_LOOP").is_ok() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        for r in 0..400u64 {
            let nonces: Vec<u64> = (r * 32..r * 32 + 32).collect();
            pool.install(|| model.distances(&key, &nonces).unwrap());
        }
        return;
    }
    for batch in [8usize, 32, 64, 128] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let nonces: Vec<u64> = (0..batch as u64).collect();
        pool.install(|| model.distances(&key, &nonces).unwrap());
        let started = Instant::now();
        let reps = (2048 / batch).max(1);
        for r in 0..reps {
            let nonces: Vec<u64> = (0..batch as u64).map(|i| i + (r * batch) as u64).collect();
            pool.install(|| model.distances(&key, &nonces).unwrap());
        }
        let per = started.elapsed().as_secs_f64() / (reps * batch) as f64;
        let gflops = 2.0 * model.macs_per_nonce() as f64 / per / 1e9;
        println!("batch {batch}: {:.0} nonces/s on one thread, {gflops:.1} GFLOP/s", 1.0 / per);
    }
}
