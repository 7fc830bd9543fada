"""Mixed precision: where the generated step casts a model's output to float32.

Under mixed_float16 a model returns float16 while the step's other tensors are float32,
and TensorFlow's operators do not convert one into the other. Keras's loss objects,
metrics and models cast what they are given; anything else the spec does with a model's
output needs it in float32 (``compiler/lower/precision.py``). These tests check, on the
generated text, that the cast is where it is needed and nowhere else, and, at run time,
that the helper is the identity in float32 (no op added) and casts float16 structures.
The numeric comparisons under mixed precision (VAE, WGAN-GP against references and
against float32) are in ``test_fit_features_later_specs.py``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import stepc
import tensorflow as tf

from tests.support.constructs import compile_spec, step_source

CAST = "_full_precision("

TWO_MODELS = """
model Pair:
    init(encoder: Model, decoder: Model)
    loss loss_fn = MeanSquaredError()
    metric tracker = Mean(name="loss")
    metric mae = MeanAbsoluteError(name="mae")
    train(x, y):
{body}
"""


def train_step(body: str) -> str:
    """The generated train_step of TWO_MODELS with ``body`` (8-space indented lines)."""
    indented = "\n".join(f"        {line}" for line in body.strip().split("\n"))
    return step_source(stepc.compile_source(TWO_MODELS.format(body=indented), "pair.step"))


def statement_line(step: str, target: str) -> str:
    """The generated statement that assigns ``target``, joined into one line if the
    formatter split it (its continuation lines are indented deeper, or close a
    bracket at its depth: ``) + g(``)."""
    lines = step.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{target} ="))
    depth = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (
        len(lines[end]) - len(lines[end].lstrip()) > depth or lines[end].strip().startswith(")")
    ):
        end += 1
    joined = " ".join(line.strip() for line in lines[start:end])
    return joined.replace("( ", "(").replace(" )", ")").replace(",)", ")")


TRAINED = "loss = loss_fn(y, y_pred)\nminimize loss over encoder\nupdate tracker(loss)"
UNCAST_USES = {
    "a loss object": "",
    "a metric": "update mae(y, y_pred)",
    "another model": "update mae(y, decoder(y_pred))",
}


@pytest.mark.parametrize("use", UNCAST_USES)
def test_an_output_given_to_what_casts_it_is_not_cast(use):
    """``y_pred = encoder(x)`` given only to a loss object, a metric's update or another
    model: they cast their inputs themselves, so the generated step has no cast."""
    step = train_step(f"y_pred = encoder(x)\n{TRAINED}\n{UNCAST_USES[use]}")
    assert "y_pred = self.encoder(x, training=True)" in step
    assert CAST not in step


def test_an_output_in_arithmetic_is_cast_once_where_it_is_made():
    """``y_pred`` used by the spec's own arithmetic: the assignment casts it, once, and
    its other uses (a loss object) read the cast value."""
    step = train_step(
        "y_pred = encoder(x)\n"
        "loss = mean(square(y_pred - y)) + loss_fn(y, y_pred)\n"
        "minimize loss over encoder\n"
        "update tracker(loss)"
    )
    expected = "y_pred = _full_precision(self.encoder(x, training=True))"
    assert statement_line(step, "y_pred") == expected
    assert step.count(CAST) == 1


def test_a_tuple_of_outputs_is_cast_as_a_whole():
    """``a, b = encoder(x)`` with ``b`` in arithmetic: the call is cast as a whole (the
    helper maps over the outputs)."""
    step = train_step(
        "a, b = encoder(x)\n"
        "loss = loss_fn(y, a) + mean(b)\n"
        "minimize loss over encoder\n"
        "update tracker(loss)"
    )
    assert "a, b = _full_precision(self.encoder(x, training=True))" in step


def test_a_call_inside_an_operation_is_cast_in_place():
    """``mean(encoder(x))``: the call is cast where it is; ``loss_fn(y, decoder(x))`` in
    the same statement is not."""
    step = train_step(
        "loss = mean(encoder(x)) + loss_fn(y, decoder(x))\n"
        "minimize loss over encoder, decoder\n"
        "update tracker(loss)"
    )
    line = statement_line(step, "loss")
    assert "ops.mean(_full_precision(self.encoder(x, training=True)))" in line
    assert "self.loss_fn(y, self.decoder(x, training=True))" in line


def test_an_alias_used_in_arithmetic_casts_the_output_it_names():
    """``h = encoder(x)``, ``g = h``, then ``g`` in arithmetic: ``h`` is cast where it
    is made (an alias is not followed, so the cast is never missed)."""
    step = train_step(
        "h = encoder(x)\ng = h\nloss = mean(square(g - y))\nminimize loss over encoder\n"
        "update tracker(loss)"
    )
    assert "h = _full_precision(self.encoder(x, training=True))" in step


def test_returned_and_compiled_loss_outputs_are_not_cast():
    """Keras's compiled loss and the returned logs take model outputs as they are."""
    module = stepc.compile_source(
        (
            "model M(Functional):\n"
            "    train(x, y):\n"
            "        y_pred = self(x)\n"
            "        loss = compiled_loss(y, y_pred)\n"
            "        minimize loss over self\n"
            "        update compiled_metrics(y, y_pred)\n"
            "    predict(x):\n"
            "        y_pred = self(x)\n"
            "        return y_pred\n"
        ),
        "m.step",
    )
    assert CAST not in module


def test_the_helper_adds_nothing_in_float32_and_casts_float16_structures():
    """``_full_precision`` returns a float32 tensor itself (so a float32 step's graph has
    no extra op) and casts float16 tensors, in tuples too, to float32 exactly."""
    module = compile_spec(
        "model P:\n"
        "    init(f: Model)\n"
        '    metric tracker = Mean(name="loss")\n'
        "    train(x, y):\n"
        "        loss = mean(square(f(x) - y))\n"
        "        minimize loss over f\n"
        "        update tracker(loss)\n",
        "precision_helper",
    )
    helper = module._full_precision
    single = tf.constant([1.0, 2.0])
    assert helper(single) is single
    half = tf.constant([0.1, 3.5], dtype="float16")
    first, second = helper((half, single))
    assert first.dtype == tf.float32 and second is single
    np.testing.assert_array_equal(first.numpy(), half.numpy().astype("float32"))
    assert keras.backend.standardize_dtype(helper(half).dtype) == "float32"
