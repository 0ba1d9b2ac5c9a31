//! `gonka bench economy`: what an epoch's settlement costs (`docs/spec/economy.md` §3). The chain's
//! state machine alone, in process: a genesis of N hosts, empty blocks up to the first settlement; the
//! settlement block's apply time against the median ordinary block of the same run (the baseline), per
//! N, and the cost per participant.

use std::time::Instant;

use gonka_chain::rewards::settlement_height;
use gonka_chain::{Block, Genesis, GenesisAccount, GenesisParticipant, Params, State};
use gonka_primitives::{AccountKey, Amount, ValidatorKey};
use serde_json::json;

use crate::stats::percentile;

#[derive(clap::Args, Debug)]
pub struct EconomyArgs {
    /// Host counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    participants: Vec<usize>,
    /// Ordinary blocks measured before the settlement (the baseline).
    #[arg(long, default_value_t = 50)]
    baseline_blocks: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn validator_key(i: usize) -> ValidatorKey {
    let mut secret = [7u8; 32];
    secret[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    ValidatorKey::from_secret_bytes(secret)
}

fn genesis(hosts: usize) -> Genesis {
    let keys: Vec<AccountKey> =
        (0..hosts).map(|i| AccountKey::from_seed(format!("host-{i}").as_bytes())).collect();
    Genesis {
        chain_id: "bench-economy".into(),
        genesis_time_ms: 1_000_000,
        params: Params::devnet(keys[0].address()),
        accounts: keys
            .iter()
            .map(|k| GenesisAccount { address: k.address(), balance: Amount(1_000_000) })
            .collect(),
        participants: keys
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisParticipant {
                address: k.address(),
                account_key: k.public_key(),
                api_url: format!("http://10.0.{}.{}:8000", i / 250, i % 250 + 1),
                validator_key: validator_key(i).public_key(),
                operational_key: k.public_key(),
                weight: 100 + i as u64,
                collateral: Amount(1_000),
                validation_key: Some(
                    gonka_primitives::VrfKey::from_seed(&(i as u64).to_be_bytes()).public_key(),
                ),
            })
            .collect(),
        developers: vec![],
        tokenomics: Default::default(),
    }
}

/// Applies one empty block and returns its apply time in µs.
fn block(state: &mut State) -> anyhow::Result<f64> {
    let header = state.next_header(validator_key(0).public_key(), state.meta.time_ms + 1_000, &[]);
    let started = Instant::now();
    state.apply_block(&Block { header, txs: Vec::new() }, &|_| false)?;
    Ok(started.elapsed().as_secs_f64() * 1e6)
}

/// (median ordinary block µs, settlement block µs) with `hosts` hosts.
fn measure(hosts: usize, baseline_blocks: u64) -> anyhow::Result<(f64, f64)> {
    let mut state = State::from_genesis(&genesis(hosts))?;
    let settle_at = settlement_height(&state, 0).ok_or_else(|| anyhow::anyhow!("no settlement height"))?;
    anyhow::ensure!(settle_at > baseline_blocks + 1, "the settlement comes before the baseline blocks");
    let mut ordinary = Vec::new();
    while state.height() + 1 < settle_at {
        let micros = block(&mut state)?;
        if state.height() + baseline_blocks >= settle_at {
            ordinary.push(micros);
        }
    }
    let settlement = block(&mut state)?;
    anyhow::ensure!(state.rewards.totals().last_settled == Some(0), "epoch 0 did not settle");
    state.check_invariants()?;
    ordinary.sort_by(f64::total_cmp);
    Ok((percentile(&ordinary, 0.5), settlement))
}

#[allow(clippy::print_stdout)]
pub(crate) fn economy_bench(args: &EconomyArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for &hosts in &args.participants {
        let (ordinary, settlement) = measure(hosts, args.baseline_blocks)?;
        let per_participant = (settlement - ordinary).max(0.0) / hosts as f64;
        rows.push(json!({
            "participants": hosts,
            "ordinary_block_us": ordinary,
            "settlement_block_us": settlement,
            "ratio": settlement / ordinary,
            "per_participant_us": per_participant,
        }));
        if !args.json {
            println!(
                "{hosts:>5} participants: settlement block {:.0} µs vs ordinary block {:.0} µs (median of {}) = {:.1}×; {:.1} µs per participant",
                settlement,
                ordinary,
                args.baseline_blocks,
                settlement / ordinary,
                per_participant
            );
        }
    }
    if args.json {
        println!("{}", json!({ "settlement": rows }));
    }
    Ok(())
}
