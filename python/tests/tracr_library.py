"""Tracr's library programs as the reference measured them
(src/library/tracr_reference.json), built by Tracr's own Python code, for
the tests that compare tracr-opt with Tracr."""

import json
import math
import os
import random

from tracr.compiler import lib
from tracr.rasp import rasp

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "..", "src", "library", "tracr_reference.json")


def entries():
    """Every measured (program, settings): 16 programs, causal and not."""
    with open(REFERENCE) as f:
        return json.load(f)["programs"]


def build(call):
    """A program of Tracr's library, from the call recorded with its measurement."""
    scope = {"rasp": rasp}
    scope.update({k: v for k, v in vars(lib).items() if not k.startswith("_")})
    return eval(call, scope)  # noqa: S307 - the reference's own program calls


def same(a, b):
    """Equal values; floats to 1e-12 (Tracr computes numerical means in floats)."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def same_seq(xs, ys):
    return len(xs) == len(ys) and all(same(a, b) for a, b in zip(xs, ys))


def random_inputs(entry, count):
    """`count` seeded random inputs of every length up to max_seq_len."""
    rng = random.Random(entry["name"])
    vocab = sorted(entry["vocab"], key=repr)
    return [[rng.choice(vocab) for _ in range(rng.randint(1, entry["max_seq_len"]))] for _ in range(count)]


def tracr_cases(entry, program, count):
    """(input, Tracr's output) pairs: `rasp.evaluate` on `count` seeded random
    inputs for a bidirectional program; for a causal one (rasp.evaluate has no
    causal mode) the 20 pairs Tracr produced, recorded in the reference."""
    if not entry["causal"]:
        return [(xs, rasp.evaluate(program, xs)) for xs in random_inputs(entry, count)]
    return [(p["input"], p["expected"]) for p in entry["pairs"]]


# Verification's tolerance for numerical outputs (src/verify.rs NUMERIC_TOLERANCE):
# attention averages exactly only up to the softmax's leak onto unselected keys.
NUMERIC_TOLERANCE = 1e-6


def model_agrees(got, expected, numerical):
    """A model's decoded outputs against the interpreter's, as verification judges them."""
    if not numerical:
        return got == expected
    if len(got) != len(expected):
        return False
    for g, e in zip(got, expected):
        if e is None:  # a numerical model cannot say "no value": not compared
            continue
        if g is None or abs(g - e) > NUMERIC_TOLERANCE * (1 + abs(e)):
            return False
    return True
