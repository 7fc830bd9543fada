"""What `stepc check` accepts compiles, traces and runs right: the cases that once
compiled to a broken module or a silently wrong step.

Each test compiles a tiny spec, builds tiny models and runs fit / evaluate /
train_step, comparing with a hand-written `tf.GradientTape` or a full-data value
(rtol 1e-5, atol 1e-6), or checks that a misuse fails at trace time naming the
spec line and the fix.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import stepc
import tensorflow as tf
from keras import ops
from stepc.check.models import check
from stepc.emit.render import emit
from stepc.lower.module import lower
from stepc.parse.parser import parse

from tests.support.compare import ATOL, RTOL, assert_weights_close
from tests.support.constructs import X, Y, compile_spec, graph, mlp

X20, Y20 = X[:20], Y[:20]  # batches of 8, 8 and 4: unequal sizes show the weighting


def functional(module, seed: int = 3, **kwargs) -> keras.Model:
    return module.F(*graph(seed), **kwargs)


def global_norm_of_gradient(model, value_of_outputs, x) -> float:
    """The reference: one tape around the forward pass, zeros where unconnected."""
    with tf.GradientTape() as tape:
        value = value_of_outputs(model(x))
    grads = tape.gradient(value, model.trainable_variables)
    grads = [
        ops.zeros_like(v) if g is None else g
        for g, v in zip(grads, model.trainable_variables, strict=True)
    ]
    return float(tf.linalg.global_norm(grads))


# ---------------------------------------------------------------- 1. gradient in a repeat

GRADIENT_IN_REPEAT = """
model F(Functional):
    train(x):
        v1 = mean(self(x))
        repeat 2:
            g = gradient(v1, self)
        return n=global_norm(g)
"""


def test_gradient_in_a_repeat_of_a_value_computed_before_it_is_the_full_gradient():
    module = compile_spec(GRADIENT_IN_REPEAT, "gradient_in_repeat")
    model = functional(module)
    logs = model.train_step(tf.constant(X))
    expected = global_norm_of_gradient(model, ops.mean, X)
    assert expected > 0
    np.testing.assert_allclose(float(logs["n"]), expected, rtol=RTOL, atol=ATOL)


COMPILED_GRADIENT_IN_REPEAT = """
model F(Functional):
    metric m1 = Mean(name="m1")
    train(x):
        v1 = compiled_loss(x, self(x))
        repeat 2:
            v2 = mean(self(x))
            update m1(v2)
            g = gradient(v1, self)
        return n=global_norm(g)
"""


def test_gradient_in_a_repeat_of_a_compiled_loss_compiles_and_is_right():
    text = stepc.compile_source(COMPILED_GRADIENT_IN_REPEAT, "compiled_in_repeat.step")
    compile(text, "compiled_in_repeat.py", "exec")
    module = compile_spec(COMPILED_GRADIENT_IN_REPEAT, "compiled_in_repeat")
    keras.utils.set_random_seed(3)
    inputs = keras.Input((3,))
    model = module.F(inputs, keras.layers.Dense(3)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    logs = model.train_step(tf.constant(X))

    def mse(outputs):
        return ops.mean(ops.square(X - outputs))

    expected = global_norm_of_gradient(model, mse, X)
    np.testing.assert_allclose(float(logs["n"]), expected, rtol=RTOL, atol=ATOL)


def test_gradient_in_a_repeat_of_a_value_partly_computed_before_it_is_refused():
    spec = """
model F(Functional):
    train(x):
        v1 = mean(self(x))
        repeat 2:
            v2 = v1 + mean(square(self(x)))
            g = gradient(v2, self)
        return n=global_norm(g)
"""
    with pytest.raises(stepc.SpecError, match="before the repeat block"):
        stepc.compile_source(spec, "partly.step")


def test_a_loss_minimized_in_a_repeat_partly_from_a_value_before_it_is_refused():
    spec = """
model F(Functional):
    metric t = Mean(name="loss")
    train(x, y):
        v1 = mean(square(self(x) - y))
        repeat 2:
            loss = v1 + mean(square(self(x)))
            minimize loss over self
        update t(loss)
"""
    with pytest.raises(stepc.SpecError, match="`v1` is computed from .* before the repeat"):
        stepc.compile_source(spec, "partly_minimized.step")


GRADIENT_AFTER_MINIMIZE = """
model F(Functional):
    train(x):
        loss = mean(self(x))
        minimize loss over self
        g = gradient(loss, x)
        return n=sum(square(g))
"""


def test_a_gradient_after_a_minimize_of_its_value_uses_the_weights_before_it():
    """The value was computed before the update: its gradient is the one of the
    weights it was computed with (its recording holds the minimize's)."""
    module = compile_spec(GRADIENT_AFTER_MINIMIZE, "gradient_after_minimize")
    model = functional(module)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = ops.mean(model(x))
    expected = float(ops.sum(ops.square(tape.gradient(value, x))))
    before = model.get_weights()
    logs = model.train_step(x)
    assert any(np.any(a != b) for a, b in zip(before, model.get_weights(), strict=True))
    np.testing.assert_allclose(float(logs["n"]), expected, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- 2. unconnected variables

TWO_HEADS = """
model F(Functional):
    train(x, y):
        p, q = self(x)
        v1 = mean(square(p - y))
        g = gradient(v1, self)
        minimize v1 over self
        return n=global_norm(g)
"""


def two_heads(module) -> keras.Model:
    keras.utils.set_random_seed(5)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="tanh")(inputs)
    return module.F(inputs, [keras.layers.Dense(1)(hidden), keras.layers.Dense(2)(hidden)])


def test_gradient_of_a_model_part_of_which_does_not_reach_the_value():
    """The unused head gets a zero gradient (as unconnected_gradients=ZERO gives);
    minimize updates the used part as Keras's optimizer.apply does (None skipped)."""
    module = compile_spec(TWO_HEADS, "two_heads")
    model, reference = two_heads(module), two_heads(module)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    expected = global_norm_of_gradient(reference, lambda o: ops.mean(ops.square(o[0] - Y)), X)
    logs = model.fit(X, Y, batch_size=24, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(logs["n"][0], expected, rtol=RTOL, atol=ATOL)
    optimizer = keras.optimizers.SGD(0.1)
    with tf.GradientTape() as tape:
        loss = ops.mean(ops.square(reference(X)[0] - Y))
    grads = tape.gradient(loss, reference.trainable_variables)
    kept = [
        (g, v) for g, v in zip(grads, reference.trainable_variables, strict=True) if g is not None
    ]
    optimizer.apply([g for g, _ in kept], [v for _, v in kept])
    assert_weights_close(model, reference)


MIRRORED_TWO_HEADS = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from tests.support.constructs import X, Y, compile_spec
from tests.test_runtime_guards import TWO_HEADS, two_heads
module = compile_spec(TWO_HEADS, "two_heads")
def run(strategy):
    with strategy.scope():
        model = two_heads(module)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    logs = model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    return logs["n"][0], model.get_weights()
single = run(tf.distribute.get_strategy())
mirrored = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
np.testing.assert_allclose(mirrored[0], single[0], rtol=1e-5, atol=1e-6)
for a, b in zip(mirrored[1], single[1], strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
"""


def test_unconnected_variables_under_mirrored_strategy_match_one_device():
    """The same two-head spec under MirroredStrategy (2 logical CPUs, in a fresh
    process): the gradient norm and the weights equal the one-device run."""
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run(
        [sys.executable, "-c", MIRRORED_TWO_HEADS], cwd=root, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]


# ---------------------------------------------------------------- 3. batch size of a structure

TRACKED = """
model F(Functional):
    metric t = Mean(name="loss")
    train(x, y):
        loss = mean(square(self(x) - y))
        minimize loss over self
        update t(loss)
"""

COMPILED = """
model F(Functional):
    train(x, y):
        loss = compiled_loss(y, self(x))
        minimize loss over self
"""


def two_input_model(module, names=("a", "b"), dict_inputs=False) -> keras.Model:
    keras.utils.set_random_seed(9)
    inputs = [keras.Input((3,), name=n) for n in names]
    hidden = keras.layers.Dense(1)(keras.layers.Concatenate()(inputs))
    return module.F(dict(zip(names, inputs, strict=True)) if dict_inputs else inputs, hidden)


def full_mse(model, x) -> float:
    return float(np.mean(np.square(model.predict(x, verbose=0) - Y20)))


@pytest.mark.parametrize("structure", ["dict", "tuple"])
def test_mean_tracker_weights_a_structured_batch_by_its_first_tensor(structure):
    """evaluate() over batches of 8, 8, 4 (derived test step) equals the full-data MSE."""
    module = compile_spec(TRACKED, f"tracked_{structure}")
    model = two_input_model(module, dict_inputs=structure == "dict")
    model.compile(optimizer="sgd")
    x = {"a": X20, "b": X20 * 2} if structure == "dict" else (X20, X20 * 2)
    result = model.evaluate(x, Y20, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], full_mse(model, x), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("structure", ["dict", "tuple"])
def test_compiled_loss_tracker_weights_a_structured_batch_by_its_first_tensor(structure):
    """With a learning rate of 0, fit's epoch loss equals the full-data MSE."""
    module = compile_spec(COMPILED, f"compiled_{structure}")
    model = two_input_model(module, dict_inputs=structure == "dict")
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    x = {"a": X20, "b": X20 * 2} if structure == "dict" else (X20, X20 * 2)
    history = model.fit(x, Y20, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"][0], full_mse(model, x), rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- 4. return compiled_metrics

RETURN_COMPILED = """
model F(Functional):
    train(x, y):
        y_pred = self(x)
        loss = compiled_loss(y, y_pred)
        minimize loss over self
        update compiled_metrics(y, y_pred)
        return compiled_metrics{extra}
"""


@pytest.mark.parametrize("extra", ["", ", n=mean(y_pred)"])
def test_return_compiled_metrics_reports_every_compiled_metric(extra):
    module = compile_spec(RETURN_COMPILED.format(extra=extra), "return_compiled")
    model = functional(module)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse", metrics=["mae"])
    history = model.fit(X20, Y20, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    predicted = model.predict(X20, verbose=0)
    np.testing.assert_allclose(
        history["mae"][0], np.mean(np.abs(predicted - Y20)), rtol=RTOL, atol=ATOL
    )
    assert set(history) == ({"mae", "n"} if extra else {"mae"})


# ---------------------------------------------------------------- 5. constant factors


@pytest.mark.parametrize("factor", ["4.0", "2.0 ** 2", "(1.0 + 1.0) * 2.0", "8.0 / 2"])
def test_a_constant_factor_keeps_a_loss_weighted_by_batch_size(factor):
    spec = f"""
model F(Functional):
    loss mse = MeanSquaredError()
    metric t = Mean(name="loss")
    train(x, y):
        loss = mse(y, self(x)) * {factor}
        minimize loss over self
        update t(loss)
"""
    module = compile_spec(spec, "factor")
    model = functional(module)
    model.compile(optimizer="sgd")
    result = model.evaluate(X20, Y20, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], 4 * full_mse(model, X20), rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- 6. wrapper evaluate()

WRAPPER = """
model W:
    init(net: Model)
    metric t = Mean(name="loss")
    train(x, y):
        loss = mean(square(net(x) - y))
        minimize loss over net using optimizer
        update t(loss)
"""


def test_a_wrapper_model_derives_its_test_step():
    module = compile_spec(WRAPPER, "wrapper")
    model = module.W(mlp(4))
    model.compile(optimizer="sgd")
    result = model.evaluate(X20, Y20, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["loss"], full_mse(model.net, X20), rtol=RTOL, atol=ATOL)


def test_a_wrapper_model_without_trackers_refuses_evaluate_naming_the_spec():
    spec = """
model W:
    init(net: Model)
    train(x, y):
        loss = mean(square(net(x) - y))
        minimize loss over net using optimizer
        return loss=loss
"""
    module = compile_spec(spec, "bare_wrapper")
    model = module.W(mlp(4))
    model.compile(optimizer="sgd")
    model.fit(X20, Y20, batch_size=8, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"bare_wrapper\.step:4: .*test\("):
        model.evaluate(X20, Y20, batch_size=8, verbose=0)
    with pytest.raises(ValueError, match=r"bare_wrapper\.step:2: .*predict\("):
        model.predict(X20, batch_size=8, verbose=0)


# ---------------------------------------------------------------- 7. data and compile misuse

IMAGES_ONLY = """
model G:
    init(net: Model)
    compile(opt: Optimizer)
    metric t = Mean(name="loss")
    train(images):
        loss = mean(square(net(images)))
        minimize loss over net using opt
        update t(loss)
"""


def test_a_y_given_to_a_step_that_takes_only_x_fails_naming_the_data_line():
    module = compile_spec(IMAGES_ONLY, "images_only")
    model = module.G(mlp(4))
    model.compile(opt=keras.optimizers.SGD(0.1))
    message = r"images_only\.step:6, `train\(images\)`\): fit\(\) passed a `y`"
    with pytest.raises(ValueError, match=message):
        model.fit(X20, Y20, batch_size=8, epochs=1, verbose=0)


def test_a_sample_weight_given_to_a_step_without_one_fails_naming_the_data_line():
    module = compile_spec(TRACKED, "unweighted")
    model = functional(module)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"unweighted\.step:4.*sample_weight\?"):
        model.fit(X20, Y20, sample_weight=np.ones(20), batch_size=8, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"unweighted\.step:4.*class_weight"):
        model.fit(X20, Y20 > 0, class_weight={0: 1.0, 1: 2.0}, batch_size=8, verbose=0)


def test_an_optimizer_name_is_accepted_as_keras_compile_accepts_it():
    module = compile_spec(IMAGES_ONLY, "optimizer_name")
    model = module.G(mlp(4))
    model.compile(opt="adam")
    assert isinstance(model.opt, keras.optimizers.Adam)
    model.fit(X20, batch_size=8, epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"optimizer_name\.step:4: opt must be"):
        model.compile(opt=0.1)


# ---------------------------------------------------------------- 8. trace-time scalar check


def compile_ignoring_the_checker(text: str, name: str):
    """The module as the lowering makes it, whatever the checker says of ranks."""
    spec, _ = parse(text, f"{name}.step")
    checked, _ = check(spec)
    plan, _ = lower(checked, text)
    module = type(stepc)(name)
    exec(emit(plan), module.__dict__)
    return module


def test_a_loss_of_unknown_rank_is_checked_to_be_a_scalar_when_traced():
    spec = """
model F(Functional):
    metric t = Mean(name="loss")
    train(x, y):
        loss = mean(square(self(x) - y), 0)
        minimize loss over self
        update t(mean(loss))
"""
    module = compile_ignoring_the_checker(spec, "unknown_rank")
    model = functional(module)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"unknown_rank\.step:6: .*scalar"):
        model.fit(X20, Y20, batch_size=8, epochs=1, verbose=0)


NOTHING_TO_REPORT = """
model F(Functional):
    train(x, y):
        loss = mean(square(self(x) - y))
        minimize loss over self
        update compiled_metrics(y, self(x))
"""


def test_a_step_with_nothing_to_report_says_so_naming_the_spec_line():
    """No trackers of its own and compile() given no metrics: TensorFlow's fit() cannot
    carry an empty report, so the generated step names the step and the fix; with
    compile(metrics=["mae"]) the same model reports that metric."""
    module = compile_spec(NOTHING_TO_REPORT, "nothing_to_report")
    model = functional(module)
    model.compile(optimizer="sgd")
    x, y = X[:16], Y[:16]
    with pytest.raises(ValueError, match=r"F\.train_step \(nothing_to_report\.step:3\): the step"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model = functional(module)
    model.compile(optimizer="sgd", metrics=["mae"])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert set(history) == {"mae"}
