"""Every assertion of closeness the tests share, and the tolerances they use.

Two runs that should compute the same numbers (a generated model and its hand-written
reference, XLA and not, one device and a mirrored pair, two backends) are compared with
``RTOL``/``ATOL``: float32 steps that differ only in the order of their operations agree
to about 1e-6 relative, and ``ATOL`` is the floor for numbers at or near zero (a bias, a
clipped gradient, a loss that reached 0). A test passes other tolerances by keyword, named
in the test with the reason (mixed precision, XLA's fused kernels).

Arguments are duck-typed: weights are a sequence of arrays or a model (its
``get_weights()``); logs are a mapping of a name to a number or a per-epoch list (a
History, ``evaluate(return_dict=True)``, one batch's logs); a run is anything with
``weights``, ``history`` and ``results`` (``fit.Run``, ``models.Outcome``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

RTOL = 1e-5
ATOL = 1e-6
# History and evaluate() of the equivalence tests are compared relative only: none of their
# losses or metrics comes near zero, so an absolute floor would only loosen the check.
METRIC_ATOL = 0.0


def weight_arrays(weights: Any) -> list[np.ndarray]:
    """A model's ``get_weights()``, or the arrays given."""
    return list(weights.get_weights() if hasattr(weights, "get_weights") else weights)


def assert_weights_close(
    actual: Any, expected: Any, label: str = "weights", *, rtol: float = RTOL, atol: float = ATOL
) -> None:
    """Same number and shapes of arrays, each within ``rtol``/``atol``."""
    got_all, want_all = weight_arrays(actual), weight_arrays(expected)
    assert len(got_all) == len(want_all), f"{label}: {len(got_all)} vs {len(want_all)} arrays"
    for index, (got, want) in enumerate(zip(got_all, want_all, strict=True)):
        assert np.shape(got) == np.shape(want), f"{label}[{index}]: shape differs"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{label}[{index}]")


def max_abs_diff(actual: Any, expected: Any) -> float:
    """The largest absolute difference over all arrays (same count and shapes)."""
    got_all, want_all = weight_arrays(actual), weight_arrays(expected)
    assert len(got_all) == len(want_all), f"{len(got_all)} vs {len(want_all)} arrays"
    worst = 0.0
    for got, want in zip(got_all, want_all, strict=True):
        assert np.shape(got) == np.shape(want)
        diff = np.abs(np.asarray(got, "float64") - np.asarray(want, "float64"))
        worst = max(worst, float(np.max(diff)) if diff.size else 0.0)
    return worst


def assert_logs_close(
    actual: Mapping,
    expected: Mapping,
    label: str = "logs",
    *,
    rtol: float = RTOL,
    atol: float = METRIC_ATOL,
    skip: Sequence[str] = (),
) -> None:
    """Same keys; every value but ``skip``'s (a number, or a list per epoch of the same
    length) within ``rtol``/``atol``."""
    assert sorted(actual) == sorted(expected), f"{label}: {sorted(actual)} vs {sorted(expected)}"
    for key, want in expected.items():
        if key in skip:
            continue
        got = actual[key]
        assert np.shape(got) == np.shape(want), f"{label}[{key!r}]: shape differs"
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{label}[{key!r}]")


def assert_batch_logs_close(
    actual: Sequence[Mapping],
    expected: Sequence[Mapping],
    *,
    rtol: float = RTOL,
    atol: float = METRIC_ATOL,
    skip: Sequence[str] = (),
) -> None:
    """The same number of training batches, each batch's logs as ``assert_logs_close``."""
    assert len(actual) == len(expected), f"{len(actual)} vs {len(expected)} batches"
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert_logs_close(got, want, f"batch {index}", rtol=rtol, atol=atol, skip=skip)


def assert_optimizers_equal(actual: Sequence, expected: Sequence) -> None:
    """As many optimizers, each with the same variables (at least one), exactly: a saved
    or restored model's optimizers against the ones they were saved from."""
    for got, want in zip(actual, expected, strict=True):
        assert len(got.variables) == len(want.variables) > 0
        for a, b in zip(got.variables, want.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def assert_runs_close(
    actual: Any, expected: Any, label: str = "", *, rtol: float = RTOL, atol: float = ATOL
) -> None:
    """Two ``fit()`` runs: weights, History and, where the expected run has them,
    ``evaluate()`` results, all within ``rtol``/``atol`` (a Keras-default model that
    derives no test step has no results to compare a generated one's with)."""
    tolerance = {"rtol": rtol, "atol": atol}
    assert_weights_close(actual.weights, expected.weights, f"{label} weights", **tolerance)
    assert_logs_close(actual.history, expected.history, f"{label} History", **tolerance)
    if expected.results:
        assert_logs_close(actual.results, expected.results, f"{label} evaluate", **tolerance)


def assert_outcomes_close(actual: Any, expected: Any) -> None:
    """Two equivalence outcomes: weights within ``RTOL``/``ATOL``, History and the
    ``evaluate()`` results (the same keys, even none) within ``RTOL``, relative only."""
    assert_weights_close(actual.weights, expected.weights)
    assert_logs_close(actual.history, expected.history, "History")
    assert_logs_close(actual.results, expected.results, "evaluate")
