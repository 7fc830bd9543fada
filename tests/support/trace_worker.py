"""Trace generated specs on one Keras backend, in a process of its own.

`python tests/support/trace_worker.py SEEDS...` (with KERAS_BACKEND set) draws
the spec `generate(random.Random(seed))` for each seed, compiles it, and when
stepc accepts it builds its models and runs one batch of every step
(`tests.support.tracing.trace`). It prints one JSON line per seed:
{"seed", "accepted", "error"}; "error" is the traceback's last lines, or None.
"""

from __future__ import annotations

import json
import random
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import stepc  # noqa: E402

from tests.support.generators.specs import generate  # noqa: E402
from tests.support.tracing import trace  # noqa: E402


def one(seed: int) -> dict:
    spec = generate(random.Random(seed))
    try:
        module = stepc.compile_source(spec.text, "generated.step")
    except stepc.SpecError:
        return {"seed": seed, "accepted": False, "error": None}
    try:
        trace(spec, module)
    except Exception:  # reported to the test, which prints the spec and fails
        lines = traceback.format_exc().strip().splitlines()
        return {"seed": seed, "accepted": True, "error": "\n".join(lines[-12:])}
    return {"seed": seed, "accepted": True, "error": None}


def main(seeds: list[str]) -> None:
    for seed in seeds:
        print(json.dumps(one(int(seed))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
