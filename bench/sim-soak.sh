#!/usr/bin/env bash
# Every Byzantine mode of the simulator over SEEDS seeds each (default 1,000), with the host counts
# and faults of crates/sim/tests/seeds.rs and 50 blocks per run (and the honest network with every
# fault, and with only delays and losses: no host ever down, so no payload ever withheld); prints, per mode, how long it took and what held or broke. Issues 12 and 13 ask every mode to
# hold every invariant over at least 1,000 seeds. BLOCKS (default 50) sets the heights per run: 110
# reaches two epoch settlements and their claims (issue 14's economy invariants).
#   [BLOCKS=110] bench/sim-soak.sh [SEEDS] [MODES]   (MODES: an extended regex of the modes to run)
set -euo pipefail
cd "$(dirname "$0")/.."
gonka=./target/release/gonka
[ -x "$gonka" ] || cargo build --release --bin gonka
n="${1:-1000}"
only="${2:-.}"
# behaviour:count hosts faults
blocks="${BLOCKS:-50}"
modes=(
  "none 5 none"
  "none 5 crash,partition,delay,drop"
  "none 5 delay,drop"
  "fabricate-poc:1 5 crash,delay"
  "copy-poc:1 5 partition,delay"
  "tiny-claims:1 5 none"
  "withhold-votes:1 6 drop,delay"
  "drain-balance:1 4 delay"
  "forge-ta:1 5 none"
  "overcharge:1 5 crash"
  "censor:1 5 none"
  "surge:2 7 crash,partition,delay,drop"
  "substitute-model:1 5 crash,delay"
  "prefill:1 5 crash,delay"
  "edit-answer:1 5 crash,delay"
  "wrong-seed:1 5 crash,delay"
  "refuse-payload:1 5 crash,delay"
)
printf '%-16s %5s %6s  %-28s %s\n' mode hosts seeds faults result
for mode in "${modes[@]}"; do
  read -r byzantine hosts faults <<<"$mode"
  grep -qE "$only" <<<"$byzantine" || continue
  flags=(--seeds "1..$n" --hosts "$hosts" --blocks "$blocks" --faults "$faults")
  [ "$byzantine" = none ] || flags+=(--byzantine "$byzantine")
  out=$("$gonka" sim "${flags[@]}")
  timing=$(grep -m1 ' seeds in ' <<<"$out" | sed 's/ on .*//')
  result=$(grep -E '^(validation:|economy:|invariants:|VIOLATED)' <<<"$out" | sed 's/ (replay one with --seed)//' | paste -sd ';' -)
  printf '%-16s %5s %6s  %-28s %s [%s]\n' "$byzantine" "$hosts" "$n" "$faults" "$result" "$timing"
done
