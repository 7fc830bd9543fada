"""One backend's run of the `Metric` parameter spec (tests/test_metric_params_runtime.py).

Run as `KERAS_BACKEND=<name> python -m tests.support.metric_params_worker DIR`: it
compiles the spec, fits two epochs with validation data (numpy initial weights, SGD,
no shuffling, so every backend computes the same numbers), evaluates, saves and loads
the model, and prints one line `RESULT <json>` with what the test compares.
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


def run(directory: Path) -> dict:
    module = types.ModuleType("stepc_metric_params")
    exec(stepc.compile_source(SPEC, "metric_params.step"), module.__dict__)
    model = module.Regressor(_net(), MeanAbsoluteGap())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(
        X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, validation_data=(X_VAL, Y_VAL)
    )
    evaluated = model.evaluate(X_VAL, Y_VAL, batch_size=8, verbose=0, return_dict=True)
    predicted = model.net.predict(X_VAL, verbose=0)
    direct = float(np.mean(np.abs(predicted - Y_VAL)) * SCALE)
    path = directory / f"regressor_{keras.backend.backend()}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    return {
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "evaluate": {k: float(v) for k, v in evaluated.items()},
        "direct": direct,
        "metrics": [type(m).__name__ for m in model.metrics],
        "loaded_metrics": [type(m).__name__ for m in loaded.metrics],
        "loaded_evaluate": {
            k: float(v)
            for k, v in loaded.evaluate(
                X_VAL, Y_VAL, batch_size=8, verbose=0, return_dict=True
            ).items()
        },
        "loaded_weights_equal": all(
            np.array_equal(a, b)
            for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True)
        ),
    }


if __name__ == "__main__":
    print(RESULT_PREFIX + json.dumps(run(Path(sys.argv[1]))))
