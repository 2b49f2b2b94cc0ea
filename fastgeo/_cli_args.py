"""Helpers the ``fastgeo`` subcommands share: seed/depth ranges, JSON output, and the
plot extra's check (so that a missing matplotlib stops a command before it runs)."""

import json
import math
import sys


def parse_range(text):
    """'0-9' -> [0..9]; '1,3,5' -> [1, 3, 5]; '2-4,7' -> [2, 3, 4, 7] (values >= 0;
    ValueError otherwise)."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = (int(v) for v in part.split("-", 1))
            if hi < lo:
                raise ValueError(f"range {part!r} ends before it starts")
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    if not out:
        raise ValueError(f"no values in {text!r}")
    return out


def json_safe(obj):
    """obj with every non-finite float replaced by None (JSON has no NaN or inf)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path, obj):
    """Write obj as indented JSON (non-finite floats as null) and say so on stdout."""
    with open(path, "w") as f:
        json.dump(json_safe(obj), f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


def plots_unavailable(prog):
    """None when figures can be drawn; else print why (how to install matplotlib) on
    stderr as ``prog: ...`` and return the exit status 2."""
    from . import plots

    try:
        plots.require_matplotlib()
    except ImportError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return None
