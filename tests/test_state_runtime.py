"""State the model keeps (`state` items, `assign STATE = ...`), trained on every backend.

``tests/support/state_worker.py`` runs in one process per backend (Keras fixes its
backend at import) and trains the generated ``Tracker`` of its ``STATE_SPEC``: a counter,
a float scalar clipped into [0, 0.5] (which scales the loss, read after its assign, so
inside the recording), a queue rolled with the batch (newest first) and a running mean
of the batch loss, beside a Dense(1) network trained with SGD. The tests
compare each backend's values with numpy's replay of the same steps: the counter
exactly, floats within ATOL = 1e-6 (weights also RTOL = 1e-5); and runs against each
other: XLA / jax.jit against eager, save/load_model and save_weights/load_weights then one
more epoch against two uninterrupted epochs, BackupAndRestore resuming an interrupted
run, MirroredStrategy over 2 logical CPUs (TensorFlow) against one device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import state_worker as worker

REPO = Path(__file__).resolve().parents[1]
ATOL, RTOL = 1e-6, 1e-5
TIMEOUT = 900  # seconds per worker process (2 shared cores)
BACKENDS = ("tensorflow", "jax", "torch")


def _run_worker(backend: str, directory: Path, *flags: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "tests.support.state_worker", str(directory), *flags]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(worker.RESULT_PREFIX)]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1][len(worker.RESULT_PREFIX) :])


@pytest.fixture(scope="module", params=BACKENDS)
def results(request, tmp_path_factory):
    return _run_worker(request.param, tmp_path_factory.mktemp(request.param))


def numpy_replay(epochs: int = 1) -> dict:
    """The worker's training, step by step in float64 numpy (SGD(0.1) on mse)."""
    x, y = worker.data()
    kernel, bias = np.array([[0.5], [-0.25]]), np.array([0.1])
    count, alpha, mean_loss = 0, 0.0, 0.0
    queue = np.zeros((worker.QUEUE_SIZE, 2))
    for _ in range(epochs):
        for start in range(0, worker.SAMPLES, worker.BATCH):
            xb, yb = x[start : start + worker.BATCH], y[start : start + worker.BATCH]
            count += 1
            alpha = min(max(alpha + worker.RATE, 0.0), 0.5)
            error = yb - (xb @ kernel + bias)
            loss = alpha * np.mean(error**2)  # the new alpha: read after its assign
            kernel = kernel + 0.1 * alpha * 2 * xb.T @ error / error.size
            bias = bias + 0.1 * alpha * 2 * error.sum(axis=0) / error.size
            queue = np.concatenate([xb, queue])[: worker.QUEUE_SIZE]
            mean_loss = 0.5 * mean_loss + 0.5 * loss
    states = {"step_count": count, "alpha": alpha, "queue": queue, "mean_loss": mean_loss}
    return {"states": states, "weights": [kernel, bias]}


def assert_run_equals(run: dict, expected: dict) -> None:
    """States: the counter exactly, floats within ATOL; weights within ATOL/RTOL."""
    states = run["states"]
    assert states["step_count"] == expected["states"]["step_count"]
    for name in ("alpha", "queue", "mean_loss"):
        np.testing.assert_allclose(states[name], expected["states"][name], rtol=0, atol=ATOL)
    for got, want in zip(run["weights"], expected["weights"], strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_states_after_training_equal_numpys(results):
    assert_run_equals(results["plain"], numpy_replay())
    assert_run_equals(results["two_epochs"], numpy_replay(epochs=2))


def test_reads_after_an_assign_see_the_new_value(results):
    """The step returns `step_count` and `alpha` after assigning them: the last
    batch's logs hold the values after that batch's update."""
    for run in ("plain", "jit"):
        logs = results[run]["logs"]
        assert logs["step_count"] == [4.0]
        assert logs["alpha"] == pytest.approx([0.5], abs=ATOL)


def test_a_new_value_of_the_wrong_shape_is_refused_naming_the_spec_line(results):
    assert results["wrong_shape"].startswith("tracker.step:16: the new value has shape")


def test_compiled_step_equals_eager(results):
    """XLA (TensorFlow) and jax.jit give the eager run's states and weights."""
    assert_run_equals(results["jit"], numpy_replay())


def test_saving_and_loading_restore_the_states(results):
    one, two = numpy_replay(epochs=1), numpy_replay(epochs=2)
    for kind in ("model", "weights"):
        assert_run_equals(results["saved"][f"{kind}_restored"], one)
        assert_run_equals(results["saved"][f"{kind}_continued"], two)


def test_backup_and_restore_resumes_to_the_uninterrupted_state(results):
    assert_run_equals(results["backup"], numpy_replay(epochs=2))


def test_states_are_non_trainable_and_in_no_optimizer(results):
    facts = results["plain"]["variables"]
    assert facts["non_trainable"] == sorted(worker.STATES)
    assert facts["trainable"] == [] and facts["in_optimizer"] == []
    minimize = results["minimize"]
    assert minimize["after"] == minimize["before"]


def test_mirrored_strategy_gives_the_single_device_states(tmp_path):
    """2 replicas of 2 examples each: the queue gathered in replica order is the whole
    batch's order; the running mean averages the replicas' losses."""
    result = _run_worker("tensorflow", tmp_path, "--mirrored")["mirrored"]
    assert result["replicas"] == 2
    assert_run_equals(result, numpy_replay())
