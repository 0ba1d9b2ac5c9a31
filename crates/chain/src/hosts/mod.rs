//! Hosts (`docs/spec/chain.md` §8.2): who is a host, its keys and URL, and its voting power.
//!
//! A host's power is genesis power until the first PoC, then the capped weight its PoC earned
//! (`poc` settles it as `next_weight` at the end of validation). This module applies it at the
//! epoch's SetNewValidators height (reference §2.3), remembering the previous power so executor
//! draws made just before the change stay valid for a grace period.

mod msg;

use std::collections::BTreeSet;

use gonka_primitives::{AccountPublicKey, Address, ValidatorPublicKey, codec_struct};
use serde::{Deserialize, Serialize};

pub use msg::{HostsError, HostsMsg};

use crate::event::Event;
use crate::genesis::Genesis;
use crate::module::{BlockContext, InvariantViolation, Module, TxContext};
use crate::state::{GenesisError, State};
use crate::table::{Item, Table};

/// A registered host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Public API base URL.
    pub api_url: String,
    /// The account's own public key: PoC nonces are bound to it (reference §3.3).
    pub account_key: AccountPublicKey,
    /// Ed25519 consensus key.
    pub validator_key: ValidatorPublicKey,
    /// Key allowed to sign routine messages for the host.
    pub operational_key: AccountPublicKey,
    /// Voting power: genesis power, then the capped PoC weight of the effective epoch.
    pub weight: u64,
    /// Accepted distinct nonces of the last settled PoC, before capping.
    pub poc_weight: u64,
    /// Voting power settled at the end of PoC validation, applied at SetNewValidators.
    pub next_weight: Option<u64>,
    /// Voting power before the last change (executor draws made just before it stay valid briefly).
    pub previous_weight: u64,
    /// Height at which the host registered (0 for genesis hosts).
    pub joined_height: u64,
}
codec_struct!(Participant {
    api_url,
    account_key,
    validator_key,
    operational_key,
    weight,
    poc_weight,
    next_weight,
    previous_weight,
    joined_height
});

tables! {
    /// The hosts' state.
    pub struct Hosts {
        /// Registered hosts by account.
        participants: Table<Address, Participant> = 1,
        /// Height of the last change of voting power.
        power_changed_height: Item<u64> = 2,
        /// The power every host held as each block that changed it began, by that block's height:
        /// draws made before a change stay valid against it for the grace period, however many
        /// changes follow within it (pruned once the grace is over).
        powers_before: Table<u64, Vec<(Address, u64)>> = 3,
    }
}

impl Hosts {
    /// Every registered host, in address order.
    pub fn participants(&self) -> &Table<Address, Participant> {
        &self.participants
    }

    /// The host at `address`.
    pub fn participant(&self, address: &Address) -> Option<&Participant> {
        self.participants.get(address)
    }

    /// Whether `address` is a registered host.
    pub fn is_host(&self, address: &Address) -> bool {
        self.participants.contains_key(address)
    }

    /// Hosts with positive voting power and their power, in address order.
    pub fn powers(&self) -> impl Iterator<Item = (Address, u64)> + Clone + '_ {
        self.participants.iter().filter(|(_, p)| p.weight > 0).map(|(a, p)| (*a, p.weight))
    }

    /// Hosts with positive power before the last change, in address order.
    pub fn previous_powers(&self) -> impl Iterator<Item = (Address, u64)> + Clone + '_ {
        self.participants.iter().filter(|(_, p)| p.previous_weight > 0).map(|(a, p)| (*a, p.previous_weight))
    }

    /// The powers that held before each change of power made at or after height `since`, oldest
    /// first (address order within each).
    pub fn powers_before_changes_since(&self, since: u64) -> impl Iterator<Item = &[(Address, u64)]> + '_ {
        self.powers_before.range(since..).map(|(_, powers)| powers.as_slice())
    }

    /// Σ voting power.
    pub fn total_power(&self) -> u128 {
        self.powers().map(|(_, w)| u128::from(w)).sum()
    }

    /// Height of the last change of voting power (0 before the first).
    pub fn power_changed_height(&self) -> u64 {
        self.power_changed_height.get().copied().unwrap_or(0)
    }

    /// Consensus validators: hosts with positive weight, sorted by key.
    pub fn validator_set(&self) -> Vec<(ValidatorPublicKey, u64)> {
        let mut set: Vec<_> = self
            .participants
            .values()
            .filter(|p| p.weight > 0)
            .map(|p| (p.validator_key, p.weight))
            .collect();
        set.sort();
        set
    }

    /// Records a settled PoC result: `poc_weight` (accepted nonces) and the power it gives from the
    /// next SetNewValidators.
    pub(crate) fn settle_poc_weight(&mut self, address: &Address, poc_weight: u64, next_power: u64) {
        self.participants.update(address, |p| {
            p.poc_weight = poc_weight;
            p.next_weight = Some(next_power);
        });
    }

    /// A host found INVALID (`docs/spec/validation.md` §6) leaves the validator set and the executor
    /// draw at once: its power, its confirmed PoC weight and any power settled for the next epoch go to
    /// zero. Everyone's power before this change stays the previous power, so draws made just before it
    /// stay valid for the grace period and answers already in flight can still be recorded.
    pub(crate) fn revoke_power(&mut self, address: &Address, height: u64) {
        let Some(host) = self.participants.get(address) else { return };
        if host.weight == 0 && host.poc_weight == 0 && host.next_weight.is_none_or(|w| w == 0) {
            return;
        }
        self.keep_previous_power(height);
        self.participants.update(address, |p| {
            p.weight = 0;
            p.poc_weight = 0;
            if p.next_weight.is_some() {
                p.next_weight = Some(0);
            }
        });
    }

    /// Before power changes in the block at `height`: everyone's power as the block began becomes the
    /// previous power, which draws made before the change are checked against for the grace period
    /// (`docs/spec/inference.md` §3). A second change in the same block (an epoch's new weights and a
    /// host made INVALID) keeps the snapshot the first one took: the draws made before the block are the
    /// ones in flight.
    fn keep_previous_power(&mut self, height: u64) {
        if self.power_changed_height.get().is_some_and(|&h| h == height) {
            return;
        }
        let before: Vec<(Address, u64)> = self.powers().collect();
        self.powers_before.insert(height, before);
        let addresses: Vec<Address> = self.participants.keys().copied().collect();
        for address in &addresses {
            self.participants.update(address, |p| p.previous_weight = p.weight);
        }
        self.power_changed_height.set(height);
    }

    /// SetNewValidators: settled weights become voting power.
    fn apply_next_weights(&mut self, epoch: u64, height: u64) -> Vec<Event> {
        let changed: Vec<Address> =
            self.participants.iter().filter(|(_, p)| p.next_weight.is_some()).map(|(a, _)| *a).collect();
        if changed.is_empty() {
            return Vec::new();
        }
        self.keep_previous_power(height);
        for address in &changed {
            self.participants.update(address, |p| {
                p.weight = p.next_weight.take().unwrap_or(p.weight);
            });
        }
        vec![
            Event::new("validators_updated")
                .with("epoch", epoch)
                .with("validators", self.validator_set().len()),
        ]
    }
}

/// A host URL: `http://` or `https://`, printable ASCII, within the length limit.
pub(crate) fn check_url(url: &str, max_bytes: u32) -> Result<(), HostsError> {
    if url.len() > max_bytes as usize {
        return Err(HostsError::InvalidUrl(format!("url longer than {max_bytes} bytes")));
    }
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && url.bytes().all(|b| b.is_ascii_graphic()) => Ok(()),
        _ => Err(HostsError::InvalidUrl(format!(
            "url must be http(s)://host[:port][/path] in printable ASCII, got {url:?}"
        ))),
    }
}

impl Module for Hosts {
    const ID: u8 = 2;
    const NAME: &'static str = "hosts";
    type Msg = HostsMsg;
    type Error = HostsError;

    fn init_genesis(state: &mut State, genesis: &Genesis) -> Result<(), GenesisError> {
        let invalid = |m: String| GenesisError::Invalid(m);
        let mut keys = BTreeSet::new();
        for p in &genesis.participants {
            if p.account_key.address() != p.address {
                return Err(invalid(format!(
                    "participant {}: account key does not match the address",
                    p.address
                )));
            }
            check_url(&p.api_url, genesis.params.limits.max_url_bytes).map_err(|e| invalid(e.to_string()))?;
            ValidatorPublicKey::from_bytes(p.validator_key.0).map_err(|e| invalid(e.to_string()))?;
            if !keys.insert(p.validator_key) {
                return Err(invalid(format!("validator key {} used twice", p.validator_key)));
            }
            if state.hosts.participants.contains_key(&p.address) {
                return Err(invalid(format!("participant {} listed twice", p.address)));
            }
            let participant = Participant {
                api_url: p.api_url.clone(),
                account_key: p.account_key,
                validator_key: p.validator_key,
                operational_key: p.operational_key,
                weight: p.weight,
                poc_weight: 0,
                next_weight: None,
                previous_weight: 0,
                joined_height: 0,
            };
            state.hosts.participants.insert(p.address, participant);
        }
        if state.hosts.total_power() == 0 {
            return Err(invalid("at least one participant needs a positive weight".into()));
        }
        Ok(())
    }

    fn check(state: &State, tx: &TxContext, msg: &HostsMsg) -> Result<(), HostsError> {
        let max_url = state.params().limits.max_url_bytes;
        match msg {
            HostsMsg::Register { api_url, validator_key, operational_key } => {
                check_url(api_url, max_url)?;
                ValidatorPublicKey::from_bytes(validator_key.0)
                    .map_err(|e| HostsError::InvalidKey(e.to_string()))?;
                AccountPublicKey::from_hex(&operational_key.to_string())
                    .map_err(|e| HostsError::InvalidKey(e.to_string()))?;
                let taken = state
                    .hosts
                    .participants
                    .iter()
                    .any(|(a, p)| *a != tx.sender && p.validator_key == *validator_key);
                if taken {
                    return Err(HostsError::DuplicateValidatorKey(*validator_key));
                }
                Ok(())
            }
            HostsMsg::UpdateUrl { api_url } => {
                check_url(api_url, max_url)?;
                if !state.hosts.is_host(&tx.sender) {
                    return Err(HostsError::NotAHost(tx.sender));
                }
                Ok(())
            }
        }
    }

    fn apply(state: &mut State, tx: &TxContext, msg: &HostsMsg) -> Result<Vec<Event>, HostsError> {
        let sender = tx.sender;
        match msg {
            HostsMsg::Register { api_url, validator_key, operational_key } => {
                let previous = state.hosts.participants.get(&sender).cloned();
                // Not routine, so the signer is the account's own key.
                let participant = Participant {
                    api_url: api_url.clone(),
                    account_key: tx.signer,
                    validator_key: *validator_key,
                    operational_key: *operational_key,
                    weight: previous.as_ref().map_or(0, |p| p.weight),
                    poc_weight: previous.as_ref().map_or(0, |p| p.poc_weight),
                    next_weight: previous.as_ref().and_then(|p| p.next_weight),
                    previous_weight: previous.as_ref().map_or(0, |p| p.previous_weight),
                    joined_height: previous.as_ref().map_or(tx.height, |p| p.joined_height),
                };
                state.hosts.participants.insert(sender, participant);
                Ok(vec![
                    Event::new("host_registered")
                        .with("address", sender)
                        .with("api_url", api_url)
                        .with("validator_key", validator_key),
                ])
            }
            HostsMsg::UpdateUrl { api_url } => {
                if !state.hosts.participants.update(&sender, |p| p.api_url = api_url.clone()) {
                    return Err(HostsError::NotAHost(sender));
                }
                Ok(vec![Event::new("host_url_updated").with("address", sender).with("api_url", api_url)])
            }
        }
    }

    fn end_block(state: &mut State, block: &BlockContext) -> Result<Vec<Event>, InvariantViolation> {
        // Power snapshots whose grace is over (`inference::draw::is_assigned`) go.
        let grace = state.params().inference.executor_grace_blocks;
        if let Some(before) = block.height.checked_sub(grace)
            && before > 0
        {
            state.hosts.powers_before.remove_range(..before);
        }
        let epoch = state.params().epoch;
        let index = epoch.poc_epoch_at(block.height);
        match epoch.stages(index) {
            Some(stages) if block.height == stages.set_new_validators => {
                Ok(state.hosts.apply_next_weights(index, block.height))
            }
            _ => Ok(Vec::new()),
        }
    }

    fn check_invariants(state: &State) -> Result<(), InvariantViolation> {
        let mut keys = BTreeSet::new();
        for (address, p) in state.hosts.participants.iter() {
            if !keys.insert(p.validator_key) {
                return Err(InvariantViolation::new(
                    "validator_keys_unique",
                    format!("{address} shares validator key {}", p.validator_key),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use gonka_primitives::{AccountKey, ValidatorKey};

    use super::*;

    fn hosts(weights: &[u64]) -> (Hosts, Vec<Address>) {
        let mut hosts = Hosts::default();
        let mut addresses = Vec::new();
        for (i, &weight) in weights.iter().enumerate() {
            let key = AccountKey::from_seed(&[i as u8]);
            hosts.participants.insert(
                key.address(),
                Participant {
                    api_url: String::new(),
                    account_key: key.public_key(),
                    validator_key: ValidatorKey::from_secret_bytes([i as u8 + 1; 32]).public_key(),
                    operational_key: key.public_key(),
                    weight,
                    poc_weight: weight,
                    next_weight: None,
                    previous_weight: 0,
                    joined_height: 0,
                },
            );
            addresses.push(key.address());
        }
        (hosts, addresses)
    }

    #[test]
    fn two_power_changes_in_one_block_keep_the_power_the_block_began_with() {
        // An epoch's new weights and a host made INVALID in the same block: draws made before the block
        // are checked against the power it began with, whichever change came second.
        let (mut hosts, addresses) = hosts(&[100, 200, 300]);
        let before: Vec<(Address, u64)> = hosts.powers().collect();
        for (address, next) in addresses.iter().zip([150, 150, 150]) {
            hosts.settle_poc_weight(address, next, next);
        }
        hosts.apply_next_weights(1, 10);
        hosts.revoke_power(&addresses[2], 10);
        assert_eq!(hosts.previous_powers().collect::<Vec<_>>(), before);
        assert_eq!(hosts.powers_before_changes_since(0).collect::<Vec<_>>(), vec![before.as_slice()]);
        assert_eq!(hosts.total_power(), 300);
        assert_eq!(hosts.power_changed_height(), 10);
        // A change in a later block snapshots the power as that block began.
        let now: Vec<(Address, u64)> = hosts.powers().collect();
        hosts.revoke_power(&addresses[1], 12);
        assert_eq!(hosts.previous_powers().collect::<Vec<_>>(), now);
        assert_eq!(hosts.power_changed_height(), 12);
        // Both snapshots stay until their grace is over: a draw made before block 10 is still valid.
        let kept: Vec<&[(Address, u64)]> = hosts.powers_before_changes_since(0).collect();
        assert_eq!(kept, vec![before.as_slice(), now.as_slice()]);
        assert_eq!(hosts.powers_before_changes_since(11).count(), 1);
    }
}
