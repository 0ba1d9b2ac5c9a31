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

async fn cheater_is_caught(cheat: &str) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let byzantine = format!("host-3:{cheat}");
    let mut net = Network::setup(
        dir.path(),
        4,
        &["--no-poc", "--block-interval-ms", "400", "--params", PARAMS, "--byzantine", &byzantine],
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
    assert_eq!(
        supply["burned"],
        json!((gonka_client::devnet::HOST_COLLATERAL.0 / 5).to_string()),
        "{supply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substituted_model_is_caught_refunded_and_made_invalid() {
    cheater_is_caught("substitute-model").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefilled_answer_is_caught_refunded_and_made_invalid() {
    cheater_is_caught("prefill").await;
}
