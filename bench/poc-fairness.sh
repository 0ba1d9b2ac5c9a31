#!/usr/bin/env bash
# PoC fairness on the devnet (issue 12, item 8): four hosts with equal compute (one sprint worker
# each) race the first PoC stage; prints each host's weight and the largest relative difference
# between two of them, for a baseline difficulty and a candidate, in the same run.
#   bench/poc-fairness.sh [BASELINE_R_TARGET [CANDIDATE_R_TARGET]]
# (defaults: the devnet's r_target as the baseline, 1.405 as the candidate)
set -euo pipefail
cd "$(dirname "$0")/.."
gonka=./target/release/gonka
[ -x "$gonka" ] || cargo build --release --bin gonka
devnet_r_target=$("$gonka" poc calibrate --nonces 1 --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["r_target"])')
baseline="${1:-$devnet_r_target}"
candidate="${2:-1.405}"

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
  curl -sf "$api/poc" | python3 -c '
import json, sys
rows = json.load(sys.stdin)["weights"]
w = [r["poc_weight"] for r in rows]
spread = (max(w) - min(w)) / (sum(w) / len(w)) if sum(w) else float("inf")
print(f"{spread:.4f} {w}")'
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}

read -r base_spread base_weights < <(run "$baseline")
read -r spread weights < <(run "$candidate")
echo "baseline r_target $baseline: weights $base_weights, largest difference $(python3 -c "print(f'{100*$base_spread:.1f}')") % of the mean"
echo "candidate r_target $candidate: weights $weights, largest difference $(python3 -c "print(f'{100*$spread:.1f}')") % of the mean"
python3 -c "print(f'ratio to baseline: {$spread/$base_spread:.2f}; target: ≤ 5 %: ' + ('met' if $spread <= 0.05 else 'NOT met'))"
