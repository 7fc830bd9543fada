"""What a value depends on, as precisely as a gradient needs: the diagnostics.

`gradient(y, x)` of a `y` that does not depend on `x`, and a `minimize` of a
loss that does not depend on a target, would trace to a None gradient. The
checker answers "does it depend" per definition of each name: each element
of a literal tuple has its own dependencies (F7 in the fuzz findings), a
value computed through an operation no gradient flows through depends on
nothing, a name redefined is a new value, and a repeat block's later passes
see the values its earlier passes assigned. A value whose error is reported
may depend on anything, so nothing follows from it. The style of
`tests/test_checker.py`, with the helpers of `tests/support/checker.py`.
"""

from __future__ import annotations

import pytest
from stepc.pipeline import compile_source

from tests.support.checker import (
    FUNCTIONAL_BODY,
    at,
    check,
    diagnose,
    errors,
    functional,
    the_error,
)

NONE_X = "the value does not depend on `x`: its gradient would be None"
HINT_X = "compute the value from `x` (and not through stop_gradient)"


def accepted(text: str) -> None:
    """No error, and the module is Python."""
    assert errors(text) == []
    compile(compile_source(text, "t.step"), "t.py", "exec")


# ---------------------------------------------------------------- literal tuples


def test_unpacked_tuple_element_has_its_own_dependencies() -> None:
    """F7: `b` is `2.0 * y` alone; its gradient with respect to `x` was None."""
    text = functional(
        "a, b = (x, 2.0 * y)", "g = gradient(mean(b), x)", "return k=mean(g), a=mean(a)"
    )
    check(the_error(text), NONE_X, at(text, 4, "x)"), HINT_X)


def test_unpacked_tuple_element_that_depends_is_accepted() -> None:
    accepted(functional("a, b = (x, 2.0 * y)", "g = gradient(mean(a), x)", "return k=mean(g * b)"))


def test_unpacked_tuple_element_and_a_model_target() -> None:
    text = functional(
        "a, b = (self(x), y)", "loss = mean(b)", "minimize loss over self", "return a=mean(a)"
    )
    found = the_error(text)
    assert found.message == "the loss does not depend on `self`: its gradient would be None"
    assert (found.span.line, found.span.column) == at(text, 5, "loss")


def test_model_outputs_unpacked_all_depend() -> None:
    """A model's tuple output: each name may be computed from all of the input."""
    accepted(
        functional(
            "a, b = self(x)", "g = gradient(mean(b), x)", *FUNCTIONAL_BODY, "return k=mean(g * a)"
        )
    )


@pytest.mark.parametrize(("index", "depends"), [("0", True), ("1", False), ("-2", True)])
def test_subscript_of_a_literal_tuple(index: str, depends: bool) -> None:
    text = functional("t = (x, 2.0 * y)", f"g = gradient(mean(t[{index}]), x)", "return k=mean(g)")
    if depends:
        accepted(text)
    else:
        check(the_error(text), NONE_X, at(text, 4, "x)"), HINT_X)


def test_a_slice_of_a_literal_tuple_keeps_only_its_elements() -> None:
    text = functional(
        "t = (x, 2.0 * y, y)", "s = t[1:]", "g = gradient(mean(s[0]), x)", "return k=mean(g)"
    )
    check(the_error(text), NONE_X, at(text, 5, "x)"), HINT_X)


# ---------------------------------------------------------------- what carries no gradient


@pytest.mark.parametrize(
    "value",
    [
        "ones_like(x)",
        "zeros_like(x) + y",
        "y * shape(x)[0]",
        "x // 2.0",
        "ones(shape(x))",
        "normal(shape(x))",
        "stop_gradient(x) * y",
        'cast(x, "int32") * y',
        'cast(x, dtype="bool")',
    ],
)
def test_a_value_no_gradient_flows_through(value: str) -> None:
    text = functional(f"v = {value}", "g = gradient(mean(v), x)", "return k=mean(g)")
    check(the_error(text), NONE_X, at(text, 4, "x)"), HINT_X)


@pytest.mark.parametrize("dtype", ['"float16"', '"bfloat16"', '"float64"'])
def test_a_cast_to_a_float_type_carries_the_gradient(dtype: str) -> None:
    accepted(functional(f"v = cast(x, {dtype})", "g = gradient(mean(v), x)", "return k=mean(g)"))


def test_a_redefined_name_is_a_new_value() -> None:
    """`z` was computed from the first `v`; the gradient watches the second."""
    text = functional(
        "v = x * 2.0", "z = mean(v)", "v = y * 1.0", "g = gradient(z, v)", "return k=mean(g)"
    )
    found = the_error(text)
    assert found.message == "the value does not depend on `v`: its gradient would be None"


def test_a_chain_of_names_is_followed() -> None:
    accepted(
        functional(
            "a = x * 2.0",
            "b = tanh(a)",
            "c = b + y",
            "g = gradient(mean(c), x)",
            "return k=mean(g)",
        )
    )


# ---------------------------------------------------------------- repeat blocks


def test_a_later_pass_of_a_repeat_sees_values_the_earlier_pass_assigned() -> None:
    """On the second pass `c` is the first pass's `b`, computed from `x`."""
    accepted(
        functional(
            "b = y * 1.0",
            "repeat 2:",
            "    c = b",
            "    b = x * 2.0",
            "g = gradient(mean(c), x)",
            "return k=mean(g)",
        )
    )


def test_a_later_pass_of_a_repeat_sees_a_model_output_the_earlier_pass_assigned() -> None:
    accepted(
        functional(
            "b = y * 1.0",
            "repeat 2:",
            "    c = b",
            "    b = self(x)",
            "loss = mean(c)",
            "minimize loss over self",
            "return loss=loss",
        )
    )


# ---------------------------------------------------------------- nothing follows an error


def test_an_undefined_name_in_a_loss_is_the_only_error() -> None:
    text = functional("loss = mean(fooo)", "minimize loss over self", "return loss=loss")
    assert [d.message for d in errors(text)] == ["undefined name `fooo`"]


def test_an_unknown_operation_in_a_gradient_is_the_only_error() -> None:
    text = functional("g = gradient(mean(zz(y)), x)", "return k=mean(g)")
    assert [d.message for d in errors(text)] == ["`zz` is not an allowed operation"]


def test_a_value_read_by_the_next_pass_of_a_repeat_is_used() -> None:
    """`b` assigned last in the block is what `c = b` reads on the next pass."""
    text = functional(
        "b = y * 1.0",
        "repeat 2:",
        "    c = b",
        "    b = self(x)",
        "loss = mean(square(c - y))",
        "minimize loss over self",
        "return loss=loss",
    )
    assert diagnose(text) == []


def test_a_value_assigned_last_in_a_repeat_and_never_read_is_unused() -> None:
    text = functional(
        "repeat 2:", "    b = self(x)", "loss = mean(square(self(x) - y))", *FUNCTIONAL_BODY[2:]
    )
    text += "        return loss=loss\n"
    assert [d.message for d in diagnose(text)] == ["`b` is computed but never used"]


@pytest.mark.parametrize(("index", "length"), [("2", 2), ("-3", 2), ("5", 3)])
def test_an_index_past_the_end_of_a_literal_tuple(index: str, length: int) -> None:
    items = ", ".join(["self(x)", "y", "x"][:length])
    text = functional(
        f"t = ({items})", f"loss = mean(square(t[0] - t[{index}]))", "minimize loss over self"
    )
    text += "        return loss=loss\n"
    check(
        the_error(text),
        f"index {index} is past the end of a tuple of {length}",
        at(text, 4, index + "]"),
        f"the tuple's indices are 0 to {length - 1} (or -{length} to -1)",
    )


def test_gradient_arguments_swapped() -> None:
    """`gradient(x, loss)`: the hint says which comes first."""
    text = functional(
        "loss = mean(square(self(x) - y))",
        "g = gradient(x, loss)",
        "minimize loss over self",
        "return loss=loss, g=mean(g)",
    )
    check(
        the_error(text),
        "gradient(...) differentiates a scalar, not a tensor",
        at(text, 4, "x, loss"),
        "the value comes first, then what it is taken with respect to: `gradient(loss, x)`",
    )
