"""End to end (TensorFlow): Python's expression forms in a generated step.

A generated model whose step uses every new form (slices with steps and
negative bounds, several axes, `None`, `...`, a bare tuple, comparisons and
`& | ~` as masks in `where` and casts, `@` and `%`) is trained one epoch of 3
batches of 8, and compared weight-for-weight and metric-for-metric with a
hand-written Keras model computing the same thing from the same initial
weights (rtol 1e-5, atol 1e-6). Also: a loss whose rank the checker cannot
know fails when traced naming its spec line, and each operator's `keras.ops`
target exists in the pinned Keras with the parameters stepc passes.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops
from stepc.tables.operators import BINARY, INVERT

from tests.support.compare import assert_weights_close
from tests.support.constructs import X, Y, assert_same_logs, compile_spec, fit_logs

SPEC = """
model Masked:
    init(net: Model)
    compile(opt: Optimizer)
    metric loss_tracker = Mean(name="loss")
    metric kept_tracker = Mean(name="kept")
    train(x, y):
        out = net(x)
        head, tail = out[:, :-1], out[..., -1]
        evens = out[:, ::2]
        grid = y[:, :, None, None]
        inner = out[1:-1, 0]
        projected = head @ x[0]
        keep = (tail > 0.0) & ~(y[:, 0] <= -1.0) | (projected == 0.0)
        weight = cast(keep, "float32")
        larger = where(tail > y[:, 0], tail, y[:, 0])
        fit_term = mean(square(projected - y[:, 0]) * weight)
        extra = 0.1 * mean(square(larger)) + 0.01 * mean(evens % 2.0)
        loss = fit_term + extra + 0.001 * mean(square(inner)) + 0.0 * mean(grid)
        minimize loss over net using opt
        update loss_tracker(loss)
        update kept_tracker(mean(weight))
"""


def net(seed: int = 3) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh")])


class Reference(keras.Model):
    """The same step written by hand with keras.ops and a GradientTape."""

    def __init__(self, net, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.kept_tracker = keras.metrics.Mean(name="kept")

    @property
    def metrics(self):
        return [self.loss_tracker, self.kept_tracker]

    def compile(self, opt, **kwargs):
        super().compile(**kwargs)
        self.opt = opt

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            out = self.net(x, training=True)
            head, tail = out[:, :-1], out[..., -1]
            projected = ops.matmul(head, x[0])
            target = y[:, 0]
            keep = ops.logical_or(
                ops.logical_and(tail > 0.0, ops.logical_not(target <= -1.0)),
                ops.equal(projected, 0.0),
            )
            weight = ops.cast(keep, "float32")
            larger = ops.where(tail > target, tail, target)
            loss = (
                ops.mean(ops.square(projected - target) * weight)
                + 0.1 * ops.mean(ops.square(larger))
                + 0.01 * ops.mean(ops.mod(out[:, ::2], 2.0))
                + 0.001 * ops.mean(ops.square(out[1:-1, 0]))
                + 0.0 * ops.mean(y[:, :, None, None])
            )
        variables = self.net.trainable_variables
        self.opt.apply(tape.gradient(loss, variables), variables)
        batch = ops.shape(x)[0]
        self.loss_tracker.update_state(loss, sample_weight=batch)
        self.kept_tracker.update_state(ops.mean(weight), sample_weight=batch)
        return {m.name: m.result() for m in self.metrics}


def test_every_new_form_trains_like_the_hand_written_step() -> None:
    """Weights after each of 3 batches' updates and every batch's `loss` and
    `kept` logs match the reference (rtol 1e-5, atol 1e-6)."""
    module = compile_spec(SPEC, "exprs_masked")
    generated = module.Masked(net())
    generated.compile(opt=keras.optimizers.SGD(0.1))
    reference = Reference(net())
    reference.compile(opt=keras.optimizers.SGD(0.1))
    generated_logs, reference_logs = fit_logs(generated), fit_logs(reference)
    assert_weights_close(generated, reference)
    assert_same_logs(generated_logs, reference_logs)
    # The masks really select: some examples are kept and some are not.
    assert 0.0 < generated_logs[-1]["kept"] < 1.0
    assert not np.allclose(generated.net.get_weights()[0], net().get_weights()[0])


UNKNOWN_RANK = """
model Ranked:
    init(net: Model)
    compile(opt: Optimizer)
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        loss = square(net(x) - y)[0, {index}]
        minimize loss over net using opt
        update loss_tracker(loss)
"""


def test_a_loss_of_unknown_rank_is_checked_when_traced() -> None:
    """`t[0, 0]` of a matrix is a scalar and trains; `t[0, ...]` is not, and the
    traced step says so naming the minimize's spec line (8), before any gradient."""
    module = compile_spec(UNKNOWN_RANK.format(index="0"), "exprs_scalar")
    model = module.Ranked(net())
    model.compile(opt=keras.optimizers.SGD(0.1))
    assert len(fit_logs(model)) == 3
    module = compile_spec(UNKNOWN_RANK.format(index="..."), "exprs_vector")
    model = module.Ranked(net())
    model.compile(opt=keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=r"exprs_vector\.step:8: minimize needs a scalar"):
        model.fit(X, Y, batch_size=8, epochs=1, verbose=0)


@pytest.mark.parametrize("operator", [*BINARY.values(), INVERT], ids=lambda o: o.symbol)
def test_each_operator_target_is_a_keras_op(operator) -> None:
    """What `a OP b` is emitted as exists in the pinned keras.ops and takes the
    operands by position (two, or one for `~`)."""
    if not operator.target:
        return  # Python's own operator on tensors and numbers
    function = getattr(keras.ops, operator.target.removeprefix("ops."))
    params = list(inspect.signature(function).parameters)
    assert len(params) == (1 if operator is INVERT else 2)


def test_the_new_forms_trace_under_mixed_precision() -> None:
    """A float16 model output indexed, compared and multiplied with `@` against
    float32 data: the step casts it where it is made, so it traces; the first
    batch's loss (of the initial weights) is the float32 one within float16's
    precision. (Later batches are not compared: the loss-scale optimizer skips
    the updates its first scales overflow.)"""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        module = compile_spec(SPEC, "exprs_mixed")
        model = module.Masked(net())
        model.compile(opt=keras.optimizers.SGD(0.1))
        logs = fit_logs(model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    reference = module.Masked(net())
    reference.compile(opt=keras.optimizers.SGD(0.1))
    full = fit_logs(reference)
    assert all(np.isfinite(value) for entry in logs for value in entry.values())
    np.testing.assert_allclose(logs[0]["loss"], full[0]["loss"], rtol=1e-2, atol=1e-3)
