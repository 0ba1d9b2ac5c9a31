#!/usr/bin/env bash
# Engine benchmark: gonka-rs against a llama.cpp baseline on the same GGUF, same prompts, CPU.
#
#   bash bench/engine.sh
#
# Steps, all in one run (sequentially, so the runs do not compete for the cores):
#   1. build the llama.cpp baseline (bench/llama-baseline, a standalone Cargo project that builds
#      llama.cpp from the sources bundled in the llama-cpp-sys-2 crate; needs cmake + libclang,
#      installed with apt-get when missing) and the `gonka` binary;
#   2. (a) `gonka bench engine` on bench/prompts.txt;
#      (b) the baseline on the SAME GGUF gonka runs (`gonka model path`, else $GONKA_GGUF): the
#          shipped Q4_1 file;
#      (c) the baseline on that file converted to Q8_0 by llama.cpp's own quantizer (llama.cpp has
#          no batched Q4_1 kernel, so it may run Q8_0 best); targets compare with the faster one;
#   3. a table with the ratios and the PASS/FAIL of each target (bench/engine_report.py).
#
# Outputs go to bench/out/ (git-ignored). Environment:
#   GONKA_GGUF          GGUF for the baseline when `gonka model path` fails
#   BENCH_MAX_TOKENS    tokens generated per prompt (default 64)
#   BENCH_STREAMS       concurrent streams for the aggregate figure (default 8)
#   BENCH_THREADS       threads for the baseline (default 2)
#   GONKA_SKIP_BUILD=1  do not run `cargo build` for gonka (use target/release/gonka as it is)
#   BENCH_STRICT=1      exit 1 when a target FAILs or gonka's bench did not run
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OUT="bench/out"
mkdir -p "$OUT"
PROMPTS="bench/prompts.txt"
MAX_TOKENS="${BENCH_MAX_TOKENS:-64}"
STREAMS="${BENCH_STREAMS:-8}"
THREADS="${BENCH_THREADS:-2}"
BASELINE="bench/llama-baseline/target/release/llama-baseline"
GONKA="target/release/gonka"

log() { printf '[engine.sh] %s\n' "$*" >&2; }

# ---- 1. build --------------------------------------------------------------------------------

have_libclang() {
    [ -n "${LIBCLANG_PATH:-}" ] && return 0
    ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1
}

if ! command -v cmake >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1 || ! have_libclang; then
    log "installing cmake, clang and libclang-dev (needed to build llama.cpp and its bindings)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake clang libclang-dev \
        || { log "apt-get install failed"; exit 1; }
fi

log "building the llama.cpp baseline (first build compiles llama.cpp: several minutes on 2 cores)"
# target-cpu=native makes llama-cpp-sys-2 configure ggml with GGML_NATIVE=ON, as llama.cpp's
# own build does; bench/llama-baseline/.cargo/config.toml sets the same flags for direct builds.
# CARGO_TARGET_DIR is cleared so the build lands in bench/llama-baseline/target (git-ignored).
start=$(date +%s)
if ! env -u CARGO_TARGET_DIR RUSTFLAGS="-C target-cpu=native" \
    cargo build --release --manifest-path bench/llama-baseline/Cargo.toml >"$OUT/baseline-build.log" 2>&1; then
    tail -n 30 "$OUT/baseline-build.log" >&2
    log "building the baseline failed (full log: $OUT/baseline-build.log)"
    exit 1
fi
log "baseline built in $(( $(date +%s) - start ))s"

if [ "${GONKA_SKIP_BUILD:-0}" != "1" ]; then
    log "building gonka (cargo build --release --bin gonka)"
    if ! cargo build --release --bin gonka >"$OUT/gonka-build.log" 2>&1; then
        tail -n 20 "$OUT/gonka-build.log" >&2
        log "building gonka failed (log: $OUT/gonka-build.log); going on with the baseline"
    fi
fi

# ---- 2. runs ---------------------------------------------------------------------------------

GONKA_JSON="$OUT/gonka.json"
BASE_JSON="$OUT/llama-cpp.json"
Q80_JSON="$OUT/llama-cpp-q8_0.json"
Q80_GGUF="$OUT/model.q8_0.gguf"
rm -f "$GONKA_JSON" "$BASE_JSON" "$Q80_JSON"
GONKA_STATUS="not run"

# (a) gonka-rs
if [ -x "$GONKA" ]; then
    log "running: $GONKA bench engine --prompts $PROMPTS --max-tokens $MAX_TOKENS --streams $STREAMS --json"
    if "$GONKA" bench engine --prompts "$PROMPTS" --max-tokens "$MAX_TOKENS" --streams "$STREAMS" --json \
        >"$OUT/gonka.stdout" 2>"$OUT/gonka.stderr"; then
        # keep the last line that is a JSON object (the command may log before it)
        grep -E '^\{' "$OUT/gonka.stdout" | tail -n 1 >"$GONKA_JSON"
        if [ -s "$GONKA_JSON" ]; then
            GONKA_STATUS="ok"
        else
            GONKA_STATUS="printed no JSON"
            rm -f "$GONKA_JSON"
        fi
    else
        GONKA_STATUS="failed with exit code $?"
    fi
else
    GONKA_STATUS="$GONKA not found"
fi
if [ "$GONKA_STATUS" != "ok" ]; then
    log "gonka bench engine: $GONKA_STATUS (stderr: $OUT/gonka.stderr); the table shows the baseline only"
    [ -s "$OUT/gonka.stderr" ] && tail -n 10 "$OUT/gonka.stderr" >&2
fi

# (b) the baseline on the same GGUF
GGUF=""
if [ -x "$GONKA" ] && GGUF_OUT="$("$GONKA" model path 2>"$OUT/gonka-model-path.stderr")"; then
    GGUF="$(printf '%s\n' "$GGUF_OUT" | tail -n 1)"
    log "gonka model path: $GGUF"
fi
if [ -z "$GGUF" ] || [ ! -f "$GGUF" ]; then
    if [ -n "${GONKA_GGUF:-}" ]; then
        log "gonka model path gave no file; using GONKA_GGUF=$GONKA_GGUF"
        GGUF="$GONKA_GGUF"
    else
        GGUF=""
    fi
fi

run_baseline() { # $1 = gguf, $2 = output json
    log "running: $BASELINE bench --model $1 --prompts $PROMPTS --max-tokens $MAX_TOKENS --streams $STREAMS --threads $THREADS --json"
    "$BASELINE" bench --model "$1" --prompts "$PROMPTS" --max-tokens "$MAX_TOKENS" \
        --streams "$STREAMS" --threads "$THREADS" --json >"$2"
}

BASE_OK=0
if [ -n "$GGUF" ]; then
    if run_baseline "$GGUF" "$BASE_JSON"; then BASE_OK=1; else log "baseline run on $GGUF failed"; rm -f "$BASE_JSON"; fi
else
    log "no GGUF for the baseline: 'gonka model path' failed and GONKA_GGUF is not set"
fi

# (c) the baseline on a Q8_0 conversion of the same file
if [ -n "$GGUF" ]; then
    log "converting $GGUF to Q8_0 with llama.cpp's quantizer"
    if "$BASELINE" quantize --input "$GGUF" --output "$Q80_GGUF" --type q8_0 >"$OUT/quantize.log" 2>&1; then
        if ! run_baseline "$Q80_GGUF" "$Q80_JSON"; then log "baseline run on $Q80_GGUF failed"; rm -f "$Q80_JSON"; fi
    else
        log "quantizing to Q8_0 failed (log: $OUT/quantize.log)"
    fi
fi

# ---- 3. table --------------------------------------------------------------------------------

python3 bench/engine_report.py --gonka "$GONKA_JSON" --gonka-status "$GONKA_STATUS" \
    --llama "$BASE_JSON" --llama-q8-0 "$Q80_JSON" --streams "$STREAMS" \
    --summary "$OUT/engine-summary.json" | tee "$OUT/engine-table.txt"
report_rc=${PIPESTATUS[0]}

if [ "$BASE_OK" -ne 1 ] && [ ! -s "$Q80_JSON" ]; then
    exit 1
fi
if [ "${BENCH_STRICT:-0}" = "1" ] && [ "$report_rc" -ne 0 ]; then
    exit 1
fi
exit 0
