"""A guard against compile time growing faster than the spec (not a benchmark).

The 10,000-statement chain of `benchmarks/synthetic.py` must compile in time
linear in its length; a quadratic step (a set of everything upstream kept per
statement) once made it ten times slower. The bounds are generous: they catch
a quadratic cost, not a noisy machine.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import stepc
from stepc.check import check
from stepc.lower import lower
from stepc.parse import parse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.synthetic import make_spec  # noqa: E402


def _best_of(runs: int, action) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def _lowering_time(statements: int) -> float:
    source = make_spec(statements)
    spec, _ = parse(source, "chain.step")
    checked, _ = check(spec)
    collecting = gc.isenabled()
    gc.disable()  # as `analyze` does: the collector's cost is not the lowering's
    try:
        return _best_of(3, lambda: lower(checked, source))
    finally:
        if collecting:
            gc.enable()


def test_a_2000_statement_chain_compiles_in_under_3_seconds():
    source = make_spec(2000)
    assert _best_of(2, lambda: stepc.compile_source(source)) < 3.0


def test_lowering_is_not_quadratic_in_the_chain_length():
    # Linear: 8x the statements, about 8x the time; quadratic: about 64x.
    small, large = _lowering_time(500), _lowering_time(4000)
    assert large / small < 20, (small, large)
