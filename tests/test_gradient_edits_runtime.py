"""Gradients the step edits (`g = gradient(loss, m)`, `apply EDIT to m`), end to end.

The spec (``tests/support/gradient_edits.py``) masks an Embedding's gradient to one
row, then scales and clips it, and applies it with SGD. Each test trains it for 3
batches of 8 next to a hand-written Keras train_step doing the same with
tf.GradientTape (same initial weights, data and optimizer) and compares the
embedding table (atol 1e-6, rtol 1e-5, unless said); the rows the mask removes must
stay bit-equal to their initial values. Other devices and backends run in a
subprocess (``tests/support/gradient_edits_worker.py``) and are compared with the
TensorFlow module's run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import stepc

from tests.support import gradient_edits as case
from tests.support.constructs import step_source

ATOL, RTOL = 1e-6, 1e-5
# float16 forward pass: the mixed run is within float16's precision of float32's.
MIXED_ATOL, MIXED_RTOL = 1e-3, 1e-2
WORKER = Path(__file__).parent / "support" / "gradient_edits_worker.py"
OTHER_ROWS = [r for r in range(case.ROWS) if r != case.KEEP]


def _reference(**compile_options) -> np.ndarray:
    return case.trained_weights(case.HandWritten(case.encoder(), case.KEEP), **compile_options)


def _assert_only_the_kept_row_changed(table: np.ndarray) -> None:
    np.testing.assert_array_equal(table[OTHER_ROWS], case.INITIAL[OTHER_ROWS])
    assert np.abs(table[case.KEEP] - case.INITIAL[case.KEEP]).max() > 1e-3


def _worker(*args: str, backend: str = "tensorflow") -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(WORKER), *args], env=env, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return {k: np.asarray(v, dtype="float32") for k, v in json.loads(lines[-1][7:]).items()}


@pytest.fixture(scope="module")
def tensorflow_table() -> np.ndarray:
    return case.generated_weights()


def test_the_edit_is_a_comprehension_over_each_gradient():
    text = step_source(stepc.compile_source(case.SPEC, "row_edit.step"))
    assert "masked = [None if g is None else g * row_mask for g in grads]" in text
    assert (
        "scaled = [None if g is None else 0.5 * ops.clip(g, -0.05, 0.05) for g in masked]" in text
    )


def test_evaluate_takes_no_gradient_and_reports_the_loss():
    """The derived test step drops the apply and the gradients only it used; its
    `loss` is the mean squared error of the trained encoder (rtol 1e-5)."""
    text = stepc.compile_source(case.SPEC, "row_edit.step")
    assert "gradient" not in step_source(text, "test_step").lower()
    model = case.compiled_module().RowEdit(case.encoder(), keep_row=case.KEEP)
    case.trained_weights(model)
    logs = model.evaluate(case.X, case.Y, batch_size=8, verbose=0, return_dict=True)
    expected = np.mean(np.square(np.asarray(model.encoder(case.X)) - case.Y))
    np.testing.assert_allclose(logs["loss"], expected, rtol=RTOL)


def test_a_masked_scaled_clipped_gradient_matches_a_hand_written_step(tensorflow_table):
    """The embedding table after 3 SGD steps equals the hand-written step's (atol
    1e-6, rtol 1e-5); only row KEEP changed, every other row bit-equal."""
    np.testing.assert_allclose(tensorflow_table, _reference(), atol=ATOL, rtol=RTOL)
    _assert_only_the_kept_row_changed(tensorflow_table)


def test_under_xla_equals_the_hand_written_step():
    table = case.generated_weights(jit_compile=True)
    np.testing.assert_allclose(table, _reference(), atol=ATOL, rtol=RTOL)


def test_mixed_precision_edits_the_unscaled_gradient(tensorflow_table):
    """mixed_float16 (a LossScaleOptimizer, scale 2**15): the edit sees the true
    gradient (a clip at 0.05 of the scaled one would clip every value), apply()
    gets it scaled again; equal to the hand-written mixed step (atol 1e-6, rtol
    1e-5), to float32 within float16 precision (atol 1e-3, rtol 1e-2), and the
    masked rows unchanged."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = case.compiled_module().RowEdit(case.encoder(), keep_row=case.KEEP)
        table = case.trained_weights(model)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        reference = _reference()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    np.testing.assert_allclose(table, reference, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(table, tensorflow_table, atol=MIXED_ATOL, rtol=MIXED_RTOL)
    _assert_only_the_kept_row_changed(table)


def test_mirrored_strategy_equals_one_device():
    """MirroredStrategy over 2 logical CPUs: the replicas' gradients summed before
    the edit, applied without a second sum; equal to one device (atol 1e-6, rtol 1e-5)."""
    runs = _worker("mirrored")
    np.testing.assert_allclose(runs["mirrored"], runs["single"], atol=ATOL, rtol=RTOL)
    _assert_only_the_kept_row_changed(runs["mirrored"])


@pytest.fixture(scope="module")
def tensorflow_normed() -> list[np.ndarray]:
    return case.normed_weights()


def test_an_edit_in_a_loop_then_a_minimize_matches_a_hand_written_step(tensorflow_normed):
    """NORMED_SPEC: two passes of a gradient divided by its global norm, masked
    where small, applied; then a minimize of the decoder through the updated
    encoder. Every weight of both equals the hand-written step's (atol 1e-6, rtol 1e-5)."""
    model = case.NormedByHand(case.dense(3, 4, 5), case.dense(4, 2, 6))
    reference = case.normed_weights(model)
    for got, want in zip(tensorflow_normed, reference, strict=True):
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    assert np.abs(tensorflow_normed[0] - case.dense(3, 4, 5).get_weights()[0]).max() > 1e-3


def test_a_variable_the_loss_does_not_reach_is_left_alone():
    """HEADS_SPEC: the second head's gradients are None, kept None by the edit, so
    SGD with weight decay (which would move a variable given a zero gradient) leaves
    them bit-equal; the first head moves."""
    before, after = case.heads_weights()
    for first, trained in zip(before[:2], after[:2], strict=True):
        assert np.abs(first - trained).max() > 1e-3
    for second, trained in zip(before[2:], after[2:], strict=True):
        np.testing.assert_array_equal(second, trained)


@pytest.mark.parametrize(("backend", "jit"), [("jax", "jit"), ("torch", "eager")])
def test_other_backends_equal_the_tensorflow_module(
    backend, jit, tensorflow_table, tensorflow_normed
):
    """JAX (jit) and PyTorch: the same embedding table as TensorFlow's and the same
    weights for NORMED_SPEC (atol 1e-6, rtol 1e-5); HEADS_SPEC's second head unmoved."""
    runs = _worker("backend", jit, backend=backend)
    np.testing.assert_allclose(runs["weights"], tensorflow_table, atol=ATOL, rtol=RTOL)
    _assert_only_the_kept_row_changed(runs["weights"])
    for index, want in enumerate(tensorflow_normed):
        np.testing.assert_allclose(runs[f"normed_{index}"], want, atol=ATOL, rtol=RTOL)
    np.testing.assert_array_equal(runs["second_head_moved"], [0.0, 0.0])
