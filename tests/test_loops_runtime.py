"""Loops at run time: `repeat n as i`, `for` over a model's outputs, several
minimize statements in a loop, and the trace-time check of a loop index.

On TensorFlow each spec of `tests/specs/loops_*.step` is compared with a
hand-written train step doing the same arithmetic (same initial weights, same
batches, SGD, no shuffling): every weight after one epoch at atol=1e-6,
rtol=1e-5 (`tests.support.compare`). Then the same specs run on JAX (jit, Keras's
default) and PyTorch, one process per backend (`tests.support.loops_worker`), and
each backend's weights are compared with TensorFlow's at the same tolerances.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import stepc
import tensorflow as tf

from tests.support.compare import assert_weights_close
from tests.support.loops_worker import OUT_OF_RANGE, RUNS, batches, data, fit, functional, sgd

ROOT = Path(__file__).resolve().parents[1]


def _train(model, losses_of, optimizers) -> None:
    """A hand-written step per batch: for each (loss, variables, optimizer) in turn,
    a tape around the loss, then its update (the next loss sees the new weights)."""
    x, y = data()
    for xb, yb in batches(x, y):
        for compute, variables, optimizer in losses_of(xb, yb, optimizers):
            with tf.GradientTape() as tape:
                loss = compute()
            optimizer.apply(tape.gradient(loss, variables), variables)


def test_repeat_index_matches_a_hand_written_step():
    """(a) `repeat 3 as i` with `z[:, i]` and `i` in the loss."""
    keras.backend.clear_session()
    model = fit("loops_index")
    reference = functional()

    def losses(xb, yb, optimizers):
        for i in range(3):

            def compute(i=i):
                z = reference(xb, training=True)
                return tf.reduce_mean(tf.square(z[:, i] - yb[:, i])) * (i + 1) * 0.5

            yield compute, reference.trainable_variables, optimizers[0]

    _train(reference, losses, [sgd()])
    assert_weights_close(model.get_weights(), reference.get_weights())


def test_for_over_a_sub_models_outputs_matches_a_hand_written_step():
    """(b) `for head in trunk(x)` (three outputs) with a nested `for w in [1.0, 0.5]`."""
    keras.backend.clear_session()
    model = fit("loops_heads")
    trunk = functional(heads=3)

    def losses(xb, yb, optimizers):
        def compute():
            heads = trunk(xb, training=True)
            assert len(heads) == 3
            return sum(w * tf.reduce_mean(tf.square(h - yb)) for h in heads for w in (1.0, 0.5))

        yield compute, trunk.trainable_variables, optimizers[0]

    _train(trunk, losses, [sgd()])
    assert_weights_close(model.get_weights(), trunk.get_weights())


def test_two_minimizes_in_a_repeat_match_a_hand_written_step():
    """(c) Two minimize statements in `repeat 2 as i`: f updated, then g fitted to
    the updated f, on each pass."""
    keras.backend.clear_session()
    model = fit("loops_pair")
    f, g = functional(seed=1), functional(seed=2)

    def losses(xb, yb, optimizers):
        for i in range(2):

            def f_loss(i=i):
                return tf.reduce_mean(tf.square(f(xb, training=True) - yb)) * (i + 1)

            def g_loss(i=i):
                target = tf.stop_gradient(f(xb, training=True))
                return tf.reduce_mean(tf.square(g(xb, training=True) - target)) * (1.0 + 0.5 * i)

            yield f_loss, f.trainable_variables, optimizers[0]
            yield g_loss, g.trainable_variables, optimizers[1]

    _train(f, losses, [sgd(), sgd()])
    assert_weights_close(model.get_weights(), [*f.get_weights(), *g.get_weights()])


def test_nested_loops_with_a_minimize_at_each_level_match_a_hand_written_step():
    """A repeat (updating f) inside a for, then g's update at the for's level."""
    keras.backend.clear_session()
    model = fit("loops_nested")
    f, g = functional(seed=1), functional(seed=2)

    def losses(xb, yb, optimizers):
        for scale in (1.0, 0.5):
            for i in range(2):

                def f_loss(i=i, scale=scale):
                    z = f(xb, training=True)
                    return tf.reduce_mean(tf.square(z[:, i] - yb[:, i])) * scale

                yield f_loss, f.trainable_variables, optimizers[0]

            def g_loss(scale=scale):
                target = tf.stop_gradient(f(xb, training=True))
                return tf.reduce_mean(tf.square(g(xb, training=True) - target)) * scale

            yield g_loss, g.trainable_variables, optimizers[1]

    _train(f, losses, [sgd(), sgd()])
    assert_weights_close(model.get_weights(), [*f.get_weights(), *g.get_weights()])


def test_an_index_past_the_end_of_an_axis_fails_naming_the_line(tmp_path):
    """(d) The model has 3 outputs and the loop 4 passes: the checker cannot know
    (the model's output shape), so the traced step raises IndexError naming line 5."""
    spec = tmp_path / "range.step"
    spec.write_text(OUT_OF_RANGE, encoding="utf-8")
    keras.backend.clear_session()
    model = functional(cls=stepc.load(str(spec)).ColumnModel)
    model.compile(optimizer=sgd())
    x, y = data()
    with pytest.raises(IndexError, match=RANGE_MESSAGE):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)


RANGE_MESSAGE = r"range\.step:5: index 3 is out of range for axis 1 of length 3"


@pytest.fixture(scope="module")
def backend_weights(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Each backend's weights after training every loop spec, in its own process."""
    out = tmp_path_factory.mktemp("loops")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    found = {}
    for backend in ("tensorflow", "jax", "torch"):  # one at a time: the cores are shared
        path = out / f"{backend}.npz"
        command = [sys.executable, "-m", "tests.support.loops_worker", "--backend", backend]
        run = subprocess.run(
            [*command, "--out", str(path)], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, f"{backend}: {run.stderr[-3000:]}"
        with np.load(path) as arrays:
            found[backend] = {key: arrays[key] for key in arrays.files}
    return found


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("name", list(RUNS))
def test_every_backend_trains_the_loop_specs_as_tensorflow(backend, name, backend_weights):
    """JAX (jit) and PyTorch against the TensorFlow module, weight for weight."""
    reference = backend_weights["tensorflow"]
    keys = sorted((k for k in reference if k.startswith(f"{name}/")), key=_position)
    assert keys, name
    got = [backend_weights[backend][k] for k in keys]
    assert_weights_close(got, [reference[k] for k in keys], label=f"{name} on {backend}")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_backend_checks_a_loop_index_when_traced(backend, backend_weights):
    """(d) on JAX (whose indexing clamps) and PyTorch: the same IndexError."""
    message = str(backend_weights[backend]["range_error"])
    assert message.startswith("IndexError: ")
    assert re.search(RANGE_MESSAGE, message), message


def _position(key: str) -> int:
    return int(key.rpartition("/")[2])
