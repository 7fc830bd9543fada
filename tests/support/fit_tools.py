"""Tools the fit() feature tests share (``test_fit_features.py`` for the seed specs,
``test_fit_features_later_specs.py`` for the later ones): the mixed-precision policy as a
context, the relative error of weight updates, TensorBoard's scalars, a callback that
interrupts ``fit`` like a crash, a subclass that counts traces of the steps, the
callback tests' set, and the README's Python examples.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf


def relative_update_error(actual, expected, start) -> float:
    """``|actual - expected| / |expected - start|`` over all weights (2-norms)."""
    delta = np.concatenate([(a - e).ravel() for a, e in zip(actual, expected, strict=True)])
    update = np.concatenate([(e - s).ravel() for e, s in zip(expected, start, strict=True)])
    return float(np.linalg.norm(delta) / np.linalg.norm(update))


@contextlib.contextmanager
def mixed_float16():
    """The global dtype policy mixed_float16, restored to float32 afterwards."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def read_scalars(log_dir: Path) -> dict[str, list[float]]:
    """Every scalar summary under ``log_dir``, by tag, in step order."""
    by_tag: dict[str, dict[int, float]] = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                by_tag.setdefault(value.tag, {})[event.step] = number
    return {tag: [steps[s] for s in sorted(steps)] for tag, steps in by_tag.items()}


def assert_tensorboard_logged_the_history(log_dir: Path, history: dict) -> dict:
    """Every History key is logged under ``log_dir`` as ``epoch_<metric>`` (train/, or
    validation/ for ``val_`` keys), equal to the History epoch by epoch within rtol=1e-6.
    Returns the train/ scalars, for further checks."""
    train = read_scalars(log_dir / "train")
    validation = read_scalars(log_dir / "validation")
    for key, values in history.items():
        if key.startswith("val_"):
            logged = validation.get(f"epoch_{key[4:]}")
        else:
            logged = train.get(f"epoch_{key}")
        assert logged is not None, f"{key} not logged: {sorted(train)} {sorted(validation)}"
        np.testing.assert_allclose(logged, values, rtol=1e-6, err_msg=key)
    return train


class Interrupted(Exception):
    """Raised by ``InterruptAt``: stands for a crash."""


class InterruptAt(keras.callbacks.Callback):
    """Raises ``Interrupted`` at the end of batch ``batch`` of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise Interrupted(f"epoch {self.epoch}, batch {self.batch}")


def counting(cls: type) -> tuple[type, Counter]:
    """A subclass of ``cls`` counting how often its train_step and test_step are traced
    (Python in a step runs once per trace, keras3-facts 13)."""
    counts: Counter = Counter()

    class Counting(cls):
        def train_step(self, data):
            counts["train"] += 1
            return super().train_step(data)

        def test_step(self, data):
            counts["test"] += 1
            return super().test_step(data)

    Counting.__name__ = cls.__name__
    return Counting, counts


def stopping_checkpointing_logging(
    directory: Path, monitor: str
) -> tuple[keras.callbacks.EarlyStopping, list[keras.callbacks.Callback]]:
    """The callback tests' set: an EarlyStopping on ``monitor`` that stops after the
    second epoch (no epoch improves by 1e9), a ModelCheckpoint writing every epoch's
    model to ``directory``, and TensorBoard logging to ``directory/tb`` if installed."""
    stopper = keras.callbacks.EarlyStopping(monitor=monitor, mode="min", min_delta=1e9, patience=1)
    callbacks = [stopper, keras.callbacks.ModelCheckpoint(str(directory / "epoch{epoch}.keras"))]
    if HAS_TENSORBOARD:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(directory / "tb")))
    return stopper, callbacks


def readme_python_block(marker: str) -> str:
    """The one fenced ``python`` block of README.md that contains ``marker``."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if marker in b]
    assert len(blocks) == 1, f"{len(blocks)} README python blocks contain {marker!r}"
    return blocks[0]
