//! Answer validation on a real devnet (`docs/spec/validation.md`): four hosts serving the embedded
//! model, one of them told to cheat (`gonka devnet --byzantine host-3:KIND`). Developers' answers are
//! validated by the hosts the VRF selects; the cheater's fail, votes invalidate them and refund the
//! developer, and within the epoch it is INVALID — out of the validator set — while no honest host
//! has an answer invalidated. Run for `substitute-model` (the model cut to 8 of its 30 layers) and for
//! `prefill` (cheap tokens with the real model's logprobs).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::{Network, post, sign};
use gonka_client::signing::now_ns;
use gonka_node::home::Home;
use gonka_node::keyring::Keyring;
use serde_json::{Value, json};

const MODEL: &str = "SmolLM2-135M-Instruct";
/// One long epoch 0, whose validation keys genesis names (no PoC runs here).
const PARAMS: &str = r#"{"epoch": {"epoch_length": 1000000, "epoch_shift": 10}}"#;
/// Requests sent at most before the cheater must be INVALID.
const REQUESTS_MAX: usize = 120;

fn body(i: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": format!("Question {i}: name a colour and a fruit.")}],
        "max_tokens": 16,
        "temperature": 0.8,
    }))
    .unwrap()
}

async fn standing(net: &Network, host: usize) -> Value {
    let address = net.plan.nodes[host].address;
    net.get(0, &format!("/participants/{address}"))
        .await
        .map(|p| p["standing"].clone())
        .unwrap_or(Value::Null)
}

/// The two devnets run one after the other: together they would share two cores eight ways.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a devnet of four hosts with host-3 cheating by `cheat` under `params`, sends developers'
/// requests until it is INVALID and checks what that did; returns the running network.
async fn cheater_is_caught(cheat: &str, params: &str, dir: &std::path::Path) -> Network {
    let byzantine = format!("host-3:{cheat}");
    let mut net = Network::setup(
        dir,
        4,
        &["--no-poc", "--block-interval-ms", "400", "--params", params, "--byzantine", &byzantine],
    );
    let all = [0, 1, 2, 3];
    for i in all {
        net.start(i);
    }
    net.wait_height(&all, 3, Duration::from_secs(180)).await;
    let genesis = Home::new(&net.plan.nodes[0].home).genesis().unwrap();
    let developer = Keyring::new(net.plan.keyring.clone()).load("developer", None).unwrap();
    let http = reqwest::Client::new();
    let mut sent = Vec::new();
    let started = Instant::now();
    for i in 0..REQUESTS_MAX {
        if standing(&net, 3).await["status"] == json!("invalid") {
            break;
        }
        let ta = i % 3;
        let request = sign(&genesis, &developer, body(i), &net.plan.nodes[ta].address, now_ns());
        let response = post(&http, &net.plan.nodes[ta].api_url, &request).await;
        if response.status().is_success() {
            sent.push(request.id);
        }
    }
    // The last votes land within a vote window.
    let deadline = Instant::now() + Duration::from_secs(60);
    while standing(&net, 3).await["status"] != json!("invalid") {
        assert!(
            Instant::now() < deadline,
            "{cheat}: host-3 never became INVALID after {} answers",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "{cheat}: host-3 INVALID after {} answers in {:.0} s",
        sent.len(),
        started.elapsed().as_secs_f64()
    );
    let cheater = net.plan.nodes[3].address;
    let validators = net.get(0, "/validators").await.unwrap();
    let cheater_key = json!(net.plan.nodes[3].validator_key);
    assert!(
        validators["validators"].as_array().unwrap().iter().all(|v| v["validator_key"] != cheater_key),
        "an INVALID host leaves the validator set: {validators}"
    );
    // Its invalidated answers were refunded in full; honest hosts never had one invalidated.
    let (mut invalidated, mut honest_validated) = (0, 0);
    for id in &sent {
        let Some(record) = net.get(0, &format!("/inferences/{id}")).await else { continue };
        let status = record["status"].as_str().unwrap_or_default().to_string();
        if record["executor"] == json!(cheater) {
            if status == "invalidated" {
                invalidated += 1;
                assert_eq!(record["fee_held"], json!("0"), "{record}");
                assert_eq!(record["fee_settled"], json!(true), "refunded: {record}");
                let dispute = &record["dispute"];
                assert_eq!(dispute["outcome"], json!(false), "{record}");
            }
        } else {
            assert_ne!(status, "invalidated", "an honest answer was invalidated: {record}");
            assert_ne!(status, "voting", "an honest answer is under vote: {record}");
            honest_validated += usize::from(status == "validated");
        }
    }
    assert!(invalidated >= 3, "{cheat}: {invalidated} answers of the cheater invalidated");
    assert!(honest_validated > 0, "{cheat}: honest answers were validated too");
    for host in 0..3 {
        let honest = standing(&net, host).await;
        assert_eq!((honest["status"].clone(), honest["invalidated"].clone()), (json!("active"), json!(0)));
    }
    // Becoming INVALID burned a fifth of its collateral (`docs/spec/economy.md` §5); the supply balances.
    let collateral = net.get(0, &format!("/collateral/{cheater}")).await.unwrap();
    let slashed = gonka_client::devnet::HOST_COLLATERAL.0 / 5 * 4;
    assert_eq!(collateral["collateral"], json!(slashed.to_string()), "{collateral}");
    let supply = net.get(0, "/supply").await.unwrap();
    assert_eq!(supply["balanced"], json!(true), "{supply}");
    let burned: u128 = supply["burned"].as_str().unwrap().parse().unwrap();
    // The slash, and the cheater's owed fees if its epoch settled meanwhile.
    assert!(burned >= gonka_client::devnet::HOST_COLLATERAL.0 / 5, "{supply}");
    net
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefilled_answer_is_caught_refunded_and_made_invalid() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    cheater_is_caught("prefill", PARAMS, dir.path()).await;
}

/// Epochs of 100 blocks, the first PoC at 90: epoch 0 (whose validation keys genesis names) is long
/// enough to catch the cheater; with no PoC, later epochs keep the genesis weights and have no keys, so
/// nobody validates in them (and no claim has a duty to prove).
const ECONOMY_PARAMS: &str = r#"{"epoch": {"epoch_length": 100, "epoch_shift": 10}}"#;

/// Issue 14 on a real devnet: host-3 substitutes a smaller model, is caught in epoch 0 and slashed;
/// traffic keeps flowing through `gonka gateway` for three epochs. Every honest host's balance grows by
/// exactly what it claimed less what still vests (its settled work and rewards, released), the supply
/// balances to the ngonka, and the cheater ends with less collateral, no rewards and no claims. Prints
/// each host's income against its weight share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substituted_model_is_caught_and_three_epochs_pay_the_honest_hosts_exactly() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let net = cheater_is_caught("substitute-model", ECONOMY_PARAMS, dir.path()).await;
    let genesis = Home::new(&net.plan.nodes[0].home).genesis().unwrap();
    let epoch = genesis.params.epoch;
    let validation = genesis.params.validation;
    let settles = |n: u64| {
        gonka_chain::validation::epoch_start(&epoch, n + 1)
            + validation.validation_window_blocks
            + validation.vote_window_blocks
            + 1
    };
    // Traffic through the gateway until epoch 2 settles and its claims land.
    let port = common::free_port_base(1);
    let gateway_log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let mut gateway = std::process::Command::new(env!("CARGO_BIN_EXE_gonka"))
        .args(["gateway", "--key", "developer", "--keyring-dir"])
        .arg(&net.plan.keyring)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--node", &net.plan.nodes[0].api_url])
        .stdout(gateway_log.try_clone().unwrap())
        .stderr(gateway_log)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let addresses: Vec<_> = net.plan.nodes.iter().map(|n| n.address).collect();
    let claimed_2 = |rewards: &Value| {
        rewards["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e[0] == json!(2) && e[1]["claim"] == json!("claimed"))
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut served, mut i) = (0, 0);
    loop {
        let mut done = net.height(0).await.unwrap_or(0) > settles(2);
        for address in &addresses[..3] {
            let rewards = net.get(0, &format!("/rewards/{address}")).await.unwrap_or(Value::Null);
            done &= rewards.is_object() && claimed_2(&rewards);
        }
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "epoch 2 never settled and was claimed; logs in {}",
            dir.path().display()
        );
        i += 1;
        let response = http
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .json(&serde_json::from_slice::<Value>(&body(1000 + i)).unwrap())
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => served += 1,
            // The gateway is starting, or a request met the cheater's exit from the set.
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert!(served > 0, "the gateway served nothing");

    // One snapshot per host: its balance and rewards at the same height.
    // Spendable at genesis: the account's balance less the collateral genesis locked from it.
    let initial = |address| {
        let balance = genesis.accounts.iter().find(|a| a.address == address).map_or(0, |a| a.balance.0);
        let locked = genesis.participants.iter().find(|p| p.address == address).map_or(0, |p| p.collateral.0);
        balance - locked
    };
    let (mut income, mut weights) = (Vec::new(), Vec::new());
    for (host, address) in addresses.iter().enumerate() {
        let rewards = net.get(0, &format!("/rewards/{address}")).await.unwrap();
        let amount = |v: &Value| v.as_str().unwrap().parse::<u128>().unwrap();
        let epochs = rewards["epochs"].as_array().unwrap();
        let claimed: u128 = epochs
            .iter()
            .filter(|e| e[1]["claim"] == json!("claimed"))
            .map(|e| amount(&e[1]["work"]) + amount(&e[1]["reward"]))
            .sum();
        let released = claimed - amount(&rewards["vesting_total"]);
        let grew = amount(&rewards["balance"]) as i128 - initial(*address) as i128;
        println!(
            "host-{host}: claimed {claimed}, released {released}, balance grew {grew}; epochs {epochs:?}"
        );
        if host == 3 {
            assert!(epochs.iter().all(|e| amount(&e[1]["reward"]) == 0 && amount(&e[1]["work"]) == 0));
            assert_eq!(claimed, 0, "the cheater is paid nothing");
            let collateral = net.get(0, &format!("/collateral/{address}")).await.unwrap();
            assert!(
                amount(&collateral["collateral"]) < gonka_client::devnet::HOST_COLLATERAL.0,
                "{collateral}"
            );
        } else {
            assert!(epochs.iter().filter(|e| e[0].as_u64() <= Some(2)).count() >= 3, "{rewards}");
            assert_eq!(
                grew, released as i128,
                "host-{host}: balance growth = settled work + released rewards"
            );
            assert!(released > 0, "host-{host} was paid");
        }
        income.push(claimed);
        // The weight that earned: its roster weight in the epochs it was not INVALID in.
        let earning = epochs.iter().filter(|e| e[1]["invalid"] == json!(false));
        weights.push(earning.map(|e| e[1]["weight"].as_u64().unwrap()).sum::<u64>());
        let (work, reward): (u128, u128) =
            epochs.iter().fold((0, 0), |(w, r), e| (w + amount(&e[1]["work"]), r + amount(&e[1]["reward"])));
        println!("host-{host}: work {work} ngonka, reward {reward} ngonka");
    }
    let supply = net.get(0, "/supply").await.unwrap();
    assert_eq!(supply["balanced"], json!(true), "{supply}");
    let (total_income, total_weight) = (income.iter().sum::<u128>(), weights.iter().sum::<u64>());
    for host in 0..4 {
        println!(
            "income split: host-{host} {:.4} of income, {:.4} of weight",
            income[host] as f64 / total_income as f64,
            weights[host] as f64 / total_weight as f64
        );
    }
    // The subsidy is split by weight: every honest host's income share is its weight share (the work
    // coins, by traffic, move it by less than a part in a thousand here).
    for host in 0..3 {
        let (income_share, weight_share) =
            (income[host] as f64 / total_income as f64, weights[host] as f64 / total_weight as f64);
        assert!((income_share - weight_share).abs() < 0.001, "host-{host}: {income_share} vs {weight_share}");
    }
    let price = net.get(0, &format!("/price/{MODEL}")).await.unwrap();
    println!("gateway requests served: {served}; price now {price}; supply: {supply}");
}
