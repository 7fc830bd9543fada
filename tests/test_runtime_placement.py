"""Statement placement around updates, and what the logs report: the cases that
once compiled to a broken module or a silently wrong step.

Each test compiles a tiny spec, builds a tiny Functional model and runs
train_step / fit / evaluate, comparing with a hand-written `tf.GradientTape`
or a hand-computed value (rtol 1e-5, atol 1e-6).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests.support.compare import ATOL, RTOL
from tests.support.constructs import REPEAT_PARAMETER, X, Y, compile_spec, graph, line_of, mlp


def functional(module, seed: int = 3) -> keras.Model:
    return module.F(*graph(seed))


def gradient_of_mean_output(model, x) -> tf.Tensor:
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = ops.mean(model(x))
    return tape.gradient(value, x)


# ---------------------------------------------------------------- reads before a minimize

READ_BEFORE_MINIMIZE = """
model F(Functional):
    train(x):
        a = mean(self(x))
        l = mean(self(x))
        minimize l over self
        g = gradient(a, x)
        return n=sum(square(g))
"""


def test_a_value_computed_before_a_minimize_uses_the_weights_before_it():
    """`a` is written before the update: neither it nor its gradient may move
    after the minimize (which writes the weights `a` reads)."""
    model = functional(compile_spec(READ_BEFORE_MINIMIZE, "read_before_minimize"))
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    x = tf.constant(X)
    expected = float(ops.sum(ops.square(gradient_of_mean_output(model, x))))
    logs = model.train_step(x)
    np.testing.assert_allclose(float(logs["n"]), expected, rtol=RTOL, atol=ATOL)
    after = float(ops.sum(ops.square(gradient_of_mean_output(model, x))))
    assert abs(after - expected) > 1e-4  # the update changed the weights


# ---------------------------------------------------------------- watched sources

GRADIENT_OF_A_TUPLE = """
model F(Functional):
    train(x, y):
        a = mean(self(x))
        b = x * a
        loss = mean(self(x)) + a
        minimize loss over self
        gx, gb = gradient(mean(self(x)) + mean(b), (x, b))
        return k=mean(gb)
"""


def test_a_gradient_source_assigned_in_the_recording_is_watched_once_assigned():
    model = functional(compile_spec(GRADIENT_OF_A_TUPLE, "gradient_of_a_tuple"))
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    logs = model.train_step((tf.constant(X), tf.constant(Y)))
    # d mean(b) / d b is 1 / b.size everywhere.
    np.testing.assert_allclose(float(logs["k"]), 1 / X.size, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- compiled_loss anywhere

COMPILED_LOSS_INSIDE = """
model F(Functional):
    train(x, y):
        loss = 0.5 * compiled_loss(y, self(x))
        minimize loss over self
    test(x, y):
        return k=compiled_loss(y, self(x)) * 2.0
"""


def test_compiled_loss_inside_an_expression_or_a_return_is_lowered():
    model = functional(compile_spec(COMPILED_LOSS_INSIDE, "compiled_loss_inside"))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = tf.constant(X), tf.constant(Y)
    with tf.GradientTape() as tape:
        loss = 0.5 * ops.mean(ops.square(model(x) - y))
    grads = tape.gradient(loss, model.trainable_variables)
    variables = model.trainable_variables
    expected = [v.numpy() - 0.1 * g.numpy() for v, g in zip(variables, grads, strict=True)]
    model.train_step((x, y))
    for got, want in zip(model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    logs = model.evaluate(X, Y, batch_size=24, verbose=0, return_dict=True)
    mse = float(ops.mean(ops.square(model(x) - y)))
    np.testing.assert_allclose(logs["k"], 2.0 * mse, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- returned loss in the logs

RETURNS_LOSS = """
model F(Functional):
    {compile}
    train(x, y):
        loss = mean(square(self(x) - y))
        minimize loss over self{using}
        return loss=loss
    test(x, y):
        return loss=mean(square(self(x) - y))
"""


def returns_loss_model(own_compile: bool) -> keras.Model:
    spec = RETURNS_LOSS.format(
        compile="compile(o: Optimizer)" if own_compile else "",
        using=" using o" if own_compile else "",
    )
    model = functional(compile_spec(spec, f"returns_loss_{own_compile}"))
    if own_compile:
        model.compile(o=keras.optimizers.SGD(0.0))
    else:  # metrics= too: the step never updates them
        model.compile(optimizer=keras.optimizers.SGD(0.0), metrics=["mae"])
    return model


def mse(model, x, y) -> float:
    return float(ops.mean(ops.square(model(x) - y)))


@pytest.mark.parametrize("own_compile", [False, True])
def test_a_returned_loss_is_what_fit_and_evaluate_report(own_compile):
    """Not Keras's loss tracker (never updated: 0.0) nor unbuilt compile metrics."""
    model = returns_loss_model(own_compile)  # learning rate 0: the weights stay
    history = model.fit(X[:20], Y[:20], batch_size=8, epochs=1, shuffle=False, verbose=0)
    # The last batch's value (4 examples), as for any returned value.
    last = mse(model, tf.constant(X[16:20]), tf.constant(Y[16:20]))
    np.testing.assert_allclose(history.history["loss"][0], last, rtol=RTOL, atol=ATOL)
    logs = model.evaluate(X[:20], Y[:20], batch_size=20, verbose=0, return_dict=True)
    full = mse(model, tf.constant(X[:20]), tf.constant(Y[:20]))
    np.testing.assert_allclose(logs["loss"], full, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- repeat count parameter


@pytest.mark.parametrize("steps", [0, 1001])
def test_a_repeat_count_parameter_outside_1_to_1000_fails_naming_the_line(steps):
    """As for a literal count: the block is unrolled when the step is traced."""
    module = compile_spec(REPEAT_PARAMETER, "repeat_parameter_bounds")
    model = module.Steps(net=mlp(10), steps=steps)
    model.compile(opt=keras.optimizers.SGD(0.01))
    line = line_of(REPEAT_PARAMETER, "repeat steps")
    expected = rf"repeat_parameter_bounds\.step:{line}: repeat steps needs 1 <= steps <= 1000"
    with pytest.raises(ValueError, match=expected):
        model.fit(X, Y, batch_size=8, epochs=1, verbose=0)


# ---------------------------------------------------------------- a Loss given by name

LOSS_PARAMETER = """
model F(Functional):
    compile(o: Optimizer, loss_fn: Loss)
    test(x, y):
        return l=loss_fn(y, self(x))
"""


@pytest.mark.parametrize(
    ("given", "reference"),
    [
        ("mse", keras.losses.MeanSquaredError()),
        ("bce", keras.losses.BinaryCrossentropy()),
        ("MeanAbsoluteError", keras.losses.MeanAbsoluteError()),
        ({"class_name": "Huber", "config": {}}, keras.losses.Huber()),
    ],
)
def test_a_loss_parameter_given_by_name_is_taken_as_keras_compile_takes_it(given, reference):
    model = functional(compile_spec(LOSS_PARAMETER, "loss_parameter"))
    model.compile(o="sgd", loss_fn=given)
    x, y = tf.constant(X[:20]), tf.constant((Y[:20] > 0).astype("float32"))
    expected = float(reference(y, model(x)))
    logs = model.test_step((x, y))
    np.testing.assert_allclose(float(logs["l"]), expected, rtol=RTOL, atol=ATOL)


def test_a_loss_given_by_the_name_of_a_function_saves_and_loads(tmp_path):
    """compile(loss_fn="mse") wraps Keras's function as a batch-mean Loss saved by
    its name: after save/load_model the test step reports the same value (rtol 1e-6)."""
    module = compile_spec(LOSS_PARAMETER, "loss_by_name")
    model = functional(module)
    model.compile(o="sgd", loss_fn="mse")
    x, y = tf.constant(X[:20]), tf.constant(Y[:20])
    before = float(model.test_step((x, y))["l"])
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(float(loaded.test_step((x, y))["l"]), before, rtol=1e-6)
