//! Money (`docs/spec/chain.md` §8.1): spendable balances, holds and the supply.
//!
//! Every ngonka is either in an account's spendable balance or in a [`Hold`]: an escrow of a started
//! inference, the fees owed to a host (and, as later mechanisms land, vesting, collateral, unbonding
//! and module pools). Money moves only through the functions here, each of which moves an amount from
//! one place to another ([`Bank::transfer`], [`Bank::escrow`], [`Bank::release`], [`Bank::transfer_held`])
//! or changes the supply with it ([`Bank::mint`], [`Bank::burn`]). They keep running totals, so
//!
//! ```text
//! supply = Σ balances + Σ holds
//! ```
//!
//! is checked in O(1) after every block ([`Bank::check_supply`]), and recounted from the rows in
//! O(state) when the store is loaded and after every simulated block ([`Bank::recount`]).
//!
//! A shortfall in a spendable balance is the sender's problem ([`BankError::InsufficientFunds`]); a
//! shortfall in a hold, or a total that overflows, means the state is wrong
//! ([`BankError::Invariant`]) and stops the node.

mod msg;

use gonka_primitives::{Address, Amount, Hash, codec_struct};
use serde::{Deserialize, Serialize};

pub use msg::{BankError, BankMsg};

use crate::event::Event;
use crate::genesis::Genesis;
use crate::module::{InvariantViolation, Module, TxContext};
use crate::state::{GenesisError, State};
use crate::table::{Item, Table};

/// An account: spendable balance and the sequence its next transaction must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Account {
    /// Spendable balance in ngonka.
    pub balance: Amount,
    /// Number of transactions included so far.
    pub sequence: u64,
}
codec_struct!(Account { balance, sequence });

/// Money that belongs to someone but cannot be spent by them (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// The escrow of a started inference, by inference id: the requester's until settled.
    Escrow(Hash),
    /// Fees a host earned as executor or validator for answers of an epoch, until that epoch is settled
    /// (`docs/spec/economy.md` §3): `Owed(epoch, host)`.
    Owed(u64, Address),
    /// A host's collateral: what vouches for the requests it forwards as transfer agent
    /// (`docs/spec/inference.md` §4.1) and, later, what slashing takes.
    Collateral(Address),
    /// Collateral a host withdrew, still answerable for what it vouched for until released.
    Unbonding(Address),
    /// The fee of a finished inference, by id, until its validation is over: then it is shared out to
    /// the executor and its validators, or refunded (`docs/spec/validation.md` §5.3).
    Fee(Hash),
    /// A host's settled work and reward coins of one epoch, until it claims them (or they are burned at
    /// the next settlement) (`docs/spec/economy.md` §4).
    Settled(Address),
    /// Coins a host claimed that vest over the coming settlements (`docs/spec/economy.md` §5).
    Vesting(Address),
}

impl gonka_primitives::codec::Encode for Hold {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Hold::Escrow(id) => {
                out.push(0);
                id.encode(out);
            }
            Hold::Owed(epoch, host) => {
                out.push(1);
                epoch.encode(out);
                host.encode(out);
            }
            Hold::Collateral(host) => {
                out.push(2);
                host.encode(out);
            }
            Hold::Unbonding(host) => {
                out.push(3);
                host.encode(out);
            }
            Hold::Fee(id) => {
                out.push(4);
                id.encode(out);
            }
            Hold::Settled(host) => {
                out.push(5);
                host.encode(out);
            }
            Hold::Vesting(host) => {
                out.push(6);
                host.encode(out);
            }
        }
    }
}

impl gonka_primitives::codec::Decode for Hold {
    fn decode(
        reader: &mut gonka_primitives::codec::Reader<'_>,
    ) -> Result<Self, gonka_primitives::codec::DecodeError> {
        match <u8 as gonka_primitives::codec::Decode>::decode(reader)? {
            0 => Ok(Hold::Escrow(gonka_primitives::codec::Decode::decode(reader)?)),
            1 => Ok(Hold::Owed(
                gonka_primitives::codec::Decode::decode(reader)?,
                gonka_primitives::codec::Decode::decode(reader)?,
            )),
            2 => Ok(Hold::Collateral(gonka_primitives::codec::Decode::decode(reader)?)),
            3 => Ok(Hold::Unbonding(gonka_primitives::codec::Decode::decode(reader)?)),
            4 => Ok(Hold::Fee(gonka_primitives::codec::Decode::decode(reader)?)),
            5 => Ok(Hold::Settled(gonka_primitives::codec::Decode::decode(reader)?)),
            6 => Ok(Hold::Vesting(gonka_primitives::codec::Decode::decode(reader)?)),
            tag => Err(gonka_primitives::codec::DecodeError::InvalidTag { what: "hold", tag }),
        }
    }
}

/// The supply and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Supply {
    /// Every ngonka that exists.
    pub total: Amount,
    /// Σ spendable balances.
    pub balances: Amount,
    /// Σ holds.
    pub held: Amount,
}
codec_struct!(Supply { total, balances, held });

tables! {
    /// The bank's state. Its tables are private: only the functions below change them.
    pub struct Bank {
        /// Accounts that ever received funds, by address.
        accounts: Table<Address, Account> = 1,
        /// Non-zero holds.
        holds: Table<Hold, Amount> = 2,
        /// The running totals.
        supply: Item<Supply> = 3,
    }
}

/// Where an amount is taken from or put: a spendable balance or a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Balance(Address),
    Held(Hold),
}

fn overflow(what: &str) -> BankError {
    BankError::Invariant(InvariantViolation::new("supply_conserved", format!("{what} overflows u128")))
}

impl Bank {
    /// The account at `address`, or an empty one.
    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    /// Whether `address` ever received funds (only such accounts may send transactions).
    pub fn has_account(&self, address: &Address) -> bool {
        self.accounts.contains_key(address)
    }

    /// The spendable balance of `address`.
    pub fn balance(&self, address: &Address) -> Amount {
        self.account(address).balance
    }

    /// Every account, in address order.
    pub fn accounts(&self) -> &Table<Address, Account> {
        &self.accounts
    }

    /// What `hold` contains.
    pub fn held(&self, hold: &Hold) -> Amount {
        self.holds.get(hold).copied().unwrap_or(Amount::ZERO)
    }

    /// Every non-zero hold, in order.
    pub fn holds(&self) -> &Table<Hold, Amount> {
        &self.holds
    }

    /// The supply and its running totals.
    pub fn supply(&self) -> Supply {
        self.supply.get().copied().unwrap_or_default()
    }

    /// Advances `address`'s sequence (the transaction layer, after authenticating a transaction).
    pub(crate) fn bump_sequence(&mut self, address: &Address) {
        self.accounts.update(address, |a| a.sequence += 1);
    }

    /// Moves `amount` from `from`'s balance to `to`'s.
    pub fn transfer(&mut self, from: Address, to: Address, amount: Amount) -> Result<(), BankError> {
        self.move_amount(Place::Balance(from), Place::Balance(to), amount)
    }

    /// Moves `amount` from `from`'s balance into `hold`.
    pub fn escrow(&mut self, from: Address, hold: Hold, amount: Amount) -> Result<(), BankError> {
        self.move_amount(Place::Balance(from), Place::Held(hold), amount)
    }

    /// Moves `amount` out of `hold` into `to`'s balance.
    pub fn release(&mut self, hold: Hold, to: Address, amount: Amount) -> Result<(), BankError> {
        self.move_amount(Place::Held(hold), Place::Balance(to), amount)
    }

    /// Moves `amount` from one hold to another (an escrow paying a host's fee).
    pub fn transfer_held(&mut self, from: Hold, to: Hold, amount: Amount) -> Result<(), BankError> {
        self.move_amount(Place::Held(from), Place::Held(to), amount)
    }

    /// Creates `amount` in `to`'s balance: the genesis supply only.
    pub fn mint(&mut self, to: Address, amount: Amount) -> Result<(), BankError> {
        self.mint_into(Place::Balance(to), amount)
    }

    /// Creates `amount` in `hold`. Only the subsidy step calls it (`docs/spec/economy.md` §2).
    pub fn mint_held(&mut self, hold: Hold, amount: Amount) -> Result<(), BankError> {
        self.mint_into(Place::Held(hold), amount)
    }

    /// Destroys `amount` from `from`'s balance.
    pub fn burn(&mut self, from: Address, amount: Amount) -> Result<(), BankError> {
        self.burn_from(Place::Balance(from), amount)
    }

    /// Destroys `amount` from `hold`: unclaimed or forfeited rewards, slashes (`docs/spec/economy.md`
    /// §2).
    pub fn burn_held(&mut self, hold: Hold, amount: Amount) -> Result<(), BankError> {
        self.burn_from(Place::Held(hold), amount)
    }

    fn mint_into(&mut self, to: Place, amount: Amount) -> Result<(), BankError> {
        // A zero hold is never stored; a zero genesis balance still opens the account.
        if amount == Amount::ZERO && matches!(to, Place::Held(_)) {
            return Ok(());
        }
        let mut supply = self.supply();
        supply.total = supply.total.checked_add(amount).ok_or_else(|| overflow("the supply"))?;
        self.supply.set(supply);
        self.credit(to, amount)
    }

    fn burn_from(&mut self, from: Place, amount: Amount) -> Result<(), BankError> {
        if amount == Amount::ZERO {
            return Ok(());
        }
        self.debit(from, amount)?;
        let mut supply = self.supply();
        supply.total = supply.total.checked_sub(amount).ok_or_else(|| overflow("the supply"))?;
        self.supply.set(supply);
        Ok(())
    }

    fn move_amount(&mut self, from: Place, to: Place, amount: Amount) -> Result<(), BankError> {
        if amount == Amount::ZERO {
            return Ok(());
        }
        // Debit first: a self-transfer then reads the debited balance and nets to zero.
        self.debit(from, amount)?;
        self.credit(to, amount)
    }

    /// Takes `amount` from one place; the totals follow.
    fn debit(&mut self, from: Place, amount: Amount) -> Result<(), BankError> {
        let mut supply = self.supply();
        match from {
            Place::Balance(address) => {
                let balance = self.balance(&address);
                let left = balance
                    .checked_sub(amount)
                    .ok_or(BankError::InsufficientFunds { balance, needed: amount })?;
                self.accounts.upsert(address, |a| a.balance = left);
                supply.balances = supply.balances.checked_sub(amount).ok_or_else(|| overflow("balances"))?;
            }
            Place::Held(hold) => {
                let held = self.held(&hold);
                let left = held.checked_sub(amount).ok_or_else(|| {
                    BankError::Invariant(InvariantViolation::new(
                        "holds_cover_their_releases",
                        format!("{hold:?} holds {held}, {amount} taken"),
                    ))
                })?;
                if left == Amount::ZERO {
                    self.holds.remove(&hold);
                } else {
                    self.holds.insert(hold, left);
                }
                supply.held = supply.held.checked_sub(amount).ok_or_else(|| overflow("holds"))?;
            }
        }
        self.supply.set(supply);
        Ok(())
    }

    /// Puts `amount` in one place; the totals follow.
    fn credit(&mut self, to: Place, amount: Amount) -> Result<(), BankError> {
        let mut supply = self.supply();
        match to {
            Place::Balance(address) => {
                let balance =
                    self.balance(&address).checked_add(amount).ok_or_else(|| overflow("a balance"))?;
                self.accounts.upsert(address, |a| a.balance = balance);
                supply.balances = supply.balances.checked_add(amount).ok_or_else(|| overflow("balances"))?;
            }
            Place::Held(hold) => {
                let held = self.held(&hold).checked_add(amount).ok_or_else(|| overflow("a hold"))?;
                self.holds.insert(hold, held);
                supply.held = supply.held.checked_add(amount).ok_or_else(|| overflow("holds"))?;
            }
        }
        self.supply.set(supply);
        Ok(())
    }

    /// `supply = Σ balances + Σ holds` from the running totals: O(1), after every block.
    pub fn check_supply(&self) -> Result<(), InvariantViolation> {
        let supply = self.supply();
        match supply.balances.checked_add(supply.held) {
            Some(sum) if sum == supply.total => Ok(()),
            _ => Err(InvariantViolation::new(
                "supply_conserved",
                format!("supply {} ≠ balances {} + held {}", supply.total, supply.balances, supply.held),
            )),
        }
    }

    /// The running totals against the rows themselves: O(state).
    pub fn recount(&self) -> Result<(), InvariantViolation> {
        let supply = self.supply();
        let balances: u128 = self.accounts.values().map(|a| a.balance.0).sum();
        let held: u128 = self.holds.values().map(|a| a.0).sum();
        if balances != supply.balances.0 || held != supply.held.0 {
            return Err(InvariantViolation::new(
                "supply_conserved",
                format!(
                    "rows hold balances {balances} and holds {held}; totals say {} and {}",
                    supply.balances, supply.held
                ),
            ));
        }
        if self.holds.values().any(|a| *a == Amount::ZERO) {
            return Err(InvariantViolation::new("supply_conserved", "a zero hold is stored"));
        }
        self.check_supply()
    }
}

impl Module for Bank {
    const ID: u8 = 1;
    const NAME: &'static str = "bank";
    type Msg = BankMsg;
    type Error = BankError;

    fn init_genesis(state: &mut State, genesis: &Genesis) -> Result<(), GenesisError> {
        let bank = &mut state.bank;
        for entry in &genesis.accounts {
            if bank.accounts.contains_key(&entry.address) {
                return Err(GenesisError::Invalid(format!("account {} listed twice", entry.address)));
            }
            // Genesis is the only place money appears without a mint rule: it is the initial supply.
            bank.mint(entry.address, entry.balance)
                .map_err(|_| GenesisError::Invalid("the genesis supply overflows".into()))?;
        }
        Ok(())
    }

    fn check(state: &State, tx: &TxContext, msg: &BankMsg) -> Result<(), BankError> {
        match msg {
            BankMsg::Send { amount, .. } if *amount == Amount::ZERO => Err(BankError::ZeroAmount),
            BankMsg::Send { amount, .. } => {
                let balance = state.bank.balance(&tx.sender);
                if balance < *amount {
                    return Err(BankError::InsufficientFunds { balance, needed: *amount });
                }
                Ok(())
            }
        }
    }

    fn debits(_state: &State, tx: &TxContext, msg: &BankMsg) -> Vec<(Address, Amount)> {
        match msg {
            BankMsg::Send { amount, .. } => vec![(tx.sender, *amount)],
        }
    }

    fn apply(state: &mut State, tx: &TxContext, msg: &BankMsg) -> Result<Vec<Event>, BankError> {
        match msg {
            BankMsg::Send { to, amount } => {
                state.bank.transfer(tx.sender, *to, *amount)?;
                Ok(vec![
                    Event::new("transfer").with("from", tx.sender).with("to", to).with("amount", amount.0),
                ])
            }
        }
    }

    fn check_invariants(state: &State) -> Result<(), InvariantViolation> {
        state.bank.recount()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(byte: u8) -> Address {
        Address([byte; 20])
    }

    fn funded() -> Bank {
        let mut bank = Bank::default();
        bank.mint(address(1), Amount(1_000)).expect("mint");
        bank
    }

    #[test]
    fn every_move_keeps_supply_equal_to_balances_plus_holds() {
        let mut bank = funded();
        let escrow = Hold::Escrow(Hash([7; 32]));
        bank.transfer(address(1), address(2), Amount(300)).expect("transfer");
        bank.escrow(address(1), escrow, Amount(500)).expect("escrow");
        bank.transfer_held(escrow, Hold::Owed(0, address(3)), Amount(120)).expect("fee");
        bank.release(escrow, address(1), Amount(380)).expect("refund");
        assert_eq!(bank.held(&escrow), Amount::ZERO, "an empty hold leaves no row");
        assert_eq!(bank.held(&Hold::Owed(0, address(3))), Amount(120));
        bank.burn(address(2), Amount(100)).expect("burn");
        bank.mint_held(Hold::Settled(address(3)), Amount(50)).expect("subsidy");
        bank.burn_held(Hold::Settled(address(3)), Amount(20)).expect("unclaimed");
        assert_eq!(bank.supply().total, Amount(930));
        bank.recount().expect("totals match the rows");
    }

    #[test]
    fn a_short_balance_is_the_senders_error_and_a_short_hold_is_an_invariant() {
        let mut bank = funded();
        assert_eq!(
            bank.transfer(address(1), address(2), Amount(1_001)),
            Err(BankError::InsufficientFunds { balance: Amount(1_000), needed: Amount(1_001) })
        );
        let result = bank.release(Hold::Escrow(Hash([1; 32])), address(1), Amount(1));
        assert!(matches!(result, Err(BankError::Invariant(_))), "{result:?}");
        bank.recount().expect("nothing moved");
    }

    #[test]
    fn a_self_transfer_nets_to_zero() {
        let mut bank = funded();
        bank.transfer(address(1), address(1), Amount(400)).expect("self");
        assert_eq!(bank.balance(&address(1)), Amount(1_000));
        bank.recount().expect("totals");
    }
}
