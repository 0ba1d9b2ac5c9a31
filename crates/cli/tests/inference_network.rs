//! Every error of the paid inference path on a 4-host devnet, answered OpenAI-shaped with its status,
//! and never costing the developer anything: 401 (missing or foreign signature), 404 (unknown
//! account), 400 (stale or future timestamp), 409 (replay), 402 (balance below the escrow), 429 (TA
//! at capacity), an executor killed mid-stream (the client gets an error event; the Start expires and
//! is refunded in full), and 502 (executor down; refunded at expiry too); a developer who double-spends
//! its balance across TAs still pays, or its TAs pay, for every answer delivered. Payloads are served
//! only to the host a VRF selected to validate the answer.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::{Network, post, sign};
use futures::StreamExt;
use gonka_chain::validation::{SELECTION_CONTEXT, selection_message, selects};
use gonka_chain::{Genesis, Msg, State, Tx};
use gonka_client::signing::now_ns;
use gonka_host::protocol::{
    HEADER_HOST, HEADER_VALIDATION_PROOF, encode_signature, payload_request_message, validation_key,
};
use gonka_node::home::Home;
use gonka_node::home::OPERATIONAL_KEY;
use gonka_node::keyring::Keyring;
use gonka_primitives::{AccountKey, Address, Amount, Hash, RecoverableSignature, VrfProof};
use serde_json::{Value, json};

const MODEL: &str = "SmolLM2-135M-Instruct";
/// Short expiry so refunds show within seconds: 20 blocks (the default base) + 1 per 100 reserved
/// tokens. The base must outlast an answer under load: the burst below runs eight generations at once
/// on four nodes, and on a two-core CI machine a delivered answer's Start expired at 7 blocks (about
/// 2 s) before its Finish landed.
/// The epoch is long enough that the test never leaves epoch 0, whose validation keys genesis names
/// (no PoC runs: no later epoch would have any).
const PARAMS: &str = r#"{"inference": {"expiry_base_blocks": 20, "expiry_tokens_per_block": 100},
  "epoch": {"epoch_length": 1000000, "epoch_shift": 10}}"#;

fn body(text: &str, max_tokens: u32, stream: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens, "stream": stream,
    }))
    .unwrap()
}

/// Asserts an OpenAI-shaped error with this status and code (`None`: `"code": null`).
async fn expect_error(response: reqwest::Response, status: u16, code: Option<&str>) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!(code), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body["error"].get("type").is_some() && body["error"].get("param").is_some());
    body
}

/// Host `i`'s operational key (it signs payload requests; its epoch seed gives its validation key).
fn host_key(net: &Network, i: usize) -> AccountKey {
    Keyring::new(net.plan.nodes[i].home.join("keys")).load(OPERATIONAL_KEY, None).unwrap()
}

/// The first host (not the executor the genesis weights draw) whose epoch-0 VRF selects it to validate
/// inference `id`, and its proof.
fn selected_validator(
    net: &Network,
    state: &State,
    genesis: &Genesis,
    id: &Hash,
) -> Option<(usize, VrfProof)> {
    let executor = gonka_chain::inference::executor_for(state, id)?;
    let message = selection_message(&genesis.chain_id, 0, id);
    (0..net.plan.nodes.len()).filter(|&i| net.plan.nodes[i].address != executor).find_map(|i| {
        let key = validation_key(&host_key(net, i), &genesis.chain_id, 0);
        let (output, proof) = key.prove(SELECTION_CONTEXT, &message);
        selects(state, 0, &executor, &net.plan.nodes[i].address, output).then_some((i, proof))
    })
}

async fn balance(net: &Network, address: &Address) -> u128 {
    let account = net.get(0, &format!("/accounts/{address}")).await.unwrap();
    account["balance"].as_str().unwrap().parse().unwrap()
}

/// Waits until inference `id` has `status` on node 0; returns its record.
/// Waits until inference `id` reaches `status`. "finished" also accepts "validated": an honest
/// answer a validator has already re-scored is still a finished, charged answer.
async fn settled(net: &Network, id: &Hash, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let reached = |record: &Value| {
        record["status"] == json!(status) || (status == "finished" && record["status"] == json!("validated"))
    };
    loop {
        let record = net.get(0, &format!("/inferences/{id}")).await;
        if let Some(record) = &record
            && reached(record)
        {
            return record.clone();
        }
        assert!(Instant::now() < deadline, "inference {id} never became {status}: {record:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_openai_shaped_and_never_cost_the_developer() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::setup(
        dir.path(),
        4,
        &["--no-poc", "--block-interval-ms", "300", "--ta-concurrent-max", "2", "--params", PARAMS],
    );
    let all = [0, 1, 2, 3];
    for i in all {
        net.start(i);
    }
    net.wait_height(&all, 3, Duration::from_secs(120)).await;
    let http = reqwest::Client::new();
    let ta_url = net.plan.nodes[0].api_url.clone();
    let ta = net.plan.nodes[0].address;
    let developer = Keyring::new(net.plan.keyring.clone()).load("developer", None).unwrap();
    // No PoC runs, so the genesis weights decide every draw: the test can predict executors.
    let genesis = Home::new(&net.plan.nodes[0].home).genesis().unwrap();
    let draws = State::from_genesis(&genesis).unwrap();
    let start_balance = balance(&net, &developer.address()).await;
    let mut started: Vec<Hash> = Vec::new();

    // 401: no signature, and a signature by another key for the developer's address.
    let unsigned = http
        .post(format!("{ta_url}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body("hi", 2, false))
        .send()
        .await
        .unwrap();
    expect_error(unsigned, 401, Some("invalid_signature")).await;
    let mut forged = sign(&genesis, &AccountKey::from_seed(b"mallory"), body("hi", 2, false), &ta, now_ns());
    forged.headers[1].1 = developer.address().to_string();
    expect_error(post(&http, &ta_url, &forged).await, 401, Some("invalid_signature")).await;
    // The developer signs the chain id and max_tokens: a request signed for another network, or one
    // whose X-Max-Tokens was raised after signing, is not the developer's (issue 12, items 3 and 4).
    let elsewhere = Genesis { chain_id: "another-chain".into(), ..genesis.clone() };
    let replayed_elsewhere = sign(&elsewhere, &developer, body("hi", 2, false), &ta, now_ns());
    expect_error(post(&http, &ta_url, &replayed_elsewhere).await, 401, Some("invalid_signature")).await;
    let mut raised = sign(&genesis, &developer, body("hi", 2, false), &ta, now_ns());
    let max_tokens = raised.headers.iter().position(|(name, _)| *name == "x-max-tokens").unwrap();
    raised.headers[max_tokens].1 = "64".into();
    expect_error(post(&http, &ta_url, &raised).await, 401, Some("invalid_signature")).await;

    // 404: a key that was never funded.
    let stranger = sign(&genesis, &AccountKey::from_seed(b"stranger"), body("hi", 2, false), &ta, now_ns());
    expect_error(post(&http, &ta_url, &stranger).await, 404, Some("account_not_found")).await;

    // 400: stale and future timestamps.
    let stale = sign(&genesis, &developer, body("hi", 2, false), &ta, now_ns() - 120_000_000_000);
    let error = expect_error(post(&http, &ta_url, &stale).await, 400, None).await;
    assert_eq!(error["error"]["param"], json!("X-Timestamp"));
    let future = sign(&genesis, &developer, body("hi", 2, false), &ta, now_ns() + 120_000_000_000);
    expect_error(post(&http, &ta_url, &future).await, 400, None).await;

    // Host 3 is killed below. Its payloads then cannot be served, so a validation of an answer it gave
    // before fails and refunds that answer: every developer request up to the kill goes elsewhere.
    let victim = net.plan.nodes[3].address;
    let not_victim =
        |id: &Hash| gonka_chain::inference::executor_for(&draws, id).is_some_and(|a| a != victim);

    // 409: the same signed request twice. (The body is chosen so that some host's VRF selects it to
    // validate the answer: the payload-custody checks below need a selected host.)
    let (once, validator, proof) = (0..)
        .find_map(|i| {
            let request =
                sign(&genesis, &developer, body(&format!("replay me {i}"), 2, false), &ta, now_ns());
            if !not_victim(&request.id) {
                return None;
            }
            selected_validator(&net, &draws, &genesis, &request.id).map(|(v, p)| (request, v, p))
        })
        .unwrap();
    assert_eq!(post(&http, &ta_url, &once).await.status().as_u16(), 200);
    started.push(once.id);
    expect_error(post(&http, &ta_url, &once).await, 409, Some("replayed_request")).await;

    // Payload custody (docs/spec/validation.md §4.1): the executor serves the payload to the host its
    // VRF selected, showing its proof, and to no one else — not to another host with voting power.
    let record = settled(&net, &once.id, "finished", Duration::from_secs(30)).await;
    let executor_node = net.plan.nodes.iter().find(|n| json!(n.address) == record["executor"]).unwrap();
    let (executor, executor_address) = (executor_node.api_url.clone(), executor_node.address);
    let fetch_signed =
        |as_host: Address, timestamp_ns: u64, signature: RecoverableSignature, proof: Option<VrfProof>| {
            let (http, url) = (http.clone(), format!("{executor}/v1/inferences/{}/payload", once.id));
            async move {
                let mut request = http
                    .get(url)
                    .header(HEADER_HOST, as_host.to_string())
                    .header("x-timestamp", timestamp_ns.to_string())
                    .header("authorization", encode_signature(&signature));
                if let Some(proof) = proof {
                    request = request.header(HEADER_VALIDATION_PROOF, proof.to_string());
                }
                request.send().await.unwrap()
            }
        };
    let payload_signature = |key: &AccountKey, chain_id: &str, serving: &Address, timestamp_ns: u64| {
        key.sign_recoverable(&payload_request_message(chain_id, &once.id, serving, timestamp_ns))
    };
    let fetch = |key: &AccountKey, as_host: Address, proof: Option<VrfProof>| {
        let timestamp_ns = now_ns();
        fetch_signed(
            as_host,
            timestamp_ns,
            payload_signature(key, &genesis.chain_id, &executor_address, timestamp_ns),
            proof,
        )
    };
    // A host signs payload requests with its operational key and names its account address.
    let (selected, selected_address) = (host_key(&net, validator), net.plan.nodes[validator].address);
    let served = fetch(&selected, selected_address, Some(proof)).await;
    let status = served.status().as_u16();
    let payload: Value = served.json().await.unwrap();
    assert_eq!(status, 200, "the selected validator reads the payload: {payload}");
    assert_eq!(payload["response_hash"], record["response_hash"]);
    assert_eq!(payload["logprobs_hash"], record["logprobs_hash"]);
    assert_eq!(payload["seed"], record["seed"]);
    assert_eq!(payload["body"].as_str().unwrap().as_bytes(), once.body.as_slice());
    let other = (0..4).find(|&i| i != validator && net.plan.nodes[i].address != executor_address).unwrap();
    let (unselected, unselected_address) = (host_key(&net, other), net.plan.nodes[other].address);
    let refused = fetch(&unselected, unselected_address, None).await;
    assert_eq!(refused.status().as_u16(), 403, "a host with power but no selection");
    let borrowed = fetch(&unselected, unselected_address, Some(proof)).await;
    assert_eq!(borrowed.status().as_u16(), 403, "another host's proof");
    let refused = fetch(&developer, developer.address(), Some(proof)).await;
    assert_eq!(refused.status().as_u16(), 401, "a developer is not a host");
    let impostor = fetch(&developer, selected_address, Some(proof)).await;
    assert_eq!(impostor.status().as_u16(), 401, "a host's address with someone else's signature");
    // A signed payload request is good once, at the host it names, on the chain it names.
    let timestamp_ns = now_ns();
    let signature = payload_signature(&selected, &genesis.chain_id, &executor_address, timestamp_ns);
    assert_eq!(
        fetch_signed(selected_address, timestamp_ns, signature, Some(proof)).await.status().as_u16(),
        200
    );
    let replayed = fetch_signed(selected_address, timestamp_ns, signature, Some(proof)).await;
    assert_eq!(replayed.status().as_u16(), 409, "a payload request replayed");
    let other_host = net.plan.nodes.iter().map(|n| n.address).find(|a| *a != executor_address).unwrap();
    let elsewhere = payload_signature(&selected, &genesis.chain_id, &other_host, timestamp_ns + 1);
    let refused = fetch_signed(selected_address, timestamp_ns + 1, elsewhere, Some(proof)).await;
    assert_eq!(refused.status().as_u16(), 401, "a payload request signed for another serving host");
    let other_chain = payload_signature(&selected, "another-chain", &executor_address, timestamp_ns + 2);
    let refused = fetch_signed(selected_address, timestamp_ns + 2, other_chain, Some(proof)).await;
    assert_eq!(refused.status().as_u16(), 401, "a payload request signed for another chain");

    // 402: an account holding less than (prompt + max_tokens) × price.
    let poor = AccountKey::from_seed(b"poor");
    let fund = Tx::new(
        &net.plan.chain_id,
        &developer,
        0,
        vec![Msg::Bank(gonka_chain::BankMsg::Send { to: poor.address(), amount: Amount(1_000) })],
    );
    assert_eq!(net.submit(0, &fund).await["accepted"], json!(true));
    let deadline = Instant::now() + Duration::from_secs(30);
    while balance(&net, &poor.address()).await != 1_000 {
        assert!(Instant::now() < deadline, "funding never landed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let costly = sign(&genesis, &poor, body("hi", 100, false), &ta, now_ns());
    expect_error(post(&http, &ta_url, &costly).await, 402, Some("insufficient_balance")).await;
    assert_eq!(balance(&net, &poor.address()).await, 1_000);

    // Issue 12, item 1: a developer funded for one escrow fires eight requests at four TAs at once and
    // sends its whole balance away meanwhile. Every answer it receives is paid in full — by its escrow
    // or, where a Start lost the race, by the forwarding TA's collateral.
    let drainer = AccountKey::from_seed(b"drainer");
    let fund = |amount: u128, sequence: u64| {
        let send = gonka_chain::BankMsg::Send { to: drainer.address(), amount: Amount(amount) };
        Tx::new(&net.plan.chain_id, &developer, sequence, vec![Msg::Bank(send)])
    };
    let drain_body = |i: usize| body(&format!("Count to ten, attempt {i}"), 24, false);
    assert_eq!(net.submit(0, &fund(1, 1)).await["accepted"], json!(true));
    let deadline = Instant::now() + Duration::from_secs(30);
    while net
        .get(0, &format!("/accounts/{}", drainer.address()))
        .await
        .is_none_or(|a| a["balance"] != json!("1"))
    {
        assert!(Instant::now() < deadline, "funding never landed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The TA names the escrow in its 402; the drainer is then funded for exactly one, and the fee of
    // the transfer that drains it.
    let probe = sign(&genesis, &drainer, drain_body(0), &ta, now_ns());
    let refusal = expect_error(post(&http, &ta_url, &probe).await, 402, Some("insufficient_balance")).await;
    let message = refusal["error"]["message"].as_str().unwrap().to_string();
    let escrow: u128 = message.split(", ").nth(1).and_then(|m| m.split(' ').next()).unwrap().parse().unwrap();
    let fee = genesis.params.fees.per_message.0;
    assert_eq!(net.submit(0, &fund(escrow - 1 + fee, 2)).await["accepted"], json!(true));
    let deadline = Instant::now() + Duration::from_secs(30);
    while balance(&net, &drainer.address()).await != escrow + fee {
        assert!(Instant::now() < deadline, "funding never landed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sink = AccountKey::from_seed(b"sink").address();
    let drain = Tx::new(
        &net.plan.chain_id,
        &drainer,
        0,
        vec![Msg::Bank(gonka_chain::BankMsg::Send { to: sink, amount: Amount(escrow) })],
    );
    let burst = (0..8usize).map(|i| {
        let node = &net.plan.nodes[i % 4];
        let request = sign(&genesis, &drainer, drain_body(i + 1), &node.address, now_ns());
        let (http, url) = (http.clone(), node.api_url.clone());
        async move {
            let response = post(&http, &url, &request).await;
            let status = response.status().as_u16();
            let delivered = status == 200 && response.bytes().await.is_ok();
            (request.id, status, delivered)
        }
    });
    let (outcomes, drained) = tokio::join!(futures::future::join_all(burst), net.submit(2, &drain));
    println!("burst: {outcomes:?}; drain accepted: {}", drained["accepted"]);
    let delivered: Vec<Hash> = outcomes.iter().filter(|(_, _, d)| *d).map(|(id, _, _)| *id).collect();
    assert!(!delivered.is_empty(), "one request is funded: {outcomes:?}");
    assert!(outcomes.iter().all(|(_, status, _)| [200, 402].contains(status)), "{outcomes:?}");
    for id in &delivered {
        // Finished, never expired: no delivered answer ends unpaid.
        let record = settled(&net, id, "finished", Duration::from_secs(60)).await;
        let field = |name: &str| {
            record[name]
                .as_str()
                .map_or_else(|| u128::from(record[name].as_u64().unwrap()), |v| v.parse().unwrap())
        };
        let worth = (field("prompt_tokens") + field("completion_tokens")) * field("price_per_token");
        assert_eq!(field("cost"), worth, "delivered answer {id} paid in full: {record}");
    }
    println!(
        "{} of 8 answers delivered, each paid in full; the drainer was funded {escrow}",
        delivered.len()
    );
    assert!(balance(&net, &drainer.address()).await <= escrow + fee);

    // 429: two long streams hold both forwarding slots of TA 0; a third request is turned away. (Their
    // executors are not host 3, which is killed below.)
    let signed_where = |tag: &str, max_tokens: u32, wanted: &dyn Fn(Address) -> bool| {
        (0..)
            .map(|i| sign(&genesis, &developer, body(&format!("{tag} {i}"), max_tokens, true), &ta, now_ns()))
            .find(|r| gonka_chain::inference::executor_for(&draws, &r.id).is_some_and(wanted))
            .unwrap()
    };
    let mut open = Vec::new();
    for i in 0..2 {
        let long = signed_where(&format!("Write a long story {i}"), 400, &|a| a != victim);
        started.push(long.id);
        let response = post(&http, &ta_url, &long).await;
        assert_eq!(response.status().as_u16(), 200);
        open.push(response);
    }
    let third = (0..)
        .map(|i| sign(&genesis, &developer, body(&format!("one more {i}"), 2, false), &ta, now_ns()))
        .find(|r| not_victim(&r.id))
        .unwrap();
    let response = post(&http, &ta_url, &third).await;
    assert!(response.headers().contains_key("retry-after"));
    expect_error(response, 429, Some("transfer_agent_capacity")).await;
    drop(open);
    // The same request retried once a slot is free is served: the 429 did not mark it as seen (no 409).
    let deadline = Instant::now() + Duration::from_secs(30);
    let retried = loop {
        let response = post(&http, &ta_url, &third).await;
        if response.status().as_u16() != 429 {
            break response;
        }
        assert!(Instant::now() < deadline, "the slots never freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(retried.status().as_u16(), 200, "a retry after 429 is served, not refused as a replay");
    retried.bytes().await.expect("the answer");
    started.push(third.id);

    // An executor killed mid-stream: the client sees an error, the Start expires, full refund.
    let to_victim = |tag: &str, max_tokens: u32| signed_where(tag, max_tokens, &|a| a == victim);
    // Settle everything so far (the streams dropped above bill their partial answers).
    let mut paid = 0u128;
    for id in &started {
        let record = settled(&net, id, "finished", Duration::from_secs(60)).await;
        paid += record["cost"].as_str().unwrap().parse::<u128>().unwrap();
    }
    let before_kill = balance(&net, &developer.address()).await;
    // It funded the poor account (1,000) and the drainer (its escrow and a fee) in three transfers,
    // each burning a fee.
    let funded = 1_000 + escrow + fee + 3 * fee;
    assert_eq!(before_kill, start_balance - funded - paid, "exactly the finished requests' cost");
    let doomed = to_victim("Tell me everything about", 600);
    let response = post(&http, &ta_url, &doomed).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-executor-address"].to_str().unwrap(), victim.to_string());
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    net.kill9(3);
    let mut rest = Vec::new();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => rest.extend_from_slice(&bytes),
            Err(_) => break,
        }
    }
    let tail = String::from_utf8_lossy(&rest);
    assert!(
        tail.contains("\"error\"") && tail.contains("executor_failed"),
        "the stream ends with an error: {tail}"
    );
    let record = settled(&net, &doomed.id, "expired", Duration::from_secs(60)).await;
    assert_eq!(record["cost"], json!("0"));
    let missed = net.get(0, &format!("/accounts/{victim}")).await.unwrap()["host"]["missed"].clone();
    assert_eq!(missed, json!(1));

    // 502: the executor is down. The Start was recorded, so it expires and refunds too.
    let unreachable = to_victim("Anyone there", 20);
    expect_error(post(&http, &ta_url, &unreachable).await, 502, Some("executor_failed")).await;
    settled(&net, &unreachable.id, "expired", Duration::from_secs(60)).await;
    assert_eq!(balance(&net, &developer.address()).await, before_kill, "both refunded in full");
}
