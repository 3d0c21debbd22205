"""tracr-opt in Python: compile RASP programs into exact transformers, run
them, save them, and study them in TransformerLens.

    import tracr_opt
    from tracr.rasp import rasp
    from tracr.compiler import lib

    model = tracr_opt.compile_rasp_to_model(lib.make_reverse(rasp.tokens), {"a", "b", "c"}, max_seq_len=5)
    model.apply(["BOS", "a", "b", "c"]).decoded      # ['BOS', 'c', 'b', 'a']
    tl_model = model.to_transformer_lens()           # exact, unprocessed weights

The compiler runs in this process (the Rust extension `tracr_opt._native`).
docs/PYTHON.md in the repository is the guide.
"""

from ._model import OPTIONS, ApplyOutput, CompiledModel, bundled_programs, compile, compile_rasp_to_model, load
from ._native import InternalError, ProgramError, TracrOptError, UsageError, __version__
from .tl import Batch, decode_batch, load_transformer_lens, masking_hooks, padded_batch, run_padded

__all__ = [
    "OPTIONS",
    "ApplyOutput",
    "Batch",
    "CompiledModel",
    "InternalError",
    "ProgramError",
    "TracrOptError",
    "UsageError",
    "__version__",
    "bundled_programs",
    "compile",
    "compile_rasp_to_model",
    "decode_batch",
    "load",
    "load_transformer_lens",
    "masking_hooks",
    "padded_batch",
    "run_padded",
]
