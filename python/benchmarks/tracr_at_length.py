"""Tracr's side of the long-sequence tables in docs/RESULTS.md (Dyck, sort,
hist): programs of Tracr's library compiled by Tracr at several
max_seq_len, each in its own process with a time limit, so a run that never
ends is reported as such. Prints one Markdown row per case.

    python python/benchmarks/tracr_at_length.py [--programs shuffle_dyck sort ...]
        [--lengths 10 20 40 64] [--timeout 240]

Per case: the compile_rasp_to_model time (the process's jax start-up is not
included), the whole process's wall time and peak memory, layers, d_model,
the widest MLP and the parameter count of Tracr's model. A length is
skipped for a program once a shorter one ran out of time."""

import argparse
import json
import subprocess
import sys
import time

PROGRAMS = {
    "shuffle_dyck": ("lib.make_shuffle_dyck(pairs=['()'])", ["(", ")"]),
    "shuffle_dyck2": ("lib.make_shuffle_dyck2()", ["(", ")", "{", "}"]),
    "shuffle_dyck3": ("lib.make_shuffle_dyck(pairs=['()','{}','[]'])", ["(", ")", "[", "]", "{", "}"]),
    "pair_balance": ("lib.make_pair_balance(rasp.tokens, '(', ')')", ["(", ")", "a", "b", "c"]),
    # `tracr-opt compile sort --vocab "1 2 3 4 5 6 7 8 9 10"` (m is the max_seq_len)
    "sort": ("lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=m, min_key=1)", list(range(1, 11))),
    "hist": ("lib.make_hist()", ["a", "b", "c"]),
}

CHILD = r"""
import json, resource, sys, time
from tracr.compiler import compiling, lib
from tracr.rasp import rasp
call, vocab, m = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
program = eval(call)
t = time.perf_counter()
model = compiling.compile_rasp_to_model(program, set(vocab), m, compiler_bos="BOS")
ms = (time.perf_counter() - t) * 1e3
params = sum(int(x.size) for layer in model.params.values() for x in layer.values())
mlps = [v["w"].shape[1] for k, v in model.params.items() if k.endswith("mlp/linear_1")]
print(json.dumps({"ms": ms, "params": params, "layers": len(mlps),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "d_model": int(model.params["token_embed"]["embeddings"].shape[1]),
                  "d_mlp": max(mlps) if mlps else 0}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", nargs="+", choices=list(PROGRAMS),
                    default=["shuffle_dyck", "shuffle_dyck2", "shuffle_dyck3", "pair_balance"])
    ap.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 40, 64])
    ap.add_argument("--timeout", type=float, default=240)
    args = ap.parse_args()
    print("| program | max_seq_len | Tracr compile | whole process | peak memory | layers | d_model | d_mlp | params |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.programs:
        call, vocab = PROGRAMS[name]
        timed_out = False
        for m in args.lengths:
            if timed_out:
                print(f"| {name} | {m} | not run (shorter length ran out of time) | | | | | | |", flush=True)
                continue
            t = time.perf_counter()
            try:
                out = subprocess.run([sys.executable, "-c", CHILD, call, json.dumps(vocab), str(m)],
                                     capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                print(f"| {name} | {m} | > {args.timeout:.0f} s (stopped) | | | | | | |", flush=True)
                continue
            wall = time.perf_counter() - t
            if out.returncode != 0:
                last = (out.stderr.strip().splitlines() or ["?"])[-1]
                print(f"| {name} | {m} | failed: {last[:80]} | {wall:.1f} s | | | | | |", flush=True)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {name} | {m} | {r['ms'] / 1e3:.1f} s | {wall:.1f} s | {r['rss_mb']:,.0f} MB | {r['layers']} | "
                  f"{r['d_model']} | "
                  f"{r['d_mlp']} | {r['params']:,} |", flush=True)


if __name__ == "__main__":
    main()
