"""Loops at run time: `repeat n as i`, `for` over a model's outputs, several
minimize statements in a loop, and the trace-time check of a loop index.

Each generated step is compared with a hand-written Keras train_step doing the
same arithmetic (same initial weights, same batches, SGD, no shuffling): every
weight after one epoch at atol=1e-6, rtol=1e-5, on TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import stepc
import tensorflow as tf

from tests.support.compare import assert_weights_close

SPECS = Path(__file__).parent / "specs"
BATCH, SAMPLES, FEATURES, COLUMNS = 8, 24, 4, 3
LEARNING_RATE = 0.05


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = rng.normal(size=(SAMPLES, COLUMNS)).astype("float32")
    return x, y


def _graph(columns: int = COLUMNS):
    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(5, activation="tanh", name="hidden")(inputs)
    return inputs, keras.layers.Dense(columns, name="out")(hidden)


def _initial_weights(columns: int = COLUMNS) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    shapes = [(FEATURES, 5), (5,), (5, columns), (columns,)]
    return [rng.normal(scale=0.5, size=s).astype("float32") for s in shapes]


def _batches(x, y):
    return [(x[s : s + BATCH], y[s : s + BATCH]) for s in range(0, len(x), BATCH)]


def test_repeat_index_matches_a_hand_written_step():
    """`repeat 3 as i` with `z[:, i]` and `i` in the loss against a hand-written step."""
    module = stepc.load(str(SPECS / "loops_index.step"))
    model = module.ColumnModel(*_graph())
    model.set_weights(_initial_weights())
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
    x, y = _data()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    reference = keras.Model(*_graph())
    reference.set_weights(_initial_weights())
    optimizer = keras.optimizers.SGD(LEARNING_RATE)
    for xb, yb in _batches(x, y):
        for i in range(3):
            with tf.GradientTape() as tape:
                z = reference(xb, training=True)
                loss = tf.reduce_mean(tf.square(z[:, i] - yb[:, i])) * (i + 1) * 0.5
            grads = tape.gradient(loss, reference.trainable_variables)
            optimizer.apply(grads, reference.trainable_variables)
    assert_weights_close(model.get_weights(), reference.get_weights())
