"""One backend's run of the `Metric` parameter spec (tests/test_metric_params_runtime.py).

Run as `KERAS_BACKEND=<name> python -m tests.support.metric_params_worker DIR`: it
compiles each spec (a Metric given to the constructor; one given to compile() next to
another given to the constructor and the compiled loss), fits two epochs with
validation data (numpy initial weights, SGD, no shuffling, so every backend computes
the same numbers), evaluates, saves and loads the model, and prints one line
`RESULT <json>` with what the test compares.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import keras
import numpy as np
import stepc
from keras import ops

SPEC = """
model Regressor:
    init(net: Model, gap: Metric)
    metric loss_tracker = Mean(name="fit_loss")
    train(x, y):
        loss = mean(square(net(x, training=True) - y))
        minimize loss over net
        update loss_tracker(loss)
    test(x, y):
        update gap(net(x, training=False), y, scale=2.0)
"""
# Metrics given to compile() and to the constructor, next to Keras's loss tracker:
# the train step updates `other`, the test step `gap`; both the compiled loss.
COMPILE_SPEC = """
model Compiled:
    init(net: Model, gap: Metric)
    compile(optimizer: Optimizer, loss: Loss, other: Metric)
    train(x, y):
        pred = net(x, training=True)
        loss = compiled_loss(y, pred)
        minimize loss over net
        update other(pred, y)
    test(x, y):
        pred = net(x, training=False)
        loss = compiled_loss(y, pred)
        update gap(pred, y)
"""
RESULT_PREFIX = "RESULT "
SCALE = 2.0  # the spec's `scale=2.0`
RNG = np.random.default_rng(3)
X = RNG.normal(size=(16, 3)).astype("float32")
Y = RNG.normal(size=(16, 1)).astype("float32")
X_VAL = RNG.normal(size=(12, 3)).astype("float32")
Y_VAL = RNG.normal(size=(12, 1)).astype("float32")
KERNEL = RNG.normal(size=(3, 1)).astype("float32")


@keras.saving.register_keras_serializable(package="stepc_tests")
class MeanAbsoluteGap(keras.metrics.Metric):
    """The mean of |a - b| * scale over every value seen: a metric of two tensors
    whose update_state takes a keyword, as a user's own (a KID) might."""

    def __init__(self, name="gap", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), "zeros", name="total")
        self.count = self.add_variable((), "zeros", name="count")

    def update_state(self, a, b, scale=1.0):
        gap = ops.abs(ops.cast(a, "float32") - ops.cast(b, "float32")) * scale
        self.total.assign_add(ops.sum(gap))
        self.count.assign_add(ops.cast(ops.size(gap), "float32"))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)


def _net() -> keras.Model:
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    net.set_weights([KERNEL, np.zeros(1, "float32")])
    return net


def _module(spec: str, name: str) -> types.ModuleType:
    module = types.ModuleType(f"stepc_{name}")
    exec(stepc.compile_source(spec, f"{name}.step"), module.__dict__)
    return module


def _evaluate(model: keras.Model) -> dict[str, float]:
    found = model.evaluate(X_VAL, Y_VAL, batch_size=8, verbose=0, return_dict=True)
    return {key: float(value) for key, value in found.items()}


def _fit_save_load(model: keras.Model, path: Path) -> dict:
    """Two epochs with validation data, evaluate(), then the model saved and loaded."""
    history = model.fit(
        X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(X_VAL, Y_VAL)
    )
    evaluated = _evaluate(model)
    predicted = model.net.predict(X_VAL, verbose=0)
    model.save(path)
    loaded = keras.saving.load_model(path)
    pairs = zip(model.get_weights(), loaded.get_weights(), strict=True)
    return {
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "evaluate": evaluated,
        "predicted": predicted.tolist(),
        "metrics": [type(m).__name__ for m in model.metrics],
        "loaded_metrics": [type(m).__name__ for m in loaded.metrics],
        "loaded_evaluate": _evaluate(loaded),
        "loaded_weights_equal": all(np.array_equal(a, b) for a, b in pairs),
    }


def _mean_absolute_gap(predicted: list) -> float:
    """MeanAbsoluteGap's result on the validation data, in numpy (scale 1)."""
    return float(np.mean(np.abs(np.asarray(predicted, "float32") - Y_VAL)))


def run(directory: Path) -> dict:
    backend = keras.backend.backend()
    model = _module(SPEC, "metric_params").Regressor(_net(), MeanAbsoluteGap())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    result = _fit_save_load(model, directory / f"regressor_{backend}.keras")
    result["direct"] = _mean_absolute_gap(result.pop("predicted")) * SCALE
    compiled = _module(COMPILE_SPEC, "metric_params_compiled").Compiled(_net(), MeanAbsoluteGap())
    compiled.compile(
        optimizer=keras.optimizers.SGD(0.1), loss="mse", other=MeanAbsoluteGap(name="other")
    )
    result["compiled"] = _fit_save_load(compiled, directory / f"compiled_{backend}.keras")
    result["compiled"]["direct"] = _mean_absolute_gap(result["compiled"].pop("predicted"))
    return result


if __name__ == "__main__":
    print(RESULT_PREFIX + json.dumps(run(Path(sys.argv[1]))))
