//! Account keys on disk: one JSON file per key under `HOME/keys/`, mode 0600, the secret either in
//! hex or encrypted with a passphrase (Argon2id → XChaCha20-Poly1305). Secrets never reach a log.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use gonka_primitives::{AccountKey, AccountPublicKey, Address};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

/// Why a keyring operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// Key names are 1–64 characters of `[A-Za-z0-9_-]`.
    #[error("invalid key name {0:?}: use 1-64 letters, digits, '-' or '_'")]
    InvalidName(String),
    /// A key with this name exists.
    #[error("key {0:?} already exists")]
    Exists(String),
    /// No key with this name.
    #[error("no key named {0:?}")]
    NotFound(String),
    /// The key is encrypted and no passphrase was given.
    #[error("key {0:?} is encrypted: give its passphrase (--passphrase-file or GONKA_PASSPHRASE)")]
    PassphraseNeeded(String),
    /// Wrong passphrase or tampered file.
    #[error("cannot decrypt key {0:?}: wrong passphrase or corrupted file")]
    Decrypt(String),
    /// The file does not hold a valid key.
    #[error("key file {0} is invalid: {1}")]
    Invalid(PathBuf, String),
    /// File system error.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// The stored form of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key name.
    pub name: String,
    /// Account address.
    pub address: Address,
    /// Compressed public key (hex).
    pub public_key: AccountPublicKey,
    /// Secret key in hex, when not encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Encrypted secret, when a passphrase was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<EncryptedSecret>,
}

/// A secret encrypted under a passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncryptedSecret {
    /// Always `argon2id+xchacha20poly1305`.
    pub scheme: String,
    /// Argon2 salt (hex).
    pub salt: String,
    /// XChaCha20 nonce (hex).
    pub nonce: String,
    /// Ciphertext with tag (hex).
    pub ciphertext: String,
}

/// A directory of key files.
pub struct Keyring {
    dir: PathBuf,
}

/// Writes `bytes` to `path` atomically with mode 0600 (the file is never readable by others, even
/// briefly). A stale temporary file (a crash mid-write, or one planted with wider permissions or as a
/// symlink) is removed first and the temporary is created exclusively, so the mode always applies and
/// the secret never goes through a file someone else chose (issue 12, item 13).
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    match fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    #[cfg(unix)]
    {
        // The process umask can only narrow 0600; say it anyway, so the rule does not rest on it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

fn derive_cipher(passphrase: &str, salt: &[u8]) -> Result<XChaCha20Poly1305, String> {
    let mut key = [0u8; 32];
    Argon2::default().hash_password_into(passphrase.as_bytes(), salt, &mut key).map_err(|e| e.to_string())?;
    Ok(XChaCha20Poly1305::new(&key.into()))
}

impl Keyring {
    /// The keyring in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Keyring {
        Keyring { dir }
    }

    fn path(&self, name: &str) -> Result<PathBuf, KeyringError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(KeyringError::InvalidName(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// Stores `key` under `name`, encrypted when `passphrase` is given. Refuses to overwrite.
    pub fn add(
        &self,
        name: &str,
        key: &AccountKey,
        passphrase: Option<&str>,
    ) -> Result<KeyFile, KeyringError> {
        let path = self.path(name)?;
        if path.exists() {
            return Err(KeyringError::Exists(name.to_string()));
        }
        let secret = key.secret_bytes();
        let (plain, encrypted) = match passphrase {
            None => (Some(hex::encode(secret)), None),
            Some(passphrase) => {
                let mut salt = [0u8; 16];
                let mut nonce = [0u8; 24];
                OsRng.fill_bytes(&mut salt);
                OsRng.fill_bytes(&mut nonce);
                let cipher =
                    derive_cipher(passphrase, &salt).map_err(|e| KeyringError::Invalid(path.clone(), e))?;
                let ciphertext = cipher
                    .encrypt(XNonce::from_slice(&nonce), secret.as_slice())
                    .map_err(|_| KeyringError::Invalid(path.clone(), "encryption failed".into()))?;
                let encrypted = EncryptedSecret {
                    scheme: "argon2id+xchacha20poly1305".into(),
                    salt: hex::encode(salt),
                    nonce: hex::encode(nonce),
                    ciphertext: hex::encode(ciphertext),
                };
                (None, Some(encrypted))
            }
        };
        let file = KeyFile {
            name: name.to_string(),
            address: key.address(),
            public_key: key.public_key(),
            secret: plain,
            encrypted,
        };
        fs::create_dir_all(&self.dir).map_err(|e| KeyringError::Io(self.dir.clone(), e))?;
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| KeyringError::Invalid(path.clone(), e.to_string()))?;
        write_private_file(&path, &json).map_err(|e| KeyringError::Io(path, e))?;
        Ok(file)
    }

    /// The stored (public) record of `name`.
    pub fn show(&self, name: &str) -> Result<KeyFile, KeyringError> {
        let path = self.path(name)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyringError::NotFound(name.to_string()));
            }
            Err(e) => return Err(KeyringError::Io(path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| KeyringError::Invalid(path, e.to_string()))
    }

    /// All keys, sorted by name.
    pub fn list(&self) -> Result<Vec<KeyFile>, KeyringError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeyringError::Io(self.dir.clone(), e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
            .collect();
        names.sort();
        names.iter().map(|n| self.show(n)).collect()
    }

    /// The secret key of `name`, decrypting it with `passphrase` when it is encrypted.
    pub fn load(&self, name: &str, passphrase: Option<&str>) -> Result<AccountKey, KeyringError> {
        let file = self.show(name)?;
        let path = self.path(name)?;
        let invalid = |m: &str| KeyringError::Invalid(path.clone(), m.to_string());
        let secret: Vec<u8> = match (&file.secret, &file.encrypted) {
            (Some(secret), _) => hex::decode(secret).map_err(|_| invalid("secret is not hex"))?,
            (None, Some(encrypted)) => {
                let passphrase =
                    passphrase.ok_or_else(|| KeyringError::PassphraseNeeded(name.to_string()))?;
                let salt = hex::decode(&encrypted.salt).map_err(|_| invalid("salt is not hex"))?;
                let nonce = hex::decode(&encrypted.nonce).map_err(|_| invalid("nonce is not hex"))?;
                let ciphertext =
                    hex::decode(&encrypted.ciphertext).map_err(|_| invalid("ciphertext is not hex"))?;
                if nonce.len() != 24 {
                    return Err(invalid("nonce must be 24 bytes"));
                }
                let cipher = derive_cipher(passphrase, &salt).map_err(|e| invalid(&e))?;
                cipher
                    .decrypt(XNonce::from_slice(&nonce), ciphertext.as_slice())
                    .map_err(|_| KeyringError::Decrypt(name.to_string()))?
            }
            (None, None) => return Err(invalid("no secret")),
        };
        let secret: [u8; 32] =
            secret.as_slice().try_into().map_err(|_| invalid("secret must be 32 bytes"))?;
        let key = AccountKey::from_secret_bytes(&secret).map_err(|e| invalid(&e.to_string()))?;
        if key.address() != file.address {
            return Err(invalid("secret does not match the stored address"));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_plain_and_encrypted_with_private_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keyring = Keyring::new(dir.path().join("keys"));
        let plain = AccountKey::from_seed(b"plain");
        let sealed = AccountKey::from_seed(b"sealed");
        keyring.add("plain", &plain, None).expect("add");
        keyring.add("sealed", &sealed, Some("hunter2")).expect("add");
        assert!(matches!(keyring.add("plain", &plain, None), Err(KeyringError::Exists(_))));
        assert!(matches!(keyring.add("../evil", &plain, None), Err(KeyringError::InvalidName(_))));
        assert_eq!(keyring.load("plain", None).expect("load").address(), plain.address());
        assert!(matches!(keyring.load("sealed", None), Err(KeyringError::PassphraseNeeded(_))));
        assert!(matches!(keyring.load("sealed", Some("wrong")), Err(KeyringError::Decrypt(_))));
        assert_eq!(keyring.load("sealed", Some("hunter2")).expect("load").address(), sealed.address());
        let sealed_file = fs::read_to_string(dir.path().join("keys/sealed.json")).expect("read");
        assert!(!sealed_file.contains(&hex::encode(sealed.secret_bytes())));
        let names: Vec<String> = keyring.list().expect("list").into_iter().map(|k| k.name).collect();
        assert_eq!(names, ["plain", "sealed"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("keys/plain.json")).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_stale_temporary_file_cannot_widen_a_key_files_mode_or_capture_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.json");
        let temporary = dir.path().join("key.tmp");
        fs::write(&temporary, b"stale").expect("plant");
        fs::set_permissions(&temporary, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private_file(&path, b"secret").expect("write");
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).expect("read"), b"secret");

        // A temporary planted as a symlink is replaced, not written through.
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, b"").expect("target");
        std::os::unix::fs::symlink(&elsewhere, &temporary).expect("symlink");
        write_private_file(&path, b"secret 2").expect("write");
        assert_eq!(fs::read(&elsewhere).expect("read"), b"", "the secret never went through the link");
        assert_eq!(fs::read(&path).expect("read"), b"secret 2");
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
    }
}
