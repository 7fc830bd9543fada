"""`jit_compile = True` in a spec: compile() defaults to XLA, and the caller can still say no.

Compared: which `jit_compile` Keras ends up with after `compile()` with and without the
argument, for a model with Keras's own compile and one with its own `compile(...)`; and
that XLA training gives the weights of the same model trained without XLA (rtol 1e-5,
atol 1e-6: XLA fuses operations, so bitwise equality is not expected).
"""

from __future__ import annotations

import keras
import pytest
from stepc.diagnostics import Severity
from stepc.pipeline import analyze, compile_source

from tests.support.compare import assert_weights_close
from tests.support.models import BATCH_SIZE, fresh_functional, regression_data

FUNCTIONAL = """\
model CustomModel(Functional):
    jit_compile = True
    train(x, y):
        loss = compiled_loss(y, self(x))
        minimize loss over self
"""

OWN_COMPILE = """\
model Pair:
    init(net: Model)
    compile(opt: Optimizer, loss_fn: Loss)
    jit_compile = True
    metric tracker = Mean(name="loss")
    train(x, y):
        loss = loss_fn(y, net(x))
        minimize loss over net using opt
        update tracker(loss)
"""


def _module(text: str, name: str) -> dict:
    namespace: dict = {}
    exec(compile(compile_source(text, f"{name}.step"), f"{name}.py", "exec"), namespace)
    return namespace


def test_generated_compile_defaults_to_xla_and_says_where_from():
    text = compile_source(FUNCTIONAL, "jit.step")
    assert "    # jit.step:2  jit_compile = True: XLA, unless compile(jit_compile=False)\n" in text
    assert '        kwargs.setdefault("jit_compile", True)\n' in text


@pytest.mark.parametrize("given, expected", [({}, True), ({"jit_compile": False}, False)])
def test_keras_compile_gets_the_spec_default(given, expected):
    model = fresh_functional(_module(FUNCTIONAL, "jit")["CustomModel"])
    model.compile(optimizer="sgd", loss="mse", **given)
    assert model.jit_compile is expected


@pytest.mark.parametrize("given, expected", [({}, True), ({"jit_compile": False}, False)])
def test_own_compile_gets_the_spec_default(given, expected):
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model = _module(OWN_COMPILE, "pair")["Pair"](net=net)
    model.compile(opt=keras.optimizers.SGD(), loss_fn=keras.losses.MeanSquaredError(), **given)
    assert model.jit_compile is expected


def test_xla_training_matches_training_without_it():
    cls = _module(FUNCTIONAL, "jit")["CustomModel"]
    x, y = regression_data()
    weights = []
    for jit in (True, False):
        keras.utils.set_random_seed(7)
        model = fresh_functional(cls)
        model.compile(optimizer="sgd", loss="mse", jit_compile=jit)
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    assert_weights_close(*weights, "XLA vs not")


def test_jit_compile_is_true_or_false():
    _, diagnostics = analyze(FUNCTIONAL.replace("= True", "= maybe"), "jit.step")
    (diag,) = [d for d in diagnostics if d.severity is Severity.ERROR]
    assert diag.message == "jit_compile is True or False, not `maybe`"
    assert (diag.span.line, diag.span.column) == (2, 19)
    assert (
        diag.hint == "`jit_compile = True` makes compile() use XLA unless given jit_compile=False"
    )
