"""What `stepc check` accepts must compile to valid Python that traces: its diagnostics.

The checks that keep an accepted spec from becoming a module Python rejects
(a repeated keyword argument, blocks nested past Python's limit), from a
trace-time failure (an operation's keyword that Keras's function does not
have, a subscript of a number) or from a model Keras breaks (a declaration
named like an attribute Keras sets during fit()). Written in the style of
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
    errors,
    functional,
    submodels,
    the_error,
)

# ---------------------------------------------------------------- repeated keywords


def test_repeated_keyword_of_a_metric_constructor() -> None:
    text = functional().replace("    train", '    metric t = Mean(name="a", name="b")\n    train')
    text += body("update t(loss)")
    check(
        the_error(text),
        "keyword argument `name` is given twice",
        at(text, 2, 'name="b"'),
        "give each keyword once",
    )


def test_repeated_keyword_of_an_update() -> None:
    text = submodels(
        *SUBMODELS_BODY[:-1], "update tracker(loss, sample_weight=1.0, sample_weight=2.0)"
    )
    check(
        the_error(text),
        "keyword argument `sample_weight` is given twice",
        at(text, 8, "sample_weight=2.0"),
        "give each keyword once",
    )


def test_repeated_keyword_of_an_operation() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=mean(x, axis=0, axis=1)")
    check(
        the_error(text),
        "keyword argument `axis` is given twice",
        at(text, 6, "axis=1"),
        "give each keyword once",
    )


def test_repeated_keyword_of_a_model_call() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=self(x, training=False, training=True)")
    check(
        the_error(text),
        "keyword argument `training` is given twice",
        at(text, 6, "training=True"),
        "give each keyword once",
    )


def test_keyword_repeating_a_positional_argument() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=mean(x, x=x)")
    check(
        the_error(text),
        "`mean` gets `x` twice: as argument 1 and as a keyword",
        at(text, 6, "x=x"),
        "the signature is mean(x, axis=..., keepdims=...)",
    )


def test_keyword_repeating_a_positional_argument_of_clip() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=clip(x, 0, 1, x_min=0)")
    check(
        the_error(text),
        "`clip` gets `x_min` twice: as argument 2 and as a keyword",
        at(text, 6, "x_min=0"),
        "the signature is clip(x, x_min, x_max)",
    )


def test_repeated_clipping_option() -> None:
    text = submodels(
        "loss = mean(disc(gen(x)))",
        "minimize loss over gen (clip_norm=1.0, clip_norm=2.0) using g_opt",
        "update tracker(loss)",
    )
    found = errors(text)
    assert found, "a target with two clipping options must be refused"
    assert all(d.span.line == 7 for d in found)


# ---------------------------------------------------------------- Keras's names


def test_operation_keyword_named_as_keras_names_it() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=clip(x, x_min=0.0, x_max=1.0)")
    assert errors(text) == []


def test_operation_keyword_keras_does_not_have() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=clip(x, min=0.0, max=1.0)")
    found = {d.message: d.hint for d in errors(text)}
    signature = "the signature is clip(x, x_min, x_max)"
    # One error per wrong keyword; the parameters they meant are not missing too.
    assert found == {f"`clip` has no parameter `{k}`": signature for k in ("min", "max")}


@pytest.mark.parametrize("name", ["history", "stop_evaluating", "stop_predicting"])
def test_name_keras_sets_during_fit(name: str) -> None:
    text = submodels().replace("metric tracker", f"metric {name}").replace("tracker(", f"{name}(")
    check(
        the_error(text),
        f"`{name}` is already an attribute of every keras.Model",
        (4, 12),
        f"the model would hold it as self.{name}; pick another name (e.g. `{name}_value`)",
    )


@pytest.mark.parametrize("name", ["inputs", "outputs", "input_spec", "operations", "history"])
def test_name_of_a_functional_model_attribute(name: str) -> None:
    text = functional().replace("    train", f"    metric {name} = Mean()\n    train")
    text += body(f"update {name}(loss)")
    check(
        the_error(text),
        f"`{name}` is already an attribute of every Functional model",
        (2, 12),
        f"the model would hold it as self.{name}; pick another name (e.g. `{name}_value`)",
    )


def test_functional_only_names_are_free_in_a_model_of_submodels() -> None:
    text = submodels().replace("metric tracker", "metric inputs").replace("tracker(", "inputs(")
    assert errors(text) == []


# ---------------------------------------------------------------- subscripts


@pytest.mark.parametrize(
    ("value", "what"),
    [("2.0", "a number"), ('"abc"', "a string"), ("optimizer", "an optimizer")],
)
def test_slicing_a_value_that_is_not_a_tensor(value: str, what: str) -> None:
    text = functional(*FUNCTIONAL_BODY, f"return a=mean(x) * {value}[1:]")
    check(the_error(text), f"{what} cannot be sliced", at(text, 6, value))


def test_indexing_a_number() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=mean(x) * 2[0]")
    check(the_error(text), "a number cannot be indexed", at(text, 6, "2[0]"))


def test_slicing_shapes_tuples_and_tensors() -> None:
    text = functional(*FUNCTIONAL_BODY, "return a=x[1:], b=shape(x)[1:][0], c=(x, y)[0]")
    assert errors(text) == []


# ---------------------------------------------------------------- repeat counts and literals


def _repeated(count: str) -> str:
    return functional(f"repeat {count}:", *(f"    {s}" for s in FUNCTIONAL_BODY))


REPEAT_HINT = (
    "a repeat block is unrolled when the step is traced: write a whole number from 1 to "
    "1000 (`repeat 5:`), or name an int parameter (`init(..., critic_steps: int)`)"
)


# The parser refuses longer numbers; the checker never calls int() on such a text.
@pytest.mark.parametrize("count", ["1001", "1000000000", "9" * 600])
def test_repeat_count_over_the_bound(count: str) -> None:
    text = _repeated(count)
    shown = count if len(count) < 20 else f"a {len(count)}-digit number"
    check(
        the_error(text),
        f"a repeat count is at most 1000, not {shown}",
        at(text, 3, count[:5]),
        REPEAT_HINT,
    )


def test_repeat_count_at_the_bound() -> None:
    assert errors(_repeated("1000")) == []


def test_nested_repeats_unrolling_too_many_times() -> None:
    text = functional("repeat 100:", "    repeat 20:", *(f"        {s}" for s in FUNCTIONAL_BODY))
    check(
        the_error(text),
        "these nested repeat blocks unroll their statements 2000 times (100 x 20)",
        at(text, 4, "repeat"),
        "the step is traced with every pass written out; at most 1000 passes in all",
    )


# ---------------------------------------------------------------- nesting


def _nested_repeats(depth: int, *inner: str) -> str:
    lines = [("    " * level) + "repeat 1:" for level in range(depth)]
    lines += [("    " * depth) + s for s in inner]
    return functional(*lines, "return total=loss")


def test_repeat_nesting_over_the_limit() -> None:
    text = _nested_repeats(9, *FUNCTIONAL_BODY)
    check(
        the_error(text),
        "repeat blocks nest at most 8 deep",
        at(text, 11, "repeat"),
        "Python allows 20 nested blocks in a function; move the inner blocks out, or merge "
        "them into one repeat with a larger count",
    )


def _gradients(count: int) -> list[str]:
    """A chain of gradients, each taken of a value computed from the one before:
    each recording nests inside the next."""
    lines = ["v0 = mean(self(x))"]
    for i in range(1, count + 1):
        lines += [f"g{i} = gradient(v{i - 1}, x)", f"v{i} = mean(g{i}) + mean(self(x))"]
    return [*lines, f"loss = v{count}", "minimize loss over self"]


def test_deepest_accepted_nesting_compiles_to_valid_python() -> None:
    from stepc.pipeline import compile_source

    text = _nested_repeats(8, *_gradients(11))
    assert errors(text) == []
    compile(compile_source(text, "t.step"), "m", "exec")


def test_nesting_over_pythons_limit() -> None:
    text = _nested_repeats(8, *_gradients(12))
    check(
        the_error(text),
        "this step's code would nest 21 blocks (repeat loops and gradient recordings); "
        "Python allows 20",
        at(text, 3, "repeat"),
        "move a repeat block out, or take fewer gradients inside it",
    )


# ---------------------------------------------------------------- metric names in the logs


def test_metric_named_loss_next_to_kerass_loss_tracker() -> None:
    text = functional().replace("    train", '    metric t = Mean(name="loss")\n    train')
    text += body("update t(loss)")
    check(
        the_error(text),
        'metric `t` is named "loss", as Keras\'s loss tracker is',
        at(text, 2, '"loss"'),
        "this model's step uses compiled_loss, whose tracker Keras reports as `loss`: "
        'name the metric otherwise, e.g. `Mean(name="total_loss")`',
    )


def test_metric_named_loss_in_a_model_with_its_own_loss_is_accepted() -> None:
    text = submodels().replace("Mean()", 'Mean(name="loss")')
    assert errors(text) == []


def test_two_metrics_with_one_keras_name() -> None:
    text = submodels().replace(
        "    metric tracker = Mean()",
        '    metric tracker = Mean(name="m")\n    metric other = Sum(name="m")',
    )
    text += body("update other(loss)")
    check(
        the_error(text),
        'metrics `tracker` and `other` are both named "m" in the logs',
        at(text, 5, '"m"'),
        "Keras reports each metric under its name; give each its own `name=`",
    )


def test_two_metrics_with_one_default_keras_name() -> None:
    text = submodels().replace(
        "    metric tracker = Mean()", "    metric tracker = Mean()\n    metric other = Mean()"
    )
    text += body("update other(loss)")
    check(
        the_error(text),
        'metrics `tracker` and `other` are both named "mean" in the logs',
        at(text, 5, "Mean"),
        "Keras reports each metric under its name; give each its own `name=`",
    )


# ---------------------------------------------------------------- gradient after a minimize


@pytest.mark.parametrize(
    "lines",
    [
        ("loss = mean(self(x))", "minimize loss over self", "g = gradient(loss, x)"),
        (
            "a = x * 2.0",
            "loss = mean(self(a))",
            "minimize loss over self",
            "g = gradient(mean(a), x)",
        ),
    ],
)
def test_gradient_of_a_value_computed_before_a_minimize_compiles(lines) -> None:
    """The gradient's recording holds the minimize (crashed the lowering before)."""
    from stepc.pipeline import compile_source

    text = functional(*lines, "return g=mean(g)")
    assert errors(text) == []
    compile(compile_source(text, "t.step"), "m", "exec")


def test_gradient_after_a_minimize_of_a_value_computed_after_it() -> None:
    text = functional(
        "loss = mean(self(x))",
        "minimize loss over self",
        "v = mean(self(x))",
        "g = gradient(v, x)",
        "return g=mean(g)",
    )
    assert errors(text) == []


# ---------------------------------------------------------------- one run, every error

SPLIT_LOSS = (
    "a = gen(x)",
    "d_loss = mean(disc(x))",
    "minimize d_loss over disc using d_opt",
    "b = mean(a + disc(x))",
    "minimize b over gen using g_opt",
    "update tracker(b)",
)


def test_lowering_errors_are_reported_with_the_check_errors() -> None:
    """A placement error of one step and a check error of another, in one run."""
    text = submodels(*SPLIT_LOSS) + "    test(x):\n" + body("update tracker(undefined_name)")
    found = sorted((d.span.line, d.message) for d in errors(text))
    assert found == [
        (
            9,
            "the loss minimized on line 10 is computed partly before and partly after the "
            "minimize on line 8",
        ),
        (13, "undefined name `undefined_name`"),
    ]


def test_lowering_errors_of_a_step_with_check_errors_are_left_for_later() -> None:
    """The lowering reads only steps the checker accepted (their names resolve)."""
    text = submodels(*SPLIT_LOSS, "update tracker(undefined_name)")
    assert [d.message for d in errors(text)] == ["undefined name `undefined_name`"]


# ---------------------------------------------------------------- derived test steps


def test_model_of_submodels_with_a_train_step_only_compiles() -> None:
    from stepc.pipeline import compile_source

    compile(compile_source(submodels(), "t.step"), "m", "exec")


@pytest.mark.parametrize("other_error", [False, True])
def test_a_train_steps_finding_is_reported_once(other_error: bool) -> None:
    """A derived test step repeats the train step's statements, not its findings."""
    lines = [
        "z = 2.0 * x",
        "g = gradient(mean(gen(x)), z)",
        "loss = mean(disc(gen(x))) + mean(g)",
        "minimize loss over gen using g_opt",
        "update tracker(loss)",
    ]
    text = functional(*FUNCTIONAL_BODY)  # a second model, with or without an error
    text = submodels(*lines) + text.replace("model M", "model N").replace(
        "compiled_loss(y, y_pred)",
        "compiled_loss(y, y_pred) + oops" if other_error else "compiled_loss(y, y_pred)",
    )
    found = [(d.span.line, d.message) for d in errors(text)]
    expected = [(7, "the value does not depend on `z`: its gradient would be None")]
    if other_error:
        expected.append((14, "undefined name `oops`"))
    assert sorted(found) == expected


def test_lowering_errors_are_reported_with_syntax_errors() -> None:
    text = submodels(*SPLIT_LOSS) + "    test(x):\n" + body("update tracker(mean(x) $ 2)")
    lines = sorted(d.span.line for d in errors(text))
    assert lines == [9, 13]


# ---------------------------------------------------------------- reductions' rank


@pytest.mark.parametrize(
    "value",
    [
        "mean(square(self(x)), keepdims=True)",
        "sum(self(x), axis=-1, keepdims=True)",
        "mean(square(self(x)), None, True)",
    ],
)
def test_a_reduction_keeping_its_dimensions_is_not_a_scalar(value: str) -> None:
    """`keepdims=True` keeps the rank: minimized, it failed only when traced."""
    text = functional(f"loss = {value}", "minimize loss over self", "return total=mean(loss)")
    found = the_error(text)
    assert found.message == "the loss to minimize must be a scalar, not a tensor"


@pytest.mark.parametrize(
    "value", ["mean(square(self(x)), axis=None)", "mean(square(self(x)), None, False)"]
)
def test_a_reduction_over_no_axis_is_a_scalar(value: str) -> None:
    text = functional(f"loss = {value}", "minimize loss over self", "return total=loss")
    assert errors(text) == []
    text = functional(f"loss = {value}", "g = gradient(loss, x)", "return total=mean(g)")
    assert errors(text) == []


# ---------------------------------------------------------------- subscript indices


@pytest.mark.parametrize(
    ("value", "index", "what"),
    [
        ("x[0.5]", "0.5", "a number that is not whole"),
        ("x[1e0]", "1e0", "a number that is not whole"),
        ("x[True]", "True", "a bool"),
        ("x[mean(x)]", "mean(x)", "a scalar"),
        ("x[1:2.5]", "2.5", "a number that is not whole"),
        ('x[:"a"]', '"a"', "a string"),
        ("shape(x)[shape(x)[0] / 2]", "shape(x)[0] / 2", "a number that is not whole"),
    ],
)
def test_an_index_that_is_not_a_whole_number(value: str, index: str, what: str) -> None:
    """F9: Python and TensorFlow index with whole numbers only."""
    text = functional(f"v = {value}", "loss = mean(self(x)) + 0.0 * mean(v)", *FUNCTIONAL_BODY[2:])
    text += "        return k=loss\n"
    check(
        the_error(text),
        f"an index must be a whole number, not {what}",
        at(text, 3, index),
        "an int literal, an int parameter, shape(...)[i], or arithmetic of them (+ - * //)",
    )


@pytest.mark.parametrize(
    "value",
    [
        "x[0]",
        "x[-1]",
        "x[1:]",
        "x[:shape(x)[0] // 2]",
        "x[None]",
        "x[:None]",
        "x[n]",
        "x[n * 2 - 1]",
        'x[cast(mean(x), "int32")]',
    ],
)
def test_whole_number_indices_are_accepted(value: str) -> None:
    header = (
        "model M:\n    init(net: Model, n: int)\n    compile(opt: Optimizer)\n    train(x, y):\n"
    )
    text = header + body(
        f"v = {value}", "loss = mean(net(x)) + 0.0 * mean(v)", "minimize loss over net using opt"
    )
    text += "        return k=loss\n"
    assert errors(text) == []


def test_a_named_whole_number_is_an_index() -> None:
    text = functional(
        "n = shape(x)[0] // 2",
        "a, b = (n, 1)",
        "v = x[a:b]",
        "loss = mean(self(x)) + 0.0 * mean(v)",
        *FUNCTIONAL_BODY[2:],
    )
    assert errors(text + "        return k=loss\n") == []
