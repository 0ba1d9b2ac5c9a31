//! Events: what a transaction or a block did, for indexers and for host logic that reacts to the chain.

use gonka_primitives::codec_struct;
use serde::{Deserialize, Serialize};

/// One event: a kind and ordered key/value attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened, e.g. `transfer`, `host_registered`, `phase_changed`.
    pub kind: String,
    /// Attributes in the order they were added.
    pub attributes: Vec<(String, String)>,
}
codec_struct!(Event { kind, attributes });

impl Event {
    /// An event with no attributes yet.
    pub fn new(kind: &str) -> Event {
        Event { kind: kind.to_string(), attributes: Vec::new() }
    }

    /// Adds an attribute.
    pub fn with(mut self, key: &str, value: impl std::fmt::Display) -> Event {
        self.attributes.push((key.to_string(), value.to_string()));
        self
    }

    /// The value of the first attribute named `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}
