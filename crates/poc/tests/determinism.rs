//! The generators and the reference forward pass give the same bits every time, pinned by a fixture.
//!
//! Rewrite the fixture after a deliberate change with
//! `GONKA_UPDATE_FIXTURES=1 cargo test -p gonka-poc --release --test determinism`.
#![allow(clippy::unwrap_used)]

use gonka_poc::{ModelSpec, forward_last, nonce_distance, nonce_input, nonce_permutation, target, weights};
use gonka_primitives::Hash;
use serde_json::json;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/devnet_distances.json");

fn block_hash() -> Hash {
    Hash::digest(b"gonka-poc fixture block")
}

fn public_key() -> [u8; 33] {
    let mut key = [0x11; 33];
    key[0] = 0x02;
    key
}

fn f32_digest(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Hash::digest(&bytes).to_hex()
}

#[test]
fn same_inputs_give_identical_bits() {
    let spec = ModelSpec::devnet();
    let (hash, key) = (block_hash(), public_key());
    let a = weights(&spec, &hash).unwrap();
    let b = weights(&spec, &hash).unwrap();
    assert_eq!(a.digest(), b.digest());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for nonce in [0, 1, u64::MAX] {
        let input = nonce_input(&spec, &hash, &key, nonce);
        assert_eq!(bits(&input), bits(&nonce_input(&spec, &hash, &key, nonce)));
        assert_eq!(
            nonce_permutation(&spec, &hash, &key, nonce),
            nonce_permutation(&spec, &hash, &key, nonce)
        );
        assert_eq!(bits(&forward_last(&a, &input).unwrap()), bits(&forward_last(&b, &input).unwrap()));
    }
    assert_eq!(bits(&target(&spec, &hash)), bits(&target(&spec, &hash)));
    let t = target(&spec, &hash);
    assert_eq!(
        nonce_distance(&a, &t, &hash, &key, 7).unwrap().to_bits(),
        nonce_distance(&b, &t, &hash, &key, 7).unwrap().to_bits()
    );
}

#[test]
fn inputs_depend_on_key_nonce_and_block() {
    let spec = ModelSpec::devnet();
    let (hash, key) = (block_hash(), public_key());
    let base = nonce_input(&spec, &hash, &key, 0);
    assert_eq!(base.len(), (spec.seq_len * spec.dim) as usize);
    let mut other_key = key;
    other_key[32] ^= 1;
    assert_ne!(base, nonce_input(&spec, &hash, &other_key, 0));
    assert_ne!(base, nonce_input(&spec, &hash, &key, 1));
    assert_ne!(base, nonce_input(&spec, &Hash::digest(b"other"), &key, 0));
    assert_ne!(nonce_permutation(&spec, &hash, &key, 0), nonce_permutation(&spec, &hash, &other_key, 0));
}

#[test]
fn devnet_distances_match_the_fixture() {
    let spec = ModelSpec::devnet();
    let (hash, key) = (block_hash(), public_key());
    let model = weights(&spec, &hash).unwrap();
    let goal = target(&spec, &hash);
    let distances: Vec<_> = (0..8u64)
        .map(|nonce| {
            let d = nonce_distance(&model, &goal, &hash, &key, nonce).unwrap();
            json!({ "nonce": nonce, "distance": d.to_string(), "bits": format!("{:08x}", d.to_bits()) })
        })
        .collect();
    let actual = json!({
        "spec": spec,
        "block_hash": hash.to_hex(),
        "public_key": hex::encode(key),
        "weights_sha256": model.digest().to_hex(),
        "target_sha256": f32_digest(&goal),
        "input_nonce0_sha256": f32_digest(&nonce_input(&spec, &hash, &key, 0)),
        "permutation_nonce0_head": nonce_permutation(&spec, &hash, &key, 0)[..8].to_vec(),
        "logits_nonce0_sha256": f32_digest(&forward_last(&model, &nonce_input(&spec, &hash, &key, 0)).unwrap()),
        "distances": distances,
    });
    if std::env::var("GONKA_UPDATE_FIXTURES").as_deref() == Ok("1") {
        std::fs::write(FIXTURE, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
    }
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    assert_eq!(actual, expected, "set GONKA_UPDATE_FIXTURES=1 only for a deliberate change");
}
