"""The tracr_opt package (pytest): Tracr's own library programs through
`compile_rasp_to_model`, against `rasp.evaluate` and the interpreter; `save()`
against `tracr-opt compile --out`, byte for byte; and clear exceptions for bad
programs, raising functions, bad vocab and bad options.

Run by tests/python.rs in a venv with tracr-pypi and the wheel
installed; TRACR_OPT_CLI names the tracr-opt binary."""

import filecmp
import json
import os
import subprocess

import numpy as np
import pytest
from tracr.rasp import rasp
from tracr_library import build, entries, model_agrees, tracr_cases

import tracr_opt
from tracr_opt import bridge

RANDOM_INPUTS = 50


@pytest.fixture(scope="session")
def cli():
    exe = os.environ.get("TRACR_OPT_CLI")
    if not exe or not os.path.exists(exe):
        pytest.fail("set TRACR_OPT_CLI to the tracr-opt binary (tests/python.rs does)")
    return exe


def run_cli(cli, *args):
    r = subprocess.run([cli, *args], capture_output=True, text=True)
    assert r.returncode == 0, f"tracr-opt {' '.join(args)}: {r.stderr}"
    return r.stdout


@pytest.mark.parametrize("entry", entries(), ids=lambda e: f"{e['name']}-{'causal' if e['causal'] else 'bidir'}")
def test_tracr_library_program(entry):
    program = build(entry["call"])
    model = tracr_opt.compile_rasp_to_model(program, set(entry["vocab"]), entry["max_seq_len"],
                                            causal=entry["causal"])
    # verified on every input at compile time...
    v = model.verification
    assert v["exhaustive"] and v["mismatches"] == 0 and v["inputs"] > 0, v
    # ...and here again, position by position, against the interpreter
    pairs = model.reference_io()
    assert len(pairs) == v["inputs"]
    for xs, expected in pairs:
        got = model.apply(xs).outputs
        assert model_agrees(got, expected, model.numerical_output), f"on {xs}: model {got}, interpreter {expected}"
    # Tracr's own answers: rasp.evaluate on random inputs (recorded pairs
    # when causal); Tracr's BOS convention in apply
    cases = tracr_cases(entry, program, RANDOM_INPUTS)
    assert len(cases) >= 20
    for xs, theirs in cases:
        out = model.apply(["BOS"] + xs)
        assert out.decoded[0] == "BOS"
        assert model_agrees(out.decoded[1:], theirs, model.numerical_output), \
            f"on {xs}: tracr-opt {out.decoded[1:]}, Tracr {theirs}"
    # no more layers than Tracr, and the dense count agrees with the summary
    assert model.n_layers <= entry["layers"]
    assert model.params == model.summary["params"]


def test_model_attributes_describe_the_model():
    model = tracr_opt.compile("reverse")
    w = model.weights
    assert w["embed.W_E"].shape == (len(model.vocab) + 2, model.d_model)
    assert w["pos_embed.W_pos"].shape == (model.n_ctx, model.d_model)
    assert w["blocks.0.attn.W_Q"].shape == (model.n_heads, model.d_model, model.d_head)
    assert w["unembed.W_U"].shape == (model.d_model, len(model.output_values))
    assert len(model.residual_labels) == model.d_model
    assert len(model.layers) == model.n_layers
    assert model.verification["exhaustive"] and model.verification["mismatches"] == 0
    assert model.encode(["a", "b"]) == [model.bos_id, 2, 3] == model.encode(["BOS", "a", "b"])
    assert model.decode([0, 1, 2]) == ["BOS", "PAD", "a"]
    out = model.apply(["a", "b", "c"])
    assert out.decoded == ["BOS", "c", "b", "a"] and out.outputs == ["c", "b", "a"]
    assert out.logits.shape == (4, len(model.output_values))
    assert model.decode_logits(out.logits[1:]) == ["c", "b", "a"]
    # the residual stream read through the weights gives the same logits
    assert np.count_nonzero(w["unembed.W_U"]) > 0
    with pytest.raises(ValueError):
        w["unembed.W_U"][0, 0] = 1.0  # read-only: the model's weights are not to be edited in place


def test_compile_takes_names_paths_and_text(tmp_path):
    text = "x = Map(lambda x: x + 1, tokens)\ncompile(x, vocab={1, 2}, max_seq_len=3)\n"
    path = tmp_path / "inc.rasp"
    path.write_text(text)
    from_text = tracr_opt.compile(text)
    from_path = tracr_opt.compile(path)
    assert from_text.apply([1, 2]).outputs == from_path.apply([1, 2]).outputs == [2, 3]
    # settings override the program's own
    longer = tracr_opt.compile(path, max_seq_len=6, vocab=[1, 2, 5], causal=True)
    assert (longer.max_seq_len, longer.vocab, longer.causal) == (6, [1, 2, 5], True)
    assert longer.apply([5, 5, 5, 5, 5, 5]).outputs == [6] * 6


@pytest.mark.parametrize("spec,flags,kwargs", [
    ("reverse", [], {}),
    ("sort", ["--dtype", "f64"], {"dtype": "float64"}),
    ("shuffle_dyck", ["--no-share-residual", "--minimise", "layers,params"],
     {"share_residual": False, "minimise": ["layers", "params"]}),
    ("frac_prevs", ["--allocator", "heuristic", "--no-factorise", "--no-rewrites"],
     {"allocator": "heuristic", "factorise": False, "rewrites": False}),
    ("composite_select", ["--no-fuse", "--no-share-heads"], {"fuse": False, "share_heads": False}),
])
def test_save_is_byte_identical_to_the_cli(cli, tmp_path, spec, flags, kwargs):
    dtype = kwargs.pop("dtype", None)
    model = tracr_opt.compile(spec, **kwargs)
    model.save(tmp_path / "py", **({"dtype": dtype} if dtype else {}))
    run_cli(cli, "compile", spec, *flags, "--out", str(tmp_path / "cli"))
    assert_same_files(tmp_path / "py", tmp_path / "cli")
    # and it loads back, with the same answers
    back = tracr_opt.load(tmp_path / "py")
    assert back.dtype == (dtype or "float32")
    for xs, expected in model.reference_io(samples=200)[:200]:
        assert model_agrees(back.apply(xs).outputs, expected, back.numerical_output)


def test_save_of_a_tracr_program_is_byte_identical_to_the_cli(cli, tmp_path):
    program = build("make_frac_prevs(rasp.tokens == 'x')")
    model = tracr_opt.compile_rasp_to_model(program, {"a", "b", "x"}, 5)
    model.save(tmp_path / "py")
    doc = bridge.export_program(program, {"a", "b", "x"}, 5)
    bridge.write_program(doc, tmp_path / "frac.json")
    run_cli(cli, "compile", str(tmp_path / "frac.json"), "--out", str(tmp_path / "cli"))
    assert_same_files(tmp_path / "py", tmp_path / "cli")


def assert_same_files(a, b):
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b)) == ["circuit.json", "config.json", "model.safetensors", "tracr_opt.json"]
    for n in names:
        assert filecmp.cmp(a / n, b / n, shallow=False), f"{n} differs"


def test_config_json_is_plain_hooked_transformer_config(tmp_path):
    tracr_opt.compile("sort").save(tmp_path / "m", dtype="float64")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    meta = json.loads((tmp_path / "m" / "tracr_opt.json").read_text())
    assert not any(k.startswith("tracr_opt") for k in config)
    assert meta["dtype"] == "float64"


# --- bad input: clear exceptions, nothing written -----------------------------

def raises(exc, f, *needles):
    with pytest.raises(exc) as info:
        f()
    text = str(info.value)
    for n in needles:
        assert n in text, f"{text!r} does not mention {n!r}"
    assert "panick" not in text and "Traceback" not in text
    return text


def test_circuit_and_figures_of_a_tracr_program(tmp_path):
    """The ground-truth circuit names Tracr's own labels, matches the saved
    circuit.json, and the pictures are SVG naming the s-ops."""
    program = build("make_frac_prevs(rasp.tokens == 'x')")
    model = tracr_opt.compile_rasp_to_model(program, {"x", "y"}, 5)
    circuit = model.circuit
    labels = [n["label"] for n in circuit["nodes"]]
    assert circuit["output"] == model.output_label and model.output_label in labels
    out = circuit["nodes"][labels.index(model.output_label)]
    assert out["fate"]["kind"] == "compiled" and out["heads"][0]["hook"] == "blocks.0.attn.hook_z"
    assert out["residual"] and out["residual"][0]["to"] == "unembed"
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "circuit.json").read_text()) == circuit
    assert tracr_opt.load(tmp_path / "m").circuit == circuit
    figures = model.figures(["x", "y", "x"])
    assert {"layers", "residual", "input"} <= set(figures) and any(k.startswith("heads/") for k in figures)
    assert all(svg.startswith("<svg") and svg.rstrip().endswith("</svg>") for svg in figures.values())
    assert all(label in figures["layers"] for label in labels)
    raises(tracr_opt.UsageError, lambda: model.figures(["x", "z"]), "'z'")


def test_bad_program_text_names_the_place():
    raises(tracr_opt.ProgramError, lambda: tracr_opt.compile("x = Map(lambda x: x +, tokens)\n"), "<text>:1:")
    raises(tracr_opt.ProgramError,
           lambda: tracr_opt.compile("x = Map(lambda x: 1 // x, tokens)\ncompile(x, vocab={0, 1}, max_seq_len=2)\n"),
           "<text>:1:", "'x'", "ZeroDivisionError", "input value 0")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile("no_such_program.rasp"), "cannot read no_such_program.rasp")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile(rasp.tokens), "use compile_rasp_to_model")


def test_raising_tracr_function_names_the_node_and_value():
    inv = rasp.Map(lambda x: 12 // (x - 2), rasp.tokens).named("inverse")
    text = raises(tracr_opt.ProgramError, lambda: tracr_opt.compile_rasp_to_model(inv, {1, 2, 3}, 4),
                  "'inverse'", "ZeroDivisionError", "input value 2")
    assert isinstance(bridge.ExportError("x"), tracr_opt.TracrOptError), text
    raises(tracr_opt.ProgramError,
           lambda: tracr_opt.compile_rasp_to_model(rasp.Map(lambda x: x + 1, rasp.ConstantSOp([1, 2])), {1}, 2),
           "ConstantSOp")


def test_bad_vocab_and_settings():
    prog = rasp.Map(lambda x: x, rasp.tokens).named("same")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile_rasp_to_model(prog, {"a", "BOS"}, 3), "compiler_bos",
           "'BOS'")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile_rasp_to_model(prog, "abc", 3), "not a string")
    raises(tracr_opt.ProgramError, lambda: tracr_opt.compile_rasp_to_model(prog, [], 3), "vocab is empty")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile_rasp_to_model(prog, {1}, 0), "max_seq_len")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile("reverse", vocab=[["a"]]), "cannot be written")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile("reverse", vocab=[]), "vocab is empty")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile("reverse", max_seq_len=0), "max-seq-len")


def test_bad_options():
    raises(TypeError, lambda: tracr_opt.compile("reverse", minimize="layers"), "minimize", "minimise")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile("reverse", minimise="speed"), "speed")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile("reverse", allocator="greedy"), "greedy")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile("reverse", time_limit=float("inf")), "time_limit")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile("reverse", time_limit=-1.0), "time-limit")
    raises(tracr_opt.UsageError, lambda: tracr_opt.compile("reverse", samples=0), "samples")
    raises(tracr_opt.UsageError,
           lambda: tracr_opt.compile("reverse", share_residual=False, minimise="layers,width"), "residual sharing")


def test_bad_tokens_paths_and_dtypes(tmp_path):
    model = tracr_opt.compile("reverse")
    raises(tracr_opt.UsageError, lambda: model.apply(["a", "z"]), "'z'", "vocab")
    raises(tracr_opt.UsageError, lambda: model.apply(["a"] * 6), "at most 5")
    raises(tracr_opt.UsageError, lambda: model.decode([99]), "99")
    raises(tracr_opt.UsageError, lambda: model.save(tmp_path / "m", dtype="int8"), "int8")
    assert not (tmp_path / "m").exists()
    raises(tracr_opt.UsageError, lambda: model.save(tmp_path / "missing" / "m"), "does not exist")
    raises(tracr_opt.UsageError, lambda: tracr_opt.load(tmp_path), "tracr_opt.json")
    raises(tracr_opt.UsageError, lambda: tracr_opt.load(tmp_path / "nothing"), "not a model directory")
    # a model read from files cannot be verified: it has no program
    model.save(tmp_path / "m")
    raises(tracr_opt.UsageError, lambda: tracr_opt.load(tmp_path / "m").verify(), "compile it to verify")
