//! The parameters and who may change them (`docs/spec/chain.md` §8.3). Until on-chain governance
//! exists, one genesis authority may replace all parameters at once with `UpdateParams`; the
//! parameters are validated before they apply, and a failed transaction undoes the change like any
//! other write.

use gonka_primitives::Address;

use crate::event::Event;
use crate::genesis::Genesis;
use crate::module::{InvariantViolation, Module, TxContext};
use crate::params::Params;
use crate::state::{GenesisError, State};
use crate::table::Item;

messages! {
    /// Messages of the parameter authority.
    pub enum AuthorityMsg {
        /// Replace all parameters; only the genesis authority may send it.
        0 => UpdateParams("update_params", account) {
            /// The new parameters, validated before they apply (boxed: they are the largest message).
            params: Box<Params>,
        },
    }
}

/// Why a parameter update is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// Only the genesis authority may do this.
    #[error("only the parameter authority may update params")]
    NotAuthority,
    /// The new parameters are out of range.
    #[error("invalid params: {0}")]
    InvalidParams(String),
}

tables! {
    /// The authority's state.
    pub struct Authority {
        /// The parameters in force, set at genesis.
        params: Item<Params> = 1,
    }
}

impl Authority {
    /// The parameters in force.
    pub fn params(&self) -> &Params {
        self.params.get().expect("params are set at genesis and never removed")
    }

    /// The account allowed to change them.
    pub fn authority(&self) -> Address {
        self.params().authority
    }
}

impl Module for Authority {
    const ID: u8 = 3;
    const NAME: &'static str = "authority";
    type Msg = AuthorityMsg;
    type Error = AuthorityError;

    fn init_genesis(state: &mut State, genesis: &Genesis) -> Result<(), GenesisError> {
        genesis.params.validate()?;
        state.authority.params.set(genesis.params.clone());
        Ok(())
    }

    fn check(state: &State, tx: &TxContext, msg: &AuthorityMsg) -> Result<(), AuthorityError> {
        let AuthorityMsg::UpdateParams { params } = msg;
        params.validate().map_err(|e| AuthorityError::InvalidParams(e.to_string()))?;
        if tx.sender != state.authority.authority() {
            return Err(AuthorityError::NotAuthority);
        }
        Ok(())
    }

    fn apply(state: &mut State, _tx: &TxContext, msg: &AuthorityMsg) -> Result<Vec<Event>, AuthorityError> {
        let AuthorityMsg::UpdateParams { params } = msg;
        state.authority.params.set((**params).clone());
        Ok(vec![Event::new("params_updated").with("authority", params.authority)])
    }

    fn check_invariants(state: &State) -> Result<(), InvariantViolation> {
        match state.authority.params.get() {
            Some(params) => {
                params.validate().map_err(|e| InvariantViolation::new("params_valid", e.to_string()))
            }
            None => Err(InvariantViolation::new("params_valid", "no params stored")),
        }
    }
}
