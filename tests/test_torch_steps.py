"""The PyTorch steps' own decisions (stepc.emit.torch), end to end against TensorFlow.

Each case is a small spec compiled for one backend (`stepc.compile_source(...,
backend=...)`) and trained the same way on TensorFlow and on PyTorch: the same initial
weights (every weight replaced by a fixed numpy table), the same three batches of 8,
unshuffled, one epoch, SGD. Keras's backend is fixed when Keras is first imported, so
the module runs itself twice, once per backend (`python -m tests.test_torch_steps
BACKEND OUT`), both at once, and each test compares one case's numbers:

- a simultaneous update whose second loss differentiates through the first model: both
  gradients before either update (an update in place first would fail on torch, or
  differ from TensorFlow's tape);
- a gradient penalty: the gradient is differentiated again (`create_graph`); without
  it the penalty would not reach the weights;
- a model output no loss reads: its variables get no gradient and SGD with weight decay
  leaves them exactly as they were (a zero gradient would decay them); the global norm
  of `gradient(loss, self)` counts them as zeros (None would fail);
- evaluate() taking `gradient(...)`: Keras runs it under `torch.no_grad()`;
- a LossScaleOptimizer (float32: the scale is exact) and mixed_float16;
- gradient clipping of one of two targets, each kind, as TensorFlow clips;
- a spec's `jit_compile = True`: XLA on TensorFlow, torch.compile left off.

Weights at atol=1e-6, rtol=1e-5; logs and evaluate() at rtol=1e-5; the mixed_float16
case at atol=rtol=1e-3 (float16 arithmetic, rounded differently by each backend's
kernels); the loss scale of a LossScaleOptimizer exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.compare import ATOL, RTOL, assert_logs_close, assert_weights_close

BACKENDS = ("tensorflow", "torch")
TIMEOUT = 600  # seconds for both workers (2 busy cores)
MIXED_TOLERANCE = 1e-3

SIMULTANEOUS = """
model Pair:
    init(f: Model, g: Model)
    compile(f_opt: Optimizer, g_opt: Optimizer)
    train(x, y):
        f_loss = mean(square(f(x) - y))
        g_loss = mean(square(f(g(x)) - y))
        minimize f_loss over f using f_opt
        minimize g_loss over g using g_opt
        return f_loss=f_loss, g_loss=g_loss
"""

PENALTY = """
model Penalized(Functional):
    train(x, y):
        fit_loss = mean(square(self(x) - y))
        slopes = gradient(sum(self(x)), x)
        penalty = mean(square(slopes))
        minimize fit_loss + penalty over self using optimizer
        return fit_loss=fit_loss, penalty=penalty
"""

UNUSED_HEAD = """
model Heads(Functional):
    train(x, y):
        first, second = self(x)
        loss = mean(square(first - y))
        grads = gradient(loss, self)
        minimize loss over self using optimizer
        return loss=loss, grad_norm=global_norm(grads)
"""

TEST_GRADIENT = """
model Sensitivity(Functional):
    metric loss_tracker = Mean(name="loss")
    metric slope_tracker = Mean(name="slope")
    train(x, y):
        loss = mean(square(self(x) - y))
        minimize loss over self using optimizer
        update loss_tracker(loss)
    test(x, y):
        loss = mean(square(self(x) - y))
        slopes = gradient(loss, x)
        update loss_tracker(loss)
        update slope_tracker(mean(abs(slopes)))
"""

JIT = """
model Compiled(Functional):
    jit_compile = True
    train(x, y):
        loss = mean(square(self(x) - y))
        minimize loss over self using optimizer
        return loss=loss
"""

CLIPPED = """
model Clipped:
    init(f: Model, g: Model)
    train(x, y):
        first, second = f(x)
        loss = mean(square(first - y)) + mean(square(g(x) - y))
        minimize loss over f ({kind}=0.05), g using optimizer
        return loss=loss
"""

PLAIN = """
model Plain(Functional):
    train(x, y):
        loss = mean(square(self(x) - y))
        minimize loss over self using optimizer
        return loss=loss
"""


# ---------------------------------------------------------------- the worker


def _module(text: str, name: str):
    import types

    import keras
    import stepc

    module = types.ModuleType(f"torch_steps_{name}")
    source = stepc.compile_source(text, f"{name}.step", backend=keras.backend.backend())
    exec(source, module.__dict__)
    return module


def _fixed(*models) -> None:
    """Every weight of every model from a numpy table: the same on each backend."""
    index = 0
    for model in models:
        for weight in model.weights:
            table = np.random.default_rng(100 + index).uniform(-0.5, 0.5, weight.shape)
            weight.assign(table.astype(weight.dtype))
            index += 1


def _mlp(inputs: int, outputs, hidden: int = 4):
    """Dense(hidden, tanh) into one Dense head per entry of `outputs` (units)."""
    import keras

    x = keras.Input((inputs,))
    h = keras.layers.Dense(hidden, activation="tanh")(x)
    heads = [keras.layers.Dense(units)(h) for units in outputs]
    return x, heads if len(heads) > 1 else heads[0]


def _data(features: int = 2):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(24, features)).astype("float32")
    return x, rng.normal(size=(24, 1)).astype("float32")


def _weights(*models) -> list:
    return [np.asarray(w).tolist() for m in models for w in m.get_weights()]


def _fit(model, x, y) -> list:
    """Every batch's logs (3 batches of 8, in order)."""
    import keras

    logs = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs=None, record=logs: record.append(
            {k: float(v) for k, v in logs.items()}
        )
    )
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[record])
    return logs


def _sgd(**options):
    import keras

    return keras.optimizers.SGD(0.1, **options)


def case_simultaneous() -> dict:
    import keras

    f = keras.Model(*_mlp(2, [1]))
    g = keras.Model(*_mlp(2, [2]))
    _fixed(f, g)
    model = _module(SIMULTANEOUS, "pair").Pair(f=f, g=g)
    model.compile(f_opt=_sgd(), g_opt=_sgd())
    logs = _fit(model, *_data())
    return {"weights": _weights(f, g), "logs": logs}


def case_penalty() -> dict:
    model = _module(PENALTY, "penalized").Penalized(*_mlp(2, [1]))
    _fixed(model)
    model.compile(optimizer=_sgd())
    logs = _fit(model, *_data())
    return {"weights": _weights(model), "logs": logs}


def case_unused_head() -> dict:
    model = _module(UNUSED_HEAD, "heads").Heads(*_mlp(2, [1, 2]))
    _fixed(model)
    initial = _weights(model)
    model.compile(optimizer=_sgd(weight_decay=0.5))
    logs = _fit(model, *_data())
    return {"initial": initial, "weights": _weights(model), "logs": logs}


def case_test_gradient() -> dict:
    model = _module(TEST_GRADIENT, "sensitivity").Sensitivity(*_mlp(2, [1]))
    _fixed(model)
    model.compile(optimizer=_sgd())
    x, y = _data()
    results = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    return {"evaluate": {k: float(v) for k, v in results.items()}}


def case_loss_scale() -> dict:
    import keras

    model = _module(PLAIN, "plain").Plain(*_mlp(2, [1]))
    _fixed(model)
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(_sgd()))
    logs = _fit(model, *_data())
    scale = float(model.optimizer.dynamic_scale.numpy())
    return {"weights": _weights(model), "logs": logs, "scale": scale}


def case_mixed_precision() -> dict:
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _module(PLAIN, "plain_mixed").Plain(*_mlp(2, [1]))
        _fixed(model)
        model.compile(optimizer=_sgd())  # Keras wraps it: a LossScaleOptimizer
        logs = _fit(model, *_data())
        scale = float(model.optimizer.dynamic_scale.numpy())
        return {"weights": _weights(model), "logs": logs, "scale": scale}
    finally:
        keras.mixed_precision.set_global_policy("float32")


def case_clipping() -> dict:
    """Each clip kind on f (two heads, one unread: None gradients), g unclipped."""
    import keras

    results = {}
    for kind in ("clip_norm", "clip_global_norm", "clip_value"):
        f, g = keras.Model(*_mlp(2, [1, 2])), keras.Model(*_mlp(2, [1]))
        _fixed(f, g)
        model = _module(CLIPPED.format(kind=kind), f"clipped_{kind}").Clipped(f=f, g=g)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
        results[kind] = {"logs": _fit(model, *_data()), "weights": _weights(f, g)}
    return results


def case_jit_default() -> dict:
    model = _module(JIT, "compiled").Compiled(*_mlp(2, [1]))
    model.compile(optimizer=_sgd())
    logs = _fit(model, *_data())
    return {"jit_compile": model.jit_compile, "logs": logs}


CASES = {name[5:]: case for name, case in dict(globals()).items() if name.startswith("case_")}


def _run_cases(out: Path) -> None:
    import traceback

    results = {}
    for name, case in CASES.items():
        try:
            results[name] = case()
        except Exception:  # reported by that case's test
            results[name] = {"error": traceback.format_exc(limit=-6)}
    out.write_text(json.dumps(results))


# ---------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    """Each backend's results of every case, from one subprocess per backend."""
    folder = tmp_path_factory.mktemp("torch_steps")
    root = Path(__file__).resolve().parents[1]
    processes = {}
    for backend in BACKENDS:
        env = {**os.environ, "KERAS_BACKEND": backend}
        command = [sys.executable, "-m", "tests.test_torch_steps", str(folder / backend)]
        processes[backend] = subprocess.Popen(
            command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    results = {}
    for backend, process in processes.items():
        _, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, stderr.decode()[-3000:]
        results[backend] = json.loads((folder / backend).read_text())
    return results


def _case(runs, name: str) -> tuple[dict, dict]:
    """The case's TensorFlow and torch results, neither of which raised."""
    expected, actual = runs["tensorflow"][name], runs["torch"][name]
    for backend, result in (("tensorflow", expected), ("torch", actual)):
        assert "error" not in result, f"{name} on {backend}:\n{result.get('error')}"
    return expected, actual


def _arrays(weights: list) -> list[np.ndarray]:
    return [np.asarray(w, dtype="float32") for w in weights]


def _assert_same_training(expected: dict, actual: dict, rtol=RTOL, atol=ATOL) -> None:
    """Every weight after the 3 steps, and each step's logs, torch against TensorFlow."""
    actual_weights, expected_weights = _arrays(actual["weights"]), _arrays(expected["weights"])
    assert_weights_close(actual_weights, expected_weights, rtol=rtol, atol=atol)
    for step, (got, want) in enumerate(zip(actual["logs"], expected["logs"], strict=True)):
        assert_logs_close(got, want, f"step {step} logs", rtol=rtol)


def test_simultaneous_update_takes_both_gradients_before_either_update(runs):
    """g's loss differentiates through f, which f's update changes in place: torch
    must take both gradients first, as TensorFlow's two tapes do. Weights of f and g
    (atol 1e-6, rtol 1e-5) and each step's f_loss and g_loss (rtol 1e-5)."""
    _assert_same_training(*_case(runs, "simultaneous"))


def test_gradient_penalty_is_differentiated_again(runs):
    """The penalty on the input gradient reaches the weights only through a graph of
    that gradient (create_graph). Weights (atol 1e-6, rtol 1e-5) and each step's
    fit_loss and penalty (rtol 1e-5); the penalty is not negligible."""
    expected, actual = _case(runs, "penalty")
    _assert_same_training(expected, actual)
    assert all(logs["penalty"] > 1e-3 for logs in actual["logs"])


def test_unused_variables_are_skipped_not_zeroed(runs):
    """The second head is read by no loss: its variables get no gradient, so SGD with
    weight decay 0.5 leaves them exactly as they were (a zero gradient would decay
    them by 5% a step, as the other weights are). All weights against TensorFlow
    (atol 1e-6, rtol 1e-5); the second head's against its initial values, exactly."""
    expected, actual = _case(runs, "unused_head")
    _assert_same_training(expected, actual)
    initial, final = _arrays(actual["initial"]), _arrays(actual["weights"])
    assert_weights_close(final[-2:], initial[-2:], "unused head", rtol=0, atol=0)
    assert not np.array_equal(final[2], initial[2])  # the first head's kernel moved


def test_gradient_of_a_model_is_zero_where_unconnected(runs):
    """`gradient(loss, self)` holds zeros for the second head (None would fail
    global_norm): each step's grad_norm against TensorFlow's (rtol 1e-5)."""
    expected, actual = _case(runs, "unused_head")
    for got, want in zip(actual["logs"], expected["logs"], strict=True):
        assert_logs_close(got, want, "grad_norm", rtol=RTOL)
        assert got["grad_norm"] > 0


def test_evaluate_takes_a_gradient_under_no_grad(runs):
    """Keras runs evaluate() under torch.no_grad(); the step records its gradient's
    computation under enable_grad. evaluate()'s loss and mean |slope| (rtol 1e-5)."""
    expected, actual = _case(runs, "test_gradient")
    assert_logs_close(actual["evaluate"], expected["evaluate"], "evaluate()", rtol=RTOL)
    assert actual["evaluate"]["slope"] > 0


def test_loss_scale_optimizer_in_float32_matches_tensorflow(runs):
    """A LossScaleOptimizer in float32 (the loss times 2**15, the gradients divided
    back, exactly): weights (atol 1e-6, rtol 1e-5), each step's loss (rtol 1e-5) and
    the loss scale after the 3 steps (exactly)."""
    expected, actual = _case(runs, "loss_scale")
    _assert_same_training(expected, actual)
    assert actual["scale"] == expected["scale"]


def test_mixed_float16_trains_with_keras_loss_scaling(runs):
    """mixed_float16: compile() wraps the optimizer in a LossScaleOptimizer and the
    step scales the loss. Weights and each step's loss at atol=rtol=1e-3 (float16
    arithmetic), the loss scale exactly."""
    expected, actual = _case(runs, "mixed_precision")
    tolerance = MIXED_TOLERANCE
    _assert_same_training(expected, actual, rtol=tolerance, atol=tolerance)
    assert actual["scale"] == expected["scale"]


@pytest.mark.parametrize("kind", ["clip_norm", "clip_global_norm", "clip_value"])
def test_clipping_matches_tensorflow(runs, kind):
    """One of two targets clipped at 0.05 (SGD(0.5): the clip binds), its unread head
    left without gradients: weights of both (atol 1e-6, rtol 1e-5) and each step's
    loss (rtol 1e-5) against TensorFlow's tf.clip_by_norm / clip_by_global_norm / clip."""
    expected, actual = _case(runs, "clipping")
    _assert_same_training(expected[kind], actual[kind])


def test_spec_jit_default_leaves_torch_compile_off(runs):
    """`jit_compile = True` in a spec is XLA on TensorFlow but never torch.compile
    (minutes to compile; a gradient penalty fails): compile() leaves it off on torch,
    and fit() trains eagerly."""
    expected, actual = _case(runs, "jit_default")
    assert expected["jit_compile"] is True
    assert actual["jit_compile"] is False
    assert len(actual["logs"]) == 3


if __name__ == "__main__":
    _run_cases(Path(sys.argv[1]))
