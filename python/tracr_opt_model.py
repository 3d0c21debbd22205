"""Load and run a model written by `tracr-opt compile --out DIR`, with numpy and
safetensors only (no torch, no TransformerLens).

    from tracr_opt_model import load
    model = load("reverse_model")
    model.run(["a", "b", "c"])          # -> ['c', 'b', 'a']
    model.logits([[0, 2, 3, 4]])        # raw outputs, [batch, positions, d_vocab_out]

    python tracr_opt_model.py reverse_model --input "a b c"

The forward pass is TransformerLens's HookedTransformer with the files'
config: embeddings + positional embeddings, per layer attention (scores
divided by sqrt(d_head); causal mask when attention_dir is "causal") then a
ReLU MLP, both added to the residual stream, no layer norm, then the
unembedding. The file format is described in docs/EXPORT_FORMAT.md.
"""

import argparse
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file


def _key(value):
    """A hashable key for a JSON value: typed, so that 1, 1.0 and True stay
    distinct as they are in the token list (tuples are JSON arrays)."""
    if isinstance(value, list):
        return ("list", json.dumps(value))
    return (type(value).__name__, value)


class Model:
    def __init__(self, directory):
        with open(os.path.join(directory, "config.json")) as f:
            self.config = json.load(f)
        with open(os.path.join(directory, "tracr_opt.json")) as f:
            self.meta = json.load(f)
        # compute in float64 whatever the stored precision
        self.w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(directory, "model.safetensors")).items()}
        _check(directory, self.config, self.meta, self.w)
        self.ids = {_key(t): i for i, t in enumerate(self.meta["tokens"])}
        self.bos_id = self.meta["bos_id"]
        self.causal = self.config["attention_dir"] == "causal"
        self.max_seq_len = self.config["n_ctx"] - 1
        # heads whose output is identically zero (padding to n_heads) are skipped
        self.live_heads = []
        for layer in range(self.config["n_layers"]):
            p = f"blocks.{layer}.attn."
            v, o, bv = self.w[p + "W_V"], self.w[p + "W_O"], self.w[p + "b_V"]
            self.live_heads.append(
                [h for h in range(v.shape[0]) if (np.any(v[h]) or np.any(bv[h])) and np.any(o[h])]
            )

    def encode(self, tokens):
        """Token ids, BOS first. Tokens are JSON values (str, int, float, bool, list for tuples)."""
        if len(tokens) > self.max_seq_len:
            raise ValueError(f"the input has {len(tokens)} tokens but the model takes at most {self.max_seq_len}")
        ids = [self.bos_id]
        for t in tokens:
            if _key(t) not in self.ids:
                raise ValueError(f"the token {t!r} is not in the model's vocab")
            ids.append(self.ids[_key(t)])
        return ids

    def logits(self, ids):
        """Output logits for a batch of id sequences of one length: [batch, n, d_vocab_out]."""
        ids = np.asarray(ids)
        chunk = 4096  # bounds memory; each chunk is a handful of large matrix products
        if len(ids) > chunk:
            return np.concatenate([self.logits(ids[i : i + chunk]) for i in range(0, len(ids), chunk)])
        c, w = self.config, self.w
        b, n = ids.shape
        e, d = c["d_head"], c["d_model"]
        x = w["embed.W_E"][ids] + w["pos_embed.W_pos"][:n][None, :, :]
        mask = np.triu(np.ones((n, n), dtype=bool), k=1) if self.causal else None

        def heads(name, live):
            # x [b, n, d] @ W [h, d, e] -> [b, h, n, e], as one matrix product
            h = len(live)
            wm = w[name][live].transpose(1, 0, 2).reshape(d, h * e)
            bias = w[name.replace(".W_", ".b_")][live][None, :, None, :]
            return (x.reshape(b * n, d) @ wm).reshape(b, n, h, e).transpose(0, 2, 1, 3) + bias

        for layer in range(c["n_layers"]):
            p = f"blocks.{layer}."
            live = self.live_heads[layer]
            h = len(live)
            if h == 0:
                x = x + w[p + "attn.b_O"]
            else:
                q, k, v = heads(p + "attn.W_Q", live), heads(p + "attn.W_K", live), heads(p + "attn.W_V", live)
                scores = q @ k.swapaxes(-1, -2) / np.sqrt(e)
                if mask is not None:
                    scores = np.where(mask[None, None], -np.inf, scores)
                scores = scores - scores.max(axis=-1, keepdims=True)
                pattern = np.exp(scores)
                pattern /= pattern.sum(axis=-1, keepdims=True)
                z = (pattern @ v).transpose(0, 2, 1, 3).reshape(b * n, h * e)
                attn_out = z @ w[p + "attn.W_O"][live].reshape(h * e, d) + w[p + "attn.b_O"]
                x = x + attn_out.reshape(b, n, d)
            hidden = np.maximum(x @ w[p + "mlp.W_in"] + w[p + "mlp.b_in"], 0.0)
            x = x + hidden @ w[p + "mlp.W_out"] + w[p + "mlp.b_out"]
        return x @ w["unembed.W_U"] + w["unembed.b_U"]

    def decode_batch(self, logits):
        """Values at every input position (BOS excluded) of a batch of logits [batch, n, d_vocab_out]."""
        logits = np.asarray(logits)[:, 1:, :]
        out = self.meta["output"]
        if out["kind"] == "numerical":
            return [[float(v) for v in row[:, 0]] for row in logits]
        values = out["values"]
        if not values:
            return [[None] * logits.shape[1] for _ in logits]
        best = logits.argmax(axis=-1)
        score = np.take_along_axis(logits, best[..., None], axis=-1)[..., 0]
        # no column reaching 0.5 means the s-op has no value (None)
        return [[values[i] if s >= 0.5 else None for i, s in zip(bi, si)] for bi, si in zip(best, score)]

    def decode(self, logits):
        """Values at every input position (BOS excluded) of one sequence's logits [n, d_vocab_out]."""
        return self.decode_batch(np.asarray(logits)[None])[0]

    def run(self, tokens):
        return self.decode(self.logits([self.encode(tokens)])[0])

    def run_batch(self, inputs):
        """Decoded outputs for many inputs (any lengths), batched by length."""
        results = [None] * len(inputs)
        by_len = {}
        for i, t in enumerate(inputs):
            by_len.setdefault(len(t), []).append(i)
        for _, idx in sorted(by_len.items()):
            decoded = self.decode_batch(self.logits([self.encode(inputs[i]) for i in idx]))
            for row, i in zip(decoded, idx):
                results[i] = row
        return results


def _repr(v):
    """A JSON value as tracr-opt prints it in residual labels (Python's repr
    of the RASP value, tuples for JSON arrays)."""
    if v is None or isinstance(v, (bool, int, float)):
        return repr(v)
    if isinstance(v, str):
        q = '"' if "'" in v and '"' not in v else "'"
        body = v.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace(q, "\\" + q)
        return q + body + q
    inner = [_repr(x) for x in v]
    return "(" + inner[0] + ",)" if len(inner) == 1 else "(" + ", ".join(inner) + ")"


def _display(v):
    return v if isinstance(v, str) else _repr(v)


def _check(directory, config, meta, w):
    """Refuses a directory whose metadata does not fit its weights, as the Rust
    loader does: a model run with it would decode wrong answers silently."""
    def bad(what):
        raise ValueError(f"{directory}: inconsistent model directory: {what}")

    d, n_heads, d_head, d_mlp = config["d_model"], config["n_heads"], config["d_head"], config["d_mlp"]
    shapes = {"embed.W_E": (config["d_vocab"], d), "pos_embed.W_pos": (config["n_ctx"], d),
              "unembed.W_U": (d, config["d_vocab_out"])}
    for layer in range(config["n_layers"]):
        p = f"blocks.{layer}."
        shapes.update({p + "attn.W_Q": (n_heads, d, d_head), p + "attn.W_K": (n_heads, d, d_head),
                       p + "attn.W_V": (n_heads, d, d_head), p + "attn.W_O": (n_heads, d_head, d),
                       p + "mlp.W_in": (d, d_mlp), p + "mlp.W_out": (d_mlp, d)})
    for name, shape in shapes.items():
        if name not in w:
            bad(f"model.safetensors has no tensor {name}")
        if tuple(w[name].shape) != shape:
            bad(f"tensor {name} has shape {tuple(w[name].shape)}, but config.json gives {shape}")
    if len(meta["tokens"]) != config["d_vocab"]:
        bad(f"tracr_opt.json lists {len(meta['tokens'])} tokens but embed.W_E has {config['d_vocab']} rows")
    out = meta["output"]
    columns = 1 if out["kind"] == "numerical" else max(len(out["values"]), 1)
    if columns != config["d_vocab_out"]:
        bad(f"the output decoder has {columns} column(s) but the unembedding has d_vocab_out {config['d_vocab_out']}")
    if meta.get("rotation") or meta.get("compression"):
        return  # a dense basis: W_U is checked by its shape only
    # in the compiler's basis, output column j reads the dimension labelled
    # "<output>:<value j>" with weight 1 and nothing else
    label = meta["output_label"]
    expected = [label] if out["kind"] == "numerical" else [f"{label}:{_display(v)}" for v in out["values"]]
    labels = meta["residual_labels"]

    def holds(residual_label, want):
        return any(seg.split(" [")[0] == want for seg in residual_label.split(" | "))

    w_u = w["unembed.W_U"]
    for j, want in enumerate(expected):
        dim = next((r for r, l in enumerate(labels) if holds(l, want)), None)
        should = np.zeros(d)
        if dim is not None:
            should[dim] = 1.0
        wrong = np.nonzero(w_u[:, j] != should)[0]
        if len(wrong):
            r = int(wrong[0])
            reads = (f"reads residual dimension {dim} ({labels[dim]}) with weight 1 and nothing else"
                     if dim is not None else "has no residual dimension, so reads nothing")
            bad(f"unembed.W_U[{r}, {j}] is {w_u[r, j]}, but output column {j} ({want}) {reads}")


def load(directory):
    return Model(directory)


def _token(text, vocab):
    for t in vocab:
        if str(t) == text:
            return t
    raise SystemExit(f"input token '{text}' is not in the vocab")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run a tracr-opt model directory on one input.")
    ap.add_argument("directory")
    ap.add_argument("--input", required=True, help='tokens separated by spaces, e.g. "a b c"')
    a = ap.parse_args(argv)
    m = load(a.directory)
    vocab = m.meta["tokens"][2:]
    print(json.dumps(m.run([_token(t, vocab) for t in a.input.split()])))


if __name__ == "__main__":
    sys.exit(main())
