"""Compiled models in TransformerLens, on every major version: 2.x and 3.x
(`HookedTransformer`) and 4.x (`TransformerBridge.boot_native`).

The weights go in exactly as compiled. TransformerLens's weight processing
(`load_and_process_state_dict`, `fold_ln`, `center_writing_weights`,
`center_unembed`, and `enable_compatibility_mode`, which applies them) is never
applied: centring the unembedding moves every logit, which zeroes numerical
outputs and puts boolean ones at exactly 0.5. There is no LayerNorm to fold.

Padded batches: `padded_batch` builds right-padded token ids and an
attention mask, and `run_padded` runs them exactly. TransformerLens 4 applies
the mask itself; before 4 it ignores the mask for bidirectional attention, so
`masking_hooks` adds it to the attention scores (-inf on PAD keys)."""

import importlib.metadata
import warnings

from ._native import TracrOptError, UsageError

__all__ = ["Batch", "decode_batch", "load_transformer_lens", "masking_hooks", "padded_batch", "run_padded",
           "tl_major_version", "to_transformer_lens"]


def tl_major_version():
    """The installed TransformerLens's major version (2, 3, 4, ...)."""
    try:
        version = importlib.metadata.version("transformer-lens")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError("TransformerLens is not installed: pip install transformer-lens") from None
    return int(version.split(".")[0])


def _torch_dtype(model, dtype):
    import torch

    from ._model import _dtype

    name = _dtype(dtype or model.dtype)
    return {"float32": torch.float32, "float64": torch.float64}[name]


def to_transformer_lens(model, dtype=None, device="cpu"):
    """A TransformerLens model with `model`'s weights, unprocessed.

    `dtype` is float32 or float64 (a string or a torch dtype); by default the
    precision a loaded model was stored at, else float32. Attention is causal
    or bidirectional as compiled. Returns a `HookedTransformer` on
    TransformerLens < 4 and a `TransformerBridge` on 4.x, in eval mode, with
    the compiled model as its `tracr_opt` attribute (used by `padded_batch`)."""
    import torch

    major = tl_major_version()
    torch_dtype = _torch_dtype(model, dtype)
    cfg = dict(model.config)
    state = {k: torch.tensor(v, dtype=torch_dtype, device=device) for k, v in model.weights.items()}
    if major >= 4:
        from transformer_lens.config import TransformerBridgeConfig
        from transformer_lens.model_bridge import TransformerBridge
        from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

        bridge_cfg = TransformerBridgeConfig(**cfg)
        tl_model = TransformerBridge.boot_native(bridge_cfg, dtype=torch_dtype, device=device)
        # strict: every parameter must come from the compiled weights (a
        # non-strict load of unconverted names would keep the random ones)
        result = tl_model.load_state_dict(convert_tl_checkpoint(state, bridge_cfg), strict=True)
        if result.missing_keys or result.unexpected_keys:
            raise TracrOptError(f"TransformerLens {major}: missing {result.missing_keys}, "
                                f"unexpected {result.unexpected_keys}")
    else:
        from transformer_lens import HookedTransformer, HookedTransformerConfig

        with warnings.catch_warnings():
            # 3.x's deprecation notice recommends enable_compatibility_mode(),
            # which centres the unembedding and breaks compiled models: not
            # advice to pass on
            warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
            tl_model = HookedTransformer(HookedTransformerConfig(**cfg, dtype=torch_dtype, device=device))
        result = tl_model.load_state_dict(state, strict=False)
        # only the attention-mask buffers (made by TransformerLens itself) may be absent
        missing = [k for k in result.missing_keys if not k.endswith((".attn.mask", ".attn.IGNORE"))]
        if missing or result.unexpected_keys:
            raise TracrOptError(f"TransformerLens {major}: missing {missing}, unexpected {result.unexpected_keys}")
    tl_model.eval()
    tl_model.tracr_opt = model
    return tl_model


def load_transformer_lens(directory, dtype=None, device="cpu"):
    """`tracr_opt.load(directory).to_transformer_lens(...)`: a model directory
    in TransformerLens, at the precision it was stored at unless `dtype` says."""
    from ._model import load

    return to_transformer_lens(load(directory), dtype=dtype, device=device)


class Batch:
    """Right-padded token ids and their attention mask.

    tokens: LongTensor [batch, positions] (BOS first, PAD after each input);
    attention_mask: LongTensor, 1 on BOS and real tokens, 0 on PAD;
    lengths: positions each row really has (BOS included)."""

    def __init__(self, tokens, attention_mask, lengths):
        self.tokens = tokens
        self.attention_mask = attention_mask
        self.lengths = lengths

    def __repr__(self):
        return f"Batch(tokens={tuple(self.tokens.shape)}, lengths={self.lengths})"


def _compiled(model):
    compiled = getattr(model, "tracr_opt", model)
    if not hasattr(compiled, "encode"):
        raise UsageError("expected a CompiledModel or a model made by to_transformer_lens()")
    return compiled


def padded_batch(model, inputs, device="cpu"):
    """Token ids and an attention mask for inputs of different lengths.
    `model` is a CompiledModel or a model from `to_transformer_lens`."""
    import torch

    compiled = _compiled(model)
    ids = [compiled.encode(x) for x in inputs]
    if not ids:
        raise UsageError("the batch is empty")
    width = max(len(i) for i in ids)
    tokens = torch.full((len(ids), width), compiled.pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(ids), width), dtype=torch.long, device=device)
    for row, i in enumerate(ids):
        tokens[row, :len(i)] = torch.tensor(i, dtype=torch.long)
        mask[row, :len(i)] = 1
    return Batch(tokens, mask, [len(i) for i in ids])


def masking_hooks(tl_model, batch):
    """Forward hooks that keep PAD keys out of every attention pattern where
    TransformerLens does not (bidirectional attention before 4.x); empty
    where the attention mask suffices. Use with `tl_model.hooks(fwd_hooks=...)`
    or `run_with_hooks`."""
    compiled = _compiled(tl_model)
    if tl_major_version() >= 4 or compiled.causal:
        return []
    pad_keys = batch.attention_mask == 0  # [batch, key]

    def mask_scores(scores, hook):  # scores: [batch, head, query, key]
        return scores.masked_fill(pad_keys[:, None, None, :].to(scores.device), float("-inf"))

    return [(f"blocks.{layer}.attn.hook_attn_scores", mask_scores) for layer in range(compiled.n_layers)]


def run_padded(tl_model, batch, return_cache=False):
    """Logits [batch, positions, d_vocab_out] for a padded batch, exact at every
    real position on every TransformerLens version; with `return_cache`, also
    the activation cache."""
    hooks = masking_hooks(tl_model, batch)
    with tl_model.hooks(fwd_hooks=hooks):
        if return_cache:
            return tl_model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
        return tl_model(batch.tokens, attention_mask=batch.attention_mask)


def decode_batch(model, logits, batch):
    """The decoded outputs of each input of a padded batch (BOS and PAD left out)."""
    compiled = _compiled(model)
    rows = logits.detach().to("cpu").double().numpy()
    return [compiled.decode_logits(rows[b, 1:n]) for b, n in enumerate(batch.lengths)]

