//! Host homes and local networks: `gonka init` makes one host home with a single-validator genesis,
//! [`setup`] makes N homes sharing one genesis (with a funded developer account) for `gonka devnet`
//! and the multi-node tests, and writes `DIR/devnet.json`; [`spawn_node`], [`spawn_gateway`] and
//! [`stop_all`] run them as processes of the `gonka` binary.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use gonka_chain::{Genesis, GenesisAccount, GenesisParticipant, ModelPrice, Params};
use gonka_node::home::{HOST_KEY, Home, NodeConfig, OPERATIONAL_KEY};
use gonka_node::host::PocConfig;
use gonka_node::inference::InferenceConfig;
use gonka_node::inference::cheat::Cheat;
use gonka_node::keyring::Keyring;
use gonka_node::mempool::MempoolLimits;
use gonka_primitives::{AccountKey, Address, Amount, ValidatorPublicKey};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Name of the developer key in the devnet keyring.
pub const DEVELOPER_KEY: &str = "developer";
/// Name of the parameter-authority key in the devnet keyring.
pub const AUTHORITY_KEY: &str = "authority";
/// Balance of the devnet developer account: 1,000,000 GNK.
pub const DEVELOPER_BALANCE: Amount = Amount(1_000_000 * gonka_primitives::amount::NGONKA_PER_GNK);
/// Balance of each devnet host account: 10,000 GNK.
pub const HOST_BALANCE: Amount = Amount(10_000 * gonka_primitives::amount::NGONKA_PER_GNK);
/// Collateral each genesis host locks from its balance: it vouches for the requests the host forwards
/// as transfer agent (`docs/spec/inference.md` §4.1).
pub const HOST_COLLATERAL: Amount = Amount(1_000 * gonka_primitives::amount::NGONKA_PER_GNK);
/// Interval between block starts in the devnet profile (DESIGN.md §6: ~1 s blocks). Consensus paces
/// heights to this interval; it sits below 1 s so the jitter of a loaded 2-core machine stays within 1 s.
pub const DEVNET_BLOCK_INTERVAL_MS: u64 = 900;
/// Voting power of each genesis host until PoC sets weights.
pub const GENESIS_WEIGHT: u64 = 100;

/// The public identity of a freshly made host home.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostIdentity {
    /// Account address (key `host`).
    pub address: Address,
    /// Account public key (key `host`).
    pub account_key: gonka_primitives::AccountPublicKey,
    /// Consensus key.
    pub validator_key: ValidatorPublicKey,
    /// Operational key (key `host-ops`).
    pub operational_key: gonka_primitives::AccountPublicKey,
    /// Validation key for epoch 0, from the operational key's epoch-0 seed on the chain it was made for.
    #[serde(default)]
    pub validation_key: Option<gonka_primitives::VrfPublicKey>,
}

/// Creates the keys and config of a host home for `chain_id` (no genesis yet).
pub fn init_home(home: &Home, config: &NodeConfig, chain_id: &str) -> anyhow::Result<HostIdentity> {
    anyhow::ensure!(!home.is_initialized(), "{} is already initialized", home.root().display());
    let keyring = home.keyring();
    let host = AccountKey::generate();
    let ops = AccountKey::generate();
    keyring.add(HOST_KEY, &host, None)?;
    keyring.add(OPERATIONAL_KEY, &ops, None)?;
    let validator = home.create_validator_key()?;
    home.write_config(config)?;
    Ok(HostIdentity {
        address: host.address(),
        account_key: host.public_key(),
        validator_key: validator.public_key(),
        operational_key: ops.public_key(),
        validation_key: Some(gonka_host::protocol::validation_key(&ops, chain_id, 0).public_key()),
    })
}

/// The current time in milliseconds, for genesis time only (never read by the state machine).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A genesis where `hosts` are the validators with equal power.
pub fn genesis_for(
    chain_id: &str,
    params: Params,
    hosts: &[(HostIdentity, String)],
    accounts: Vec<GenesisAccount>,
    developers: Vec<Address>,
) -> Genesis {
    let participants = hosts
        .iter()
        .map(|(identity, api_url)| GenesisParticipant {
            address: identity.address,
            account_key: identity.account_key,
            api_url: api_url.clone(),
            validator_key: identity.validator_key,
            operational_key: identity.operational_key,
            weight: GENESIS_WEIGHT,
            collateral: HOST_COLLATERAL,
            validation_key: identity.validation_key,
        })
        .collect();
    Genesis {
        chain_id: chain_id.to_string(),
        genesis_time_ms: now_ms(),
        params,
        accounts,
        participants,
        developers,
        tokenomics: gonka_chain::Tokenomics::devnet(),
    }
}

/// Options of [`setup`].
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Number of validator hosts.
    pub hosts: usize,
    /// Directory holding every home and `devnet.json`.
    pub dir: PathBuf,
    /// First port: host `i` uses `base_port + 2i` (REST) and `base_port + 2i + 1` (p2p).
    pub base_port: u16,
    /// The address every host and the gateway listen on (loopback, or a private address where other
    /// machines may join).
    pub host_ip: std::net::IpAddr,
    /// Chain id.
    pub chain_id: String,
    /// Target block interval.
    pub block_interval_ms: u64,
    /// Use mainnet epoch timing instead of the devnet profile.
    pub mainnet_profile: bool,
    /// Extra funded accounts (benchmarks).
    pub extra_accounts: Vec<GenesisAccount>,
    /// A JSON object merged over the profile's params (objects merge key by key, anything else
    /// replaces), e.g. `{"epoch": {"epoch_length": 60}, "poc": {"r_target": "1.41"}}`.
    pub params_override: Option<serde_json::Value>,
    /// PoC settings of every host.
    pub poc: PocConfig,
    /// Sprint workers per host, host `i` taking entry `i mod len` (empty: `poc.workers` for all):
    /// unequal compute on one machine.
    pub poc_workers: Vec<u32>,
    /// Inference serving of every host.
    pub inference: InferenceConfig,
    /// Models the network serves, with their price (genesis `inference.models`).
    pub models: Vec<ModelPrice>,
    /// Genesis voting power per host, host `i` taking entry `i mod len` (empty: [`GENESIS_WEIGHT`]).
    pub weights: Vec<u64>,
    /// Hosts told to cheat as executors, by index: `--byzantine host-N:KIND`, to watch validation catch
    /// them.
    pub byzantine: Vec<(usize, Cheat)>,
}

/// `base` with `patch` merged in: objects key by key, anything else replaced.
fn merge_json(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                merge_json(base.entry(key.clone()).or_insert(serde_json::Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// The profile's params with `patch` merged in, validated.
pub fn params_with_override(mut params: Params, patch: Option<&serde_json::Value>) -> anyhow::Result<Params> {
    if let Some(patch) = patch {
        let mut value = serde_json::to_value(&params)?;
        merge_json(&mut value, patch);
        params = serde_json::from_value(value).context("params override does not fit the params schema")?;
    }
    params.validate().context("params override makes the params invalid")?;
    Ok(params)
}

/// One node of a devnet, as written in `devnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevnetNode {
    /// Node name (`host-0`...).
    pub name: String,
    /// Home directory.
    pub home: PathBuf,
    /// REST base URL.
    pub api_url: String,
    /// Consensus p2p address.
    pub p2p: SocketAddr,
    /// Host account.
    pub address: Address,
    /// Consensus key.
    pub validator_key: ValidatorPublicKey,
}

/// A key in the devnet keyring, as written in `devnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevnetKey {
    /// Key name.
    pub name: String,
    /// Address.
    pub address: Address,
}

/// `devnet.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevnetPlan {
    /// Chain id.
    pub chain_id: String,
    /// The nodes.
    pub nodes: Vec<DevnetNode>,
    /// Directory of the devnet keyring (developer and authority keys); use it with `--keyring-dir`.
    pub keyring: PathBuf,
    /// The funded developer key.
    pub developer: DevnetKey,
    /// The parameter authority key.
    pub authority: DevnetKey,
    /// The local OpenAI-compatible gateway signing with the developer key, when the devnet serves
    /// inference (`base_url` for OpenAI SDKs is this plus `/v1`).
    #[serde(default)]
    pub gateway_url: Option<String>,
}

impl DevnetPlan {
    /// Reads `DIR/devnet.json`.
    pub fn load(dir: &Path) -> anyhow::Result<DevnetPlan> {
        let path = dir.join("devnet.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// Makes N host homes with one shared genesis and writes `DIR/devnet.json`.
pub fn setup(options: &DevnetOptions) -> anyhow::Result<DevnetPlan> {
    anyhow::ensure!((1..=64).contains(&options.hosts), "--hosts must be between 1 and 64");
    if let Some((host, _)) = options.byzantine.iter().find(|(host, _)| *host >= options.hosts) {
        anyhow::bail!(
            "--byzantine names host-{host}, but the devnet has hosts host-0..host-{}",
            options.hosts - 1
        );
    }
    let dir = &options.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    anyhow::ensure!(!dir.join("devnet.json").exists(), "{} already holds a devnet", dir.display());
    let port = |i: usize, offset: u16| -> anyhow::Result<u16> {
        u16::try_from(i * 2)
            .ok()
            .and_then(|d| options.base_port.checked_add(d + offset))
            .context("ports beyond 65535")
    };
    let mut addresses = Vec::new();
    for i in 0..options.hosts {
        let api = SocketAddr::new(options.host_ip, port(i, 0)?);
        let p2p = SocketAddr::new(options.host_ip, port(i, 1)?);
        addresses.push((api, p2p));
    }
    let keyring = Keyring::new(dir.join("keys"));
    let developer = AccountKey::generate();
    let authority = AccountKey::generate();
    keyring.add(DEVELOPER_KEY, &developer, None)?;
    keyring.add(AUTHORITY_KEY, &authority, None)?;

    let mut hosts = Vec::new();
    let mut nodes = Vec::new();
    for (i, (api, p2p)) in addresses.iter().enumerate() {
        let name = format!("host-{i}");
        let home = Home::new(dir.join(&name));
        let config = NodeConfig {
            moniker: name.clone(),
            api_listen: *api,
            p2p_listen: *p2p,
            p2p_peers: addresses.iter().filter(|(a, _)| a != api).map(|(_, p)| p.to_string()).collect(),
            p2p_discovery: true,
            gossip_peers: addresses
                .iter()
                .filter(|(a, _)| a != api)
                .map(|(a, _)| format!("http://{a}"))
                .collect(),
            block_interval_ms: options.block_interval_ms,
            mempool: MempoolLimits::default(),
            poc: PocConfig {
                workers: match options.poc_workers.len() {
                    0 => options.poc.workers,
                    n => options.poc_workers[i % n],
                },
                ..options.poc
            },
            inference: InferenceConfig {
                cheat: options.byzantine.iter().find(|(host, _)| *host == i).map(|(_, cheat)| *cheat),
                ..options.inference
            },
        };
        let identity = init_home(&home, &config, &options.chain_id)?;
        let api_url = format!("http://{api}");
        nodes.push(DevnetNode {
            name,
            home: home.root().to_path_buf(),
            api_url: api_url.clone(),
            p2p: *p2p,
            address: identity.address,
            validator_key: identity.validator_key,
        });
        hosts.push((identity, api_url));
    }
    let params = if options.mainnet_profile {
        Params::mainnet(authority.address())
    } else {
        Params::devnet(authority.address())
    };
    let mut params = params;
    params.inference.models.extend(options.models.iter().cloned());
    let params = params_with_override(params, options.params_override.as_ref())?;
    let mut accounts = vec![
        GenesisAccount { address: developer.address(), balance: DEVELOPER_BALANCE },
        GenesisAccount {
            address: authority.address(),
            balance: Amount(gonka_primitives::amount::NGONKA_PER_GNK),
        },
    ];
    accounts.extend(hosts.iter().map(|(h, _)| GenesisAccount { address: h.address, balance: HOST_BALANCE }));
    accounts.extend(options.extra_accounts.iter().cloned());
    let mut genesis = genesis_for(&options.chain_id, params, &hosts, accounts, vec![developer.address()]);
    if !options.weights.is_empty() {
        for (i, participant) in genesis.participants.iter_mut().enumerate() {
            participant.weight = options.weights[i % options.weights.len()];
        }
    }
    gonka_chain::State::from_genesis(&genesis).context("devnet genesis is invalid")?;
    for node in &nodes {
        Home::new(&node.home).write_genesis(&genesis)?;
    }
    let plan = DevnetPlan {
        chain_id: options.chain_id.clone(),
        nodes,
        keyring: dir.join("keys"),
        developer: DevnetKey { name: DEVELOPER_KEY.into(), address: developer.address() },
        authority: DevnetKey { name: AUTHORITY_KEY.into(), address: authority.address() },
        gateway_url: if options.inference.enabled {
            Some(format!("http://{}", SocketAddr::new(options.host_ip, port(options.hosts, 0)?)))
        } else {
            None
        },
    };
    std::fs::write(dir.join("devnet.json"), serde_json::to_string_pretty(&plan)?)?;
    Ok(plan)
}

/// Starts `exe ARGS…` (the `gonka` binary) as a child that stops when this process dies, appending its
/// output to `log_path`.
pub fn spawn_gonka(exe: &Path, args: &[&std::ffi::OsStr], log_path: &Path) -> anyhow::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    Command::new(exe)
        .args(args)
        .env("GONKA_EXIT_WITH_PARENT", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting gonka {:?}", args.first()))
}

/// Starts `gonka node start --home HOME`, logging to `HOME/node.log`.
pub fn spawn_node(exe: &Path, home: &Path) -> anyhow::Result<Child> {
    spawn_gonka(
        exe,
        &["node".as_ref(), "start".as_ref(), "--home".as_ref(), home.as_os_str()],
        &home.join("node.log"),
    )
}

/// Starts `gonka gateway` for the devnet's developer key at `url`, sending to the first host, logging to
/// `DIR/gateway.log`.
pub fn spawn_gateway(exe: &Path, plan: &DevnetPlan, url: &str, dir: &Path) -> anyhow::Result<Child> {
    let listen = url.trim_start_matches("http://");
    let node = plan.nodes.first().context("a devnet has at least one host")?;
    let args: [&std::ffi::OsStr; 9] = [
        "gateway".as_ref(),
        "--key".as_ref(),
        plan.developer.name.as_ref(),
        "--listen".as_ref(),
        listen.as_ref(),
        "--node".as_ref(),
        node.api_url.as_ref(),
        "--keyring-dir".as_ref(),
        plan.keyring.as_os_str(),
    ];
    spawn_gonka(exe, &args, &dir.join("gateway.log"))
}

/// Stops every child: SIGTERM, then SIGKILL for any still running after 15 s.
pub fn stop_all(children: &mut [Child]) {
    for child in children.iter() {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    for child in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if std::time::Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Restarts after which a process that keeps dying is given up on.
pub const MAX_QUICK_RESTARTS: u32 = 5;
/// A process that ran this long before it died is restarted as if for the first time.
pub const STABLE_RUN: Duration = Duration::from_secs(60);
/// The first restart's delay; each quick death doubles it, up to [`MAX_RESTART_DELAY`].
pub const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
/// The longest delay before a restart.
pub const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// What the supervisor does about a process that exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Start it again after a delay.
    After {
        /// How long to wait.
        delay: Duration,
        /// The restart's number in a row of quick deaths.
        n: u32,
    },
    /// It died quickly [`MAX_QUICK_RESTARTS`] times in a row: leave it down.
    GiveUp,
}

/// The back-off of one supervised process: quick deaths in a row double the delay before the next
/// start; a run of [`STABLE_RUN`] or more forgives them. Pure: the caller passes the times.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    quick_deaths: u32,
}

impl Backoff {
    /// The process died after running for `ran`.
    pub fn died(&mut self, ran: Duration) -> Restart {
        if ran >= STABLE_RUN {
            self.quick_deaths = 0;
        }
        self.quick_deaths += 1;
        if self.quick_deaths > MAX_QUICK_RESTARTS {
            return Restart::GiveUp;
        }
        let delay = FIRST_RESTART_DELAY.saturating_mul(1 << (self.quick_deaths - 1)).min(MAX_RESTART_DELAY);
        Restart::After { delay, n: self.quick_deaths }
    }
}

/// One process of a devnet under supervision.
struct Supervised {
    name: String,
    log: PathBuf,
    start: Box<dyn Fn() -> anyhow::Result<Child> + Send>,
    child: Option<Child>,
    started: std::time::Instant,
    backoff: Backoff,
    /// When a restart is due.
    due: Option<std::time::Instant>,
    given_up: bool,
}

/// The processes of a running devnet (`gonka devnet`): a process that dies is reported and started
/// again with [`Backoff`]; one that keeps dying is given up on, loudly; the rest keep running.
pub struct Supervisor {
    processes: Vec<Supervised>,
}

/// What happened to a supervised process, for the devnet to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorEvent {
    /// It exited; a restart is due after `delay`.
    Exited {
        /// The process (`host-2`, `gateway`).
        name: String,
        /// Its exit status, as text.
        status: String,
        /// The wait before it starts again.
        delay: Duration,
        /// The restart's number in a row of quick deaths.
        restart: u32,
    },
    /// It was started again.
    Restarted {
        /// The process.
        name: String,
    },
    /// It could not be started again (the next attempt follows the back-off).
    StartFailed {
        /// The process.
        name: String,
        /// Why.
        error: String,
    },
    /// It died too often: left down.
    GaveUp {
        /// The process.
        name: String,
        /// Its last exit status, as text.
        status: String,
        /// Its log.
        log: PathBuf,
    },
}

impl Supervisor {
    /// Starts every node of `plan` and its gateway (when it has one) with the `gonka` binary `exe`.
    pub fn start(exe: &Path, plan: &DevnetPlan, dir: &Path) -> anyhow::Result<Supervisor> {
        let mut supervisor = Supervisor { processes: Vec::new() };
        for node in &plan.nodes {
            let (exe, home) = (exe.to_path_buf(), node.home.clone());
            supervisor.add(node.name.clone(), node.home.join("node.log"), move || spawn_node(&exe, &home))?;
        }
        if let Some(url) = &plan.gateway_url {
            let (exe, plan, url, dir) = (exe.to_path_buf(), plan.clone(), url.clone(), dir.to_path_buf());
            let log = dir.join("gateway.log");
            supervisor.add("gateway".into(), log, move || spawn_gateway(&exe, &plan, &url, &dir))?;
        }
        Ok(supervisor)
    }

    fn add(
        &mut self,
        name: String,
        log: PathBuf,
        start: impl Fn() -> anyhow::Result<Child> + Send + 'static,
    ) -> anyhow::Result<()> {
        let child = match start() {
            Ok(child) => child,
            Err(error) => {
                self.stop();
                return Err(error);
            }
        };
        self.processes.push(Supervised {
            name,
            log,
            start: Box::new(start),
            child: Some(child),
            started: std::time::Instant::now(),
            backoff: Backoff::default(),
            due: None,
            given_up: false,
        });
        Ok(())
    }

    /// Reaps exited processes and starts those whose restart is due, at `now`.
    pub fn poll(&mut self, now: std::time::Instant) -> Vec<SupervisorEvent> {
        let mut events = Vec::new();
        for p in &mut self.processes {
            if let Some(child) = &mut p.child
                && let Ok(Some(status)) = child.try_wait()
            {
                p.child = None;
                let status = status.to_string();
                match p.backoff.died(now.saturating_duration_since(p.started)) {
                    Restart::After { delay, n } => {
                        p.due = Some(now + delay);
                        events.push(SupervisorEvent::Exited {
                            name: p.name.clone(),
                            status,
                            delay,
                            restart: n,
                        });
                    }
                    Restart::GiveUp => {
                        p.given_up = true;
                        events.push(SupervisorEvent::GaveUp {
                            name: p.name.clone(),
                            status,
                            log: p.log.clone(),
                        });
                    }
                }
            }
            if p.due.is_some_and(|due| due <= now) {
                p.due = None;
                p.started = now;
                match (p.start)() {
                    Ok(child) => {
                        p.child = Some(child);
                        events.push(SupervisorEvent::Restarted { name: p.name.clone() });
                    }
                    Err(error) => {
                        // A failed start counts as a death at once.
                        match p.backoff.died(Duration::ZERO) {
                            Restart::After { delay, .. } => p.due = Some(now + delay),
                            Restart::GiveUp => p.given_up = true,
                        }
                        events.push(SupervisorEvent::StartFailed {
                            name: p.name.clone(),
                            error: format!("{error:#}"),
                        });
                        if p.given_up {
                            events.push(SupervisorEvent::GaveUp {
                                name: p.name.clone(),
                                status: "could not start".into(),
                                log: p.log.clone(),
                            });
                        }
                    }
                }
            }
        }
        events
    }

    /// Whether every process was given up on.
    pub fn all_given_up(&self) -> bool {
        self.processes.iter().all(|p| p.given_up)
    }

    /// Stops every running process (SIGTERM, then SIGKILL after 15 s); none is restarted after.
    pub fn stop(&mut self) -> usize {
        let mut children: Vec<Child> = self.processes.iter_mut().filter_map(|p| p.child.take()).collect();
        for p in &mut self.processes {
            p.due = None;
        }
        stop_all(&mut children);
        children.len()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_deaths_double_the_delay_then_give_up_and_a_stable_run_forgives_them() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_secs(2);
        let delays: Vec<Restart> = (0..MAX_QUICK_RESTARTS).map(|_| backoff.died(quick)).collect();
        let seconds: Vec<u64> = delays
            .iter()
            .map(|r| match r {
                Restart::After { delay, .. } => delay.as_secs(),
                Restart::GiveUp => 0,
            })
            .collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16]);
        assert_eq!(backoff.died(quick), Restart::GiveUp);

        let mut backoff = Backoff::default();
        for _ in 0..MAX_QUICK_RESTARTS {
            backoff.died(quick);
        }
        // A minute of running forgives the earlier deaths: the next restart is the first again.
        assert_eq!(backoff.died(STABLE_RUN), Restart::After { delay: FIRST_RESTART_DELAY, n: 1 });
    }

    #[test]
    fn the_delay_never_exceeds_the_cap() {
        let mut backoff = Backoff { quick_deaths: 0 };
        for _ in 0..MAX_QUICK_RESTARTS {
            if let Restart::After { delay, .. } = backoff.died(Duration::ZERO) {
                assert!(delay <= MAX_RESTART_DELAY);
            }
        }
    }
}
