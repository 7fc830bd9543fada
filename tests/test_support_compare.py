"""The shared comparisons of ``tests/support/compare.py`` catch what they promise to.

Every test that compares two runs relies on them, so each check here pairs a case that
must pass with the nearest one that must fail: a difference just inside and just outside
``RTOL``/``ATOL`` (1e-5 relative, 1e-6 absolute), a missing array or key, a shape or
epoch count that differs. No framework is needed: arrays and mappings are plain numpy.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.support.compare import (
    ATOL,
    RTOL,
    assert_batch_logs_close,
    assert_logs_close,
    assert_optimizers_equal,
    assert_outcomes_close,
    assert_runs_close,
    assert_weights_close,
    max_abs_diff,
)

WEIGHTS = [np.array([1.0, -2.0, 0.0], "float32"), np.array([[0.5]], "float32")]


def shifted(weights, relative: float, absolute: float = 0.0) -> list[np.ndarray]:
    return [w * (1 + relative) + absolute for w in weights]


def test_the_project_tolerances():
    assert (RTOL, ATOL) == (1e-5, 1e-6)


def test_weights_within_the_tolerances_pass_and_just_outside_fail():
    assert_weights_close(shifted(WEIGHTS, RTOL / 2, ATOL / 2), WEIGHTS)
    with pytest.raises(AssertionError):
        assert_weights_close(shifted(WEIGHTS, 3 * RTOL), WEIGHTS)
    with pytest.raises(AssertionError):  # the zero entry: only ATOL applies
        assert_weights_close(shifted(WEIGHTS, 0.0, 3 * ATOL), WEIGHTS)


def test_weights_must_have_the_same_count_and_shapes():
    with pytest.raises(AssertionError, match="2 vs 1 arrays"):
        assert_weights_close(WEIGHTS, WEIGHTS[:1])
    with pytest.raises(AssertionError, match="shape differs"):
        assert_weights_close([WEIGHTS[0]], [WEIGHTS[0][:, None]])


def test_weights_of_models_are_their_get_weights():
    model = SimpleNamespace(get_weights=lambda: WEIGHTS)
    assert_weights_close(model, WEIGHTS)
    with pytest.raises(AssertionError):
        assert_weights_close(model, shifted(WEIGHTS, 3 * RTOL))


def test_an_exact_comparison_refuses_any_difference():
    with pytest.raises(AssertionError):
        assert_weights_close(shifted(WEIGHTS, RTOL / 10), WEIGHTS, rtol=0, atol=0)


def test_max_abs_diff_is_the_largest_difference():
    assert max_abs_diff(shifted(WEIGHTS, 0.0, 0.25), WEIGHTS) == pytest.approx(0.25)


def test_logs_are_compared_relative_only_by_default():
    assert_logs_close({"loss": [2.0, 1.0]}, {"loss": [2.0, 1.0 + RTOL / 2]})
    with pytest.raises(AssertionError):
        assert_logs_close({"loss": [0.0]}, {"loss": [ATOL / 2]})
    assert_logs_close({"loss": [0.0]}, {"loss": [ATOL / 2]}, atol=ATOL)


def test_logs_must_have_the_same_keys_and_epochs_but_skipped_values():
    with pytest.raises(AssertionError, match="mae"):
        assert_logs_close({"loss": 1.0}, {"loss": 1.0, "mae": 0.5})
    with pytest.raises(AssertionError, match="shape differs"):
        assert_logs_close({"loss": [1.0]}, {"loss": [1.0, 1.0]})
    assert_logs_close({"loss": 1.0, "mae": 9.0}, {"loss": 1.0, "mae": 0.5}, skip=("mae",))


def test_batch_logs_must_have_as_many_batches():
    batches = [{"loss": 1.0}, {"loss": 0.5}]
    assert_batch_logs_close(batches, [dict(b) for b in batches])
    with pytest.raises(AssertionError, match="2 vs 1 batches"):
        assert_batch_logs_close(batches, batches[:1])
    with pytest.raises(AssertionError, match="batch 1"):
        assert_batch_logs_close(batches, [{"loss": 1.0}, {"loss": 0.6}])


def run(weights=WEIGHTS, loss=1.0, results=None) -> SimpleNamespace:
    return SimpleNamespace(weights=weights, history={"loss": [loss]}, results=results or {})


def test_runs_compare_weights_history_and_the_expected_runs_results():
    assert_runs_close(run(results={"loss": 1.0}), run())  # no results expected: none compared
    with pytest.raises(AssertionError, match="History"):
        assert_runs_close(run(loss=1.1), run())
    with pytest.raises(AssertionError, match="evaluate"):
        assert_runs_close(run(results={"loss": 1.0}), run(results={"loss": 2.0}))


def test_outcomes_must_have_the_same_results_even_none():
    assert_outcomes_close(run(), run())
    with pytest.raises(AssertionError, match="evaluate"):
        assert_outcomes_close(run(results={"loss": 1.0}), run())


def optimizer(*values: float) -> SimpleNamespace:
    variables = [SimpleNamespace(numpy=lambda v=v: np.array(v), path=f"v{v}") for v in values]
    return SimpleNamespace(variables=variables)


def test_optimizers_must_match_variable_for_variable():
    assert_optimizers_equal([optimizer(1.0, 2.0)], [optimizer(1.0, 2.0)])
    with pytest.raises(AssertionError):
        assert_optimizers_equal([optimizer(1.0, 2.0)], [optimizer(1.0, 2.5)])
    with pytest.raises(AssertionError):  # an optimizer without variables was never built
        assert_optimizers_equal([optimizer()], [optimizer()])
