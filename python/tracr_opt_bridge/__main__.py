"""Command line: export a Tracr RASP program to tracr-opt's JSON format.

    python -m tracr_opt_bridge PROGRAM --vocab a b c --max-seq-len 5 [--causal] -o out.json

PROGRAM is `file.py:name` or `package.module:name` (an s-op, or a function
returning one, called without arguments), or a Python expression over `rasp`
(tracr.rasp.rasp) and the functions of Tracr's library
(tracr.compiler.lib), e.g. "make_reverse(rasp.tokens)". Vocab tokens that
look like integers are read as integers unless --string-vocab is given.
Exit status 1 with a message naming the node when the program cannot be
exported; nothing is written then.
"""

import argparse
import importlib
import importlib.util
import os
import sys

from tracr.rasp import rasp

from . import ExportError, export_program, write_program


def _load(spec):
    module_part, sep, attr = spec.rpartition(":")
    if sep and attr.isidentifier() and (module_part.endswith(".py") or module_part.replace(".", "").isidentifier()):
        if module_part.endswith(".py"):
            path = os.path.abspath(module_part)
            if not os.path.exists(path):
                raise ExportError(f"no such file: {module_part}")
            sys.path.insert(0, os.path.dirname(path))
        try:
            if module_part.endswith(".py"):
                name = os.path.splitext(os.path.basename(path))[0]
                loader_spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(loader_spec)
                loader_spec.loader.exec_module(module)
            else:
                module = importlib.import_module(module_part)
        except Exception as e:  # noqa: BLE001 - the user's module may raise anything
            raise ExportError(f"loading {module_part} failed: {type(e).__name__}: {e}") from e
        if not hasattr(module, attr):
            raise ExportError(f"{module_part} has no attribute '{attr}'")
        obj = getattr(module, attr)
        if callable(obj) and not isinstance(obj, rasp.RASPExpr):
            try:
                obj = obj()
            except Exception as e:  # noqa: BLE001
                raise ExportError(f"calling {spec}() failed: {type(e).__name__}: {e}") from e
        return obj
    from tracr.compiler import lib

    scope = {"rasp": rasp, "lib": lib}
    scope.update({k: v for k, v in vars(lib).items() if not k.startswith("_")})
    try:
        return eval(spec, scope)  # noqa: S307 - the user's own program text
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"evaluating the program expression {spec!r} failed: {type(e).__name__}: {e}") from e


def _token(text, as_string):
    if not as_string:
        try:
            return int(text)
        except ValueError:
            pass
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tracr_opt_bridge", description=__doc__.split("\n\n")[0])
    ap.add_argument("program", help="file.py:name, module:name, or an expression such as 'make_reverse(rasp.tokens)'")
    ap.add_argument("--vocab", nargs="+", required=True, help="the tokens")
    ap.add_argument("--string-vocab", action="store_true", help="keep tokens such as 1 as strings")
    ap.add_argument("--max-seq-len", type=int, required=True)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--name", help="program name (default: the output s-op's name)")
    ap.add_argument("-o", "--output", required=True, help="the JSON file to write")
    args = ap.parse_args(argv)
    try:
        program = _load(args.program)
        doc = export_program(program, vocab=[_token(t, args.string_vocab) for t in args.vocab],
                             max_seq_len=args.max_seq_len, causal=args.causal, name=args.name)
        write_program(doc, args.output)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {len(doc['nodes'])} nodes, output '{doc['output']}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
