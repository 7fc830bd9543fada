"""Every shipped spec on every Keras backend, weight for weight against TensorFlow.

A module fixture runs ``tests/support/backend_runs.py`` once per backend, each in its own
process (``KERAS_BACKEND`` set), the three at once: the initial weights are numpy draws
made in each process, so no backend waits for another. Each trains every spec of
``backend_runs.RUNS`` with the same sub-models, the same three numpy batches (8 samples
each; 8, 8, 4 where compile()'s loss tracker reports), one epoch, SGD (Zero-DCE's spec
builds its own Adam, lr 1e-3) and, through ``random_tables.fixed_tables()``, the same
random numbers, then evaluates one batch of 8, as these variants:
TensorFlow (the reference: the TF module is proved against the hand-written references
by the equivalence and published-spec tests), TensorFlow with XLA (the GAN and WGAN-GP),
JAX with ``jax.jit`` (Keras's default), JAX without jit (GAN and WGAN-GP), torch eager.

``test_same_numbers_as_tensorflow[spec-variant]`` compares one variant's run of one spec
with TensorFlow's, on:

* the initial weights: the same variable paths and exactly equal values (else the harness
  differs, not the step);
* every float variable after ``fit`` (the sub-models' weights and BatchNorm statistics,
  a spec's float state), by path: ``atol=1e-6, rtol=1e-5``; every int or bool state
  variable (a step counter): equal;
* every training step's logs: the same names, values within ``rtol=1e-5``;
* ``evaluate(return_dict=True)`` (every spec but metric learning, which has no test step):
  the same names, values within ``rtol=1e-5``;
* every SeedGenerator's ``[seed, counter]`` after ``fit`` and after ``evaluate``: equal.

The facts file's one real difference, a gradient penalty differentiated through
BatchNorm (TF's ``moments`` stops the variance's gradient of the mean, so second
derivatives differ), is hit by no shipped spec here: WGAN-GP's critic has no BatchNorm and
the adversarial spec's input gradient is a first derivative (its perturbed input is under
``stop_gradient``). So every spec is compared against TensorFlow on everything above.

Two more tests keep those comparisons honest: on each backend the table draws advance a
SeedGenerator exactly as Keras's own ``normal``/``uniform`` do, and TensorFlow's run of
each spec moves its weights beyond the tolerance (a step that did nothing on every backend
would otherwise pass).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.backend_runs import RUNS, VARIANTS
from tests.support.compare import (
    ATOL,
    RTOL,
    assert_batch_logs_close,
    assert_logs_close,
    assert_weights_close,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "tensorflow"
WORKER_TIMEOUT = 1800  # seconds; only so that a hung worker fails instead of hanging

PAIRS = [
    (spec, variant.name)
    for backend in VARIANTS
    for variant in VARIANTS[backend]
    for spec in sorted(RUNS)
    if variant.name != REFERENCE and (not variant.specs or spec in variant.specs)
]


class Runs:
    """The workers' output folder and, per backend, how its worker ended."""

    def __init__(self, out: Path, ended: dict[str, str]):
        self.out = out
        self.ended = ended

    def load(self, variant: str, spec: str) -> tuple[dict[str, np.ndarray], dict]:
        """A run's arrays and record; fails with the worker's stderr if it wrote none,
        or with the run's traceback if it raised."""
        record_path = self.out / variant / f"{spec}.json"
        if not record_path.exists():
            backend = variant.split("_")[0]
            pytest.fail(f"the {backend} worker wrote no {variant}/{spec}:\n{self.ended[backend]}")
        record = json.loads(record_path.read_text())
        if "error" in record:
            pytest.fail(f"{spec} raised on {variant}:\n{record['error']}")
        with np.load(self.out / variant / f"{spec}.npz") as arrays:
            return dict(arrays), record


def _start(backend: str, out: Path) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "tests.support.backend_runs", "--backend", backend]
    return subprocess.Popen(
        [*command, "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    """Every backend's worker, run once for the module, concurrently."""
    out = tmp_path_factory.mktemp("backend_runs")
    workers = {backend: _start(backend, out) for backend in VARIANTS}
    ended = {}
    for backend, worker in workers.items():
        try:
            _, stderr = worker.communicate(timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, stderr = worker.communicate()
        ended[backend] = f"exit status {worker.returncode}; stderr ends:\n{stderr[-3000:]}"
    return Runs(out, ended)


def _part(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {key.partition("/")[2]: value for key, value in arrays.items() if key.startswith(prefix)}


def assert_initial_equal(actual: dict, expected: dict) -> None:
    got, want = _part(actual, "initial/"), _part(expected, "initial/")
    assert sorted(got) == sorted(want), "variable paths differ"
    for path, value in want.items():
        np.testing.assert_array_equal(got[path], value, err_msg=f"initial {path}")


def assert_final_close(actual: dict, expected: dict) -> None:
    got, want = _part(actual, "final/"), _part(expected, "final/")
    assert sorted(got) == sorted(want), "variable paths differ"
    for path, value in want.items():
        assert got[path].dtype == value.dtype, f"final {path}: {got[path].dtype}"
        if value.dtype.kind in "biu":  # a counter or a flag: any difference is a bug
            np.testing.assert_array_equal(got[path], value, err_msg=f"final {path}")
        else:
            assert_weights_close([got[path]], [value], f"final {path}", rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("spec", "variant"), PAIRS, ids=[f"{s}-{v}" for s, v in PAIRS])
def test_same_numbers_as_tensorflow(runs: Runs, spec: str, variant: str) -> None:
    """One variant's run of ``spec`` against TensorFlow's (see the module docstring)."""
    expected_arrays, expected = runs.load(REFERENCE, spec)
    actual_arrays, actual = runs.load(variant, spec)
    assert_initial_equal(actual_arrays, expected_arrays)
    assert_final_close(actual_arrays, expected_arrays)
    assert_batch_logs_close(actual["logs"], expected["logs"], rtol=RTOL)
    if "evaluate" in expected:
        assert_logs_close(actual.get("evaluate", {}), expected["evaluate"], "evaluate")
    assert actual["seed_states"] == expected["seed_states"]


@pytest.mark.parametrize("backend", sorted(VARIANTS))
def test_tables_advance_the_counter_as_keras_does(runs: Runs, backend: str) -> None:
    """Three draws of each replaced function from a fresh SeedGenerator: the table's
    leave the generator in the same state as Keras's own, and it has moved."""
    path = runs.out / f"{backend}.json"
    assert path.exists(), runs.ended[backend]
    for name, states in json.loads(path.read_text())["counter_advances"].items():
        assert states["table"] == states["real"], name
        assert states["real"][1] == 3, name


@pytest.mark.parametrize("spec", sorted(RUNS))
def test_reference_run_trains(runs: Runs, spec: str) -> None:
    """TensorFlow's run moves some weight beyond the comparison's tolerance, and a spec
    that draws has advanced its SeedGenerators: the comparisons compare a real step."""
    arrays, record = runs.load(REFERENCE, spec)
    initial, final = _part(arrays, "initial/"), _part(arrays, "final/")
    moved = [
        path
        for path, value in final.items()
        if not np.allclose(value, initial[path], atol=ATOL, rtol=RTOL)
    ]
    assert moved, "no weight moved"
    assert all(counter > 0 for _, counter in record["seed_states"]["fit"].values())
