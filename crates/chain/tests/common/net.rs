//! A 4-host chain with one priced model, for scenarios of paid inference, validation and the economy:
//! requests through host 0, Finishes by the drawn executor, verdicts with VRF proofs, votes, and the
//! epoch-0 seeds the hosts committed at genesis.

use gonka_chain::validation::{SELECTION_CONTEXT, selection_message, selects};
use gonka_chain::{
    Failure, Genesis, GenesisAccount, GenesisParticipant, InferenceMsg, InferenceStatus, Msg, RequestTerms,
    SignedRequest, State, Tx, TxResult, ValidationMsg, Verdict, inference,
};
use gonka_primitives::{AccountKey, AccountSignature, Amount, Hash, VrfKey, VrfProof};

use super::{host, model, participant, priced_params};

pub const CHAIN: &str = "gonka-validation-test";
pub const PRICE: u128 = 10;
pub const HOSTS: usize = 4;
pub const FUNDS: u128 = 1_000_000;

pub fn developer() -> AccountKey {
    AccountKey::from_seed(b"developer")
}

/// Host `i`'s secret epoch-0 seed (revealed by its claim).
pub fn seed(i: usize) -> AccountSignature {
    AccountSignature([u8::try_from(i + 1).expect("a small index"); 64])
}

/// Host `i`'s epoch-0 validation key (what genesis commits for it).
pub fn key(i: usize) -> VrfKey {
    VrfKey::from_seed(&seed(i).0)
}

pub fn genesis() -> Genesis {
    let params = priced_params(PRICE);
    let mut accounts: Vec<GenesisAccount> =
        (0..HOSTS).map(|i| GenesisAccount { address: host(i).address(), balance: Amount(1_000) }).collect();
    accounts.push(GenesisAccount { address: developer().address(), balance: Amount(FUNDS) });
    Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: 1_000_000,
        params,
        accounts,
        participants: (0..HOSTS)
            .map(|i| GenesisParticipant { validation_key: Some(key(i).public_key()), ..participant(i, 100) })
            .collect(),
        developers: vec![developer().address()],
        tokenomics: Default::default(),
    }
}

pub struct Net {
    pub state: State,
    pub requests: u64,
}

impl Net {
    pub fn new() -> Net {
        Net::from_genesis(&genesis())
    }

    pub fn from_genesis(genesis: &Genesis) -> Net {
        let mut net = Net { state: State::from_genesis(genesis).unwrap(), requests: 0 };
        net.block(&[]);
        net
    }

    pub fn block(&mut self, txs: &[Tx]) -> Vec<TxResult> {
        super::apply_block(&mut self.state, txs)
    }

    pub fn deliver(&mut self, from: usize, msg: Msg) -> Result<(), String> {
        let tx = Tx::new(CHAIN, &host(from), self.sequence(from), vec![msg]);
        let result = self.block(&[tx]).remove(0);
        if result.ok { Ok(()) } else { Err(result.error.unwrap_or_default()) }
    }

    /// Host `from`'s next sequence (a transaction that could not pay its fee did not use one).
    pub fn sequence(&self, from: usize) -> u64 {
        self.state.account(&host(from).address()).sequence
    }

    pub fn index_of(&self, address: gonka_primitives::Address) -> usize {
        (0..HOSTS).find(|&i| host(i).address() == address).unwrap()
    }

    /// A finished answer (Start by host 0, then the executor's Finish of 20 + 12 tokens) that host
    /// `validator` is selected to validate, with that host's proof. Requests nobody would be selected for
    /// are skipped before they are sent, so no other answer exists.
    pub fn finished_and_selected(&mut self) -> (Hash, usize, usize, VrfProof) {
        self.finished_by(None)
    }

    /// [`Net::finished_and_selected`], drawn to `only` when given.
    pub fn finished_by(&mut self, only: Option<usize>) -> (Hash, usize, usize, VrfProof) {
        loop {
            self.requests += 1;
            let request = self.request(&format!("question {}", self.requests));
            let id = request.id();
            let executor = self.index_of(inference::executor_for(&self.state, &id).unwrap());
            if only.is_some_and(|only| only != executor) {
                continue;
            }
            let Some((validator, proof)) = self.selected(&id, executor) else { continue };
            self.start(request, executor);
            self.deliver(executor, finish(request, executor)).unwrap();
            return (id, executor, validator, proof);
        }
    }

    /// Host 0's Start of `request` (20 prompt tokens), naming `executor`.
    pub fn start(&mut self, request: SignedRequest, executor: usize) {
        let start = InferenceMsg::Start { request, executor: host(executor).address(), prompt_tokens: 20 };
        self.deliver(0, start.into()).unwrap();
    }

    /// A request for `body` through host 0, at the chain's time, for up to 50 tokens.
    pub fn request(&self, body: &str) -> SignedRequest {
        let terms = RequestTerms {
            transfer_agent: host(0).address(),
            body_hash: Hash::digest(body.as_bytes()),
            body_len: body.len() as u32,
            timestamp_ns: self.state.meta.time_ms * 1_000_000,
            model: model(),
            max_tokens: 50,
            // Twice the price: the fixed test price is always within the bound.
            max_price_per_token: Amount(2 * PRICE),
        };
        SignedRequest::sign(&developer(), CHAIN, terms)
    }

    /// The first host selected to validate `id` (of `executor`), and its proof.
    pub fn selected(&self, id: &Hash, executor: usize) -> Option<(usize, VrfProof)> {
        (0..HOSTS).filter(|&i| i != executor).find_map(|i| {
            let (output, proof) = key(i).prove(SELECTION_CONTEXT, &selection_message(CHAIN, 0, id));
            selects(&self.state, 0, &host(executor).address(), &host(i).address(), output)
                .then_some((i, proof))
        })
    }

    pub fn validate(
        &mut self,
        validator: usize,
        id: Hash,
        proof: VrfProof,
        verdict: Verdict,
    ) -> Result<(), String> {
        self.deliver(validator, ValidationMsg::Validate { inference: id, proof, verdict }.into())
    }

    pub fn vote(&mut self, voter: usize, id: Hash, valid: bool) -> Result<(), String> {
        self.deliver(voter, ValidationMsg::Vote { inference: id, valid }.into())
    }

    pub fn status(&self, id: &Hash) -> InferenceStatus {
        self.state.inference.record(id).unwrap().status
    }

    pub fn owed(&self, i: usize) -> u128 {
        super::earned(&self.state, &host(i).address())
    }

    pub fn balance(&self) -> u128 {
        self.state.account(&developer().address()).balance.0
    }

    /// Blocks until the fee of `id` has settled.
    pub fn settle(&mut self, id: &Hash) {
        while !self.state.inference.record(id).unwrap().fee_settled {
            self.block(&[]);
        }
        assert_eq!(self.state.check_invariants(), Ok(()));
    }
}

pub fn pass() -> Verdict {
    Verdict {
        failure: Failure::None,
        distance_ppm: 0,
        replay_mismatches: 0,
        prompt_tokens: 20,
        completion_tokens: 12,
    }
}

/// Host `executor`'s Finish of `request` (forwarded by host 0): 20 + 12 tokens.
pub fn finish(request: SignedRequest, executor: usize) -> Msg {
    let forward = inference::forward_message(CHAIN, &request.id(), &host(executor).address(), 50);
    InferenceMsg::Finish {
        request,
        ta_signature: host(0).sign_recoverable(&forward),
        prompt_tokens: 20,
        cached_tokens: 0,
        completion_tokens: 12,
        response_hash: Hash::digest(b"answer"),
        seed: 7,
        logprobs_hash: Hash::digest(b"record"),
    }
    .into()
}

pub fn fail() -> Verdict {
    Verdict { failure: Failure::Replay, replay_mismatches: 3, ..pass() }
}

/// The other hosts than `a` and `b`, in order.
pub fn others(a: usize, b: usize) -> Vec<usize> {
    (0..HOSTS).filter(|&i| i != a && i != b).collect()
}

impl Net {
    /// Answers until `count` of `cheater`'s are invalidated by a failing verdict and a second vote.
    pub fn invalidate(&mut self, cheater: usize, count: usize) {
        let mut invalidated = 0;
        while invalidated < count {
            let (id, executor, validator, proof) = self.finished_by(Some(cheater));
            self.validate(validator, id, proof, fail()).unwrap();
            self.vote(others(executor, validator)[0], id, false).unwrap();
            invalidated += 1;
        }
    }
}
