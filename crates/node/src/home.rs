//! A host's home directory: config, genesis, keys and data.
//!
//! ```text
//! HOME/config.toml          listen addresses, peers, block interval, mempool bounds
//! HOME/genesis.json         the chain's genesis
//! HOME/validator_key.json   ed25519 consensus key (0600)
//! HOME/keys/NAME.json       account keys (0600): `host` (the host's account), `host-ops` (operational)
//! HOME/data/chain.redb      blocks and state
//! HOME/data/consensus/      consensus write-ahead log
//! ```

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use gonka_chain::Genesis;
use gonka_primitives::{ValidatorKey, ValidatorPublicKey};
use serde::{Deserialize, Serialize};

use crate::host::PocConfig;
use crate::inference::InferenceConfig;
use crate::keyring::{Keyring, write_private_file};
use crate::mempool::MempoolLimits;

/// Name of the host's account key in its keyring.
pub const HOST_KEY: &str = "host";
/// Name of the host's operational key in its keyring.
pub const OPERATIONAL_KEY: &str = "host-ops";

/// `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Human name of the node, shown in status.
    pub moniker: String,
    /// REST API listen address.
    pub api_listen: SocketAddr,
    /// Consensus p2p listen address.
    pub p2p_listen: SocketAddr,
    /// Consensus peers: `IP:PORT` or `DNS-NAME:PORT` of other nodes' p2p addresses. One is enough:
    /// peer discovery finds the rest (`p2p_discovery`).
    #[serde(default)]
    pub p2p_peers: Vec<String>,
    /// Learn more consensus peers from the connected ones (Malachite's discovery).
    #[serde(default = "enabled")]
    pub p2p_discovery: bool,
    /// REST base URLs of peers, for transaction gossip; every registered host's API URL is added to
    /// them as the chain names it.
    #[serde(default)]
    pub gossip_peers: Vec<String>,
    /// Target interval between blocks.
    pub block_interval_ms: u64,
    /// Mempool bounds.
    #[serde(default)]
    pub mempool: MempoolLimits,
    /// Proof-of-Compute sprints and validation.
    #[serde(default)]
    pub poc: PocConfig,
    /// Serving inference as transfer agent and executor.
    #[serde(default)]
    pub inference: InferenceConfig,
}

fn enabled() -> bool {
    true
}

/// `validator_key.json`.
#[derive(Serialize, Deserialize)]
struct ValidatorKeyFile {
    public_key: ValidatorPublicKey,
    secret: String,
}

/// Paths inside a home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// Root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `genesis.json`.
    pub fn genesis_path(&self) -> PathBuf {
        self.root.join("genesis.json")
    }

    /// The account keyring.
    pub fn keyring(&self) -> Keyring {
        Keyring::new(self.root.join("keys"))
    }

    /// `data/`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Whether a config already exists here.
    pub fn is_initialized(&self) -> bool {
        self.config_path().exists()
    }

    /// Reads `config.toml`.
    pub fn config(&self) -> anyhow::Result<NodeConfig> {
        let path = self.config_path();
        let text = fs::read_to_string(&path)
            .with_context(|| format!("reading {} (run `gonka init` first)", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes `config.toml`.
    pub fn write_config(&self, config: &NodeConfig) -> anyhow::Result<()> {
        fs::create_dir_all(&self.root)?;
        fs::write(self.config_path(), toml::to_string_pretty(config)?)?;
        Ok(())
    }

    /// Reads `genesis.json`.
    pub fn genesis(&self) -> anyhow::Result<Genesis> {
        let path = self.genesis_path();
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes `genesis.json`.
    pub fn write_genesis(&self, genesis: &Genesis) -> anyhow::Result<()> {
        fs::create_dir_all(&self.root)?;
        fs::write(self.genesis_path(), serde_json::to_string_pretty(genesis)?)?;
        Ok(())
    }

    /// Reads the consensus key.
    pub fn validator_key(&self) -> anyhow::Result<ValidatorKey> {
        let path = self.root.join("validator_key.json");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let file: ValidatorKeyFile =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(&file.secret, &mut secret)
            .with_context(|| format!("{}: secret is not 32 hex bytes", path.display()))?;
        let key = ValidatorKey::from_secret_bytes(secret);
        anyhow::ensure!(
            key.public_key() == file.public_key,
            "{}: secret does not match public key",
            path.display()
        );
        Ok(key)
    }

    /// Creates and stores a consensus key; refuses to overwrite one.
    pub fn create_validator_key(&self) -> anyhow::Result<ValidatorKey> {
        let path = self.root.join("validator_key.json");
        anyhow::ensure!(!path.exists(), "{} already exists", path.display());
        fs::create_dir_all(&self.root)?;
        let key = ValidatorKey::generate();
        let file = ValidatorKeyFile { public_key: key.public_key(), secret: hex::encode(key.secret_bytes()) };
        write_private_file(&path, serde_json::to_string_pretty(&file)?.as_bytes())?;
        Ok(key)
    }
}
