//! The `gonka` chain commands as a user runs them: keys, init, a single-validator node, transfers and
//! queries with `--output json`, clear errors with a non-zero exit, and `gonka devnet` stopping all
//! its nodes on SIGTERM.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const GONKA: &str = env!("CARGO_BIN_EXE_gonka");

fn gonka(args: &[&str], home: &Path) -> Output {
    Command::new(GONKA)
        .args(args)
        .env("GONKA_NODE_HOME", home)
        .env_remove("GONKA_PASSPHRASE")
        .output()
        .expect("run gonka")
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "gonka failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout)))
}

/// A pid-derived first port; with the largest offset used here (+4,000) the ports stay below Linux's
/// ephemeral range (32768 and up), where outgoing connections could take them.
fn free_port_base() -> u16 {
    21_000 + (std::process::id() % 900) as u16 * 8
}

#[test]
fn keys_add_list_show_export_import_with_private_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let added = json_of(&gonka(&["keys", "add", "alice", "--output", "json"], home));
    let address = added["address"].as_str().expect("address").to_string();
    assert!(address.starts_with("gonka1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("keys/alice.json")).expect("key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key files must be 0600");
    }
    let shown = json_of(&gonka(&["keys", "show", "alice", "--output", "json"], home));
    assert_eq!(shown["address"], added["address"]);
    let exported = json_of(&gonka(&["keys", "export", "alice", "--output", "json"], home));
    let secret = exported["secret"].as_str().expect("secret").to_string();

    // Import under a passphrase: same address, encrypted at rest, unusable without the passphrase.
    let pass_file = home.join("pass");
    std::fs::write(&pass_file, "correct horse\n").expect("write");
    let secret_file = home.join("secret");
    std::fs::write(&secret_file, &secret).expect("write");
    let pass = pass_file.to_str().expect("utf8");
    let imported = json_of(&gonka(
        &[
            "keys",
            "import",
            "alice2",
            "--secret-file",
            secret_file.to_str().expect("utf8"),
            "--passphrase-file",
            pass,
            "--output",
            "json",
        ],
        home,
    ));
    assert_eq!(imported["address"].as_str(), Some(address.as_str()));
    assert_eq!(imported["encrypted"], Value::Bool(true));
    assert!(!std::fs::read_to_string(home.join("keys/alice2.json")).expect("read").contains(&secret));
    let locked = gonka(&["keys", "export", "alice2"], home);
    assert!(!locked.status.success());
    assert!(String::from_utf8_lossy(&locked.stderr).contains("encrypted"));
    let unlocked =
        json_of(&gonka(&["keys", "export", "alice2", "--passphrase-file", pass, "--output", "json"], home));
    assert_eq!(unlocked["secret"].as_str(), Some(secret.as_str()));

    let listed = json_of(&gonka(&["keys", "list", "--output", "json"], home));
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    for (args, message) in [
        (vec!["keys", "add", "alice"], "already exists"),
        (vec!["keys", "show", "nobody"], "no key named"),
        (vec!["keys", "add", "../x"], "invalid key name"),
    ] {
        let output = gonka(&args, home);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(message),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn single_validator_node_from_init_accepts_transfers_and_answers_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("node");
    let base = free_port_base();
    let api = format!("127.0.0.1:{base}");
    let p2p = format!("127.0.0.1:{}", base + 1);
    let init = json_of(&gonka(
        &[
            "init",
            "--moniker",
            "solo",
            "--api-listen",
            &api,
            "--p2p-listen",
            &p2p,
            "--block-interval-ms",
            "300",
            "--output",
            "json",
        ],
        &home,
    ));
    let host_address = init["address"].as_str().expect("address").to_string();
    assert!(!gonka(&["init"], &home).status.success(), "init twice must refuse");

    let _node = KillOnDrop(
        Command::new(GONKA)
            .args(["node", "start"])
            .env("GONKA_NODE_HOME", &home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node"),
    );
    let url = format!("http://{api}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = gonka(&["query", "status", "--node", &url, "--output", "json"], &home);
        if status.status.success() && json_of(&status)["height"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "single node made no blocks");
        std::thread::sleep(Duration::from_millis(200));
    }
    let recipient = json_of(&gonka(&["keys", "add", "bob", "--output", "json"], &home))["address"]
        .as_str()
        .expect("a")
        .to_string();
    let sent = json_of(&gonka(
        &["tx", "bank", "send", "host", &recipient, "1.5gnk", "--node", &url, "--wait", "--output", "json"],
        &home,
    ));
    assert_eq!(sent["result"]["ok"], Value::Bool(true), "{sent}");
    let account =
        json_of(&gonka(&["query", "account", &recipient, "--node", &url, "--output", "json"], &home));
    assert_eq!(account["balance"], "1500000000");
    let host =
        json_of(&gonka(&["query", "account", &host_address, "--node", &url, "--output", "json"], &home));
    assert_eq!(host["sequence"], 1);
    let epoch = json_of(&gonka(&["query", "epoch", "--node", &url, "--output", "json"], &home));
    assert_eq!(
        epoch["stages"]["poc_start"].as_u64().or(Some(0)),
        epoch["stages"]["poc_start"].as_u64().or(Some(0))
    );
    assert!(epoch["phase"].is_string());
    let participants = json_of(&gonka(&["query", "participants", "--node", &url, "--output", "json"], &home));
    assert_eq!(participants["participants"][0]["address"].as_str(), Some(host_address.as_str()));
    let block = json_of(&gonka(&["query", "block", "1", "--node", &url, "--output", "json"], &home));
    assert_eq!(block["height"], 1);

    // Bad input: clear message, non-zero exit, nothing lost.
    for (args, message) in [
        (vec!["tx", "bank", "send", "host", "notanaddress", "1"], "invalid bech32"),
        (vec!["tx", "bank", "send", "host", recipient.as_str(), "1.2.3gnk"], "amount"),
        (vec!["tx", "bank", "send", "host", recipient.as_str(), "0"], "positive"),
        (vec!["tx", "bank", "send", "bob", host_address.as_str(), "999gnk"], "insufficient funds"),
        (vec!["query", "tx", "zz"], "64 hex digits"),
        (vec!["query", "block", "999999"], "no block"),
    ] {
        let is_tx = args[0] == "tx";
        let mut args = args.clone();
        args.extend(["--node", url.as_str()]);
        if is_tx {
            args.push("--wait");
        }
        let output = gonka(&args, &home);
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let account =
        json_of(&gonka(&["query", "account", &recipient, "--node", &url, "--output", "json"], &home));
    assert_eq!(account["balance"], "1500000000");
}

/// Kills a child process when the test ends, passing or failing.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn devnet_writes_its_plan_and_stops_every_node_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_port_base() + 4_000;
    let mut devnet = KillOnDrop(
        Command::new(GONKA)
            .args([
                "devnet",
                "--hosts",
                "2",
                "--block-interval-ms",
                "300",
                "--base-port",
                &base.to_string(),
                "--home",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start devnet"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let plan = loop {
        if let Ok(text) = std::fs::read_to_string(dir.path().join("devnet.json")) {
            break serde_json::from_str::<Value>(&text).expect("devnet.json");
        }
        assert!(Instant::now() < deadline, "no devnet.json");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(plan["developer"]["name"], "developer");
    assert!(plan["developer"]["address"].as_str().is_some_and(|a| a.starts_with("gonka1")));
    let url = plan["nodes"][1]["api_url"].as_str().expect("api url").to_string();
    loop {
        let status = gonka(&["query", "status", "--node", &url, "--output", "json"], dir.path());
        if status.status.success() && json_of(&status)["height"].as_u64().unwrap_or(0) >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "devnet made no blocks");
        std::thread::sleep(Duration::from_millis(200));
    }
    let developer = plan["developer"]["address"].as_str().expect("address");
    let funded =
        json_of(&gonka(&["query", "account", developer, "--node", &url, "--output", "json"], dir.path()));
    assert_ne!(funded["balance"], "0");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(devnet.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = devnet.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "devnet ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "devnet exit status {status}");
    let stopped = gonka(&["query", "status", "--node", &url], dir.path());
    assert!(!stopped.status.success(), "nodes must be stopped with the devnet");
}
