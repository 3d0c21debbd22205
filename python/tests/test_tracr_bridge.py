"""Every program of Tracr's library, built by Tracr's own Python code
(tracr.compiler.lib) and exported by tracr_opt.bridge, compiles with
tracr-opt into a model that matches the interpreter on every input (causal and
not), and tracr-opt's interpreter agrees with Tracr's `rasp.evaluate` on 50
random inputs per program. Then the exporter's errors: they name the node,
and the value a function raised on. Needs tracr-pypi.

    python python/tests/test_tracr_bridge.py --tracr-opt target/release/tracr-opt

The programs, their vocab, max_seq_len and Tracr's model sizes come from
src/library/tracr_reference.json (measured with Tracr itself).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

from tracr.rasp import rasp  # noqa: E402
from tracr_library import REFERENCE, build, same  # noqa: E402

from tracr_opt.bridge import ExportError, export_program, write_program  # noqa: E402

SAMPLES = 50


def tracr_opt(exe, *args):
    r = subprocess.run([exe, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"tracr-opt {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def check_library(exe, tmp):
    entries = json.load(open(REFERENCE))["programs"]
    failures, rows = [], []
    for e in entries:
        tag = f"{e['name']} causal={e['causal']}"
        program = build(e["call"])
        doc = export_program(program, e["vocab"], e["max_seq_len"], causal=e["causal"], name=e["name"])
        path = os.path.join(tmp, f"{len(rows)}.json")
        write_program(doc, path)
        # (a) the compiled model against tracr-opt's interpreter, every input
        summary = json.loads(tracr_opt(exe, "compile", path, "--json"))
        v = summary["verified"]
        if not (v["exhaustive"] and v["mismatches"] == 0):
            failures.append(f"{tag}: verified {v}")
        rows.append((tag, e["layers"], summary["layers"], e["d_model"], summary["d_model"], e["params"],
                     summary["params"], v["inputs"]))
        # (b) tracr-opt's interpreter against Tracr's rasp.evaluate
        if not e["causal"]:
            lines = tracr_opt(exe, "eval", path, "--all-inputs").splitlines()
            ours = {tuple(j["input"]): j["output"] for j in map(json.loads, lines)}
            rng = random.Random(e["name"])
            vocab = sorted(e["vocab"], key=repr)
            compared = 0
            for _ in range(SAMPLES):
                n = rng.randint(1, e["max_seq_len"])
                xs = [rng.choice(vocab) for _ in range(n)]
                theirs = rasp.evaluate(program, xs)
                mine = ours[tuple(xs)]
                if len(theirs) != len(mine) or not all(same(a, b) for a, b in zip(theirs, mine)):
                    failures.append(f"{tag}: on {xs} Tracr gives {theirs}, tracr-opt {mine}")
                compared += 1
            print(f"{e['name']:38} interpreter agrees with rasp.evaluate on {compared} random inputs")
    print()
    print(f"{'program':46} {'layers':>9} {'d_model':>9} {'params':>15} {'inputs':>7}")
    for tag, tl, ol, td, od, tp, op, n in rows:
        print(f"{tag:46} {tl:>4} {ol:>4} {td:>4} {od:>4} {tp:>7} {op:>7} {n:>7}  ok")
    return failures


def expect_error(f, *needles):
    try:
        f()
    except ExportError as e:
        missing = [n for n in needles if n not in str(e)]
        if missing:
            return [f"error '{e}' does not mention {missing}"]
        print(f"refused as expected: {e}")
        return []
    return [f"no error; expected one mentioning {needles}"]


def check_errors(exe, tmp):
    failures = []
    # a function that raises names its node and the value
    inv = rasp.Map(lambda x: 12 // (x - 2), rasp.tokens).named("inverse")
    failures += expect_error(lambda: export_program(inv, [1, 2, 3], 4), "'inverse'", "ZeroDivisionError",
                             "input value 2")
    pair = rasp.SequenceMap(lambda x, y: x / (y - x), rasp.tokens, rasp.indices).named("ratio")
    failures += expect_error(lambda: export_program(pair, [0, 1], 3), "'ratio'", "input values (0, 0)")
    # constructs the format cannot hold name the node
    fixed = rasp.ConstantSOp([1, 2, 3]).named("fixed")
    failures += expect_error(lambda: export_program(rasp.Map(lambda x: x + 1, fixed), [1], 3), "'fixed'",
                             "ConstantSOp")
    const_sel = rasp.ConstantSelector([[True]]).named("always")
    failures += expect_error(lambda: export_program(rasp.Aggregate(const_sel, rasp.tokens), ["a"], 1), "'always'",
                             "ConstantSelector")
    odd = rasp.Map(lambda x: {x}, rasp.tokens).named("as_set")
    failures += expect_error(lambda: export_program(odd, ["a"], 2), "'as_set'", "{'a'}")
    # the command line: exit 1, the message, and no file
    out = os.path.join(tmp, "refused.json")
    r = subprocess.run([sys.executable, "-m", "tracr_opt.bridge",
                        "rasp.Map(lambda x: 1 // (x - 2), rasp.tokens).named('inverse')",
                        "--vocab", "1", "2", "3", "--max-seq-len", "3", "-o", out],
                       capture_output=True, text=True, cwd=HERE)
    if r.returncode != 1 or "'inverse'" not in r.stderr or "input value 2" not in r.stderr:
        failures.append(f"CLI on a raising lambda: exit {r.returncode}, stderr {r.stderr!r}")
    if os.path.exists(out):
        failures.append("CLI wrote a file for a refused program")
    # ... and a working export, selector combinators included, compiles
    sel = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)
    both = rasp.SelectorAnd(sel, rasp.SelectorNot(rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.GT)))
    count = rasp.SelectorWidth(rasp.SelectorOr(both, rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.EQ)))
    prog = rasp.numerical(rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ),
                                         rasp.numerical(rasp.Map(lambda x: x, count)), default=0)).named("combined")
    path = os.path.join(tmp, "combined.json")
    write_program(export_program(prog, ["a", "b"], 4), path)
    v = json.loads(tracr_opt(exe, "compile", path, "--json"))["verified"]
    if not (v["exhaustive"] and v["mismatches"] == 0):
        failures.append(f"selector combinators: {v}")
    lines = tracr_opt(exe, "eval", path, "--all-inputs").splitlines()
    for j in map(json.loads, lines):
        theirs = rasp.evaluate(prog, j["input"])
        if not all(same(a, b) for a, b in zip(theirs, j["output"])):
            failures.append(f"selector combinators on {j['input']}: Tracr {theirs}, tracr-opt {j['output']}")
            break
    print(f"selector And/Or/Not: compiled, verified on {v['inputs']} inputs, interpreter equal on all")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracr-opt", required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        failures = check_library(args.tracr_opt, tmp) + check_errors(args.tracr_opt, tmp)
    if failures:
        print("\n".join(["FAILED:"] + failures))
        return 1
    print("every Tracr library program exported, compiled, verified and interpreted as Tracr does")
    return 0


if __name__ == "__main__":
    sys.exit(main())
