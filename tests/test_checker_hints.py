"""What `stepc check` accepts must trace and run: hints, cascades, argument types.

The diagnostics of calls whose traced step would fail (an argument a Keras
function cannot take, a constructor keyword its class lacks), the hints that
point at what a spec means (by meaning first, then by a close spelling), and
the errors that must not follow from an earlier one. The style of
`tests/test_checker.py`, with the helpers of `tests/support/checker.py`: one test per diagnostic.
"""

from __future__ import annotations

import pytest

from tests.support.checker import (
    FUNCTIONAL_BODY,
    SUBMODELS_BODY,
    at,
    body,
    check,
    diagnose,
    errors,
    functional,
    submodels,
    the_error,
)

# ---------------------------------------------------------------- suggestions and cascades

NOT_OFFERED = "not an operation stepc offers"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("cond", "takes a Python function, which a spec cannot write"),
        ("scan", "takes a Python function, which a spec cannot write"),
        ("convert_to_numpy", "leaves the graph: a NumPy array is not a traced tensor"),
    ],
)
def test_keras_operation_left_out_says_why(name: str, reason: str) -> None:
    text = functional(*FUNCTIONAL_BODY, f"return a={name}(x)")
    check(
        the_error(text),
        f"`{name}` is {NOT_OFFERED}",
        at(text, 6, name),
        f"it is keras.ops.{name}, left out: {reason}",
    )


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("reduce_mean", "mean"),
        ("concat", "concatenate"),
        ("mse", "mean_squared_error"),
        ("l2_normalize", "normalize"),
        ("reduce_logsumexp", "logsumexp"),
        ("gather", "take"),
        ("softmax_cross_entropy_with_logits", "categorical_crossentropy"),
    ],
)
def test_operation_known_by_another_name(name: str, meant: str) -> None:
    text = functional(*FUNCTIONAL_BODY, f"return a={name}(x)")
    check(
        the_error(text),
        f"`{name}` is not an allowed operation",
        at(text, 6, name),
        f"did you mean `{meant}`?",
    )


def test_far_spelling_neighbour_is_not_suggested() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=mask(x)")
    check(
        the_error(text),
        "`mask` is not an allowed operation",
        at(text, 6, "mask"),
        "see the operation list in docs/language.md",
    )


def test_unknown_operation_does_not_cascade() -> None:
    text = submodels(
        "loss = mean(cond(disc(gen(x))))",
        "other = cond(gen(x))",
        "minimize other over gen using g_opt",
        "update tracker(loss)",
    )
    assert [d.message for d in errors(text)] == [f"`cond` is {NOT_OFFERED}"] * 2


def test_undefined_name_does_not_cascade() -> None:
    text = functional("loss = compiled_loss(y, self(x)) + oops", "minimize loss over self")
    assert [d.message for d in errors(text)] == ["undefined name `oops`"]


def test_error_inside_a_repeat_is_reported_once() -> None:
    text = functional(
        "repeat 2:",
        "    loss = mean(self(x)) + foo",
        "    minimize loss over self",
        "return total=loss",
    )
    assert [d.message for d in errors(text)] == ["undefined name `foo`"]


def test_hint_for_kerass_optimizer_under_an_own_compile_is_declarable() -> None:
    text = submodels(*SUBMODELS_BODY).replace("using g_opt", "using optimizer")
    diag = the_error(text)
    assert diag.message == "`optimizer` is not a declared optimizer"
    assert "compile(optimizer:" not in diag.hint
    # What the hint suggests is accepted.
    fixed = submodels(*SUBMODELS_BODY).replace(
        "g_opt: Optimizer", "g_opt: Optimizer, opt: Optimizer"
    )
    assert "`compile(opt: Optimizer)`" in diag.hint
    assert errors(fixed.replace("using g_opt", "using opt")) == []


def test_many_undefined_names_are_each_reported_once() -> None:
    # How fast: benchmarks/compiler_cost.py `undefined_names` (a target, not a timed test).
    lines = [f"value_{i} = valeu_{i} + activation_outptu_{i}" for i in range(2000)]
    text = functional(*lines, *FUNCTIONAL_BODY)
    assert len(errors(text)) == 4000


# ---------------------------------------------------------------- false positives


def test_reduction_with_an_axis_may_be_a_scalar() -> None:
    """mean(v, 0) of a vector is a scalar; its rank is not known here."""
    text = functional(
        "v = mean(self(x), 1)", "loss = mean(v, 0)", "minimize loss over self", "return total=loss"
    )
    assert errors(text) == []


def test_parameter_used_only_in_an_erroneous_statement_is_used() -> None:
    text = submodels(*SUBMODELS_BODY).replace("disc: Model)", "disc: Model, n: float)")
    text += body("repeat n:", "    update tracker(loss)")
    messages = [d.message for d in diagnose(text)]
    assert "a repeat count must be a positive whole number, not this" in messages
    assert not [m for m in messages if "`n`" in m]


# ---------------------------------------------------------------- argument types

GRADIENTS = ("loss = mean(disc(gen(x)))", "g = gradient(loss, gen)")


@pytest.mark.parametrize(
    ("call", "what"),
    [
        ("mean(g_opt)", "an optimizer"),
        ('square("abc")', "a string"),
        ("mean(tracker)", "a metric"),
        ("mean(g)", "a list of gradients"),
        ("disc(tracker)", "a metric"),
        ("disc(gen)", "a model"),
    ],
)
def test_call_of_an_argument_it_cannot_take(call: str, what: str) -> None:
    text = submodels(
        *GRADIENTS, f"other = {call}", "minimize loss + mean(other) over gen using g_opt"
    )
    text += body("update tracker(loss)")
    name = call.split("(")[0]
    argument = call[len(name) + 1 : -1]
    diag = the_error(text)
    assert (diag.message, (diag.span.line, diag.span.column)) == (
        f"`{name}` cannot take {what}",
        at(text, 8, argument),
    )


def test_update_of_a_model() -> None:
    text = submodels(*SUBMODELS_BODY[:-1], "update tracker(gen)")
    check(the_error(text), "`tracker` cannot take a model", at(text, 8, "gen)"))


def test_operation_of_an_optional_tensor() -> None:
    header = "model M(Functional):\n    train(x, y, w?):\n"
    text = functional(*FUNCTIONAL_BODY, "return a=mean(w)", header=header)
    check(
        the_error(text),
        "`mean` cannot take a tensor or None",
        at(text, 6, "w)"),
        "it is optional (`?`) and may be None; pass it only to losses and metrics",
    )


def test_strings_are_dtypes() -> None:
    text = functional(*FUNCTIONAL_BODY, 'return a=cast(x, "float32"), b=ones((2,), dtype="int32")')
    assert errors(text) == []


def test_global_norm_of_a_tensor() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=global_norm(x)")
    check(
        the_error(text),
        "global_norm(...) takes a list of gradients, not a tensor",
        at(text, 6, "x)"),
        "the gradients with respect to a model: `g = gradient(loss, model)`, then global_norm(g)",
    )


def test_reporting_a_list_of_gradients() -> None:
    text = submodels(*SUBMODELS_BODY[:-1], "g = gradient(mean(gen(x)), gen)", "return g=g")
    check(
        the_error(text),
        "a step cannot report a list of gradients",
        at(text, 9, "g=g")[:1] + (at(text, 9, "g=g")[1] + 2,),
        "return numbers or tensors (a tracker by its name reports its result)",
    )


@pytest.mark.parametrize("over", ["gen, gen", "gen (clip_norm=1.0), gen (clip_value=2.0)"])
def test_target_named_twice(over: str) -> None:
    text = submodels(
        "loss = mean(disc(gen(x)))",
        f"minimize loss over {over} using g_opt",
        "update tracker(loss)",
    )
    check(
        the_error(text),
        "`gen` is a target twice",
        (
            7,
            text.split("\n")[6].rindex("gen") + 1
            if "clip" not in over
            else text.split("\n")[6].index("gen (clip_value") + 1,
        ),
        "name each model once; its variables would be updated twice",
    )


# ---------------------------------------------------------------- constructor arguments


def _with_metric(decl: str) -> str:
    return functional().replace("    train", f"    metric t = {decl}\n    train") + body(
        "update t(loss)"
    )


def test_constructor_keyword_keras_does_not_have() -> None:
    text = _with_metric('Mean(nme="a")')
    check(
        the_error(text),
        "`Mean` has no parameter `nme`",
        at(text, 2, "nme"),
        "did you mean `name`?",
    )


def test_constructor_with_too_many_positional_arguments() -> None:
    text = _with_metric('Mean("a", "float32", 3)')
    check(
        the_error(text),
        "`Mean` takes at most 2 positional arguments (name, dtype), got 3",
        at(text, 2, "Mean"),
        "write the others as keywords: Mean(name=..., dtype=...)",
    )


def test_constructor_keyword_repeating_a_positional_argument() -> None:
    text = _with_metric('Mean("a", name="b")')
    check(
        the_error(text),
        "`Mean` gets `name` twice: as argument 1 and as a keyword",
        at(text, 2, "name="),
        "give each argument once",
    )


def test_loss_reduction_given_by_position() -> None:
    text = functional("loss = mse(y, self(x))", "minimize loss over self", "return total=loss")
    text = text.replace("    train", '    loss mse = MeanSquaredError("sum")\n    train')
    check(
        the_error(text),
        "a spec's loss objects always reduce to the batch mean",
        at(text, 2, '"sum"'),
        "stepc relies on it to scale the loss for distribution; use sum(...) in the step for a sum",
    )


def test_constructor_arguments_keras_has() -> None:
    text = _with_metric('Mean("a", dtype="float32")')
    text = text.replace(
        "    train", "    loss bce = BinaryCrossentropy(True, label_smoothing=0.1)\n    train"
    )
    text = text.replace("minimize loss over self", "minimize loss + bce(y, self(x)) over self")
    assert errors(text) == []


def test_gradient_with_keyword_arguments() -> None:
    text = functional(
        "loss = mean(self(x))", "g = gradient(y=loss, x=x)", "minimize loss + mean(g) over self"
    )
    text += body("return total=loss")
    check(
        the_error(text),
        "gradient(...) takes its arguments by position",
        at(text, 4, "y=loss"),
        "write `gradient(y, x)`: the value, then what it is taken with respect to",
    )
