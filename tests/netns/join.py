#!/usr/bin/env python3
"""The newcomer's path, driven from the network's namespace (tests/netns/join.sh sets them up).

A 3-host devnet listens on NETWORK_IP; a fourth host, in its own namespace at NEWCOMER_IP, fetches
the genesis with `gonka init --join` (checked against the hash the network announces), is funded,
syncs from height 1, finds every consensus peer from the one it was given (Malachite's discovery),
registers with `gonka tx host register` through its own node (its transaction reaches the proposers
by gossip), takes part in the next PoC (which records its weight) and becomes a validator at the one after
(docs/spec/poc.md §5.1), on the same chain as the others;
then the gateway's requests are drawn to it in proportion to its weight.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

# Short epochs: PoC starts at 60, 140, …; weights settle 24 blocks after a start.
PARAMS = {
    "epoch": {
        "epoch_length": 80, "epoch_shift": 20, "poc_stage_duration": 12, "poc_exchange_duration": 2,
        "poc_validation_delay": 2, "poc_validation_duration": 8, "set_new_validators_delay": 2,
        "inference_validation_cutoff": 5,
    },
    "poc": {"r_target": "1.372"},
}
BASE_PORT = 27500
HOSTS = 3
REQUESTS = 48
MODEL = "SmolLM2-135M-Instruct"


def log(message):
    print(f"[netns join {time.strftime('%H:%M:%S')}] {message}", flush=True)


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_for(what, check, within):
    deadline = time.time() + within
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise SystemExit(f"FAILED: {what} within {within} s")
        time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gonka", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--newcomer-ns", required=True)
    parser.add_argument("--network-ip", required=True)
    parser.add_argument("--newcomer-ip", required=True)
    args = parser.parse_args()
    gonka, workdir = args.gonka, args.dir
    in_newcomer = ["ip", "netns", "exec", args.newcomer_ns, gonka]

    def run(command, what):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"FAILED: {what}: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    net_home = os.path.join(workdir, "net")
    node0 = f"http://{args.network_ip}:{BASE_PORT}"
    gateway = f"http://{args.network_ip}:{BASE_PORT + 2 * HOSTS}"
    processes = []
    try:
        log(f"starting a {HOSTS}-host devnet at {args.network_ip}")
        devnet_log = open(os.path.join(workdir, "devnet.out"), "w")
        processes.append(subprocess.Popen(
            [gonka, "devnet", "--home", net_home, "--hosts", str(HOSTS), "--base-port", str(BASE_PORT),
             "--host-ip", args.network_ip, "--params", json.dumps(PARAMS)],
            stdout=devnet_log, stderr=subprocess.STDOUT))
        wait_for("the devnet makes blocks", lambda: (get(f"{node0}/status") or {}).get("height", 0) >= 2, 180)

        # The operator learns the genesis hash from the network's announcement (here: node 0 itself)
        # and passes it; a wrong hash is refused before anything is written.
        announced = get(f"{node0}/genesis")["genesis_hash"]
        newcomer_home = os.path.join(workdir, "newcomer")
        api = f"{args.newcomer_ip}:{BASE_PORT + 100}"
        init = [*in_newcomer, "init", "--home", newcomer_home, "--join", node0, "--api-listen", api,
                "--p2p-listen", f"{args.newcomer_ip}:{BASE_PORT + 101}", "--serve", "--private-network",
                "--output", "json"]
        wrong = subprocess.run([*init, "--genesis-hash", "00" * 32], capture_output=True, text=True)
        assert wrong.returncode != 0 and "refusing to join" in wrong.stderr, wrong.stderr
        assert not os.path.exists(newcomer_home), "a refused join wrote a home"
        joined = json.loads(run([*init, "--genesis-hash", announced], "gonka init --join"))
        address, validator_key = joined["address"], joined["validator_key"]
        assert joined["genesis_hash"] == announced
        log(f"newcomer {address} initialized from {node0}; peers {joined['p2p_peers']}")

        run([gonka, "tx", "bank", "send", "developer", address, "100gnk", "--keyring-dir",
             os.path.join(net_home, "keys"), "--node", node0, "--wait"], "funding the newcomer")
        newcomer_log = open(os.path.join(newcomer_home, "node.log"), "w")
        processes.append(subprocess.Popen([*in_newcomer, "node", "start", "--home", newcomer_home],
                                          stdout=newcomer_log, stderr=subprocess.STDOUT))
        newcomer = f"http://{api}"

        def synced():
            mine, theirs = get(f"{newcomer}/status"), get(f"{node0}/status")
            return mine and theirs and mine["height"] >= theirs["height"] - 1 and mine
        status = wait_for("the newcomer syncs from height 1", synced, 180)
        log(f"newcomer synced to height {status['height']}")
        # It was given node 0 only; discovery finds the other two.
        wait_for("the newcomer connects to every host", lambda: (get(f"{newcomer}/status") or {}).get("peers", 0) >= HOSTS, 60)

        # Registered through its own node, which is no proposer: gossip carries the transaction on.
        registered = json.loads(run(
            [*in_newcomer, "tx", "host", "register", "--home", newcomer_home, "--api-url", newcomer,
             "--node", newcomer, "--output", "json", "--wait"], "gonka tx host register"))
        height = registered["height"]
        log(f"registered at height {height}")
        hosts = {p["address"]: p for p in get(f"{node0}/participants")["participants"]}
        assert hosts[address]["api_url"] == newcomer, hosts[address]

        # Entering PoC takes the chain's entry collateral, locked from the newcomer's balance (a host's message).
        entry = int(get(f"{node0}/params")["poc"]["entry_collateral"])
        run([*in_newcomer, "tx", "collateral", "deposit", "host", str(entry), "--home", newcomer_home,
             "--node", newcomer, "--wait"], "gonka tx collateral deposit")

        # Its first PoC (the next stage start after its registration) records its weight; the second
        # confirms it and gives it power (docs/spec/poc.md §5.1: no power in a host's first epoch).
        epoch = PARAMS["epoch"]
        first = epoch["epoch_length"] - epoch["epoch_shift"]
        start = first if height < first else first + math.ceil((height - first + 1) / epoch["epoch_length"]) * epoch["epoch_length"]
        to_effective = epoch["poc_stage_duration"] + epoch["poc_validation_delay"] + epoch["poc_validation_duration"] + epoch["set_new_validators_delay"]
        recorded = start + to_effective
        log(f"its first PoC starts at {start}; its weight is recorded at {recorded}")

        def chain_height():
            return (get(f"{node0}/status") or {}).get("height", 0)

        def newcomer_on_chain():
            return {p["address"]: p for p in get(f"{node0}/participants")["participants"]}.get(address)
        wait_for(f"height {recorded + 1}", lambda: chain_height() > recorded, (recorded - height) * 3 + 120)
        measured = newcomer_on_chain()
        if not measured["poc_weight"] > 0:
            log(f"its PoC progress: {json.dumps(get(f'{newcomer}/poc/progress'))}")
            raise SystemExit(f"FAILED: the newcomer's first PoC recorded no weight: {json.dumps(measured)}")
        assert measured["weight"] == 0, measured
        log(f"first PoC: weight {measured['poc_weight']} recorded, no power yet")
        effective = start + epoch["epoch_length"] + to_effective
        def power():
            view = get(f"{node0}/validators") or {"validators": []}
            return next((v["voting_power"] for v in view["validators"] if v["validator_key"] == validator_key), 0)
        def validator_or_late():
            if power() > 0:
                return True
            if (get(f"{node0}/status") or {}).get("height", 0) > effective + 5:
                log(f"the newcomer on chain: {json.dumps(newcomer_on_chain())}")
                log(f"its PoC progress: {json.dumps(get(f'{newcomer}/poc/progress'))}")
                raise SystemExit(f"FAILED: the newcomer has no voting power at height {effective + 5}")
            return False
        wait_for("the newcomer becomes a validator after its second PoC", validator_or_late, (effective - recorded) * 3 + 120)
        log(f"the newcomer is a validator with power {power()}")

        # Same chain: its block at a common height has the others' app hash.
        common = min(get(f"{newcomer}/status")["height"], get(f"{node0}/status")["height"]) - 1
        mine, theirs = get(f"{newcomer}/blocks/{common}"), get(f"{node0}/blocks/{common}")
        assert (mine["hash"], mine["app_hash"]) == (theirs["hash"], theirs["app_hash"]), (mine, theirs)
        log(f"block {common}: the same hash and app hash on the newcomer and on node 0")

        # The gateway's requests are drawn to it in proportion to its weight.
        weights = {p["address"]: p["weight"] for p in get(f"{node0}/participants")["participants"]}
        share = weights[address] / sum(weights.values())
        drawn = 0
        for i in range(REQUESTS):
            body = json.dumps({"model": MODEL, "max_tokens": 2,
                               "messages": [{"role": "user", "content": f"Say a number, {i}"}]}).encode()
            request = urllib.request.Request(f"{gateway}/v1/chat/completions", data=body,
                                             headers={"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as response:
                json.load(response)
                drawn += response.headers.get("x-executor-address") == address
        mean, sigma = REQUESTS * share, math.sqrt(REQUESTS * share * (1 - share))
        log(f"{drawn} of {REQUESTS} requests drawn to the newcomer; its weight share {share:.3f} expects {mean:.1f} ± {sigma:.1f}")
        assert drawn > 0 and abs(drawn - mean) <= max(3 * sigma, 2), (drawn, mean, sigma)
        log("PASSED")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
