"""Gradients the step edits (`g = gradient(loss, m)`, `apply EDIT to m`), end to end.

The spec masks an Embedding's gradient to one row, then scales and clips it,
and applies it with SGD. Each test trains it next to a hand-written Keras
train_step doing the same with tf.GradientTape (same initial weights, data,
optimizer) for 3 batches of 8 and compares every weight (atol 1e-6, rtol 1e-5);
the rows the mask removes must stay bit-equal to their initial values.
"""

from __future__ import annotations

import keras
import numpy as np
import stepc
import tensorflow as tf
from keras import ops

from tests.support.compare import assert_weights_close
from tests.support.constructs import compile_spec, step_source

ROWS, WIDTH, KEEP = 6, 3, 2
SPEC = f"""
model RowEdit:
    init(encoder: Model, keep_row: int)
    metric tracker = Mean(name="loss")

    train(x, y):
        loss = mean(square(encoder(x) - y))
        grads = gradient(loss, encoder)
        row_mask = one_hot(keep_row, {ROWS})[:, None]
        masked = grads * row_mask
        scaled = 0.5 * clip(masked, -0.05, 0.05)
        apply scaled to encoder
        update tracker(loss)
"""
X = np.random.default_rng(0).integers(0, ROWS, size=(24, 4)).astype("int32")
Y = np.random.default_rng(1).normal(size=(24, WIDTH)).astype("float32")


def encoder() -> keras.Model:
    """Embedding(6, 3) averaged over the 4 tokens: one (6, 3) variable."""
    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(ROWS, WIDTH),
            keras.layers.GlobalAveragePooling1D(),
        ]
    )


class HandWritten(keras.Model):
    """The spec's step, written by hand."""

    def __init__(self, encoder, keep_row):
        super().__init__()
        self.encoder, self.keep_row = encoder, keep_row
        self.tracker = keras.metrics.Mean(name="loss")

    def call(self, x):
        return self.encoder(x)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(self.encoder(x, training=True) - y))
        grads = tape.gradient(loss, self.encoder.trainable_variables)
        row_mask = ops.one_hot(self.keep_row, ROWS)[:, None]
        grads = [0.5 * ops.clip(g * row_mask, -0.05, 0.05) for g in grads]
        self.optimizer.apply(grads, self.encoder.trainable_variables)
        self.tracker.update_state(loss)
        return {"loss": self.tracker.result()}

    @property
    def metrics(self):
        return [self.tracker]


def _trained(model: keras.Model) -> keras.Model:
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model


def test_a_masked_scaled_clipped_gradient_matches_a_hand_written_step():
    """Weights after 3 SGD steps equal the hand-written step's (atol 1e-6, rtol
    1e-5); only row KEEP changed, every other row bit-equal to its initial value."""
    text = stepc.compile_source(SPEC, "row_edit.step")
    assert "for g in grads]" in step_source(text)
    module = compile_spec(SPEC, "row_edit")
    initial = encoder().get_weights()[0]
    generated = _trained(module.RowEdit(encoder(), keep_row=KEEP))
    reference = _trained(HandWritten(encoder(), KEEP))
    assert_weights_close(generated.encoder, reference.encoder)
    trained = generated.encoder.get_weights()[0]
    others = [r for r in range(ROWS) if r != KEEP]
    np.testing.assert_array_equal(trained[others], initial[others])
    assert np.abs(trained[KEEP] - initial[KEEP]).max() > 1e-3
