//! What the simulator's tests share: running a mix of seeds and judging each report against the
//! violations known today.
#![allow(dead_code, unreachable_pub)]

use gonka_sim::{ByzantineKind, Report, SimConfig};

/// Checks one report: nothing broke but the known violations of the behaviours present, and the
/// first known violation of each such behaviour was detected.
pub fn judge(config: &SimConfig, report: &Report) -> Result<(), String> {
    let present: Vec<ByzantineKind> =
        config.byzantine.iter().filter(|(_, n)| *n > 0).map(|(k, _)| *k).collect();
    let allowed: Vec<&str> = present.iter().flat_map(|k| k.known_violations().iter().copied()).collect();
    let unexpected: Vec<&str> = report.broken().into_iter().filter(|b| !allowed.contains(b)).collect();
    if !unexpected.is_empty() {
        return Err(format!("seed {}: unexpected violations {unexpected:?}\n{}", report.seed, report.text()));
    }
    for kind in present {
        if let Some(expected) = kind.known_violations().first()
            && !report.violated(expected)
        {
            return Err(format!(
                "seed {}: {kind} was not detected ({expected})\n{}",
                report.seed,
                report.text()
            ));
        }
    }
    Ok(())
}

/// Runs `seeds` of `config` (seed replaced) and judges each.
pub fn run_mix(config: &SimConfig, seeds: std::ops::Range<u64>) {
    let mut failures = Vec::new();
    for seed in seeds {
        let config = SimConfig { seed, ..config.clone() };
        let report = gonka_sim::run(config.clone()).expect("a valid configuration");
        if let Err(failure) = judge(&config, &report) {
            failures.push(failure);
        }
    }
    assert!(failures.is_empty(), "{} seeds failed:\n{}", failures.len(), failures.join("\n"));
}
