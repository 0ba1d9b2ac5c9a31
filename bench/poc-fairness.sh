#!/usr/bin/env bash
# PoC fairness on the devnet (issue 12, item 8): four hosts with equal compute (one sprint worker
# each) race the first PoC stage; prints each host's weight, what it computed, and the largest
# relative differences between two of them, for a baseline difficulty and a candidate, in the same run.
#   bench/poc-fairness.sh [BASELINE_R_TARGET [CANDIDATE_R_TARGET]]
# (defaults: 1.35, the devnet's first difficulty, as the baseline; the devnet's r_target as the candidate)
set -euo pipefail
cd "$(dirname "$0")/.."
gonka=./target/release/gonka
[ -x "$gonka" ] || cargo build --release --bin gonka
devnet_r_target=$("$gonka" poc calibrate --nonces 1 --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["r_target"])')
baseline="${1:-1.35}"
candidate="${2:-$devnet_r_target}"

run() { # $1: r_target → prints "spread weights"
  local home; home=$(mktemp -d)
  local port=$((27000 + RANDOM % 2000))
  "$gonka" devnet --hosts 4 --home "$home" --base-port "$port" --no-inference --poc-workers 1,1,1,1 \
    --params "{\"poc\": {\"r_target\": \"$1\"}}" >"$home/devnet.out" 2>&1 &
  local pid=$!
  trap 'kill $pid 2>/dev/null || true' RETURN
  until [ -f "$home/devnet.json" ]; do sleep 0.5; done
  local api; api=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes"][0]["api_url"])' "$home/devnet.json")
  # The first stage settles at S + stage + validation delay + validation (devnet: height 78).
  local settle=$((30 + 30 + 3 + 15 + 1))
  for _ in $(seq 1 600); do
    h=$(curl -sf "$api/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])' 2>/dev/null || echo 0)
    [ "$h" -ge "$settle" ] && break
    sleep 1
  done
  # Each host's weight and what it computed (its sprint's nonces), in node order: the weight's
  # spread, the compute's spread (the machine's share of CPU), and the spread of weight per computed
  # nonce (what PoC itself adds: Poisson noise).
  python3 - "$home/devnet.json" <<'PY'
import json, sys, urllib.request
get = lambda url: json.load(urllib.request.urlopen(url, timeout=10))
nodes = json.load(open(sys.argv[1]))["nodes"]
rows = {r["participant"]: r["poc_weight"] for r in get(nodes[0]["api_url"] + "/poc")["weights"]}
w = [rows.get(n["address"], 0) for n in nodes]
c = [get(n["api_url"] + "/poc/progress")["nonces"] for n in nodes]
spread = lambda v: (max(v) - min(v)) / (sum(v) / len(v)) if sum(v) else float("inf")
show = lambda v: "/".join(map(str, v))
per = [wi / ci if ci else 0.0 for wi, ci in zip(w, c)]
print(f"{spread(w):.4f} {spread(c):.4f} {spread(per):.4f} {show(w)} {show(c)}")
PY
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}

read -r base_spread base_compute base_noise base_weights base_computed < <(run "$baseline")
read -r spread compute noise weights computed < <(run "$candidate")
pct() { python3 -c "print(f'{100*$1:.1f}')"; }
echo "baseline r_target $baseline: weights $base_weights ($(pct "$base_spread") % largest difference of the mean); nonces computed $base_computed ($(pct "$base_compute") %); weight per computed nonce $(pct "$base_noise") %"
echo "candidate r_target $candidate: weights $weights ($(pct "$spread") %); nonces computed $computed ($(pct "$compute") %); weight per computed nonce $(pct "$noise") %"
python3 -c "print(f'ratio to baseline: {$spread/$base_spread:.2f} (weights), {$noise/$base_noise:.2f} (weight per computed nonce); target ≤ 5 % between equal hosts: ' + ('met' if $spread <= 0.05 else 'NOT met') + f'; the hosts computed within {100*$compute:.1f} % of each other')"
