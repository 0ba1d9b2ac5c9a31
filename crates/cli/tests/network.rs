//! A network of 4 validator processes on loopback: blocks finalize, every node reports the same app
//! hash at every height, a transaction sent to any node is included exactly once, the network keeps
//! going with one validator killed (kill -9 in the middle of a stream of transactions) and the node
//! catches up on restart with the same state, and with more than 1/3 of the power stopped progress
//! halts until it returns.

mod common;

use std::time::Duration;

use common::Network;

use gonka_chain::{BankMsg, Msg, Tx};
use gonka_client::devnet::DevnetPlan;
use gonka_node::keyring::Keyring;
use gonka_primitives::{AccountKey, Amount};
use serde_json::json;

fn host_key(plan: &DevnetPlan, i: usize) -> AccountKey {
    Keyring::new(plan.nodes[i].home.join("keys")).load("host", None).expect("host key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_survive_a_crash_and_halt_without_quorum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut net =
        Network::setup(dir.path(), 4, &["--no-poc", "--no-inference", "--block-interval-ms", "300"]);
    let all = [0, 1, 2, 3];
    for i in all {
        net.start(i);
    }
    net.wait_height(&all, 3, Duration::from_secs(60)).await;

    // A transaction sent to any node is included exactly once, on every node.
    let chain_id = net.plan.chain_id.clone();
    let mut sent = Vec::new();
    for i in all {
        let key = host_key(&net.plan, i);
        let to = AccountKey::from_seed(format!("recipient-{i}").as_bytes()).address();
        let tx = Tx::new(
            &chain_id,
            &key,
            0,
            vec![Msg::Bank(BankMsg::Send { to, amount: Amount(1_000 + i as u128) })],
        );
        let target = (i + 1) % 4;
        let reply = net.submit(target, &tx).await;
        assert_eq!(reply["accepted"], json!(true), "{reply}");
        // The same bytes again, to another node: refused there or dropped as a duplicate, never twice in a block.
        net.submit((target + 1) % 4, &tx).await;
        sent.push(tx.hash());
    }
    let start = net.min_height(&all).await;
    net.wait_height(&all, start + 4, Duration::from_secs(30)).await;
    let height = net.min_height(&all).await;
    for hash in &sent {
        for i in all {
            let found = net
                .get(i, &format!("/txs/{hash}"))
                .await
                .unwrap_or_else(|| panic!("node {i} lacks tx {hash}"));
            assert_eq!(found["result"]["ok"], json!(true), "{found}");
        }
        assert_eq!(net.inclusions(0, height, hash).await.len(), 1, "tx {hash} must be in exactly one block");
    }
    net.assert_same_chain(&all, height).await;

    // kill -9 one validator in the middle of a stream of transactions; the other three keep going.
    let developer = Keyring::new(net.plan.keyring.clone()).load("developer", None).expect("developer key");
    let mut stream = Vec::new();
    for sequence in 0..60u64 {
        let to = AccountKey::from_seed(&sequence.to_be_bytes()).address();
        let tx = Tx::new(
            &chain_id,
            &developer,
            sequence,
            vec![Msg::Bank(BankMsg::Send { to, amount: Amount(7) })],
        );
        assert_eq!(net.submit(0, &tx).await["accepted"], json!(true));
        stream.push(tx.hash());
        if sequence == 30 {
            net.kill9(3);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let survivors = [0, 1, 2];
    let before = net.min_height(&survivors).await;
    net.wait_height(&survivors, before + 5, Duration::from_secs(30)).await;

    // It restarts and catches up, with the same blocks and app hashes and no committed tx lost.
    net.start(3);
    let target = net.min_height(&survivors).await;
    net.wait_height(&all, target, Duration::from_secs(60)).await;
    let height = net.min_height(&all).await;
    net.assert_same_chain(&all, height).await;
    for hash in &stream {
        let on_0 = net.get(0, &format!("/txs/{hash}")).await.expect("committed on node 0");
        let on_3 = net.get(3, &format!("/txs/{hash}")).await.expect("committed on the restarted node");
        assert_eq!(on_0["height"], on_3["height"]);
    }
    let developer_path = format!("/accounts/{}", developer.address());
    assert_eq!(net.get(0, &developer_path).await.map(|a| a["sequence"].clone()), Some(json!(60)));

    // Stop validators holding half the power (more than 1/3): no block is finalized...
    net.terminate(2);
    net.terminate(3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = net.min_height(&[0, 1]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = [net.height(0).await.unwrap_or(0), net.height(1).await.unwrap_or(0)];
    assert!(later.iter().all(|h| *h <= stalled + 1), "progress without quorum: {stalled} -> {later:?}");

    // ...until they return.
    net.start(2);
    net.start(3);
    net.wait_height(&all, stalled + 4, Duration::from_secs(60)).await;
    let height = net.min_height(&all).await;
    net.assert_same_chain(&all, height).await;
}
