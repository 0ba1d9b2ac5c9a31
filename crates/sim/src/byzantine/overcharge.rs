//! `overcharge`: as executor, reports the whole `max_tokens` the request reserved as completion
//! tokens, whatever it generated. The chain caps the charge at the escrow but cannot see inside the
//! answer, so it charges for tokens never served — a known violation (issue 12 binds receipts to
//! what the developer signed).

use super::{Byzantine, FinishReport};
use crate::config::ByzantineKind;

/// The overcharging executor.
#[derive(Debug)]
pub struct Overcharger;

impl Byzantine for Overcharger {
    fn kind(&self) -> ByzantineKind {
        ByzantineKind::Overcharge
    }

    fn finish(&mut self, report: &mut FinishReport) {
        report.completion_tokens = report.completion_tokens.max(report.max_tokens);
    }
}
