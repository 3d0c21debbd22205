"""RASP values as the JSON program format and the extension encode them:
None, bool, int, float (finite), str, and tuples of them as arrays."""

import math


def json_value(v, where, error):
    """`v` in the JSON encoding; anything else raises `error` naming `where`."""
    if v is None or isinstance(v, (bool, str)):
        return v
    # numpy scalars and other number types that say what they are
    if hasattr(v, "item") and not isinstance(v, (list, tuple)):
        try:
            v = v.item()
        except (TypeError, ValueError):
            pass
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise error(f"{where}: {v!r} is not a finite number (the format has no inf/nan)")
        return v
    if isinstance(v, tuple):
        return [json_value(x, where, error) for x in v]
    raise error(f"{where}: the value {v!r} of type {type(v).__name__} cannot be written "
                "(values are None, bool, int, float, str or tuples of them)")


def from_json(v):
    """A value from the JSON encoding (arrays back to tuples)."""
    return tuple(from_json(x) for x in v) if isinstance(v, list) else v
