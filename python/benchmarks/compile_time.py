"""In-process compile time, Tracr against tracr_opt, side by side in one run:
every program of Tracr's library at the reference settings (causal and not),
built once by Tracr's own code and compiled by both in this process.

    python python/benchmarks/compile_time.py [--repeats 3] [--update docs/RESULTS.md]

Tracr: `compiling.compile_rasp_to_model` (its default compiler_bos "BOS").
tracr-opt: `tracr_opt.compile_rasp_to_model` with verify=False (the export
of the Python program included), and with its default verification on every
input. For each program the first call is timed alone (Tracr's includes jax
tracing and compiling new shapes), then the median of --repeats more.
Tracr's first call of the process pays jax's start-up, reported separately."""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from tracr.compiler import compiling  # noqa: E402
from tracr_library import build, entries  # noqa: E402

import tracr_opt  # noqa: E402

BEGIN, END = "<!-- python-compile-time:begin -->", "<!-- python-compile-time:end -->"


def median_ms(f, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--update", help="replace the table between the markers in this Markdown file")
    args = ap.parse_args()
    rows = []
    warm = entries()[0]
    t = time.perf_counter()
    compiling.compile_rasp_to_model(build(warm["call"]), set(warm["vocab"]), warm["max_seq_len"], compiler_bos="BOS")
    first_call_ms = (time.perf_counter() - t) * 1e3
    for e in entries():
        program = build(e["call"])
        vocab, n, causal = set(e["vocab"]), e["max_seq_len"], e["causal"]
        def run_tracr():
            compiling.compile_rasp_to_model(program, vocab, n, causal=causal, compiler_bos="BOS")

        def run_ours():
            tracr_opt.compile_rasp_to_model(program, vocab, n, causal=causal, verify=False)

        # the first call for a program is timed on its own: Tracr's includes jax
        # tracing and compiling the new shapes
        tracr_cold, ours_cold = median_ms(run_tracr, 1), median_ms(run_ours, 1)
        tracr, ours = median_ms(run_tracr, args.repeats), median_ms(run_ours, args.repeats)
        verified = median_ms(lambda: tracr_opt.compile_rasp_to_model(program, vocab, n, causal=causal),
                             args.repeats)
        rows.append((e["name"], causal, tracr_cold, tracr, ours_cold, ours, verified))
        print(f"{e['name']:32} causal={causal!s:5} tracr {tracr:8.1f} ms  tracr-opt {ours:7.1f} ms "
              f"(verified {verified:7.1f} ms)", file=sys.stderr)
    geo = statistics.geometric_mean([r[3] / r[5] for r in rows])
    geo_cold = statistics.geometric_mean([r[2] / r[4] for r in rows])
    lines = [
        f"In-process `compile_rasp_to_model`, one Python process, this machine (2 cores). First call: the "
        f"first compile of that program and setting; warm: median of the next {args.repeats}. Tracr's very "
        f"first call of the process also paid jax's start-up ({first_call_ms:.0f} ms, not in the table). "
        "tracr-opt's figures include exporting the Python program; the last column adds its default "
        "verification on every input.",
        "",
        "| program | causal | Tracr first / warm ms | tracr-opt first / warm ms | warm speed-up | "
        "tracr-opt + verification ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, causal, tc, t, oc, o, v in rows:
        lines.append(f"| {name} | {'yes' if causal else 'no'} | {tc:.1f} / {t:.1f} | {oc:.1f} / {o:.1f} | "
                     f"{t / o:.1f}× | {v:.1f} |")
    lines.append(f"| **geomean speed-up** | | first call {geo_cold:.1f}× | | **{geo:.1f}×** | |")
    table = "\n".join(lines) + "\n"
    if args.update:
        text = open(args.update).read()
        a, b = text.index(BEGIN), text.index(END)
        with open(args.update + ".tmp", "w") as f:
            f.write(text[:a] + BEGIN + "\n" + table + text[b:])
        os.replace(args.update + ".tmp", args.update)
    else:
        print(table)


if __name__ == "__main__":
    main()
