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
    ap.add_argument("--llama", help="llama.cpp on the file gonka-rs serves (the shipped Q4_1)")
    ap.add_argument("--llama-q8-0", help="llama.cpp on the same file converted to Q8_0")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--summary")
    a = ap.parse_args()

    g = load(a.gonka)
    runs = [(name, obj) for name, obj in (("same file", load(a.llama)), ("Q8_0", load(a.llama_q8_0))) if obj]
    multi = f"decode_{a.streams}_streams_tok_s"
    # llama.cpp on the file it runs best: the higher single-stream decode (issue 15).
    best_name, l = max(runs, key=lambda r: num(r[1], "decode_tok_s") or 0.0) if runs else ("none", None)
    # Prefill and scoring are compared with llama.cpp's prefill on that same file; its fastest prefill
    # on any file is printed beside (information).
    l_prefill = num(l, "prefill_tok_s")
    fastest_prefill = max(runs, key=lambda r: num(r[1], "prefill_tok_s") or 0.0) if runs else None

    # (metric, unit)
    metrics = [
        ("prefill_tok_s", "tok/s"),
        ("decode_tok_s", "tok/s"),
        (multi, "tok/s"),
        ("scoring_tok_s", "tok/s"),
        # Prompt and completion tokens run through the model while scoring: the prefill-like figure.
        ("scoring_recomputed_tok_s", "tok/s"),
        ("ttft_ms_p50", "ms"),
        ("ttft_ms_p99", "ms"),
        ("peak_rss_mib", "MiB"),
    ]
    g_decode = num(g, "decode_tok_s")
    l_decode = num(l, "decode_tok_s")

    def target(metric):
        """(description, pass/fail/None) for the metrics that have a target."""
        gv = num(g, metric)
        if metric == "decode_tok_s":
            return ">= 1.0x llama.cpp (best file)", None if gv is None or l_decode is None else gv >= l_decode
        if metric in ("prefill_tok_s", "scoring_recomputed_tok_s"):
            ratio = gv / l_prefill if gv and l_prefill else None
            desc = f">= 1.5x llama.cpp prefill ({fmt(ratio, 2)}x)"
            return desc, None if ratio is None else ratio >= 1.5
        if metric == multi:
            ratio = gv / g_decode if gv and g_decode else None
            return f">= 3x own decode ({fmt(ratio, 2)}x)", None if ratio is None else ratio >= 3.0
        if metric == "peak_rss_mib":
            return "<= 1024 MiB", None if gv is None else gv <= 1024.0
        return "", None

    headers = ["metric", "gonka-rs"] + [f"llama.cpp {name}" for name, _ in runs] + ["ratio", "target", "result"]
    rows = []
    summary = {"gonka_status": a.gonka_status, "targets": {}, "gonka": g, "llama_cpp_best": best_name,
               "llama_cpp": {name: obj for name, obj in runs}}
    all_pass = True
    for metric, unit in metrics:
        gv, lv = num(g, metric), num(l, metric)
        if metric == "scoring_recomputed_tok_s":
            lv = num(l, "prefill_tok_s")
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
        row = [f"{metric} ({unit})", fmt(gv, digits)] + [fmt(num(obj, metric), digits) for _, obj in runs]
        row += [fmt(ratio, 2) + ("x" if ratio else ""), desc, result]
        rows.append(row)

    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 or i >= len(cells) - 2 else str(c).rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    print()
    print("engine benchmark: gonka-rs vs llama.cpp, CPU, same prompts, one after the other")
    if g is not None:
        print(f"  gonka-rs : model {g.get('model', '?')}, threads {g.get('threads', '?')}, prompts {g.get('n_prompts', '?')}")
    else:
        print(f"  gonka-rs : no result ({a.gonka_status or 'not run'})")
    for name, obj in runs:
        print(f"  llama.cpp {name}: model {obj.get('model', '?')}, threads {obj.get('threads', '?')}")
    if not runs:
        print("  llama.cpp: no result")
    print(f"  ratio = gonka-rs / llama.cpp on the file it decodes fastest ({best_name}); scoring_recomputed")
    print("  is compared with llama.cpp's prefill; for ms and MiB, lower is better")
    if fastest_prefill and g is not None and fastest_prefill[0] != best_name:
        name, obj = fastest_prefill
        fp = num(obj, "prefill_tok_s")
        gp, gs = num(g, "prefill_tok_s"), num(g, "scoring_recomputed_tok_s")
        if fp and gp and gs:
            print(f"  llama.cpp prefills fastest on {name} ({fmt(fp)} tok/s): gonka-rs prefill {gp / fp:.2f}x, "
                  f"scoring {gs / fp:.2f}x of that (information)")
    for name, obj in [("gonka-rs", g)] + runs:
        c = num(obj, "cpu_contention_pct")
        if c is not None and c > 10.0:
            print(f"  warning: {name} ran with {c:.0f}% CPU contention (other processes); its figures are noisy")
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
