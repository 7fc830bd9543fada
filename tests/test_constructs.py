"""Language constructs beyond the seed specs, end to end against hand-written Keras.

Each test compiles a small spec, trains it a few steps next to a hand-written
step of the same algorithm (same initial weights, data and optimizer config)
and compares every weight (rtol 1e-5, atol 1e-6) and the reported logs
(rtol 1e-5).
"""

from __future__ import annotations

import types

import keras
import numpy as np
import stepc
import tensorflow as tf
from keras import ops

RTOL, ATOL = 1e-5, 1e-6
X = np.random.default_rng(0).normal(size=(24, 3)).astype("float32")
Y = np.random.default_rng(1).normal(size=(24, 1)).astype("float32")


def compile_spec(text: str, name: str) -> types.ModuleType:
    module = types.ModuleType(f"stepc_constructs_{name}")
    exec(stepc.compile_source(text, f"{name}.step"), module.__dict__)
    return module


def dense(units: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def assert_same_weights(a: keras.Model, b: keras.Model) -> None:
    for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)


SIMULTANEOUS = """
model Pair:
    init(f: Model, g: Model)
    compile(f_opt: Optimizer, g_opt: Optimizer)
    metric f_tracker = Mean(name="f_loss")
    train(x, y):
        f_loss = mean(square(f(x) - y))
        g_loss = mean(square(g(x) - stop_gradient(f(x))))
        minimize f_loss over f using f_opt
        minimize g_loss over g using g_opt
        update f_tracker(f_loss)
        return f_tracker, g_loss=g_loss
"""


class PairReference(keras.Model):
    """Both losses computed before either update (a simultaneous step)."""

    def __init__(self, f, g):
        super().__init__()
        self.f, self.g = f, g
        self.f_tracker = keras.metrics.Mean(name="f_loss")

    def compile(self, f_opt, g_opt):
        super().compile()
        self.f_opt, self.g_opt = f_opt, g_opt

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as f_tape, tf.GradientTape() as g_tape:
            f_loss = ops.mean(ops.square(self.f(x, training=True) - y))
            target = ops.stop_gradient(self.f(x, training=True))
            g_loss = ops.mean(ops.square(self.g(x, training=True) - target))
        f_vars, g_vars = self.f.trainable_variables, self.g.trainable_variables
        self.f_opt.apply(f_tape.gradient(f_loss, f_vars), f_vars)
        self.g_opt.apply(g_tape.gradient(g_loss, g_vars), g_vars)
        self.f_tracker.update_state(f_loss, sample_weight=ops.shape(x)[0])
        return {"f_loss": self.f_tracker.result(), "g_loss": g_loss}


def _fit_pair(cls):
    model = cls(f=dense(1, 1), g=dense(1, 2))
    model.compile(f_opt=keras.optimizers.SGD(0.1), g_opt=keras.optimizers.SGD(0.05))
    history = model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model, history.history


def test_simultaneous_updates_with_stop_gradient_match_the_reference():
    """Two losses computed before either minimize share one recording; the
    stop_gradient keeps g's loss from updating f. Weights of f and g and the
    f_loss / g_loss logs of each epoch are compared."""
    generated, generated_logs = _fit_pair(compile_spec(SIMULTANEOUS, "pair").Pair)
    reference, reference_logs = _fit_pair(PairReference)
    assert_same_weights(generated.f, reference.f)
    assert_same_weights(generated.g, reference.g)
    for key in ("f_loss", "g_loss"):
        np.testing.assert_allclose(generated_logs[key], reference_logs[key], rtol=RTOL)


TWO_OUTPUTS = """
model Heads(Functional):
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        mean_out, scale_out = self(x)
        loss = mean(square(mean_out - y)) + 0.5 * mean(square(scale_out))
        minimize loss over self using optimizer
        update loss_tracker(loss)
    predict(x):
        mean_out, scale_out = self(x)
        return mean_out
"""


def _two_output_graph():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="tanh")(inputs)
    return inputs, [keras.layers.Dense(1)(hidden), keras.layers.Dense(1)(hidden)]


def test_tuple_unpacking_of_model_outputs_and_a_predict_step():
    """A model with two outputs unpacked into two names; one optimizer for the
    whole model. Compared with the same loss computed by hand on a plain
    Functional model, then predict() returns only the first output."""
    module = compile_spec(TWO_OUTPUTS, "heads")
    generated = module.Heads(*_two_output_graph())
    plain = keras.Model(*_two_output_graph())
    generated.compile(optimizer=keras.optimizers.SGD(0.1))
    optimizer = keras.optimizers.SGD(0.1)
    for start in range(0, 24, 8):
        generated.train_on_batch(X[start : start + 8], Y[start : start + 8])
        with tf.GradientTape() as tape:
            mean_out, scale_out = plain(X[start : start + 8], training=True)
            loss = ops.mean(ops.square(mean_out - Y[start : start + 8]))
            loss = loss + 0.5 * ops.mean(ops.square(scale_out))
        optimizer.apply(tape.gradient(loss, plain.trainable_variables), plain.trainable_variables)
    assert_same_weights(generated, plain)
    predictions = generated.predict(X, verbose=0)
    np.testing.assert_allclose(predictions, plain(X)[0], rtol=RTOL, atol=ATOL)


SHARED_OPTIMIZER = """
model Both:
    init(a: Model, b: Model)
    compile(opt: Optimizer)
    train(x, y):
        loss = mean(square(a(x) + b(x) - y))
        minimize loss over a, b using opt
        return loss=loss
"""


def test_one_optimizer_over_two_targets():
    """`minimize loss over a, b using opt` updates both with one optimizer,
    exactly as one apply() over the concatenated variable lists."""
    module = compile_spec(SHARED_OPTIMIZER, "both")
    generated = module.Both(a=dense(1, 4), b=dense(1, 5))
    generated.compile(opt=keras.optimizers.Adam(0.05))
    generated.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    a, b = dense(1, 4), dense(1, 5)
    optimizer = keras.optimizers.Adam(0.05)
    variables = a.trainable_variables + b.trainable_variables
    for start in range(0, 24, 8):
        x, y = X[start : start + 8], Y[start : start + 8]
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(a(x, training=True) + b(x, training=True) - y))
        optimizer.apply(tape.gradient(loss, variables), variables)
    assert_same_weights(generated.a, a)
    assert_same_weights(generated.b, b)
