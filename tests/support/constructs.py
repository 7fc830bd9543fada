"""Shared helpers of the construct tests (``test_constructs.py``, ``test_clipping.py``
and the distribution worker): small models and data, compiling a spec's text, fitting
one epoch of 3 batches of 8 with every batch's logs (``assert_same_logs`` compares two
such at ``compare``'s rtol 1e-5, atol 1e-6), and the specs the distribution worker also
runs.
"""

from __future__ import annotations

import types

import keras
import numpy as np
import stepc
from keras import ops

from tests.support.compare import ATOL, assert_batch_logs_close

X = np.random.default_rng(0).normal(size=(24, 3)).astype("float32")
Y = np.random.default_rng(1).normal(size=(24, 1)).astype("float32")


def compile_spec(text: str, name: str) -> types.ModuleType:
    module = types.ModuleType(f"stepc_constructs_{name}")
    exec(stepc.compile_source(text, f"{name}.step"), module.__dict__)
    return module


def dense(units: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


class BatchLogs(keras.callbacks.Callback):
    """Every batch's logs, as fit() reports them."""

    def __init__(self):
        super().__init__()
        self.logs: list[dict[str, float]] = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({key: float(value) for key, value in logs.items()})


def fit_logs(model: keras.Model, x=X, y=Y) -> list[dict[str, float]]:
    """Train one epoch of 3 batches of 8; return each batch's logs."""
    logs = BatchLogs()
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[logs])
    return logs.logs


def assert_same_logs(a: list[dict[str, float]], b: list[dict[str, float]]) -> None:
    """Two ``fit_logs`` results: 3 batches each, every batch's logs within RTOL/ATOL."""
    assert len(a) == len(b) == 3
    assert_batch_logs_close(a, b, atol=ATOL)


def graph(seed: int, **hidden_options) -> tuple:
    """Inputs and outputs of a small Functional model: Dense(4, tanh), Dense(1)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="tanh", **hidden_options)(inputs)
    return inputs, keras.layers.Dense(1)(hidden)


def mlp(seed: int, batch_norm: bool = False) -> keras.Model:
    """A small sub-model: Dense(4), [BatchNormalization], Dense(1)."""
    keras.utils.set_random_seed(seed)
    norm = [keras.layers.BatchNormalization()] if batch_norm else []
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), *norm, keras.layers.Dense(1)]
    )


class TrackedReference(keras.Model):
    """A hand-written Functional model whose trackers are `Mean`s named in `names`,
    each weighted by the batch size, as Keras's own loss tracker is."""

    names: tuple[str, ...] = ("loss",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trackers = [keras.metrics.Mean(name=name) for name in self.names]

    @property
    def metrics(self):
        return list(self.trackers)

    def report(self, x, *values):
        for tracker, value in zip(self.trackers, values, strict=True):
            tracker.update_state(value, sample_weight=ops.shape(x)[0])
        return {tracker.name: tracker.result() for tracker in self.trackers}


def step_source(module_text: str, step: str = "train_step") -> str:
    """The text of one generated step method."""
    start = module_text.index(f"    def {step}(")
    end = module_text.find("\n    def ", start + 1)
    return module_text[start : end if end >= 0 else None]


def line_of(text: str, needle: str) -> int:
    """The number of the line of `text` holding `needle`."""
    return next(n for n, line in enumerate(text.split("\n"), 1) if needle in line)


# Specs that the distribution worker also runs ------------------------------------------

# A repeat whose count is an `int` parameter (test_constructs: numbers; test_runtime_placement:
# the trace-time bounds).
REPEAT_PARAMETER = """
model Steps:
    init(net: Model, steps: int)
    compile(opt: Optimizer)
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        repeat steps:
            loss = mean(square(net(x) - y))
            minimize loss over net using opt
        update loss_tracker(loss)
"""


CLIPPED = """
model AutoEncoder:
    init(encoder: Model, decoder: Model, threshold: float)
    compile(opt: Optimizer)
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        loss = mean(square(decoder(encoder(x)) - y))
        minimize loss over encoder ({kind}=threshold), decoder using opt
        update loss_tracker(loss)
"""


def encoder_decoder():
    keras.utils.set_random_seed(14)
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh")])
    decoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    return encoder, decoder


MODEL_GRADIENT = """
model Norm(Functional):
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        loss = mean(square(self(x) - y))
        g = gradient(loss, self)
        minimize loss over self using optimizer
        update loss_tracker(loss)
        return loss_tracker, grad_norm=global_norm(g)
"""
