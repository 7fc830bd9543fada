"""Per-target clipping (``minimize loss over enc (clip_norm=t), dec``), end to end.

Each test compiles a small spec, trains it next to a hand-written step or Keras's
default step with the optimizer's own clipping option (same initial weights, data and
optimizer configuration) and compares every weight (rtol 1e-5, atol 1e-6) and each
batch's logs (rtol 1e-5, atol 1e-6), on one device in float32 and under mixed precision.
Under MirroredStrategy: ``test_distribution.py``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import stepc
import tensorflow as tf
from keras import ops

from tests.support.compare import assert_weights_close
from tests.support.constructs import (
    CLIPPED,
    X,
    Y,
    assert_same_logs,
    compile_spec,
    encoder_decoder,
    fit_logs,
    graph,
    step_source,
)

TF_CLIPS = {
    "clip_norm": lambda grads, t: [tf.clip_by_norm(g, t) for g in grads],
    "clip_global_norm": lambda grads, t: tf.clip_by_global_norm(grads, t)[0],
    "clip_value": lambda grads, t: [ops.clip(g, -t, t) for g in grads],
    None: lambda grads, t: grads,
}


def _clipped_reference(kind, threshold):
    """The encoder's gradients clipped, the decoder's not, one optimizer for both."""
    encoder, decoder = encoder_decoder()
    optimizer, tracker, logs = keras.optimizers.SGD(0.2), keras.metrics.Mean(), []
    for start in range(0, 24, 8):
        x, y = X[start : start + 8], 3.0 * Y[start : start + 8]
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(decoder(encoder(x, training=True), training=True) - y))
        encoder_grads, decoder_grads = tape.gradient(
            loss, [encoder.trainable_variables, decoder.trainable_variables]
        )
        grads = TF_CLIPS[kind](encoder_grads, threshold) + decoder_grads
        optimizer.apply(grads, encoder.trainable_variables + decoder.trainable_variables)
        tracker.update_state(loss, sample_weight=8)
        logs.append({"loss": float(tracker.result())})
    return encoder, decoder, logs


@pytest.mark.parametrize("kind", ["clip_norm", "clip_global_norm", "clip_value"])
def test_per_target_clipping_matches_tf_clipping(kind):
    """`minimize loss over encoder (KIND=threshold), decoder using opt`, threshold a
    float init parameter (0.05): only the encoder's gradients are clipped, as
    tf.clip_by_norm (each), tf.clip_by_global_norm (together) or ops.clip (each
    value) clip them, before one apply() over both. Every weight of both after 3
    SGD steps (rtol 1e-5, atol 1e-6) and each batch's loss log (rtol 1e-5, atol
    1e-6); the clipping is checked to change the result."""
    module_text = stepc.compile_source(CLIPPED.format(kind=kind), "clipped.step")
    assert "_clipped(" in step_source(module_text)
    module = compile_spec(CLIPPED.format(kind=kind), "clipped")
    generated = module.AutoEncoder(*encoder_decoder(), threshold=0.05)
    generated.compile(opt=keras.optimizers.SGD(0.2))
    generated_logs = fit_logs(generated, y=3.0 * Y)
    encoder, decoder, reference_logs = _clipped_reference(kind, 0.05)
    assert_same_logs(generated_logs, reference_logs)
    assert_weights_close(generated.encoder, encoder)
    assert_weights_close(generated.decoder, decoder)
    unclipped, _, _ = _clipped_reference(None, 0.05)
    difference = np.abs(unclipped.get_weights()[0] - encoder.get_weights()[0]).max()
    assert difference > 1e-3


CLIPPED_SELF = """
model Clipped(Functional):
    loss mse = MeanSquaredError()
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        loss = mse(y, self(x))
        minimize loss over self ({kind}=0.05) using optimizer
        update loss_tracker(loss)
"""

KERAS_CLIPS = {
    "clip_norm": "clipnorm",
    "clip_global_norm": "global_clipnorm",
    "clip_value": "clipvalue",
}


@pytest.mark.parametrize("kind", KERAS_CLIPS)
def test_single_target_clipping_equals_the_keras_optimizer_option(kind):
    """One target clipped in the spec (`over self (clip_norm=0.05)`) equals Keras's
    default step with the optimizer's own option (SGD(clipnorm=0.05), and likewise
    global_clipnorm, clipvalue) on one device. Every weight after 3 steps (rtol
    1e-5, atol 1e-6) and each batch's loss log (rtol 1e-5, atol 1e-6); the clipping is
    checked to change the result."""
    module = compile_spec(CLIPPED_SELF.format(kind=kind), "clipped_self")
    generated = module.Clipped(*graph(15))
    generated.compile(optimizer=keras.optimizers.SGD(0.2))
    keras_default = keras.Model(*graph(15))
    option = {KERAS_CLIPS[kind]: 0.05}
    keras_default.compile(optimizer=keras.optimizers.SGD(0.2, **option), loss="mse")
    assert_same_logs(fit_logs(generated, y=3.0 * Y), fit_logs(keras_default, y=3.0 * Y))
    assert_weights_close(generated, keras_default)
    unclipped = keras.Model(*graph(15))
    unclipped.compile(optimizer=keras.optimizers.SGD(0.2), loss="mse")
    fit_logs(unclipped, y=3.0 * Y)
    assert np.abs(unclipped.get_weights()[0] - generated.get_weights()[0]).max() > 1e-3


ONE_HEAD_CLIPPED = """
model Heads(Functional):
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        a, b = self(x)
        loss = mean(square(a - y))
        minimize loss over self ({kind}=0.05) using optimizer
        update loss_tracker(loss)
"""


def _two_heads():
    keras.utils.set_random_seed(17)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="tanh")(inputs)
    return inputs, [keras.layers.Dense(1)(hidden), keras.layers.Dense(1)(hidden)]


@pytest.mark.filterwarnings("ignore:Gradients do not exist for variables")
@pytest.mark.parametrize(
    "kind",
    ["clip_norm", "clip_global_norm", "clip_value"],
)
def test_clipping_a_target_with_variables_the_loss_does_not_reach(kind):
    """A two-output model whose loss uses the first output only: the second head's
    variables have no gradient. Clipped in the spec, it trains as Keras's default
    step with the optimizer option (clipnorm, global_clipnorm, clipvalue) and
    loss=["mse", None]: every weight after 3 steps (rtol 1e-5, atol 1e-6) and each
    batch's loss log (rtol 1e-5, atol 1e-6)."""
    module = compile_spec(ONE_HEAD_CLIPPED.format(kind=kind), "one_head_clipped")
    generated = module.Heads(*_two_heads())
    generated.compile(optimizer=keras.optimizers.SGD(0.2))
    keras_default = keras.Model(*_two_heads())
    option = {KERAS_CLIPS[kind]: 0.05}
    keras_default.compile(optimizer=keras.optimizers.SGD(0.2, **option), loss=["mse", None])
    generated_logs = fit_logs(generated, y=3.0 * Y)
    keras_logs = [{"loss": logs["loss"]} for logs in fit_logs(keras_default, y=3.0 * Y)]
    assert_same_logs(generated_logs, keras_logs)
    assert_weights_close(generated, keras_default)


# ---------------------------------------------------------------- under mixed precision


def _mixed_precision_pair(kind: str, initial_scale: float) -> tuple[keras.Model, keras.Model]:
    """CLIPPED_SELF's model and Keras's default step with the optimizer's own option,
    each trained one epoch under mixed_float16 with SGD(0.2) behind a LossScaleOptimizer
    of ``initial_scale``."""

    def loss_scaled(**options):
        inner = keras.optimizers.SGD(0.2, **options)
        return keras.optimizers.LossScaleOptimizer(inner, initial_scale=initial_scale)

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        generated = compile_spec(CLIPPED_SELF.format(kind=kind), "clipped_self").Clipped(*graph(15))
        generated.compile(optimizer=loss_scaled())
        keras_default = keras.Model(*graph(15))
        keras_default.compile(optimizer=loss_scaled(**{KERAS_CLIPS[kind]: 0.05}), loss="mse")
        assert_same_logs(fit_logs(generated, y=3.0 * Y), fit_logs(keras_default, y=3.0 * Y))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return generated, keras_default


@pytest.mark.parametrize("initial_scale", [2.0**7, 2.0**16, 2.0**17])
@pytest.mark.parametrize("kind", KERAS_CLIPS)
def test_clipping_under_mixed_precision_equals_the_keras_optimizer_option(kind, initial_scale):
    """Under mixed_float16 with a LossScaleOptimizer the gradients the step clips carry
    the loss scale, so the threshold must too, and a float16 overflow must stay
    non-finite so that the LossScaleOptimizer skips that step and halves its scale.
    Against Keras's default step with the option on the inner optimizer (which clips
    after unscaling): every weight after 3 steps (rtol 1e-5, atol 1e-6), each batch's
    loss log, and the same number of applied steps and final scale. At 2**7 no
    gradient overflows (3 steps applied: a threshold left unscaled would clip 128 times
    harder); at 2**16 and 2**17 the first 1 and 2 steps overflow (measured). Before
    the fix, clip_value turned an overflow (inf) into the threshold, so the generated
    step applied steps Keras skipped: weights 0.03 apart."""
    generated, keras_default = _mixed_precision_pair(kind, initial_scale)
    assert_weights_close(generated, keras_default)
    applied = int(keras_default.optimizer.iterations)
    assert int(generated.optimizer.iterations) == applied
    assert applied == {2.0**7: 3, 2.0**16: 2, 2.0**17: 1}[initial_scale]
    assert float(generated.optimizer.dynamic_scale) == float(keras_default.optimizer.dynamic_scale)
