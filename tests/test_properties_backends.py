"""The guarantee on JAX and PyTorch: what `stepc check` accepts traces there too.

The same generator as `tests/test_properties.py` (seeds 0..SEEDS-1 of
`tests.support.generators.specs.generate`), each accepted spec's models built
and run for one batch of every step they define, on each backend in a process of
its own (`tests/support/trace_worker.py`). Both workers start together when the
module's first test runs. STEPC_FUZZ_BACKEND_SEEDS sets how many seeds (default 24).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.generators.specs import generate

SEEDS = int(os.environ.get("STEPC_FUZZ_BACKEND_SEEDS", "24"))
WORKER = Path(__file__).resolve().parent / "support" / "trace_worker.py"
BACKENDS = ("jax", "torch")


@pytest.fixture(scope="module")
def traced() -> dict[str, list[dict]]:
    """Each backend's records, one per seed (both workers run at once)."""
    seeds = [str(s) for s in range(SEEDS)]
    running = {
        backend: subprocess.Popen(
            [sys.executable, str(WORKER), *seeds],
            env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for backend in BACKENDS
    }
    records = {}
    for backend, process in running.items():
        out, err = process.communicate(timeout=1800)
        assert process.returncode == 0, f"{backend} worker failed:\n{err[-3000:]}"
        records[backend] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return records


@pytest.mark.parametrize("backend", BACKENDS)
def test_accepted_specs_trace_on_every_backend(traced, backend: str) -> None:
    records = traced[backend]
    assert [r["seed"] for r in records] == list(range(SEEDS)), "a seed was not traced"
    failed = [r for r in records if r["error"]]
    report = "\n\n".join(
        f"seed {r['seed']}:\n{generate(random.Random(r['seed'])).text}\n{r['error']}"
        for r in failed
    )
    assert not failed, f"{len(failed)} accepted specs failed on {backend}:\n{report}"


def test_the_sample_holds_accepted_specs(traced) -> None:
    """The property means something only if most sampled specs were accepted."""
    accepted = sum(r["accepted"] for r in traced["jax"])
    assert accepted > SEEDS // 2, f"only {accepted} of {SEEDS} specs were accepted"
