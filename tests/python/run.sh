#!/usr/bin/env bash
# Run the official OpenAI Python SDK against a real `gonka serve`, then it and the OpenAI Agents SDK
# against `gonka gateway` on a 3-host devnet: makes the venv it needs, starts each on free ports, waits until they answer, runs
# pytest, and always stops them.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$REPO/.venv"
BINARY="$REPO/target/release/gonka"
OPENAI_VERSION="3.63.0"
# A real agent framework, run against the gateway (test_agents.py); it needs openai 3.
AGENTS_VERSION="0.25.0"
PYTEST_VERSION="8.4.2"
HEALTH_WAIT_SECONDS=120

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "openai==$OPENAI_VERSION" "openai-agents==$AGENTS_VERSION" "pytest==$PYTEST_VERSION"

[ -x "$BINARY" ] || { echo "missing $BINARY: run cargo build --release --bin gonka" >&2; exit 1; }

PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LOG="$(mktemp "${TMPDIR:-/tmp}/gonka-serve.XXXXXX.log")"

"$BINARY" serve --listen "127.0.0.1:$PORT" >"$LOG" 2>&1 &
SERVER_PID=$!
stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -f "$LOG"
}
trap stop_server EXIT

healthy() {
  "$VENV/bin/python" - "$PORT" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

deadline=$((SECONDS + HEALTH_WAIT_SECONDS))
until healthy; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "gonka serve exited before becoming healthy; its log:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "gonka serve not healthy after ${HEALTH_WAIT_SECONDS}s; its log:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  sleep 0.5
done

status=0
GONKA_BASE_URL="http://127.0.0.1:$PORT/v1" "$VENV/bin/python" -m pytest -q "$REPO/tests/python/test_openai_sdk.py" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- gonka serve log ---" >&2
  cat "$LOG" >&2
  exit "$status"
fi
stop_server

# The network: 3 hosts with voting power 100/200/300 (no PoC, so the weights hold), and a gateway.
DEVNET_DIR="$(mktemp -d "${TMPDIR:-/tmp}/gonka-devnet.XXXXXX")"
BASE_PORT="$("$VENV/bin/python" - <<'PY'
import random, socket
for _ in range(200):
    # Below Linux's ephemeral range (32768 and up), which outgoing connections draw from.
    base = random.randrange(20000, 32000, 16)
    try:
        sockets = []
        for port in range(base, base + 8):
            s = socket.socket(); s.bind(("127.0.0.1", port)); sockets.append(s)
        print(base)
        break
    except OSError:
        continue
PY
)"
"$BINARY" devnet --hosts 3 --no-poc --weights 100,200,300 --home "$DEVNET_DIR" --base-port "$BASE_PORT" \
  >"$DEVNET_DIR/devnet.out" 2>&1 &
DEVNET_PID=$!
stop_devnet() {
  if kill -0 "$DEVNET_PID" 2>/dev/null; then
    kill "$DEVNET_PID" 2>/dev/null || true
    wait "$DEVNET_PID" 2>/dev/null || true
  fi
  rm -rf "$DEVNET_DIR"
}
trap 'stop_server; stop_devnet' EXIT

network_ready() {
  "$VENV/bin/python" - "$DEVNET_DIR" <<'PY'
import json, sys, urllib.request
try:
    plan = json.load(open(sys.argv[1] + "/devnet.json"))
    with urllib.request.urlopen(plan["gateway_url"] + "/health", timeout=2) as response:
        assert response.status == 200
    for node in plan["nodes"]:
        with urllib.request.urlopen(node["api_url"] + "/status", timeout=2) as response:
            assert json.load(response)["height"] >= 2
except Exception:
    sys.exit(1)
PY
}
deadline=$((SECONDS + HEALTH_WAIT_SECONDS))
until network_ready; do
  if ! kill -0 "$DEVNET_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "the devnet did not come up; its output:" >&2
    cat "$DEVNET_DIR/devnet.out" "$DEVNET_DIR"/host-*/node.log "$DEVNET_DIR/gateway.log" >&2 || true
    exit 1
  fi
  sleep 0.5
done
GONKA_DEVNET_DIR="$DEVNET_DIR" "$VENV/bin/python" -m pytest -q -s "$REPO/tests/python/test_network.py" \
  "$REPO/tests/python/test_agents.py" || status=$?
# The agent API's own tests, unchanged, through the gateway: every answer paid and open to validation.
GATEWAY_URL="$("$VENV/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["gateway_url"])' "$DEVNET_DIR/devnet.json")"
GONKA_BASE_URL="$GATEWAY_URL/v1" "$VENV/bin/python" -m pytest -q "$REPO/tests/python/test_openai_sdk.py" \
  -k "parse_returns or json_object or tool_round_trip or pydantic_tool or required_tool_choice or text_completion or echo_with or vllm_prompt_logprobs or bad_text_completion" \
  || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- devnet logs ---" >&2
  tail -n 50 "$DEVNET_DIR"/host-*/node.log "$DEVNET_DIR/gateway.log" >&2 || true
fi
exit "$status"
