"""The notebook tour of docs/PYTHON.md, as a script: a program written with
Tracr's RASP API, compiled by tracr-opt in this process, run as Tracr's
models are run, then studied in TransformerLens (a residual-stream hook, a
padded batch). Needs tracr-pypi, transformer-lens and torch:

    python python/examples/tour.py

Every step checks what it shows, so the tour cannot silently go stale
(tests/python.rs runs it on TransformerLens 4)."""

import torch
from tracr.compiler import lib
from tracr.rasp import rasp

import tracr_opt
from tracr_opt.tl import decode_batch, padded_batch, run_padded

# 1. A program written with Tracr's API: the fraction of tokens so far that are "x".
program = lib.make_frac_prevs(rasp.tokens == "x")

# 2. Compile it with Tracr's call shape. The model is checked against the RASP
#    interpreter on every input (here 363) before it is returned.
model = tracr_opt.compile_rasp_to_model(program, vocab={"a", "b", "x"}, max_seq_len=5, compiler_bos="BOS")
print(model)
print("verified:", model.verification["inputs"], "inputs,", model.verification["mismatches"], "mismatches")
print("residual stream:", model.residual_labels)
assert model.verification["exhaustive"] and model.verification["mismatches"] == 0

# 3. Run it as a Tracr model is run: BOS first, decoded output BOS first.
out = model.apply(["BOS", "x", "a", "x", "b"])
print("apply:", out.decoded)
assert out.decoded[0] == "BOS"
assert [round(v, 6) for v in out.decoded[1:]] == [1.0, 0.5, 0.666667, 0.5]

# 4. TransformerLens: the same weights, unprocessed (HookedTransformer on TL < 4,
#    TransformerBridge on TL 4). run_with_cache exposes every hook point.
tl_model = model.to_transformer_lens()
tokens = torch.tensor([model.encode(["x", "a", "x", "b"])])
logits, cache = tl_model.run_with_cache(tokens)
resid = cache["blocks.0.hook_resid_mid"][0]  # after layer 0's attention: [positions, d_model]
print(f"{type(tl_model).__name__}; blocks.0.hook_resid_mid by residual label (BOS, x, a, x, b):")
for label, column in zip(model.residual_labels, resid.T):
    print(f"  {label:40} {[round(float(v), 3) for v in column]}")
assert torch.allclose(logits[0].detach().double(), torch.tensor(out.logits), atol=1e-6)

# 5. A padded batch of inputs of different lengths, exact on every version
#    (the helper masks PAD keys where TransformerLens does not).
batch = padded_batch(tl_model, [["x"], ["a", "x", "x", "a", "b"], ["b", "x"]])
decoded = decode_batch(tl_model, run_padded(tl_model, batch), batch)
print("padded batch:", [[round(v, 3) for v in row] for row in decoded])
assert [[round(v, 6) for v in row] for row in decoded] == [[1.0], [0.0, 0.5, 0.666667, 0.5, 0.4], [0.0, 0.5]]
print("tour ok")
