"""Extracts the parts of ../shared/reference/tracr_reference.json that the tests use.

The output, src/library/tracr_reference.json, keeps per program: Tracr's name and
call, compile arguments, model shape (layers, heads, residual width, MLP width,
key size, params) and the 20 input/output pairs from Tracr's own interpreter.
Run from the repository root:  python3 src/library/extract_reference.py
"""
import json
import pathlib

root = pathlib.Path(__file__).resolve().parents[2]
src = root.parent / "shared" / "reference" / "tracr_reference.json"
ref = json.loads(src.read_text())

def shape(p):
    cfg = p["model_config"]
    return {
        "layers": cfg["num_layers"],
        "heads": cfg["num_heads"],
        "d_model": p["d_model"],
        "mlp_hidden": cfg["mlp_hidden_size"],
        "key_size": cfg["key_size"],
        "params": p["params"]["total"],
        "nonzero_params": p["params"]["nonzero"],
        "attn_layers": p["attn_layers"],
        "mlp_layers": p["mlp_layers"],
        "compile_seconds_median": p["compile_seconds_median"],
    }

out = {"source": "tracr-pypi 1.0.0 reference measurements (shared/reference/tracr_reference.json)", "programs": [], "scaling": []}
for p in ref["programs"]:
    out["programs"].append({
        "name": p["name"],
        "call": p["call"],
        "vocab": p["compile_args"]["vocab"],
        "max_seq_len": p["compile_args"]["max_seq_len"],
        "causal": p["compile_args"]["causal"],
        "numerical_output": p["forward_check"]["numerical_output"],
        **shape(p),
        "pairs": [{"input": x["input"], "expected": x["expected"]} for x in p["forward_check"]["pairs"]],
    })
for p in ref["scaling"]:
    out["scaling"].append({
        "name": p["name"],
        "vocab": p["compile_args"]["vocab"],
        "max_seq_len": p["compile_args"]["max_seq_len"],
        "outputs_matching": p["forward_check"]["n_match"],
        "n_inputs": p["forward_check"]["n_inputs"],
        **shape(p),
    })
dst = root / "src" / "library" / "tracr_reference.json"
dst.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {dst} ({dst.stat().st_size} bytes)")
