"""Exported models, loaded by python/tracr_opt_model.py from their files alone,
give the interpreter's outputs on every input (every bundled program, or the
ones named; causal and not). Needs numpy and safetensors.

    python python/tests/test_export.py --tracr-opt target/release/tracr-opt [PROGRAM...]

Each program is compiled with `tracr-opt compile --out` (float32, the default,
and float64 for a few), the expected outputs come from
`tracr-opt eval --all-inputs` (the RASP interpreter), and every position of
every input is compared: categorical values exactly, numerical ones to 1e-5.
The loader also refuses directories whose metadata does not fit the weights.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tracr_opt_model import load  # noqa: E402

F64_TOO = {"frac_prevs", "sort", "shuffle_dyck"}


def tracr_opt(exe, *args):
    r = subprocess.run([exe, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"tracr-opt {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def agree(expected, got, numerical):
    if numerical:
        if expected is None:
            return True  # a numerical model cannot say "no value"
        return isinstance(got, float) and math.isfinite(got) and abs(got - expected) <= 1e-5 * (1 + abs(expected))
    return expected == got


def check(exe, program, causal, dtype, workdir):
    out = os.path.join(workdir, f"{program}-{causal}-{dtype}")
    tracr_opt(exe, "compile", program, "--causal", str(causal).lower(), "--dtype", dtype, "--out", out)
    cases = [json.loads(line) for line in tracr_opt(exe, "eval", program, "--causal", str(causal).lower(), "--all-inputs").splitlines()]
    model = load(out)
    numerical = model.meta["output"]["kind"] == "numerical"
    got = model.run_batch([c["input"] for c in cases])
    bad = [(c, g) for c, g in zip(cases, got) if not all(agree(e, x, numerical) for e, x in zip(c["output"], g))]
    status = "ok" if not bad else f"{len(bad)} MISMATCHES, e.g. input {bad[0][0]['input']}: interpreter {bad[0][0]['output']} model {bad[0][1]}"
    print(f"{program:18} causal={causal!s:5} {dtype}: {len(cases):6} inputs {status}")
    return not bad


# compressed models (lossy): (program, K, extra flags), trained briefly
COMPRESSED = [("frac_prevs", 6, []), ("sort_unique", 14, []), ("reverse", 8, ["--from", "optimised"])]


def check_compressed(exe, program, k, flags, workdir):
    """A compressed model's accuracy, measured here from its files alone, is
    the accuracy `tracr-opt compress` recorded in its tracr_opt.json."""
    out = os.path.join(workdir, f"{program}-compressed-{k}")
    tracr_opt(exe, "compress", program, "--d-model", str(k), "--steps", "300", *flags, "--out", out)
    cases = [json.loads(line) for line in tracr_opt(exe, "eval", program, "--all-inputs").splitlines()]
    model = load(out)
    record = model.meta["compression"]
    numerical = model.meta["output"]["kind"] == "numerical"
    got = model.run_batch([c["input"] for c in cases])
    right = positions = 0
    for c, g in zip(cases, got):
        for e, x in zip(c["output"], g):
            if numerical:
                if e is None:
                    continue  # not counted, as in verification
                right += abs(x - e) <= 0.01
            else:
                right += e == x
            positions += 1
    accuracy = right / positions
    same = abs(accuracy - record["accuracy"]) < 1e-12 and record["lossy"] and model.config["d_model"] == k
    status = "ok" if same else "DIFFERS"
    print(f"compressed {program} K={k}: accuracy {accuracy:.6f} here, {record['accuracy']:.6f} recorded, "
          f"{len(cases)} inputs {status}")
    return same


def check_refusals(exe, workdir):
    """Metadata that does not fit the weights is refused by the loader, naming
    the entry: a negated unembedding, output values reordered, a token list
    of the wrong length, a tensor of the wrong shape."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    good = os.path.join(workdir, "reverse-good")
    tracr_opt(exe, "compile", "reverse", "--out", good)
    load(good)

    def broken(name, change_meta=None, change_tensors=None):
        out = os.path.join(workdir, f"reverse-{name}")
        shutil.copytree(good, out)
        if change_meta:
            path = os.path.join(out, "tracr_opt.json")
            meta = json.load(open(path))
            change_meta(meta)
            json.dump(meta, open(path, "w"))
        if change_tensors:
            path = os.path.join(out, "model.safetensors")
            t = load_file(path)
            change_tensors(t)
            save_file(t, path)
        return out

    cases = {
        "negated W_U": (broken("negated", change_tensors=lambda t: t.update({"unembed.W_U": -t["unembed.W_U"]})),
                        "unembed.W_U["),
        "reordered values": (broken("reordered", change_meta=lambda m: m["output"]["values"].reverse()),
                             "unembed.W_U["),
        "a token too many": (broken("tokens", change_meta=lambda m: m["tokens"].append("z")), "tokens but embed.W_E"),
        "W_in cut short": (broken("shape", change_tensors=lambda t: t.update(
            {"blocks.0.mlp.W_in": np.ascontiguousarray(t["blocks.0.mlp.W_in"][:, :1])})), "blocks.0.mlp.W_in has shape"),
    }
    ok = True
    for what, (directory, expected) in cases.items():
        try:
            load(directory)
            print(f"loader: {what}: NOT REFUSED")
            ok = False
        except ValueError as e:
            fine = "inconsistent model directory" in str(e) and expected in str(e)
            print(f"loader: {what}: refused ({e})" if fine else f"loader: {what}: WRONG MESSAGE {e}")
            ok &= fine
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracr-opt", required=True)
    ap.add_argument("programs", nargs="*")
    a = ap.parse_args()
    programs = a.programs or [line.split()[0] for line in tracr_opt(a.tracr_opt, "list").splitlines() if line.strip()]
    ok = True
    with tempfile.TemporaryDirectory() as workdir:
        for p in programs:
            for causal in (False, True):
                for dtype in ["f32"] + (["f64"] if p in F64_TOO else []):
                    ok &= check(a.tracr_opt, p, causal, dtype, workdir)
        if not a.programs:
            ok &= check_refusals(a.tracr_opt, workdir)
            for program, k, flags in COMPRESSED:
                ok &= check_compressed(a.tracr_opt, program, k, flags, workdir)
    print("all outputs equal the interpreter's" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
