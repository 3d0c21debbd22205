"""A Tracr program of one's own, for the worked example in docs/TRACR_BRIDGE.md:

    python -m tracr_opt.bridge python/examples/my_programs.py:make_fraction_of_x \
        --vocab a b x --max-seq-len 8 -o frac.json
    tracr-opt compile frac.json
"""

from tracr.compiler import lib
from tracr.rasp import rasp


def make_fraction_of_x():
    """At each position, the fraction of the tokens so far that are 'x'."""
    is_x = rasp.numerical(rasp.Map(lambda t: t == "x", rasp.tokens)).named("is_x")
    return lib.make_frac_prevs(is_x)
