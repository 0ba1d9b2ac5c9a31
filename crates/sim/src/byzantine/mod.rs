//! Byzantine hosts and developers, each an ordinary module implementing [`Byzantine`]: it sees what an
//! honest host would do and changes it (what the sprint found, the planner's actions, the receipts it
//! reports, extra transactions). Selected by name with `--byzantine KIND:COUNT`.

pub mod answers;
pub mod censor;
pub mod copy;
pub mod drain;
pub mod fabricate;
pub mod forge_ta;
pub mod overcharge;
pub mod surge;
pub mod tiny;
pub mod withhold;

use gonka_chain::State;
use gonka_host::poc::PocAction;
use gonka_poc::Distance;
use gonka_primitives::{AccountKey, AccountPublicKey, Address};

pub use drain::{BURST, Drainer};

use crate::config::ByzantineKind;
use crate::rng::SimRng;

/// What a Byzantine host sees of its situation.
pub struct HostView<'a> {
    /// Its committed state.
    pub state: &'a State,
    /// Its account.
    pub me: Address,
    /// Its account key.
    pub key: AccountPublicKey,
    /// The other hosts and their account keys, in host order.
    pub peers: &'a [(Address, AccountPublicKey)],
    /// Its compute speed (nonces per block).
    pub speed: u64,
    /// Its own random stream.
    pub rng: &'a mut SimRng,
}

/// A Finish the executor is about to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishReport {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Completion tokens.
    pub completion_tokens: u32,
    /// What the request reserved.
    pub max_tokens: u32,
}

/// A request a forging host sends straight to an executor.
pub struct Forged {
    /// The unfunded key that signed it.
    pub key: AccountKey,
    /// Its timestamp (ground until the draw names another host).
    pub timestamp_ns: u64,
    /// Its body.
    pub content: String,
}

/// A Byzantine host: every hook defaults to honest behaviour.
pub trait Byzantine {
    /// Its behaviour.
    fn kind(&self) -> ByzantineKind;

    /// What it claims its sprint found (`found`: what it really found, if it computes at all).
    fn found(&mut self, _view: &mut HostView<'_>, found: Vec<(u64, Distance)>) -> Vec<(u64, Distance)> {
        found
    }

    /// Whether it really computes (an honest sprint), or only claims.
    fn computes(&self) -> bool {
        true
    }

    /// How many times its drawn compute speed it races at (compute it rented).
    fn compute_factor(&self) -> u64 {
        1
    }

    /// What it does of the PoC planner's actions.
    fn poc_actions(&mut self, actions: Vec<PocAction>) -> Vec<PocAction> {
        actions
    }

    /// Transactions it streams into every other node's mempool this block (signed, encoded), before
    /// anyone else acts on the block.
    fn flood(&mut self, _view: &mut HostView<'_>) -> Vec<Vec<u8>> {
        Vec::new()
    }

    /// Whether its node refuses other hosts' transactions now.
    fn refuses_gossip(&self, _state: &State) -> bool {
        false
    }

    /// Changes the Finish it reports as executor.
    fn finish(&mut self, _report: &mut FinishReport) {}

    /// The answer it serves (and records) instead of the honest one, for a prompt, `max_tokens` and
    /// the request's seed; none: the honest one.
    fn answer(
        &mut self,
        _prompt: &[u32],
        _max_tokens: usize,
        _seed: u64,
        _honest: &crate::answers::Generated,
    ) -> Option<crate::answers::Generated> {
        None
    }

    /// Whether it hands its payloads to the hosts entitled to them.
    fn serves_payloads(&self) -> bool {
        true
    }

    /// Requests it forges this block.
    fn forge(&mut self, _view: &mut HostView<'_>, _now_ns: u64) -> Vec<Forged> {
        Vec::new()
    }

    /// Accounts it needs funded at genesis (a flood's senders).
    fn funded_accounts(&self) -> Vec<Address> {
        Vec::new()
    }
}

/// The host module for `kind` (None for developer behaviours), for host `index` of run `seed`.
pub fn host_module(kind: ByzantineKind, seed: u64, index: usize) -> Option<Box<dyn Byzantine>> {
    match kind {
        ByzantineKind::FabricatePoc => Some(Box::new(fabricate::Fabricator::default())),
        ByzantineKind::CopyPoc => Some(Box::new(copy::Copier::default())),
        ByzantineKind::TinyClaims => Some(Box::new(tiny::TinyClaimer::default())),
        ByzantineKind::WithholdVotes => Some(Box::new(withhold::Withholder)),
        ByzantineKind::ForgeTa => Some(Box::new(forge_ta::Forger::new(seed, index))),
        ByzantineKind::Overcharge => Some(Box::new(overcharge::Overcharger)),
        ByzantineKind::Censor => Some(Box::new(censor::Censor::new(seed, index))),
        ByzantineKind::Surge => Some(Box::new(surge::Surge)),
        ByzantineKind::SubstituteModel
        | ByzantineKind::Prefill
        | ByzantineKind::EditAnswer
        | ByzantineKind::WrongSeed
        | ByzantineKind::RefusePayload => Some(Box::new(answers::AnswerCheat::new(kind))),
        ByzantineKind::DrainBalance => None,
    }
}
