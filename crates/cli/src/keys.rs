//! `gonka keys …`: account keys in a keyring directory (`HOME/keys` or `--keyring-dir`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use gonka_node::keyring::{KeyFile, Keyring};
use gonka_primitives::AccountKey;
use serde_json::json;

use crate::OutputFormat;

/// Where keys live and how to unlock them.
#[derive(Args, Debug, Clone)]
pub(crate) struct KeyringArgs {
    /// Node home; its keyring is `HOME/keys`.
    #[arg(long, env = "GONKA_NODE_HOME", default_value_os_t = default_node_home())]
    pub home: PathBuf,
    /// Use this keyring directory instead of `HOME/keys` (e.g. the devnet's `DIR/keys`).
    #[arg(long)]
    pub keyring_dir: Option<PathBuf>,
    /// File holding the passphrase of encrypted keys (else the GONKA_PASSPHRASE variable).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

/// `~/.gonka`, the default node home.
pub(crate) fn default_node_home() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from(".")).join(".gonka")
}

impl KeyringArgs {
    pub(crate) fn keyring(&self) -> Keyring {
        Keyring::new(self.keyring_dir.clone().unwrap_or_else(|| self.home.join("keys")))
    }

    pub(crate) fn passphrase(&self) -> anyhow::Result<Option<String>> {
        if let Some(path) = &self.passphrase_file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
        }
        Ok(std::env::var("GONKA_PASSPHRASE").ok().filter(|p| !p.is_empty()))
    }

    /// Loads a key by name.
    pub(crate) fn load(&self, name: &str) -> anyhow::Result<AccountKey> {
        Ok(self.keyring().load(name, self.passphrase()?.as_deref())?)
    }
}

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Create a new key (encrypted when a passphrase is given).
    Add {
        /// Key name.
        name: String,
        #[command(flatten)]
        keyring: KeyringArgs,
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: OutputFormat,
    },
    /// List keys.
    List {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: OutputFormat,
    },
    /// Show a key's address and public key.
    Show {
        /// Key name.
        name: String,
        #[command(flatten)]
        keyring: KeyringArgs,
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: OutputFormat,
    },
    /// Print a key's secret in hex (keep it safe: anyone holding it controls the account).
    Export {
        /// Key name.
        name: String,
        #[command(flatten)]
        keyring: KeyringArgs,
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: OutputFormat,
    },
    /// Import a key from its hex secret, read from a file or from standard input.
    Import {
        /// Key name.
        name: String,
        /// File holding the 64-hex-digit secret; `-` (default) reads standard input.
        #[arg(long, default_value = "-")]
        secret_file: String,
        #[command(flatten)]
        keyring: KeyringArgs,
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: OutputFormat,
    },
}

fn public_json(key: &KeyFile) -> serde_json::Value {
    json!({"name": key.name, "address": key.address, "public_key": key.public_key, "encrypted": key.encrypted.is_some()})
}

#[allow(clippy::print_stdout)]
fn print_key(key: &KeyFile, output: OutputFormat) {
    match output {
        OutputFormat::Json => println!("{}", public_json(key)),
        OutputFormat::Text => println!("{}\t{}\t{}", key.name, key.address, key.public_key),
    }
}

#[allow(clippy::print_stdout)]
pub(crate) fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Add { name, keyring, output } => {
            let key = AccountKey::generate();
            let file = keyring.keyring().add(&name, &key, keyring.passphrase()?.as_deref())?;
            print_key(&file, output);
        }
        KeysCommand::List { keyring, output } => {
            let keys = keyring.keyring().list()?;
            match output {
                OutputFormat::Json => println!("{}", json!(keys.iter().map(public_json).collect::<Vec<_>>())),
                OutputFormat::Text => keys.iter().for_each(|k| print_key(k, output)),
            }
        }
        KeysCommand::Show { name, keyring, output } => print_key(&keyring.keyring().show(&name)?, output),
        KeysCommand::Export { name, keyring, output } => {
            let key = keyring.load(&name)?;
            let secret = hex::encode(key.secret_bytes());
            match output {
                OutputFormat::Json => {
                    println!("{}", json!({"name": name, "address": key.address(), "secret": secret}));
                }
                OutputFormat::Text => println!("{secret}"),
            }
        }
        KeysCommand::Import { name, secret_file, keyring, output } => {
            let text = if secret_file == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading the secret from standard input")?
            } else {
                std::fs::read_to_string(&secret_file).with_context(|| format!("reading {secret_file}"))?
            };
            let mut secret = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut secret).context("the secret must be 64 hex digits")?;
            let key = AccountKey::from_secret_bytes(&secret).context("not a valid secp256k1 secret key")?;
            let file = keyring.keyring().add(&name, &key, keyring.passphrase()?.as_deref())?;
            print_key(&file, output);
        }
    }
    Ok(())
}
