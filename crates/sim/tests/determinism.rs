//! The same configuration gives the same run: each of a set of seeds, honest and Byzantine, with
//! faults, run twice gives the same digest; different seeds give different runs.

use gonka_sim::{ByzantineKind, Faults, SimConfig};

fn configs() -> Vec<SimConfig> {
    let all = Faults { crash: true, partition: true, delay: true, drop: true };
    vec![
        SimConfig::new(11, 4, 40),
        SimConfig::new(12, 6, 40).with_faults(all),
        SimConfig::new(13, 5, 40).with_byzantine(ByzantineKind::FabricatePoc, 1).with_faults(all),
        SimConfig::new(14, 5, 40).with_byzantine(ByzantineKind::DrainBalance, 1),
        SimConfig::new(15, 5, 30).with_byzantine(ByzantineKind::Censor, 1),
        SimConfig::new(16, 7, 40)
            .with_byzantine(ByzantineKind::CopyPoc, 1)
            .with_byzantine(ByzantineKind::Overcharge, 1)
            .with_faults(all),
    ]
}

#[test]
fn each_seed_run_twice_gives_the_same_digest() {
    for config in configs() {
        let first = gonka_sim::run(config.clone()).expect("runs");
        let second = gonka_sim::run(config.clone()).expect("runs");
        assert_eq!(first.digest, second.digest, "seed {}", config.seed);
        assert_eq!(first, second, "the whole report repeats, seed {}", config.seed);
    }
}

#[test]
fn different_seeds_give_different_runs() {
    let digests: std::collections::BTreeSet<_> =
        (20..26).map(|seed| gonka_sim::run(SimConfig::new(seed, 4, 30)).expect("runs").digest).collect();
    assert_eq!(digests.len(), 6);
}
