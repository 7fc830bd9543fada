"""The spec, data, models and hand-written step of ``test_gradient_edits_runtime.py``.

Imported by the test and by ``gradient_edits_worker.py`` (one process per backend,
and one with 2 logical CPUs for MirroredStrategy): framework-neutral Keras, every
initial weight from numpy so that each backend starts from the same values.
"""

from __future__ import annotations

import types

import keras
import numpy as np
import stepc
from keras import ops

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
INITIAL = np.random.default_rng(2).normal(scale=0.1, size=(ROWS, WIDTH)).astype("float32")
LEARNING_RATE = 0.5


def compiled_module() -> types.ModuleType:
    module = types.ModuleType("stepc_gradient_edits")
    exec(stepc.compile_source(SPEC, "row_edit.step"), module.__dict__)
    return module


def encoder() -> keras.Model:
    """Embedding(6, 3) averaged over the 4 tokens: one (6, 3) variable, INITIAL."""
    model = keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(ROWS, WIDTH),
            keras.layers.GlobalAveragePooling1D(),
        ]
    )
    model.set_weights([INITIAL])
    return model


class HandWritten(keras.Model):
    """The spec's step written by hand with tf.GradientTape (TensorFlow only)."""

    def __init__(self, encoder, keep_row):
        super().__init__()
        self.encoder, self.keep_row = encoder, keep_row
        self.tracker = keras.metrics.Mean(name="loss")

    def call(self, x):
        return self.encoder(x)

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(ops.cast(self.encoder(x, training=True), "float32") - y))
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.encoder.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        scale = self.optimizer.scale_loss(ops.ones((), dtype="float32"))
        row_mask = ops.one_hot(self.keep_row, ROWS)[:, None]
        grads = [0.5 * ops.clip(g / scale * row_mask, -0.05, 0.05) * scale for g in grads]
        self.optimizer.apply(grads, variables)
        self.tracker.update_state(loss)
        return {"loss": self.tracker.result()}

    @property
    def metrics(self):
        return [self.tracker]


def trained_weights(model: keras.Model, **compile_options) -> np.ndarray:
    """The encoder's (6, 3) table after one epoch of 3 batches of 8 (SGD)."""
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), **compile_options)
    model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return np.asarray(ops.convert_to_numpy(model.encoder.trainable_variables[0]))


def generated_weights(**compile_options) -> np.ndarray:
    return trained_weights(compiled_module().RowEdit(encoder(), keep_row=KEEP), **compile_options)
