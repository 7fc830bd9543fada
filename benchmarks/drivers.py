"""One model's Keras step function, called as ``fit()``/``evaluate()`` call it, per backend.

``case_runner(case, cls)`` builds a compiled model, makes the first call (building the
model's state and tracing or jitting its step function; timed) and returns a
``timing.Runner`` whose ``call()`` runs one more step on the next batch, the way Keras's
loop does:

* TensorFlow: ``model.train_function(iterator)`` (or ``test_function``) on an iterator over
  a repeated ``tf.data`` pipeline (batch dimension ``None``, as in ``fit``).
* JAX: ``logs, state = model.train_function(state, iterator)``, the state threaded from
  call to call as ``fit()`` threads it (taken once from the model's variables, which Keras
  empties meanwhile, exactly as ``fit()`` does; Keras has no public API for this loop).
* torch: ``model.train_function([batch])`` (eager: Keras leaves ``torch.compile`` off).

On JAX the numpy batches are cycled and passed as ``fit()`` passes them (the jitted step
copies them in); on torch they are converted to tensors once and cycled, as the TensorFlow
pipeline caches them. There the first call is a one-batch ``fit()`` (or ``evaluate()``),
which builds the optimizers and metrics and traces the step; on TensorFlow it is the
first call of the step function, as section 1 has always timed it.
"""

from __future__ import annotations

import itertools
import time

import keras

from benchmarks import models
from benchmarks.timing import Runner, finish


def batch_list(case) -> list:
    """The case's batches as numpy structures: its own list, or its arrays cut up."""
    if case.batches is not None:
        return case.batches()
    arrays, size = case.arrays(), case.batch_size
    count = len(keras.tree.flatten(arrays)[0]) // size

    def cut(index: int):
        part = slice(index * size, (index + 1) * size)
        return keras.tree.map_structure(lambda leaf: leaf[part], arrays)

    return [cut(index) for index in range(count)]


def _as_fit_passes(batch):
    """The batch as Keras's data adapters pass it to the step: a bare array as ``(x,)``."""
    return batch if isinstance(batch, (tuple, dict)) else (batch,)


def _tensors(batches: list) -> list:
    """Each batch's leaves converted to backend tensors once (as a cached pipeline)."""
    return [keras.tree.map_structure(keras.ops.convert_to_tensor, batch) for batch in batches]


class _OneBatch(keras.utils.PyDataset):
    """A dataset of exactly one batch, for the first (building, tracing) call."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.batch


def _first_call(model: keras.Model, step: str, batch) -> None:
    """A one-batch ``fit()`` or ``evaluate()``: builds the state, traces the step."""
    if step == "test":
        model.evaluate(_OneBatch(batch), verbose=0)
    else:
        model.fit(_OneBatch(batch), epochs=1, shuffle=False, verbose=0)


def _tf_dataset(case, batches: list):
    """The TensorFlow pipeline Keras's loop reads: the arrays batched (batch dimension
    ``None``, as in ``fit``), or the ready batches in turn, repeated and cached."""
    import tensorflow as tf

    if case.batches is None:
        return models.repeated_dataset(case.arrays(), case.batch_size)
    dataset = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:
        dataset = dataset.concatenate(tf.data.Dataset.from_tensors(batch))
    return dataset.cache().repeat()


def _tensorflow(model: keras.Model, case, batches: list):
    dataset = _tf_dataset(case, batches)
    if case.step == "test":
        model.evaluate(dataset.take(1), verbose=0)  # builds and traces test_function
        function = model.test_function
    else:
        model.make_train_function()
        function = model.train_function
        finish(function(iter(dataset)))
    iterator = iter(dataset)
    return lambda: function(iterator)


def _jax(model: keras.Model, case, batches: list):
    _first_call(model, case.step, batches[0])
    # Numpy batches, as fit() passes them to the jitted step (it copies them in).
    batches = itertools.cycle([_as_fit_passes(batch) for batch in batches])
    optimizer = case.step == "train"
    # What fit()/evaluate() take at the start of an epoch (and empty the variables of).
    state = [
        model._get_jax_state(
            trainable_variables=True,
            non_trainable_variables=True,
            optimizer_variables=optimizer,
            metrics_variables=True,
            purge_model_variables=True,
        )
    ]
    function = model.train_function if optimizer else model.test_function

    def call():
        logs, state[0] = function(state[0], iter([next(batches)]))
        return logs

    return call


def _torch(model: keras.Model, case, batches: list):
    _first_call(model, case.step, batches[0])
    batches = itertools.cycle(_tensors([_as_fit_passes(batch) for batch in batches]))
    function = model.train_function if case.step == "train" else model.test_function
    return lambda: function([next(batches)])


CALLERS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


def case_runner(case, cls: type) -> Runner:
    """A fresh compiled ``cls`` model of ``case``: its first call (timed, with its result
    read back) and a caller of steady-state steps."""
    batches = batch_list(case)
    model = case.build(cls)
    start = time.perf_counter()
    call = CALLERS[keras.backend.backend()](model, case, batches)
    finish(call())
    return Runner(model, call, time.perf_counter() - start)
