"""Export programs written against Tracr's RASP API (`tracr.rasp.rasp`) to
tracr-opt's JSON program format (docs/PROGRAM_FORMAT.md, docs/TRACR_BRIDGE.md).

    from tracr.rasp import rasp
    from tracr_opt.bridge import export_program, write_program

    program = make_reverse(rasp.tokens)
    doc = export_program(program, vocab={"a", "b", "c"}, max_seq_len=5)
    write_program(doc, "reverse.json")       # then: tracr-opt compile reverse.json

Maps and SequenceMaps are Python functions: they are tabulated over the value
sets of their inputs, which this module infers from vocab and max_seq_len by
walking the graph (the same rules tracr-opt applies, so every table covers
what tracr-opt will look up). Only the public `rasp` API is used.
"""

import argparse
import importlib
import importlib.util
import json
import os
import sys
import tempfile

from tracr.rasp import rasp

from ._native import ProgramError
from ._values import json_value

__all__ = ["ExportError", "export_program", "write_program", "dumps", "value_sets"]

FORMAT = "tracr-opt-program"
VERSION = 1
# tracr-opt refuses larger value sets (src/rasp/valueset.rs MAX_VALUE_SET)
MAX_VALUE_SET = 100_000

_PREDICATES = {
    rasp.Comparison.EQ: "EQ",
    rasp.Comparison.LT: "LT",
    rasp.Comparison.LEQ: "LEQ",
    rasp.Comparison.GT: "GT",
    rasp.Comparison.GEQ: "GEQ",
    rasp.Comparison.NEQ: "NEQ",
    rasp.Comparison.TRUE: "TRUE",
    rasp.Comparison.FALSE: "FALSE",
}


class ExportError(ProgramError):
    """A program the JSON format cannot hold, or a function that fails on a
    value its inputs can take. The message names the node."""


def _nodes(output):
    """Every expression the output depends on, inputs before readers
    (iterative depth-first, so deep programs do not hit the recursion limit)."""
    order, state, stack = [], {}, [(output, False)]
    while stack:
        expr, done = stack.pop()
        key = id(expr)
        if done:
            if state.get(key) != "done":
                state[key] = "done"
                order.append(expr)
            continue
        if key in state:
            continue
        if not isinstance(expr, rasp.RASPExpr):
            raise ExportError(f"{expr!r} is not a RASP expression (found among the program's children)")
        state[key] = "open"
        stack.append((expr, True))
        for child in reversed(list(expr.children)):
            if id(child) not in state:
                stack.append((child, False))
    return order


def _labels(nodes):
    """A unique label per node: its name (`.named(...)`) when no other node
    has it, else Tracr's `name_id` label (suffixed if even that repeats)."""
    count = {}
    for n in nodes:
        count[n.name] = count.get(n.name, 0) + 1
    labels, used = {}, set()
    for n in nodes:
        label = n.name if count[n.name] == 1 else n.label
        base, k = label, 2
        while label in used:
            label, k = f"{base}_{k}", k + 1
        used.add(label)
        labels[id(n)] = label
    return labels


def _describe(node, labels):
    return f"'{labels[id(node)]}' ({type(node).__name__})"


def _json_value(v, where):
    """A value as JSON (None, bool, int, float, str, tuples as arrays)."""
    return json_value(v, where, ExportError)


def _value(v, node, labels):
    """A function's result, refused (naming the node) unless the format can hold it."""
    _json_value(v, f"node {_describe(node, labels)}")
    return v


def _call(f, args, node, labels):
    try:
        return f(*args)
    except Exception as e:  # noqa: BLE001 - the user's function may raise anything
        shown = repr(args[0]) if len(args) == 1 else "(" + ", ".join(repr(a) for a in args) + ")"
        what = "input value" if len(args) == 1 else "input values"
        raise ExportError(
            f"the function of {_describe(node, labels)} raises {type(e).__name__}: {e} on {what} {shown}; "
            "every function is evaluated on all values its inputs can take (guard the case)"
        ) from e


def _check_size(node, labels, n):
    if n > MAX_VALUE_SET:
        raise ExportError(f"the value set of {_describe(node, labels)} has more than {MAX_VALUE_SET} values; "
                          "use a smaller vocab or max_seq_len")


def _means(values, max_seq_len, node, labels):
    """Every mean of 1..max_seq_len values drawn (with repetition) from `values`,
    enumerated as tracr-opt does (sums level by level, then divided)."""
    for v in values:
        if not isinstance(v, (bool, int, float)):
            raise ExportError(f"{_describe(node, labels)} is a numerical Aggregate but its input can hold "
                              f"the non-number {v!r}")
    out = set(values)
    sums = set(values)
    for m in range(2, max_seq_len + 1):
        nxt = {s + v for s in sums for v in values}
        _check_size(node, labels, len(nxt))
        out |= {s / m for s in nxt}
        _check_size(node, labels, len(out))
        sums = nxt
    return out


def value_sets(output, vocab, max_seq_len):
    """Every value each s-op of the program can take (None excluded), by node
    id: the rules of tracr-opt's src/rasp/valueset.rs."""
    nodes = _nodes(output)
    labels = _labels(nodes)
    return _value_sets(nodes, labels, list(vocab), max_seq_len)


def _value_sets(nodes, labels, vocab, max_seq_len):
    sets = {}
    for n in nodes:
        if isinstance(n, rasp.Selector):
            continue
        if isinstance(n, rasp.TokensType):
            s = set(vocab)
        elif isinstance(n, rasp.IndicesType):
            s = set(range(max_seq_len))
        elif isinstance(n, rasp.LengthType):
            s = set(range(1, max_seq_len + 1))
        elif isinstance(n, rasp.Full):
            s = {n.fill}
        elif isinstance(n, rasp.Map):
            s = {_value(_call(n.f, (x,), n, labels), n, labels) for x in sets[id(n.inner)]}
        elif isinstance(n, rasp.SequenceMap):  # LinearSequenceMap included
            xs, ys = sets[id(n.fst)], sets[id(n.snd)]
            _check_size(n, labels, len(xs) * len(ys))
            s = {_value(_call(n.f, (x, y), n, labels), n, labels) for x in xs for y in ys}
        elif isinstance(n, rasp.Aggregate):
            inner = sets[id(n.sop)]
            if rasp.is_numerical(n):
                s = _means(inner, max_seq_len, n, labels)
            else:
                s = set(inner)
            s.add(n.default)
        elif isinstance(n, rasp.SelectorWidth):
            s = set(range(max_seq_len + 1))
        else:
            raise ExportError(_unsupported(n, labels))
        s.discard(None)
        _check_size(n, labels, len(s))
        sets[id(n)] = s
    return sets


def _unsupported(n, labels):
    if isinstance(n, rasp.ConstantSOp):
        why = "a ConstantSOp (a fixed sequence, not a function of the input) has no counterpart in the format"
    elif isinstance(n, rasp.ConstantSelector):
        why = "a ConstantSelector (a fixed attention matrix) has no counterpart in the format"
    else:
        why = f"{type(n).__name__} is not one of the RASP primitives the format holds"
    return f"cannot export {_describe(n, labels)}: {why}"


def _sorted(values):
    """A deterministic order for a value set (mixed types: by type name, then value)."""
    return sorted(values, key=lambda v: (type(v).__name__, repr(v) if isinstance(v, tuple) else v))


def export_program(program, vocab, max_seq_len, causal=False, name=None):
    """Tracr-opt's JSON program (a dict) for a Tracr RASP s-op.

    `vocab` is an iterable of token values, `max_seq_len` the longest input;
    the functions are tabulated over the value sets these give, so compile
    the result with the same settings (tracr-opt refuses others where a
    table lacks a value). Raises ExportError naming the node on anything the
    format cannot hold or a function that raises."""
    if not isinstance(program, rasp.SOp):
        raise ExportError(f"the program must be a RASP s-op, not {type(program).__name__}")
    if not isinstance(max_seq_len, int) or isinstance(max_seq_len, bool) or max_seq_len < 1:
        raise ExportError(f"max_seq_len must be an int >= 1, not {max_seq_len!r}")
    vocab = list(vocab)
    if not vocab:
        raise ExportError("the vocab is empty")
    nodes = _nodes(program)
    labels = _labels(nodes)
    for n in nodes:
        if not isinstance(n, (rasp.TokensType, rasp.IndicesType, rasp.LengthType, rasp.Full, rasp.Map,
                              rasp.SequenceMap, rasp.Aggregate, rasp.SelectorWidth, rasp.Select,
                              rasp.SelectorAnd, rasp.SelectorOr, rasp.SelectorNot)):
            raise ExportError(_unsupported(n, labels))
    sets = _value_sets(nodes, labels, vocab, max_seq_len)
    out = []
    for n in nodes:
        label = labels[id(n)]
        where = f"node {_describe(n, labels)}"
        ref = lambda e: labels[id(e)]  # noqa: E731
        if isinstance(n, rasp.TokensType):
            node = {"label": label, "op": "tokens"}
        elif isinstance(n, rasp.IndicesType):
            node = {"label": label, "op": "indices"}
        elif isinstance(n, rasp.LengthType):
            node = {"label": label, "op": "length"}
        elif isinstance(n, rasp.Full):
            node = {"label": label, "op": "full", "value": _json_value(n.fill, where)}
        elif isinstance(n, rasp.Map):
            table = [[_json_value(x, where), _json_value(_call(n.f, (x,), n, labels), where)]
                     for x in _sorted(sets[id(n.inner)])]
            node = {"label": label, "op": "map", "input": ref(n.inner), "table": table}
        elif isinstance(n, rasp.LinearSequenceMap):
            node = {"label": label, "op": "linear_sequence_map", "inputs": [ref(n.fst), ref(n.snd)],
                    "coefficients": [_json_value(n.fst_fac, where), _json_value(n.snd_fac, where)]}
        elif isinstance(n, rasp.SequenceMap):
            table = [[_json_value(x, where), _json_value(y, where), _json_value(_call(n.f, (x, y), n, labels), where)]
                     for x in _sorted(sets[id(n.fst)]) for y in _sorted(sets[id(n.snd)])]
            node = {"label": label, "op": "sequence_map", "inputs": [ref(n.fst), ref(n.snd)], "table": table}
        elif isinstance(n, rasp.Aggregate):
            node = {"label": label, "op": "aggregate", "selector": ref(n.selector), "sop": ref(n.sop),
                    "default": _json_value(n.default, where)}
        elif isinstance(n, rasp.SelectorWidth):
            node = {"label": label, "op": "selector_width", "selector": ref(n.selector)}
        elif isinstance(n, rasp.Select):
            node = {"label": label, "op": "select", "keys": ref(n.keys), "queries": ref(n.queries),
                    "predicate": _predicate(n, sets, labels)}
        elif isinstance(n, rasp.SelectorAnd):
            node = {"label": label, "op": "select_and", "inputs": [ref(n.fst), ref(n.snd)]}
        elif isinstance(n, rasp.SelectorOr):
            node = {"label": label, "op": "select_or", "inputs": [ref(n.fst), ref(n.snd)]}
        else:  # SelectorNot (the type check above admits nothing else)
            node = {"label": label, "op": "select_not", "input": ref(n.inner)}
        if isinstance(n, rasp.SOp) and rasp.is_numerical(n):
            node["encoding"] = "numerical"
        out.append(node)
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name or program.name,
        "settings": {"vocab": [_json_value(v, "vocab") for v in _sorted(set(vocab))],
                     "max_seq_len": max_seq_len, "causal": bool(causal)},
        "output": labels[id(program)],
        "nodes": out,
    }


def _predicate(n, sets, labels):
    """A Comparison by name; any other predicate as a table over the value sets."""
    p = n.predicate
    if isinstance(p, rasp.Comparison):
        return _PREDICATES[p]
    if not callable(p):
        raise ExportError(f"cannot export {_describe(n, labels)}: its predicate {p!r} is not callable")
    where = f"node {_describe(n, labels)}"
    rows = [[_json_value(k, where), _json_value(q, where), bool(_call(p, (k, q), n, labels))]
            for k in _sorted(sets[id(n.keys)]) for q in _sorted(sets[id(n.queries)])]
    return {"table": rows}


def dumps(doc):
    """The program as JSON text: one node per line (readable, diffable)."""
    head = {k: v for k, v in doc.items() if k != "nodes"}
    text = json.dumps(head, allow_nan=False)[:-1]
    nodes = ",\n  ".join(json.dumps(n, allow_nan=False) for n in doc["nodes"])
    return f'{text}, "nodes": [\n  {nodes}\n]}}\n'


def write_program(doc, path):
    """Writes the program atomically: a failure leaves no partial file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tracr-opt-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(dumps(doc))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# The command line

_CLI_DOC = """Command line: export a Tracr RASP program to tracr-opt's JSON format.

    python -m tracr_opt.bridge PROGRAM --vocab a b c --max-seq-len 5 [--causal] -o out.json

PROGRAM is `file.py:name` or `package.module:name` (an s-op, or a function
returning one, called without arguments), or a Python expression over `rasp`
(tracr.rasp.rasp) and the functions of Tracr's library
(tracr.compiler.lib), e.g. "make_reverse(rasp.tokens)". Vocab tokens that
look like integers are read as integers unless --string-vocab is given.
Exit status 1 with a message naming the node when the program cannot be
exported; nothing is written then.
"""




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
    ap = argparse.ArgumentParser(prog="python -m tracr_opt.bridge", description=_CLI_DOC.split("\n\n")[0])
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
