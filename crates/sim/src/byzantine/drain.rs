//! `drain-balance`: a developer funded for exactly one request's escrow that fires several requests at
//! once at different transfer agents and, in the same instant, sends its whole balance away. Each TA
//! checks the committed balance, which covers one escrow, admits, starts and forwards; the executors
//! serve; the Starts fail for want of funds and the Finishes charge `min(cost, 0)` — answers for free, a
//! known violation (issue 12 reserves pending escrow).

use gonka_primitives::AccountKey;

/// Requests a drainer fires at once.
pub const BURST: usize = 6;

/// A draining developer.
#[derive(Debug, Clone)]
pub struct Drainer {
    /// Its key.
    pub key: AccountKey,
    /// The height at which it fires.
    pub fire_at: u64,
    /// Whether it fired.
    pub fired: bool,
}
