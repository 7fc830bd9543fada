"""The benchmarks' hand-written JAX and torch steps compute what the generated TF module
computes, so timing the generated steps against them compares equal work.

``benchmarks/handwritten/check.py`` trains, one child process per backend, the
cross-backend tests' run of the GAN and the basic spec (tiny sub-models, the same numpy
initial weights, SGD, three fixed batches, ``keras.random`` drawing from the same fixed
tables): the generated module on TensorFlow, the hand-written classes of
``benchmarks/handwritten/`` on JAX (jitted) and torch (eager). Compared per (spec,
backend): every float variable after ``fit`` at ``atol=1e-6, rtol=1e-5``
(``tests/support/compare.py``), the initial weights and every SeedGenerator's state
exactly. No timings are asserted here; ``benchmarks/run.py`` times the steps.
"""

from __future__ import annotations

import pytest

from benchmarks.handwritten import check

PAIRS = [f"{spec}/{backend}" for backend in ("jax", "torch") for spec in check.SPECS]


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict:
    """The three children run once for the module; every pair's comparison."""
    return check.check(tmp_path_factory.mktemp("handwritten"))


@pytest.mark.parametrize("pair", PAIRS)
def test_handwritten_step_matches_generated_tf_module(checked, pair):
    found = checked["pairs"][pair]
    assert "error" not in found, found.get("error")
    assert found["initial_equal"], f"{pair}: the runs did not start from the same weights"
    assert found["seed_states_equal"], f"{pair}: the seed generators' states differ after fit"
    assert found["close"], (
        f"{pair}: weights after fit differ from the generated TF module by up to "
        f"{found['max_abs_difference']:.3g} (atol={check.ATOL}, rtol={check.RTOL})"
    )
