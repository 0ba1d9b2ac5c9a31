#!/usr/bin/env python3
"""Table for bench/engine.sh: gonka-rs against the llama.cpp baseline (stdlib only).

Reads the JSON objects printed by `gonka bench engine --json` and `llama-baseline bench --json`,
prints metric / gonka-rs / llama.cpp / ratio / target / PASS-FAIL, and writes a summary JSON.
Exit status: 0 when every target passes, 1 when one fails or cannot be checked.
"""

import argparse
import json
import os
import sys


def load(path):
    if not path or not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    # the file holds one JSON object; be lenient about log lines before it
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def num(obj, key):
    if obj is None:
        return None
    v = obj.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fmt(v, digits=1):
    return "-" if v is None else f"{v:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gonka")
    ap.add_argument("--gonka-status", default="")
    ap.add_argument("--llama")
    ap.add_argument("--llama-q4-1")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--summary")
    a = ap.parse_args()

    g = load(a.gonka)
    l = load(a.llama)
    q = load(a.llama_q4_1)
    multi = f"decode_{a.streams}_streams_tok_s"

    # (metric, unit, higher_is_better)
    metrics = [
        ("prefill_tok_s", "tok/s", True),
        ("decode_tok_s", "tok/s", True),
        (multi, "tok/s", True),
        ("scoring_tok_s", "tok/s", True),
        # Prompt and completion tokens run through the model while scoring (information, no target).
        ("scoring_recomputed_tok_s", "tok/s", True),
        ("ttft_ms_p50", "ms", False),
        ("ttft_ms_p99", "ms", False),
        ("peak_rss_mib", "MiB", False),
    ]

    g_decode = num(g, "decode_tok_s")
    l_decode = num(l, "decode_tok_s")

    def target(metric):
        """(description, pass/fail/None) for the metrics that have a target."""
        gv = num(g, metric)
        if metric == "decode_tok_s":
            desc = ">= 0.8x llama.cpp"
            if gv is None or l_decode is None:
                return desc, None
            return desc, gv >= 0.8 * l_decode
        if metric == multi:
            desc = f">= 2.5x own decode ({fmt(gv / g_decode if gv and g_decode else None, 2)}x)"
            if gv is None or not g_decode:
                return f">= 2.5x own decode", None
            return desc, gv >= 2.5 * g_decode
        if metric == "scoring_tok_s":
            desc = f">= 10x own decode ({fmt(gv / g_decode if gv and g_decode else None, 1)}x)"
            if gv is None or not g_decode:
                return ">= 10x own decode", None
            return desc, gv >= 10.0 * g_decode
        if metric == "peak_rss_mib":
            desc = "<= 1024 MiB"
            if gv is None:
                return desc, None
            return desc, gv <= 1024.0
        return "", None

    headers = ["metric", "gonka-rs", "llama.cpp", "ratio", "target", "result"]
    if q is not None:
        headers.insert(3, "llama.cpp Q4_1")
    rows = []
    summary = {"gonka_status": a.gonka_status, "targets": {}, "gonka": g, "llama_cpp": l, "llama_cpp_q4_1": q}
    all_pass = True
    for metric, unit, _higher in metrics:
        gv, lv = num(g, metric), num(l, metric)
        ratio = gv / lv if gv is not None and lv else None
        desc, ok = target(metric)
        if desc:
            result = "n/a" if ok is None else ("PASS" if ok else "FAIL")
            summary["targets"][metric] = result
            if ok is not True:
                all_pass = False
        else:
            result = ""
        digits = 2 if unit == "ms" else 1
        row = [f"{metric} ({unit})", fmt(gv, digits), fmt(lv, digits), fmt(ratio, 2) + ("x" if ratio else ""), desc, result]
        if q is not None:
            row.insert(3, fmt(num(q, metric), digits))
        rows.append(row)

    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 or i >= len(cells) - 2 else str(c).rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    print()
    print("engine benchmark: gonka-rs vs llama.cpp, same GGUF, CPU")
    if g is not None:
        print(f"  gonka-rs : model {g.get('model', '?')}, threads {g.get('threads', '?')}, prompts {g.get('n_prompts', '?')}")
    else:
        print(f"  gonka-rs : no result ({a.gonka_status or 'not run'})")
    if l is not None:
        print(f"  llama.cpp: model {l.get('model', '?')}, threads {l.get('threads', '?')}, prompts {l.get('n_prompts', '?')}")
    else:
        print("  llama.cpp: no result")
    if q is not None:
        print(f"  llama.cpp Q4_1 reference: {q.get('model', '?')}")
    for name, obj in (("gonka-rs", g), ("llama.cpp", l), ("llama.cpp Q4_1", q)):
        c = num(obj, "cpu_contention_pct")
        if c is not None and c > 10.0:
            print(f"  warning: {name} ran with {c:.0f}% CPU contention (other processes); its figures are noisy")
    print("  ratio = gonka-rs / llama.cpp (for ms and MiB, lower is better)")
    print()
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
    print()
    verdict = "all targets PASS" if all_pass else "some targets FAIL or could not be checked"
    print(verdict)
    summary["all_pass"] = all_pass
    if a.summary:
        with open(a.summary, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
