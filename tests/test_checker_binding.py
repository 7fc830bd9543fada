"""Arguments bind to parameters the way Python binds them: the diagnostics.

An operation, a model, a loss object, `compiled_loss` and a metric update
are checked as Python would call the generated code: the positional
arguments first, then each keyword by its name; every required parameter
bound exactly once (a keyword naming a later parameter does not stand for
an earlier one: F2 in the fuzz findings), an unknown keyword refused with a
*did you mean* over that call's own parameters, and a parameter the target
takes only by position refused as a keyword. The style of
`tests/test_checker.py`, with the helpers of `tests/support/checker.py`.
"""

from __future__ import annotations

import pytest

from tests.support.checker import (
    FUNCTIONAL_BODY,
    SUBMODELS_BODY,
    at,
    check,
    errors,
    functional,
    submodels,
    the_error,
)

MEAN = "the signature is mean(x, axis=..., keepdims=...)"

# ---------------------------------------------------------------- required parameters


def test_keyword_of_a_later_parameter_does_not_bind_the_first() -> None:
    """F2: `mean(axis=1)` has no `x`; the module failed when traced."""
    text = functional("v = mean(axis=1)", "return k=v")
    check(the_error(text), "`mean` is missing the argument `x`", at(text, 3, "mean"), MEAN)


def test_missing_arguments_are_named() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=clip(x_max=1.0)")
    check(
        the_error(text),
        "`clip` is missing the arguments `x`, `x_min`",
        at(text, 6, "clip"),
        "the signature is clip(x, x_min, x_max)",
    )


def test_required_parameters_given_by_keyword_are_accepted() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=clip(x, x_max=1.0, x_min=0.0)")
    assert errors(text) == []


def test_metric_update_missing_its_value() -> None:
    text = submodels(
        "loss = mean(gen(x))",
        "minimize loss over gen using g_opt",
        "update tracker(sample_weight=loss)",
    )
    check(
        the_error(text),
        "`tracker` is missing the argument `values`",
        (8, 9),
        "the signature is tracker(values, sample_weight=...)",
    )


def test_loss_object_missing_its_labels() -> None:
    text = functional(
        "loss = mse(y_pred=self(x))",
        "minimize loss over self",
        "return loss=loss",
        header="model M(Functional):\n    loss mse = MeanSquaredError()\n    train(x, y):\n",
    )
    check(
        the_error(text),
        "`mse` is missing the argument `y_true`",
        at(text, 4, "mse("),
        "the signature is mse(y_true, y_pred, sample_weight=...)",
    )


def test_compiled_loss_missing_its_prediction() -> None:
    """The value's error is reported once: no "does not depend on `self`" follows."""
    text = functional("loss = compiled_loss(y, sample_weight=y)", "minimize loss over self")
    check(
        the_error(text),
        "`compiled_loss` is missing the argument `y_pred`",
        at(text, 3, "compiled_loss"),
        "the signature is compiled_loss(y, y_pred, sample_weight=...)",
    )


# ---------------------------------------------------------------- unknown keywords


def test_unknown_keyword_gets_a_did_you_mean_over_the_operations_parameters() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=mean(x, axs=1)")
    check(
        the_error(text),
        "`mean` has no parameter `axs`",
        at(text, 6, "axs"),
        "did you mean `axis`?",
    )


def test_unknown_keyword_without_a_neighbour_shows_the_signature() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=mean(x, foo=1)")
    check(the_error(text), "`mean` has no parameter `foo`", at(text, 6, "foo"), MEAN)


def test_unknown_keyword_of_a_metric_update() -> None:
    text = submodels(
        "loss = mean(gen(x))",
        "minimize loss over gen using g_opt",
        "update tracker(loss, weight=loss)",
    )
    check(
        the_error(text),
        "`tracker` has no parameter `weight`",
        at(text, 8, "weight"),
        "the signature is tracker(values, sample_weight=...)",
    )


def test_unknown_keyword_of_a_model_call() -> None:
    text = functional(
        "loss = mean(self(x, trainig=False))", "minimize loss over self", "return loss=loss"
    )
    check(
        the_error(text),
        "`self` has no parameter `trainig`",
        at(text, 3, "trainig"),
        "did you mean `training`?",
    )


# ---------------------------------------------------------------- by position only


def test_model_inputs_are_given_by_position() -> None:
    """A sub-model's `call` may name its input otherwise: `gen(inputs=z)` could fail."""
    text = submodels("loss = mean(disc(inputs=gen(x)))", *SUBMODELS_BODY[1:])
    check(
        the_error(text),
        "`disc` takes `inputs` by position",
        at(text, 6, "inputs"),
        "write `disc(value)`: the signature is disc(inputs, training=...)",
    )


def test_global_norm_takes_its_list_by_position() -> None:
    """`global_norm` takes its list by position, as tf.linalg.global_norm (parameter
    `t_list`) did: `gradients=` is refused."""
    text = functional(
        "loss = mean(self(x))",
        "g = gradient(loss, self)",
        "minimize loss over self",
        "return n=global_norm(gradients=g)",
    )
    check(
        the_error(text),
        "`global_norm` takes `gradients` by position",
        at(text, 6, "gradients"),
        "write `global_norm(value)`: the signature is global_norm(gradients)",
    )


@pytest.mark.parametrize(
    "call",
    [
        "mean(x=x, axis=0)",
        "mse(y_true=y, y_pred=self(x))",
        "compiled_loss(y=y, y_pred=self(x))",
    ],
)
def test_keywords_naming_every_parameter_are_accepted(call: str) -> None:
    text = functional(
        f"v = {call}",
        "loss = mean(self(x))",
        "minimize loss over self",
        "return k=v",
        header="model M(Functional):\n    loss mse = MeanSquaredError()\n    train(x, y):\n",
    )
    assert errors(text) == []


def test_an_unknown_keyword_stands_for_the_missing_parameter() -> None:
    """One mistake, one error: `mean(xs=v)` meant `x`, which is not missing too."""
    text = functional(*FUNCTIONAL_BODY, "return a=mean(xs=x)")
    check(the_error(text), "`mean` has no parameter `xs`", at(text, 6, "xs"), "did you mean `x`?")


def test_a_tuple_element_that_is_a_model_cannot_be_named() -> None:
    text = submodels("a, b = (gen, x)", *SUBMODELS_BODY)
    check(
        the_error(text),
        "a model cannot be given another name",
        at(text, 6, "gen,"),
        "call it, or name it directly where it is used",
    )


@pytest.mark.parametrize(
    "call",
    [
        "binary_crossentropy(y, self(x), from_logits=True)",
        "categorical_crossentropy(y, self(x), label_smoothing=0.1, axis=-1)",
        "sparse_categorical_crossentropy(y, self(x), from_logits=True, ignore_class=0)",
        'self(x) * ones_like(x, dtype="float32")',
        'self(x + normal(shape(x), stddev=0.1, dtype="float32"))',
        'self(x + uniform(shape(x), minval=-0.1, maxval=0.1, dtype="float32"))',
    ],
)
def test_keras_keywords_users_write_are_accepted(call: str) -> None:
    text = functional(f"loss = mean({call})", "minimize loss over self", "return loss=loss")
    assert errors(text) == []


def test_a_tuple_holding_a_model_cannot_be_named() -> None:
    text = submodels("t = (x, gen)", *SUBMODELS_BODY)
    check(
        the_error(text),
        "a model cannot be given another name",
        at(text, 6, "gen)"),
        "call it, or name it directly where it is used",
    )


# ---------------------------------------------------------------- argument kinds (F10)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ('cast(x, "notadtype")', "`cast` takes a dtype name as `dtype`, got the string"),
        ("cast(x, 3)", "`cast` takes a dtype name as `dtype`, got a number"),
        ('zeros(shape(x), dtype="nope")', "`zeros` takes a dtype name as `dtype`"),
        ("ones(x)", "`ones` takes a shape as `shape`, got a tensor"),
        ("sum(x, axis=(1, 2.5))", "`sum` takes an axis as `axis`, got a sequence"),
        ("mean(x, axis=0.5)", "`mean` takes an axis as `axis`, got a number"),
        ("concatenate(x)", "`concatenate` takes a list or tuple of tensors as `xs`"),
        ("stack(x)", "`stack` takes a list or tuple of tensors as `x`, got a tensor"),
        ("matmul(x, 2.0)", "`matmul` takes a tensor as `x2`, got a number"),
        ("square(None)", "`square` takes a tensor or a number as `x`, got None"),
    ],
)
def test_an_argument_of_the_wrong_kind_is_refused(call: str, expected: str) -> None:
    """F10: each was accepted and failed when traced."""
    loss = "loss = mean(self(x)) + 0.0 * mean(v)"
    text = functional(f"v = {call}", loss, "minimize loss over self", "return k=loss")
    (problem,) = errors(text)
    assert problem.message.startswith(expected), problem.message
    assert problem.hint


def test_a_misspelt_dtype_gets_a_did_you_mean() -> None:
    text = functional('v = cast(x, "flaot32")', "return k=mean(v)")
    assert "float32" in the_error(text).hint


@pytest.mark.parametrize(
    "call",
    [
        'cast(x, "bfloat16")',
        'zeros(shape(x), dtype="int32")',
        "zeros((shape(x)[0], 3))",
        "ones([2, 3])",
        "reshape(x, (-1, 2))",
        "reshape(x, -1)",
        "sum(x, axis=(1, -1))",
        "mean(x, axis=None)",
        "concatenate([x, x], axis=-1)",
        "stack((x, x))",
        "matmul(x, ones((2, 2)))",
        "maximum(x, 0.0)",
        "ones_like(x, dtype=None)",
    ],
)
def test_arguments_of_the_right_kind_are_accepted(call: str) -> None:
    text = functional(f"v = {call}", "return k=mean(v)")
    assert errors(text) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("p = self(None)", "`self` takes a tensor (or several) as `inputs`, got None"),
        ("p = self(shape(x))", "`self` takes a tensor (or several) as `inputs`, got a shape"),
    ],
)
def test_a_model_input_of_the_wrong_kind_is_refused(line: str, expected: str) -> None:
    text = functional(line, "return k=mean(x)")
    assert the_error(text).message.startswith(expected)


def test_a_loss_object_and_a_metric_update_refuse_none_as_a_tensor() -> None:
    loss = functional(
        "loss = mse(y, None)",
        "minimize loss over self",
        "return loss=loss",
        header="model M(Functional):\n    loss mse = MeanSquaredError()\n    train(x, y):\n",
    )
    assert the_error(loss).message == "`mse` takes a tensor or a number as `y_pred`, got None"
    update = submodels(
        "loss = mean(gen(x))", "minimize loss over gen using g_opt", "update tracker(None)"
    )
    assert the_error(update).message.startswith("`tracker` takes a tensor or a number as `values`")
