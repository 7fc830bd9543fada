"""Batches of any structure, end to end (TensorFlow): a batch of four parts by position,
a zipped `((x, y), x_unlabeled)` dataset, dict batches (a tf.data of dicts and a Python
dict of arrays), each trained one epoch of batches of 8, 8 and 4 next to a hand-written
Keras step of the same algorithm (same initial weights, data and SGD), comparing every
weight and each batch's logs at rtol 1e-5, atol 1e-6 (the last, smaller batch makes the
batch-size weighting of the trackers count). Batches of the wrong structure fail when
the step is traced, naming the spec line and the structure expected. Also the compiled
loss without compiled metrics in a model compiled with `metrics=[...]`.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests.support.compare import ATOL, RTOL, assert_weights_close
from tests.support.constructs import (
    BatchLogs,
    TrackedReference,
    assert_same_logs,
    compile_spec,
    graph,
)

N = 20  # batches of 8, 8 and 4
RNG = np.random.default_rng(7)
X = RNG.normal(size=(N, 3)).astype("float32")
Y = RNG.normal(size=(N, 1)).astype("float32")
NOISE = RNG.normal(size=(N, 3)).astype("float32")
SCALE = RNG.uniform(size=(N, 1)).astype("float32")
UNLABELED = RNG.normal(size=(N, 3)).astype("float32")

FOUR_PARTS = """
model Noisy(Functional):
    metric tracker = Mean(name="noisy_loss")
    train(x, noise, scale, y):
        loss = mean(square(self(x + scale * noise) - y))
        minimize loss over self
        update tracker(loss)
"""

ZIPPED = """
model Semi(Functional):
    metric tracker = Mean(name="semi_loss")
    train(labeled, unlabeled):
        images, labels = labeled
        loss = mean(square(self(images) - labels)) + 0.5 * mean(square(self(unlabeled)))
        minimize loss over self
        update tracker(loss)
"""

DICT = """
model Keyed(Functional):
    metric tracker = Mean(name="keyed_loss")
    train(batch):
        source = batch["source"]
        loss = mean(square(self(source) - batch["target"]))
        minimize loss over self
        update tracker(loss)
"""


def _sgd_step(model, x, loss_of):
    """One hand-written SGD step of `loss_of()`, reported weighted by x's batch size."""
    with tf.GradientTape() as tape:
        loss = loss_of()
    grads = tape.gradient(loss, model.trainable_variables)
    model.optimizer.apply(grads, model.trainable_variables)
    return model.report(x, loss)


class NoisyReference(TrackedReference):
    names = ("noisy_loss",)

    def train_step(self, data):
        x, noise, scale, y = data
        return _sgd_step(
            self, x, lambda: ops.mean(ops.square(self(x + scale * noise, training=True) - y))
        )


class SemiReference(TrackedReference):
    names = ("semi_loss",)

    def train_step(self, data):
        (images, labels), unlabeled = data

        def loss():
            supervised = ops.mean(ops.square(self(images, training=True) - labels))
            return supervised + 0.5 * ops.mean(ops.square(self(unlabeled, training=True)))

        return _sgd_step(self, images, loss)


class KeyedReference(TrackedReference):
    names = ("keyed_loss",)

    def train_step(self, data):
        source, target = data["source"], data["target"]
        return _sgd_step(
            self, source, lambda: ops.mean(ops.square(self(source, training=True) - target))
        )


def _model(cls, seed: int = 3) -> keras.Model:
    model = cls(*graph(seed))
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    return model


def _fit(model: keras.Model, x, **kwargs) -> list[dict[str, float]]:
    """One epoch; each batch's logs."""
    logs = BatchLogs()
    model.fit(x, epochs=1, shuffle=False, verbose=0, callbacks=[logs], **kwargs)
    return logs.logs


def _dataset(parts) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(parts).batch(8)


def _compare(spec: str, name: str, reference, data, reference_data=None, **kwargs) -> None:
    module = compile_spec(spec, name)
    model = _model(getattr(module, name))
    expected = _model(reference)
    logs = _fit(model, data, **kwargs)
    expected_logs = _fit(expected, data if reference_data is None else reference_data, **kwargs)
    assert_weights_close(model, expected)
    assert_same_logs(logs, expected_logs)


def test_a_batch_of_four_parts_from_a_dataset() -> None:
    """Weights and logs against a step that unpacks the 4-tuple by hand."""
    data = _dataset((X, NOISE, SCALE, Y))
    _compare(FOUR_PARTS, "Noisy", NoisyReference, data)


def test_the_derived_test_step_of_four_parts() -> None:
    """evaluate() on 4-tuples (the test step derived from the train step): the mean
    squared error over every example, as computed by hand from the model's outputs."""
    model = _model(compile_spec(FOUR_PARTS, "Noisy").Noisy)
    logs = model.evaluate(_dataset((X, NOISE, SCALE, Y)), verbose=0, return_dict=True)
    outputs = ops.convert_to_numpy(model(X + SCALE * NOISE, training=False))
    expected = np.mean(np.square(outputs - Y))
    np.testing.assert_allclose(logs["noisy_loss"], expected, rtol=RTOL, atol=ATOL)


def test_a_batch_of_four_parts_from_arrays() -> None:
    """fit(x=(a, b, c, d)) passes the tuple inside a tuple of one; the same training."""
    _compare(
        FOUR_PARTS,
        "Noisy",
        NoisyReference,
        (X, NOISE, SCALE, Y),
        reference_data=_dataset((X, NOISE, SCALE, Y)),
        batch_size=8,
    )


def test_a_zipped_labeled_and_unlabeled_dataset() -> None:
    """`images, labels = labeled` of a `((x, y), x_unlabeled)` batch; the tracker is
    weighted by the first tensor's batch size (images)."""
    data = tf.data.Dataset.zip(
        (tf.data.Dataset.from_tensor_slices((X, Y)), tf.data.Dataset.from_tensor_slices(UNLABELED))
    ).batch(8)
    _compare(ZIPPED, "Semi", SemiReference, data)


def test_a_dataset_of_dicts() -> None:
    """`batch["source"]` of a tf.data of dicts."""
    _compare(DICT, "Keyed", KeyedReference, _dataset({"source": X, "target": Y}))


def test_a_python_dict_of_arrays() -> None:
    """A dict of numpy arrays given to fit() as x: the same training as the dataset."""
    data = {"source": X, "target": Y}
    _compare(DICT, "Keyed", KeyedReference, data, reference_data=_dataset(data), batch_size=8)


# ---------------------------------------------------------------- wrong structures


def _traced_error(spec: str, name: str, data, **kwargs) -> str:
    model = _model(getattr(compile_spec(spec, name), name))
    with pytest.raises(ValueError) as caught:
        model.fit(data, epochs=1, shuffle=False, verbose=0, **kwargs)
    return str(caught.value)


def test_a_batch_of_three_parts_for_four() -> None:
    message = _traced_error(FOUR_PARTS, "Noisy", _dataset((X, NOISE, Y)))
    assert (
        "Noisy.step:4: train(x, noise, scale, y) expects every batch to be a tuple of 4 "
        "(x, noise, scale, y), but it is a tuple of 3: pass one dataset" in message
    )


def test_class_weight_with_four_parts() -> None:
    """class_weight needs Keras's (x, y) convention; a tuple of four has none."""
    message = _traced_error(
        FOUR_PARTS, "Noisy", (X, NOISE, SCALE), y=Y, batch_size=8, class_weight={0: 1.0}
    )
    assert "train(x, noise, scale, y) expects every batch to be a tuple of 4" in message
    assert "class_weight= do not apply to a batch of more than three parts" in message


def test_a_dict_where_the_step_unpacks_a_tuple() -> None:
    data = tf.data.Dataset.zip(
        (
            tf.data.Dataset.from_tensor_slices({"a": X, "b": Y}),
            tf.data.Dataset.from_tensor_slices(UNLABELED),
        )
    ).batch(8)
    message = _traced_error(ZIPPED, "Semi", data)
    assert message == (
        "Semi.step:5: `images, labels = labeled` expects the first part of the batch "
        "(`labeled` of train(labeled, unlabeled)) to be a tuple of 2 (images, labels), "
        "but it is a dict with keys 'a', 'b'"
    )


def test_a_dict_without_a_key_the_step_reads() -> None:
    message = _traced_error(DICT, "Keyed", _dataset({"source": X}))
    assert message == (
        'Keyed.step:5: `batch["source"]` expects the batch (`batch` of train(batch)) to be '
        "a dict with keys 'source', 'target', but it is a dict with keys 'source'"
    )


def test_a_tensor_where_the_step_reads_keys() -> None:
    message = _traced_error(DICT, "Keyed", X, batch_size=8)
    assert message.endswith("but it is a tensor of shape (None, 3)")


# ---------------------------------------------------------------- compiled metrics

COMPILED_LOSS_ONLY = """
model Plain(Functional):
    train(x, y):
        loss = compiled_loss(y, self(x))
        minimize loss over self
"""


def test_compiled_loss_without_compiled_metrics() -> None:
    """compile(metrics=["mae"]) and a train step that never updates compiled_metrics:
    training reports `loss` alone (mae is never updated by it), evaluate() (Keras's
    own test step) reports both, and the weights and losses are Keras's default
    step's, over two epochs with validation (fit's own end-of-epoch report)."""
    module = compile_spec(COMPILED_LOSS_ONLY, "Plain")
    model, expected = module.Plain(*graph(5)), keras.Model(*graph(5))
    for m in (model, expected):
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    kwargs = dict(epochs=2, batch_size=8, shuffle=False, verbose=0, validation_data=(X, Y))
    history = model.fit(X, Y, **kwargs).history
    expected_history = expected.fit(X, Y, **kwargs).history
    assert set(history) == {"loss", "val_loss", "val_mae"}
    assert_weights_close(model, expected)
    for key in history:
        np.testing.assert_allclose(history[key], expected_history[key], rtol=RTOL, atol=ATOL)
    assert set(model.evaluate(X, Y, verbose=0, return_dict=True)) == {"loss", "mae"}


TEST_STEP_ONLY = """
model Half(Functional):
    metric tracker = Mean(name="mse")
    train(x, y):
        loss = mean(square(self(x) - y))
        minimize loss over self
        update tracker(loss)
    test(x, y):
        y_pred = self(x)
        update compiled_metrics(y, y_pred)
        update tracker(mean(square(y_pred - y)))
"""


def test_compiled_metrics_updated_by_the_test_step_alone() -> None:
    """The train step reports its tracker alone; validation reports the tracker and
    compile()'s mae, whose value is that of the model's outputs (checked by hand)."""
    model = compile_spec(TEST_STEP_ONLY, "Half").Half(*graph(6))
    model.compile(optimizer=keras.optimizers.SGD(0.05), metrics=["mae"])
    kwargs = dict(epochs=2, batch_size=8, shuffle=False, verbose=0, validation_data=(X, Y))
    history = model.fit(X, Y, **kwargs).history
    assert set(history) == {"mse", "val_mse", "val_mae"}
    outputs = ops.convert_to_numpy(model(X, training=False))
    mae = np.mean(np.abs(outputs - Y))
    np.testing.assert_allclose(history["val_mae"][-1], mae, rtol=RTOL, atol=ATOL)
