"""Compiling, running and saving models: the Python face of tracr-opt's
library API (src/api.rs). The compiler runs in this process, in the Rust
extension `tracr_opt._native`."""

import json
import math
import os

import numpy as np

from . import _native
from ._native import UsageError
from ._values import from_json as _from_json
from ._values import json_value

__all__ = ["ApplyOutput", "CompiledModel", "bundled_programs", "compile", "compile_rasp_to_model", "load"]

# The keyword arguments compile() and compile_rasp_to_model() take, with the
# `tracr-opt compile` flag each mirrors (docs/PYTHON.md has the table).
OPTIONS = {
    "allocator": "--allocator",
    "minimise": "--minimise",
    "time_limit": "--time-limit",
    "emit_lp": "--emit-lp",
    "factorise": "--no-factorise",
    "rewrites": "--no-rewrites",
    "cse": "--no-cse",
    "fold": "--no-fold",
    "fuse": "--no-fuse",
    "max_mlp_width": "--max-mlp-width",
    "rule_tables": "--no-rule-tables",
    "share_heads": "--no-share-heads",
    "share_residual": "--no-share-residual",
    "spread_neurons": "--no-spread-neurons",
    "rotate": "--rotate",
    "max_weights_gb": "--max-weights-gb",
}

_DTYPES = {"float32": "float32", "f32": "float32", "float64": "float64", "f64": "float64"}


def _json_value(v, what):
    """A token or value as JSON (tuples as arrays), refusing what a RASP value cannot be."""
    return json_value(v, what, UsageError)


def _key(value):
    """A dict key that keeps 1, 1.0 and True apart, as the model's token list does."""
    if isinstance(value, tuple):
        return ("tuple", tuple(_key(x) for x in value))
    return (type(value).__name__, value)


def _options(options):
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown compile option(s) {', '.join(unknown)}; the options are {', '.join(OPTIONS)}")
    options = dict(options)
    for k, v in options.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise UsageError(f"{k} must be a finite number, not {v!r}")
    if isinstance(options.get("minimise"), (list, tuple)):  # ["layers", "params"] as well as "layers,params"
        options["minimise"] = ",".join(options["minimise"])
    return json.dumps({k: os.fspath(v) if isinstance(v, os.PathLike) else v
                       for k, v in options.items() if v is not None})


def _dtype(dtype):
    name = getattr(dtype, "__name__", None) or str(dtype).replace("torch.", "")
    if name not in _DTYPES:
        raise UsageError(f"dtype must be float32 or float64, not {dtype!r}")
    return _DTYPES[name]


class ApplyOutput:
    """What `CompiledModel.apply` returns, shaped like Tracr's.

    `decoded`: the output at every position, BOS first (as Tracr's
    `apply(...).decoded`); `outputs`: the same without BOS; `logits`: the raw
    unembedding output, one row per position (BOS first)."""

    def __init__(self, decoded, logits):
        self.decoded = decoded
        self.outputs = decoded[1:]
        self.logits = logits

    def __repr__(self):
        return f"ApplyOutput(decoded={self.decoded!r})"


class CompiledModel:
    """A compiled transformer: its shape, weights (TransformerLens names),
    residual labels, layer structure and verification report, and calls to
    run it, save it and hand it to TransformerLens.

    Made by `tracr_opt.compile`, `tracr_opt.compile_rasp_to_model` or
    `tracr_opt.load`; not constructed directly."""

    def __init__(self, native, verification=None, compiler_bos="BOS", compiler_pad="PAD", dtype=None):
        self._native = native
        self.config = json.loads(native.config_json())
        self.meta = json.loads(native.meta_json())
        self.verification = verification
        self.compiler_bos = compiler_bos
        self.compiler_pad = compiler_pad
        # the precision the weights were stored at (a loaded model) or will be by default
        self.dtype = dtype or self.meta.get("dtype") or "float32"
        tokens = [_from_json(t) for t in self.meta["tokens"]]
        self.vocab = tokens[2:]
        self.bos_id, self.pad_id = self.meta["bos_id"], self.meta["pad_id"]
        self._ids = {_key(t): i for i, t in enumerate(tokens) if i >= 2}
        self._tokens = [compiler_bos, compiler_pad] + self.vocab
        out = self.meta["output"]
        self.numerical_output = out["kind"] == "numerical"
        self.output_values = [] if self.numerical_output else [_from_json(v) for v in out["values"]]
        self._weights = None
        for k in (compiler_bos, compiler_pad):
            if _key(k) in self._ids:
                raise UsageError(f"the token {k!r} is in the vocab; choose another compiler_bos / compiler_pad")

    # --- shape --------------------------------------------------------------
    @property
    def name(self):
        """The program's name."""
        return self.meta["program"]

    n_layers = property(lambda self: self.config["n_layers"], doc="Layers (attention + MLP each).")
    d_model = property(lambda self: self.config["d_model"], doc="Residual stream width.")
    n_heads = property(lambda self: self.config["n_heads"], doc="Heads per layer.")
    d_head = property(lambda self: self.config["d_head"], doc="Head width.")
    d_mlp = property(lambda self: self.config["d_mlp"], doc="MLP width.")
    n_ctx = property(lambda self: self.config["n_ctx"], doc="Positions, BOS included (max_seq_len + 1).")
    max_seq_len = property(lambda self: self.config["n_ctx"] - 1, doc="The longest input.")
    causal = property(lambda self: self.config["attention_dir"] == "causal", doc="Causal attention.")
    residual_labels = property(lambda self: list(self.meta["residual_labels"]),
                               doc="What each residual dimension holds (shared dimensions list each occupant).")
    layers = property(lambda self: self.meta["layers"],
                      doc="Per layer: the heads and MLP blocks, with the s-op each computes.")
    output_label = property(lambda self: self.meta["output_label"], doc="The output s-op's label.")

    @property
    def circuit(self):
        """The ground-truth circuit (circuit.json's object, docs/EXPORT_FORMAT.md):
        for every node of the program as written, the heads, neurons and
        embedding entries that compute it by TransformerLens hook name and
        index, its residual dimensions, what the rewrites did to it and the
        nodes it reads. None for a model directory written without one."""
        text = self._native.circuit_json()
        return None if text is None else json.loads(text)

    def figures(self, tokens=None):
        """`tracr-opt show`'s pictures as {name: SVG text}: "layers" (the layer
        diagram), "residual" (the residual-stream chart), "heads/L{l}H{h}_qk"
        and "_ov" (W_QK and W_OV on residual labels), and with `tokens`,
        "input" (the residual stream at every layer for that input). In a
        notebook: `IPython.display.SVG(model.figures()["layers"])`."""
        arg = None if tokens is None else self._input_json(tokens)
        return dict(self._native.figures(arg))

    @property
    def params(self):
        """Dense parameter count in the padded TransformerLens layout."""
        return int(sum(w.size for w in self.weights.values()))

    @property
    def nonzero_params(self):
        """Nonzero weights."""
        return int(sum(np.count_nonzero(w) for w in self.weights.values()))

    @property
    def summary(self):
        """`tracr-opt compile --json`'s object (compiled models only)."""
        s = json.loads(self._native.summary_json())
        s["verified"] = self.verification
        return s

    @property
    def weights(self):
        """Every tensor by TransformerLens name, as float64 numpy arrays (read-only)."""
        if self._weights is None:
            w = {}
            for name, shape, data in self._native.tensors():
                a = np.frombuffer(data, dtype="<f8").reshape(shape)
                a.flags.writeable = False
                w[name] = a
            self._weights = w
        return self._weights

    # --- tokens -------------------------------------------------------------
    def encode(self, tokens):
        """Token ids for an input, BOS first (added unless the input starts with compiler_bos)."""
        tokens = list(tokens)
        if tokens and _key(tokens[0]) == _key(self.compiler_bos):
            tokens = tokens[1:]
        if len(tokens) > self.max_seq_len:
            raise UsageError(f"the input has {len(tokens)} tokens but the model takes at most {self.max_seq_len}")
        ids = [self.bos_id]
        for t in tokens:
            i = self._ids.get(_key(t))
            if i is None:
                raise UsageError(f"the token {t!r} is not in the model's vocab {self.vocab!r}")
            ids.append(i)
        return ids

    def decode(self, ids):
        """Tokens for ids (BOS and PAD as compiler_bos and compiler_pad)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self._tokens):
                raise UsageError(f"token id {i} is outside the vocab (0..{len(self._tokens) - 1})")
            out.append(self._tokens[i])
        return out

    def decode_logits(self, logits):
        """The output value at each row of logits ([positions, d_vocab_out]): the
        number for a numerical output, else the argmax value when it reaches 0.5,
        else None (the rule `apply` and verification use)."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.numerical_output:
            return [float(row[0]) for row in logits]
        out = []
        for row in logits:
            best = int(np.argmax(row)) if row.size else 0
            out.append(self.output_values[best] if row.size and row[best] >= 0.5 else None)
        return out

    # --- running ------------------------------------------------------------
    def _input_json(self, tokens):
        tokens = list(tokens)
        if tokens and _key(tokens[0]) == _key(self.compiler_bos):
            tokens = tokens[1:]
        return json.dumps([_json_value(t, "input token") for t in tokens])

    def apply(self, tokens):
        """Runs the model on one input (with or without compiler_bos first) and
        decodes it, as Tracr's `AssembledTransformerModel.apply` does."""
        text = self._input_json(tokens)
        outputs_json, data, rows, cols = self._native.run(text)
        outputs = [_from_json(v) for v in json.loads(outputs_json)]
        logits = np.frombuffer(data, dtype="<f8").reshape(rows, cols)
        return ApplyOutput([self.compiler_bos] + outputs, logits)

    def evaluate(self, tokens):
        """The RASP interpreter's output on one input (no BOS): the ground truth."""
        return [_from_json(v) for v in json.loads(self._native.evaluate(self._input_json(tokens)))]

    def reference_io(self, samples=2000, seed=0):
        """(input, interpreter output) pairs on the inputs verification uses:
        every input when there are at most 100 000, else a seeded sample."""
        pairs = json.loads(self._native.reference_io(samples, seed))
        return [([_from_json(v) for v in i], [_from_json(v) for v in o]) for i, o in pairs]

    def verify(self, samples=2000, seed=0):
        """Checks the model against the interpreter; returns the report (a dict)."""
        return json.loads(self._native.verify(samples, seed))

    # --- files and other libraries ------------------------------------------
    def save(self, directory, dtype=None):
        """Writes model.safetensors, config.json and tracr_opt.json atomically,
        byte for byte as `tracr-opt compile --out` does with the same flags."""
        self._native.save(os.fspath(directory), _dtype(dtype or self.dtype))

    def to_transformer_lens(self, dtype=None, device="cpu"):
        """This model in TransformerLens, with its weights unprocessed (see
        `tracr_opt.tl.to_transformer_lens`)."""
        from .tl import to_transformer_lens

        return to_transformer_lens(self, dtype=dtype, device=device)

    def __repr__(self):
        return (f"CompiledModel({self.name!r}: {self.n_layers} layers, d_model {self.d_model}, "
                f"{self.n_heads} heads x {self.d_head}, d_mlp {self.d_mlp}, "
                f"{'causal' if self.causal else 'bidirectional'}, max_seq_len {self.max_seq_len})")


def _verify_or_raise(native, verify, samples, seed):
    if not verify:
        return None
    report = json.loads(native.verify(samples, seed))
    if report["mismatches"]:
        first = report["examples"][0] if report["examples"] else {}
        raise _native.ProgramError(
            f"the compiled model disagrees with the interpreter on {report['mismatches']} of {report['inputs']} "
            f"inputs (first: input {first.get('input')}, interpreter {first.get('expected')}, "
            f"model {first.get('got')})")
    return report


def _is_spec(source):
    if isinstance(source, os.PathLike):
        return True
    if not isinstance(source, str):
        hint = " (for a Tracr RASP program use compile_rasp_to_model)" if hasattr(source, "label") else ""
        raise UsageError(f"the source must be a bundled program's name, a path or .rasp text, "
                         f"not {type(source).__name__}{hint}")
    if "\n" in source:
        return False
    return (source.endswith((".rasp", ".json")) or os.path.exists(source)
            or source in {name for name, _ in _native.bundled()})


def compile(source, vocab=None, max_seq_len=None, causal=None, *, verify=True, samples=2000, seed=0,
            compiler_bos="BOS", compiler_pad="PAD", **options):
    """Compiles a tracr-opt program: a bundled name (see `bundled_programs()`),
    a `.rasp` or `.json` path, or `.rasp` program text.

    vocab, max_seq_len and causal override the program's own compile(...)
    settings. The model is checked against the interpreter (every input when
    there are at most 100 000, else `samples` seeded ones) unless verify=False;
    a disagreement raises ProgramError. Other keyword arguments are the
    compile options (`tracr_opt.OPTIONS`)."""
    opts = _options(options)
    vocab_json = None if vocab is None else json.dumps([_json_value(v, "vocab") for v in _vocab_list(vocab)])
    if _is_spec(source):
        native = _native.compile("spec", os.fspath(source), os.fspath(source), vocab_json, max_seq_len, causal, opts)
    else:
        native = _native.compile("rasp", source, "<text>", vocab_json, max_seq_len, causal, opts)
    report = _verify_or_raise(native, verify, samples, seed)
    return CompiledModel(native, report, compiler_bos, compiler_pad)


def _vocab_list(vocab):
    if isinstance(vocab, (str, bytes)):
        raise UsageError("vocab must be a collection of tokens, e.g. {'a', 'b'}, not a string")
    try:
        return list(vocab)
    except TypeError:
        raise UsageError(f"vocab must be a collection of tokens, not {type(vocab).__name__}") from None


def compile_rasp_to_model(program, vocab, max_seq_len, causal=False, compiler_bos="BOS", compiler_pad="PAD", *,
                          verify=True, samples=2000, seed=0, **options):
    """Tracr's `compiling.compile_rasp_to_model`, with tracr-opt's compiler:
    `program` is a Tracr `rasp` s-op (tracr-pypi must be installed).

    The program is exported in-process (tracr_opt.bridge: every function is
    tabulated over the value sets vocab and max_seq_len give), compiled and,
    unless verify=False, checked against the interpreter. Other keyword
    arguments are the compile options (`tracr_opt.OPTIONS`)."""
    from . import bridge

    opts = _options(options)
    vocab = _vocab_list(vocab)
    if not isinstance(max_seq_len, int) or isinstance(max_seq_len, bool) or max_seq_len < 1:
        raise UsageError(f"max_seq_len must be an int >= 1, not {max_seq_len!r}")
    keys = {_key(v) for v in vocab}
    for what, tok in (("compiler_bos", compiler_bos), ("compiler_pad", compiler_pad)):
        if _key(tok) in keys:
            raise UsageError(f"{what} {tok!r} is also in the vocab; choose a token the program never sees")
    doc = bridge.export_program(program, vocab, max_seq_len, causal=causal)
    text = bridge.dumps(doc)
    native = _native.compile("json", text, f"{doc['name']} (exported from Tracr)", None, None, None, opts)
    report = _verify_or_raise(native, verify, samples, seed)
    return CompiledModel(native, report, compiler_bos, compiler_pad)


def load(directory):
    """Loads a model directory written by `CompiledModel.save` or `tracr-opt compile --out`."""
    return CompiledModel(_native.load(os.fspath(directory)))


def bundled_programs():
    """The bundled programs: {name: summary}."""
    return dict(_native.bundled())
