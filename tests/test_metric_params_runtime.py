"""A `Metric` parameter end to end, on TensorFlow, JAX and PyTorch (one subprocess per
backend: tests/support/metric_params_worker.py). The spec's test step updates a metric
the caller passes (a small `keras.metrics.Metric` subclass, registered serializable:
the mean of |a - b| * scale, given a keyword) and its train step a tracker; each
backend fits two epochs with validation data (numpy initial weights, SGD, no
shuffling), evaluates, saves and loads the model.

Compared: History holds the tracker and `val_gap` but no training `gap` (a step
reports the metrics it updates) and no `val_fit_loss`; evaluate() returns the metric,
equal (rtol 1e-5) to the same quantity computed in numpy from the trained network's
predictions and to the last epoch's `val_gap` (the metric is reset every epoch: the
first epoch's value differs); the loaded model lists the metric, has the same weights
and evaluates to the same value. A second spec takes a Metric in compile() (the train
step updates it), another in the constructor (the test step) and the compiled loss:
History holds `loss`, `other`, `val_loss` and `val_gap`, evaluate() `loss` and `gap`,
and the loaded model (compile_from_config builds `other` again) lists all three.
JAX's and PyTorch's logs and values equal TensorFlow's at rtol 1e-5.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.compare import RTOL
from tests.support.workers import worker_env

BACKENDS = ("tensorflow", "jax", "torch")
WORKER = "tests.support.metric_params_worker"
RESULT_PREFIX = "RESULT "
TIMEOUT = 600  # seconds per backend (2 busy cores)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    directory = tmp_path_factory.mktemp("metric_params")
    found = {}
    for backend in BACKENDS:
        done = subprocess.run(
            [sys.executable, "-m", WORKER, str(directory)],
            env=worker_env(KERAS_BACKEND=backend),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        lines = [x for x in done.stdout.splitlines() if x.startswith(RESULT_PREFIX)]
        assert done.returncode == 0 and lines, f"{backend}: {done.stderr[-3000:]}"
        found[backend] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_history_has_the_tracker_and_the_validation_metric_only(results, backend):
    assert sorted(results[backend]["history"]) == ["fit_loss", "val_gap"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_reports_the_metric_reset_every_epoch(results, backend):
    result = results[backend]
    val_gap = result["history"]["val_gap"]
    assert list(result["evaluate"]) == ["gap"]
    np.testing.assert_allclose(result["evaluate"]["gap"], result["direct"], rtol=RTOL)
    # Not reset, the second epoch's value would average both epochs' batches.
    np.testing.assert_allclose(val_gap[1], result["direct"], rtol=RTOL)
    assert abs(val_gap[0] - val_gap[1]) > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_model_with_its_metric_round_trips_through_save_and_load(results, backend):
    result = results[backend]
    assert result["metrics"] == result["loaded_metrics"] == ["Mean", "MeanAbsoluteGap"]
    assert result["loaded_weights_equal"]
    np.testing.assert_allclose(
        result["loaded_evaluate"]["gap"], result["evaluate"]["gap"], rtol=RTOL
    )


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_jax_and_torch_equal_tensorflow(results, backend):
    reference, result = results["tensorflow"], results[backend]
    for key, values in reference["history"].items():
        np.testing.assert_allclose(result["history"][key], values, rtol=RTOL, err_msg=key)
    np.testing.assert_allclose(result["evaluate"]["gap"], reference["evaluate"]["gap"], rtol=RTOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_compile_metric_and_the_loss_tracker_report_where_updated(results, backend):
    result = results[backend]["compiled"]
    assert sorted(result["history"]) == ["loss", "other", "val_gap", "val_loss"]
    assert sorted(result["evaluate"]) == ["gap", "loss"]
    np.testing.assert_allclose(result["history"]["val_gap"][1], result["direct"], rtol=RTOL)
    np.testing.assert_allclose(result["evaluate"]["gap"], result["direct"], rtol=RTOL)
    assert result["metrics"] == result["loaded_metrics"]
    assert result["loaded_metrics"] == ["Mean", "MeanAbsoluteGap", "MeanAbsoluteGap"]
    assert result["loaded_weights_equal"]
    np.testing.assert_allclose(
        list(result["loaded_evaluate"].values()), list(result["evaluate"].values()), rtol=RTOL
    )


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_jax_and_torch_equal_tensorflow_with_a_compile_metric(results, backend):
    reference, result = results["tensorflow"]["compiled"], results[backend]["compiled"]
    for key, values in reference["history"].items():
        np.testing.assert_allclose(result["history"][key], values, rtol=RTOL, err_msg=key)
