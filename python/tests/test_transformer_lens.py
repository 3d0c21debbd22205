"""Compiled models in real TransformerLens (pytest), on whichever version is
installed: every bundled program, causal and not, f32 and f64, gives the
interpreter's output on every input (or 2 000 samples where there are more
than 100 000), run unpadded length by length and in padded batches with an
attention mask. Run by tests/python.rs in one cached venv per
TransformerLens version (4.x and 3.x)."""

import os
import random

import numpy as np
import pytest
import torch

import tracr_opt
from tracr_opt.tl import decode_batch, masking_hooks, padded_batch, run_padded, tl_major_version

MAJOR = tl_major_version()
BATCH = 1024


def agree(got, expected, numerical):
    if not numerical:
        return got == expected
    return all(e is None or (g is not None and abs(g - e) <= 1e-6 * (1 + abs(e))) for g, e in zip(got, expected))


def mismatches(model, tl_model, pairs):
    """Disagreements with the interpreter: unpadded (one batch per length) and padded (mixed lengths)."""
    bad = []
    by_length = {}
    for xs, expected in pairs:
        by_length.setdefault(len(xs), []).append((xs, expected))
    with torch.no_grad():
        for group in by_length.values():
            for k in range(0, len(group), BATCH):
                chunk = group[k:k + BATCH]
                tokens = torch.tensor([model.encode(xs) for xs, _ in chunk], dtype=torch.long)
                logits = tl_model(tokens).double().numpy()
                for (xs, expected), row in zip(chunk, logits):
                    got = model.decode_logits(row[1:])
                    if not agree(got, expected, model.numerical_output):
                        bad.append(("unpadded", xs, got, expected))
        mixed = list(pairs)
        random.Random(0).shuffle(mixed)
        for k in range(0, len(mixed), BATCH):
            chunk = mixed[k:k + BATCH]
            batch = padded_batch(tl_model, [xs for xs, _ in chunk])
            for (xs, expected), got in zip(chunk, decode_batch(tl_model, run_padded(tl_model, batch), batch)):
                if not agree(got, expected, model.numerical_output):
                    bad.append(("padded", xs, got, expected))
    return bad


PROGRAMS = sorted(tracr_opt.bundled_programs())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("name", PROGRAMS)
def test_every_input_matches_the_interpreter(name, causal, dtype, tmp_path):
    # (verified here against the interpreter through TransformerLens itself)
    model = tracr_opt.compile(name, causal=causal, verify=False)
    if dtype == "float64":
        # through the files: load_transformer_lens takes the stored precision
        model.save(tmp_path / "m", dtype="float64")
        tl_model = tracr_opt.load_transformer_lens(tmp_path / "m")
    else:
        tl_model = model.to_transformer_lens()
    expected_type = "TransformerBridge" if MAJOR >= 4 else "HookedTransformer"
    assert type(tl_model).__name__ == expected_type
    assert next(tl_model.parameters()).dtype == getattr(torch, dtype)
    pairs = model.reference_io()
    bad = mismatches(model, tl_model, pairs)
    assert not bad, f"{len(bad)} mismatches, first {bad[:3]}"
    print(f"{name} causal={causal} {dtype}: {len(pairs)} inputs, 0 mismatches (TransformerLens {MAJOR})")


def test_residual_hooks_reproduce_the_logits():
    model = tracr_opt.compile("sort")
    tl_model = model.to_transformer_lens(dtype="float64")
    batch = padded_batch(tl_model, [[3, 1, 2], [2, 1], [1]])
    logits, cache = run_padded(tl_model, batch, return_cache=True)
    last = f"blocks.{model.n_layers - 1}.hook_resid_post"
    resid = cache[last]
    assert resid.shape == (3, batch.tokens.shape[1], model.d_model) == (3, 4, len(model.residual_labels))
    w_u = torch.tensor(model.weights["unembed.W_U"])
    assert torch.allclose(resid @ w_u, logits, atol=1e-12)
    assert decode_batch(tl_model, logits, batch) == [[1, 2, 3], [1, 2], [1]]


def test_pad_keys_get_no_attention_in_padded_bidirectional_batches():
    model = tracr_opt.compile("sort")
    tl_model = model.to_transformer_lens()
    batch = padded_batch(tl_model, [[3, 1, 2, 1, 3], [2]])
    hooks = masking_hooks(tl_model, batch)
    # TransformerLens < 4 ignores the mask on bidirectional attention: the hooks do it
    assert bool(hooks) == (MAJOR < 4)
    _, cache = run_padded(tl_model, batch, return_cache=True)
    for layer in range(model.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # [batch, head, query, key]
        on_pad = pattern[1, :, :2, 2:]  # the short input's real queries, its PAD keys
        assert float(on_pad.abs().max()) == 0.0, f"layer {layer}: {on_pad}"
    if MAJOR < 4:
        # and without them PAD keys do get attention: the hooks are what fixes it
        _, raw = tl_model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
        leaked = max(float(raw[f"blocks.{l}.attn.hook_pattern"][1, :, :2, 2:].max()) for l in range(model.n_layers))
        assert leaked > 0.0


def test_numerical_and_boolean_outputs_are_not_centred():
    """TransformerLens's weight processing would centre W_U (numerical outputs
    to 0, booleans to 0.5); the loaders never apply it."""
    for name in ["frac_prevs", "pair_balance"]:
        model = tracr_opt.compile(name)
        tl_model = model.to_transformer_lens(dtype="float64")
        w_u = model.weights["unembed.W_U"]
        loaded = {n: p.detach().numpy() for n, p in tl_model.named_parameters()}
        flat = [v for v in loaded.values() if v.shape == w_u.shape or v.shape == w_u.T.shape]
        assert any(np.array_equal(v, w_u) or np.array_equal(v, w_u.T) for v in flat), name


def test_config_json_loads_unchanged(tmp_path):
    """config.json is a plain TransformerLens config: no field to drop or convert."""
    import json

    tracr_opt.compile("reverse").save(tmp_path / "m", dtype="float64")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    if MAJOR >= 4:
        from transformer_lens.config import TransformerBridgeConfig

        cfg = TransformerBridgeConfig(**config)
    else:
        from transformer_lens import HookedTransformerConfig

        cfg = HookedTransformerConfig(**config)
    assert (cfg.n_layers, cfg.d_model, cfg.n_ctx, cfg.d_vocab_out) == (
        config["n_layers"], config["d_model"], config["n_ctx"], config["d_vocab_out"])
    assert cfg.attention_dir == "bidirectional"


def test_rotated_models_are_exact_in_transformer_lens():
    """compile(rotate=SEED): the residual basis turned by a random rotation,
    still exact on every input through TransformerLens."""
    model = tracr_opt.compile("sort", rotate=7)
    assert model.residual_labels[0] == "rot0"
    tl_model = model.to_transformer_lens()
    bad = mismatches(model, tl_model, model.reference_io())
    assert not bad, f"{len(bad)} mismatches, first {bad[:3]}"


def test_compressed_models_load_and_measure_as_recorded():
    """A model written by `tracr-opt compress` (lossy; made by
    tests/python.rs) loads in the package and in TransformerLens,
    and its accuracy measured here is the one its tracr_opt.json records."""
    directory = os.environ["TRACR_OPT_COMPRESSED"]
    model = tracr_opt.load(directory)
    record = model.meta["compression"]
    assert record["lossy"] and model.d_model == record["d_model"] < record["from_d_model"]
    tl_model = tracr_opt.load_transformer_lens(directory, dtype=torch.float64)
    pairs = tracr_opt.compile(model.meta["program"]).reference_io()
    right = positions = 0
    with torch.no_grad():
        by_length = {}
        for xs, expected in pairs:
            by_length.setdefault(len(xs), []).append((xs, expected))
        for group in by_length.values():
            tokens = torch.tensor([model.encode(xs) for xs, _ in group], dtype=torch.long)
            logits = tl_model(tokens).double().numpy()
            for (xs, expected), row in zip(group, logits):
                for e, g in zip(expected, model.decode_logits(row[1:])):
                    if e is None:
                        continue  # a numerical model cannot say "no value": not counted
                    right += abs(g - e) <= 0.01
                    positions += 1
    assert abs(right / positions - record["accuracy"]) < 1e-12, (right / positions, record["accuracy"])


def _hook_ablations(model, node_parts):
    """TransformerLens forward hooks that zero-ablate components listed in
    circuit.json: heads' hook_z (output) or hook_q (pattern) dimensions,
    neurons' hook_post entries, embedding entries of hook_embed /
    hook_pos_embed (per row: token id or position)."""
    hooks = []
    for h in node_parts.get("heads", []):
        hook = h["hook"] if h["part"] == "output" else f"blocks.{h['layer']}.attn.hook_q"
        head, dims = h["head"], list(h["dims"])

        def zero(x, hook, head=head, dims=dims):
            x[..., head, dims] = 0.0
            return x
        hooks.append((hook, zero))
    for n in node_parts.get("neurons", []):
        def zero(x, hook, idx=list(n["neurons"])):
            x[..., idx] = 0.0
            return x
        hooks.append((n["hook"], zero))
    return hooks


def _embedding_hooks(tokens, parts):
    """Zeroes the listed embedding entries: for hook_embed the columns of
    positions holding a listed token id, for hook_pos_embed those of listed
    positions."""
    hooks = []
    for e in parts:
        rows, cols = torch.tensor(e["rows"]), list(e["columns"])
        if e["hook"] == "hook_pos_embed":
            keep = ~torch.isin(torch.arange(tokens.shape[1]), rows)  # [pos]
        else:
            keep = ~torch.isin(tokens, rows)  # [batch, pos]

        def zero(x, hook, keep=keep, cols=cols):
            x[..., cols] = x[..., cols] * keep.to(x.dtype).unsqueeze(-1)
            return x
        hooks.append((e["hook"], zero))
    return hooks


def _outputs(model, tl_model, pairs, hooks_for, differs_from=None):
    """Decoded outputs on every input (unpadded, by length) under the hooks;
    with `differs_from` (the clean outputs), stops at the first length with
    a different output and returns None when there is none."""
    out = []
    by_length = {}
    for xs, _ in pairs:
        by_length.setdefault(len(xs), []).append(xs)
    with torch.no_grad():
        for group in by_length.values():
            tokens = torch.tensor([model.encode(xs) for xs in group], dtype=torch.long)
            with tl_model.hooks(fwd_hooks=hooks_for(tokens)):
                logits = tl_model(tokens).double().numpy()
            got = [(xs, model.decode_logits(row[1:])) for xs, row in zip(group, logits)]
            if differs_from is not None and any(g != differs_from[tuple(xs)] for xs, g in got):
                return got
            out.extend(got)
    return None if differs_from is not None else out


@pytest.mark.parametrize("name", ["reverse", "sort", "shuffle_dyck3"])
def test_circuit_hooks_name_real_components(name):
    """circuit.json's hook names exist in TransformerLens, and its indices
    are the components: zero-ablating the padding through those hooks
    changes no output, and ablating each listed node below changes some.
    (tests/circuits.rs checks every node of every program on the weights.)"""
    model = tracr_opt.compile(name)
    circuit = model.circuit
    assert circuit["format"] == "tracr-opt-circuit" and circuit["version"] == 1
    tl_model = model.to_transformer_lens(dtype="float64")
    hooks = set(tl_model.hook_dict)
    named = {circuit_hook for n in circuit["nodes"] for part in ("heads", "neurons", "embedding")
             for circuit_hook in (p["hook"] for p in n[part])}
    named |= {h.get("hook_result") for n in circuit["nodes"] for h in n["heads"] if h.get("hook_result")}
    named |= {r[k] for n in circuit["nodes"] for r in n["residual"] for k in ("first_hook", "last_hook")}
    named |= {e["hook"] for e in circuit["erase"]}
    assert named and named <= hooks, sorted(named - hooks)

    pairs = model.reference_io()
    expected = [(xs, out) for xs, out in pairs]
    clean = _outputs(model, tl_model, pairs, lambda tokens: [])
    assert all(agree(g, e, model.numerical_output) for (_, g), (_, e) in zip(clean, expected))
    # padding: whole heads, unused hook_z dims, unused neurons
    pad = circuit["padding"]
    padding = {"heads": [{"layer": h["layer"], "head": h["head"], "part": "output", "dims": list(range(model.d_head)),
                          "hook": f"blocks.{h['layer']}.attn.hook_z"} for h in pad["heads"]]
               + [{"layer": h["layer"], "head": h["head"], "part": "output", "dims": h["dims"],
                   "hook": f"blocks.{h['layer']}.attn.hook_z"} for h in pad["head_dims"]],
               "neurons": [{"hook": f"blocks.{n['layer']}.mlp.hook_post", "neurons": n["neurons"]}
                           for n in pad["neurons"]]}
    padded = _outputs(model, tl_model, pairs, lambda tokens: _hook_ablations(model, padding))
    assert padded == clean, "ablating the padding changed an output"
    by_input = {tuple(xs): out for xs, out in clean}
    # every node with components whose ablation the weights test shows to matter
    no_effect = {"all_true_selector", "select_all"}  # select(TRUE): a uniform pattern is what it computes
    checked = 0
    for node in circuit["nodes"]:
        if node["label"] in no_effect or not (node["heads"] or node["neurons"] or node["embedding"]):
            continue
        hooks_for = lambda tokens, node=node: _hook_ablations(model, node) + _embedding_hooks(tokens, node["embedding"])
        changed = _outputs(model, tl_model, pairs, hooks_for, differs_from=by_input)
        assert changed is not None, f"ablating '{node['label']}' through its hooks changed nothing"
        checked += 1
    assert checked >= 4
    print(f"{name}: {len(named)} hooks exist; padding inert; {checked} nodes each change the output when ablated")


def test_circuits_doc_example_runs_as_written(capsys):
    """docs/CIRCUITS.md's ablation example, run as written, prints what it says."""
    import pathlib
    import re
    doc = pathlib.Path(__file__).resolve().parents[2] / "docs" / "CIRCUITS.md"
    code = re.search(r"```python\n(.*?)```", doc.read_text(), re.S).group(1)
    exec(compile(code, str(doc), "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["[None, None, None]", "['c', 'b', 'a']"]
