//! Pure Proof-of-Compute math: model spec, seeded weights and inputs, distance, sampling, statistical tests.
//!
//! Proof of Compute (reference §3) races hosts at forward passes of a random Llama-style transformer whose
//! weights come from the PoC start block hash. A nonce is valid when its permuted, normalised output lies
//! within `r_target` of a common random target. This crate holds everything about that race that is a
//! pure function of its inputs: the [`ModelSpec`], the seeded generators ([`weights()`], [`nonce_input`],
//! [`nonce_permutation`], [`target`]), a plain-Rust reference [`forward_last`] that faster kernels are
//! measured against, the [`distance()`], the nonce partition ([`worker_nonces`]), the validators' sample
//! ([`validation_sample`]), the binomial fraud test ([`probability_honest`]) and power capping
//! ([`cap_power`]). It does no I/O, spawns no threads and reads no clock.
//!
//! Numbers: the generators and the reference forward pass are bit-exact on every IEEE-754 platform —
//! they use integer arithmetic, the basic float operations (`+ − × ÷ √`, correctly rounded by IEEE-754,
//! never fused) and this crate's own `exp`/`ln`/`sin`/`cos` built from those ([`detmath`]), never the
//! platform's libm. The binomial test and capping feed consensus and use only integers and
//! [`gonka_primitives::Decimal`].
#![deny(missing_docs)]

pub mod binomial;
pub mod capping;
pub mod claim;
pub mod detmath;
pub mod distance;
mod fixed;
pub mod forward;
pub mod nonce;
pub mod rng;
pub mod sample;
pub mod spec;
pub mod weights;

pub use binomial::{BinomialError, fraud_detected, probability_honest};
pub use capping::{CapError, cap_power, effective_max_share};
pub use claim::{Distance, MismatchRule, SampleCheck, check_claims};
pub use distance::{distance, hit_rate, nonce_distance};
pub use forward::{ComputeError, forward_last};
pub use nonce::{PartitionError, nonce_input, nonce_permutation, target, worker_nonces};
pub use rng::tensor_rng;
pub use sample::{sample_seed_message, validation_sample};
pub use spec::{ModelSpec, SpecError};
pub use weights::{LayerWeights, ModelWeights, Tensor, weights};
