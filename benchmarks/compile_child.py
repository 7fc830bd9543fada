"""One child process of the compiler-scaling benchmark; prints one JSON object.

``python -m benchmarks.compile_child --statements N --shape chain --repeats R`` (from the
repository root) imports stepc, warms it up on ``specs/gan.step`` (the first compile builds
the Lark parser), generates a synthetic spec of N statements (not timed), then times
``stepc.compile_source`` R times (fewer if they exceed ``--budget`` seconds in all) and
checks that the output is valid Python. Peak resident
memory is ``ru_maxrss`` before the first compile of the big spec (the baseline: interpreter,
stepc, the warm-up and the spec text) and after the last one. With ``--profile`` it instead
compiles once under cProfile and prints the functions with the most own time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.synthetic import make_spec  # noqa: E402

PIPELINE = ("compiler/pipeline.py", "compiler/__init__.py")


def _max_rss_bytes() -> int:
    """Peak resident set size of this process so far (``ru_maxrss`` is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def measure(statements: int, shape: str, repeats: int, budget_s: float) -> dict:
    """Compile the synthetic spec up to ``repeats`` times; times, memory and output facts.

    No further repeat starts once the compiles so far took ``budget_s`` in all.
    """
    import stepc

    stepc.compile_source((REPO_ROOT / "specs" / "gan.step").read_text(), "gan.step")
    text = make_spec(statements, shape)
    baseline = _max_rss_bytes()
    seconds = []
    module = ""
    while len(seconds) < repeats and sum(seconds) < budget_s:
        start = time.perf_counter()
        module = stepc.compile_source(text, "big.step")
        seconds.append(time.perf_counter() - start)
    compile(module, "big.py", "exec")  # raises if stepc's output is not valid Python
    return {
        "statements": statements,
        "shape": shape,
        "seconds": seconds,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": _max_rss_bytes(),
        "spec_lines": text.count("\n"),
        "module_lines": module.count("\n"),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def hotspots(statements: int, shape: str, top: int = 15) -> dict:
    """Where one compile of the spec spends its time, under cProfile.

    ``own``: the ``top`` functions by own time; ``cumulative``: the ``top`` functions of
    stepc's own stages (``compiler/``) by time including callees, to name the callers.
    """
    import stepc

    stepc.compile_source((REPO_ROOT / "specs" / "gan.step").read_text(), "gan.step")
    text = make_spec(statements, shape)
    profiler = cProfile.Profile()
    profiler.runcall(stepc.compile_source, text, "big.step")
    rows = [_row(key, value) for key, value in pstats.Stats(profiler).stats.items()]
    own = sorted(rows, key=lambda row: row["own_seconds"], reverse=True)[:top]
    ours = [row for row in rows if row["function"].startswith("compiler/")]
    ours = [row for row in ours if not row["function"].startswith(PIPELINE)]
    cumulative = sorted(ours, key=lambda row: row["cumulative_seconds"], reverse=True)[:top]
    return {"statements": statements, "shape": shape, "own": own, "cumulative": cumulative}


def _row(key: tuple, value: tuple) -> dict:
    (path, line, name), (_, calls, own, cumulative, _) = key, value
    return {
        "function": f"{_short(path)}:{line}({name})",
        "calls": calls,
        "own_seconds": own,
        "cumulative_seconds": cumulative,
    }


def _short(path: str) -> str:
    """A path relative to the repository or to site-packages, for reading."""
    for marker in (str(REPO_ROOT) + "/", "site-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, required=True)
    parser.add_argument("--shape", choices=("chain", "diamond"), default="chain")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for all repeats")
    parser.add_argument("--profile", action="store_true", help="report cProfile hotspots")
    args = parser.parse_args()
    if args.profile:
        print(json.dumps(hotspots(args.statements, args.shape)))
    else:
        print(json.dumps(measure(args.statements, args.shape, args.repeats, args.budget)))


if __name__ == "__main__":
    main()
