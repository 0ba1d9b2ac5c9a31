#!/usr/bin/env bash
# Two machines without two machines (issue 17): a 3-host devnet in one network namespace, a newcomer
# in another, joined by a veth pair on private test addresses — nothing reaches anything over
# loopback, and nothing outside this machine is contacted. The newcomer runs `gonka init --join`,
# registers with `gonka tx host register`, becomes a validator after its first PoC, and the gateway's
# requests are drawn to it in proportion to its weight (tests/netns/join.py).
# Skips, saying why, where namespaces cannot be made (no root, no CAP_SYS_ADMIN).
set -euo pipefail
cd "$(dirname "$0")/../.."

BINARY="$PWD/target/release/gonka"
[ -x "$BINARY" ] || { echo "missing $BINARY: run cargo build --release --bin gonka" >&2; exit 1; }
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; } \
  || { echo "SKIP netns join test: iproute2 is not installed and could not be"; exit 0; }

TAG="$$"
NS_NET="gk-net-$TAG"
NS_NEW="gk-new-$TAG"
if ! ip netns add "$NS_NET" 2>/dev/null; then
  echo "SKIP netns join test: cannot create network namespaces here (needs root with CAP_SYS_ADMIN)"
  exit 0
fi
DIR="$(mktemp -d "${TMPDIR:-/tmp}/gonka-netns.XXXXXX")"
cleanup() {
  for ns in "$NS_NET" "$NS_NEW"; do
    # Every process left in the namespace goes with it.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ "${KEEP_NETNS_DIR:-0}" = 1 ]; then echo "logs kept in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
ip netns add "$NS_NEW"
ip link add "gkn$TAG" netns "$NS_NET" type veth peer name "gkw$TAG" netns "$NS_NEW"
ip -n "$NS_NET" addr add 10.77.0.1/24 dev "gkn$TAG"
ip -n "$NS_NEW" addr add 10.77.0.2/24 dev "gkw$TAG"
for ns in "$NS_NET" "$NS_NEW"; do
  ip -n "$ns" link set lo up
done
ip -n "$NS_NET" link set "gkn$TAG" up
ip -n "$NS_NEW" link set "gkw$TAG" up

# The driver runs beside the network (it reaches the newcomer over the veth, like any other host)
# and starts the newcomer's commands in the newcomer's namespace.
ip netns exec "$NS_NET" python3 tests/netns/join.py \
  --gonka "$BINARY" --dir "$DIR" --newcomer-ns "$NS_NEW" \
  --network-ip 10.77.0.1 --newcomer-ip 10.77.0.2
