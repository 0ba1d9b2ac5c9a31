#!/usr/bin/env bash
# Run the official OpenAI Python SDK against a real `gonka serve`: makes the venv it needs, starts the
# server on a free port, waits for /health, runs pytest, and always stops the server.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$REPO/.venv"
BINARY="$REPO/target/release/gonka"
OPENAI_VERSION="2.54.0"
PYTEST_VERSION="8.4.2"
HEALTH_WAIT_SECONDS=120

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "openai==$OPENAI_VERSION" "pytest==$PYTEST_VERSION"

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
fi
exit "$status"
