"""The checker on state the model keeps: `state NAME: DTYPE[DIMS] = EXPR` and `assign STATE = EXPR`.

Each test writes a spec with one mistake and compares the one error it gets: its
message, where it starts (`at`: the column of what it points at), its hint, and, for
some, the whole rendered diagnostic (file:line:col, the line, the caret run).
"""

from __future__ import annotations

from stepc.diagnostics import render_text

from tests.support.checker import at, check, errors, the_error, warnings

# Line 8 onwards is the train step's body; line 3 the first state.
HEADER = """\
model Tracker:
    init(net: Model, size: int, rate: float)
    state count: int = 0
    state alpha: float = rate
    state queue: float[size, 2] = 0.0
    state flag: bool = False
    train(x, y):
"""
BODY = (
    "loss = mean(square(net(x) - y))",
    "minimize loss over net",
    "assign count = count + 1",
    "assign alpha = minimum(alpha + 0.1, 1.0)",
    "assign queue = concatenate([x, queue], axis=0)[:size]",
    "return loss=loss",
)


def spec(*lines: str, states: tuple[str, ...] = (), header: str = HEADER) -> str:
    """HEADER with `states` added after its own (so the body starts later) and the body."""
    text = header.replace("    train(x, y):\n", "".join(f"    {s}\n" for s in states))
    text += "    train(x, y):\n"
    return text + "".join(f"        {line}\n" for line in (lines or BODY))


def test_a_spec_with_states_compiles_without_findings():
    assert errors(spec()) == []
    assert warnings(spec()) == []


def test_unknown_dtype():
    text = spec(states=("state d: double = 0.0",))
    check(
        the_error(text),
        "unknown state dtype `double`",
        at(text, 7, "double"),
        "a state is `int` (int32), `float` (float32) or `bool`",
    )


def test_unknown_dtype_rendered_with_file_line_column_and_caret():
    text = spec(states=("state d: double = 0.0",))
    assert render_text("t.step", text, [the_error(text)]) == (
        "t.step:7:14: error: unknown state dtype `double`\n"
        "   7 |     state d: double = 0.0\n"
        "     |              ^^^^^^\n"
        "  hint: a state is `int` (int32), `float` (float32) or `bool`"
    )


def test_dimension_that_is_not_an_int():
    text = spec(states=("state d: float[rate] = 0.0",))
    check(
        the_error(text),
        "a state's dimension must be an int literal or an `int` init parameter",
        at(text, 7, "rate]"),
        "declare the size in init(...), e.g. `init(queue_size: int)`, and write "
        "`state q: float[queue_size, 8] = 0.0`",
    )


def test_initial_value_reading_the_batch():
    text = spec(states=("state d: float[2] = x",))
    check(
        the_error(text),
        "`x` is not known when the model is built",
        at(text, 7, "x"),
        "build it from literals, int/float init parameters and operations "
        "(e.g. `normal((n, d))`); it is computed once, when the model is built",
    )


def test_initial_value_calling_a_model():
    text = spec(states=("state d: float = mean(net(1.0))",))
    error = the_error(text)
    assert error.message == "`net(...)` cannot compute a state's initial value"
    assert (error.span.line, error.span.column) == at(text, 7, "net(")


def test_float_initial_value_of_an_int_state():
    text = spec(states=("state d: int = 0.5",))
    check(
        the_error(text),
        "state `d` is int, but its initial value is a float",
        at(text, 7, "0.5"),
        "write a whole number (or declare the state `float`)",
    )


def test_a_state_named_like_a_parameter_or_a_metric():
    text = spec(states=("state rate: float = 0.0",))
    check(the_error(text), "`rate` is already declared on line 2", at(text, 7, "rate"))
    header = HEADER.replace("    train", "    metric tracker = Mean()\n    train")
    text = spec(states=("state tracker: float = 0.0",), header=header)
    check(the_error(text), "`tracker` is already declared on line 7", at(text, 8, "tracker"))


def test_float_value_assigned_to_an_int_state():
    text = spec("assign count = count + 0.5", "return c=count")
    check(
        the_error(text),
        "state `count` is int, but this value is a float",
        at(text, 8, "count +"),
        'cast it first: `cast(value, "int32")`',
    )


def test_float_value_assigned_to_a_bool_state():
    text = spec("assign flag = 1.0", "return f=flag")
    check(
        the_error(text),
        "state `flag` is bool, but this value is a float",
        at(text, 8, "1.0"),
        'cast it first: `cast(value, "bool")`',
    )


def test_mask_assigned_to_a_float_state():
    text = spec("assign alpha = alpha > 0.5", "return a=alpha")
    check(
        the_error(text),
        "state `alpha` is float, but this value is a mask",
        at(text, 8, "alpha >"),
        'cast it first: `cast(mask, "float32")`',
    )


def test_scalar_assigned_to_a_state_with_dimensions():
    text = spec("assign queue = mean(x)", "return q=mean(queue)")
    check(
        the_error(text),
        "state `queue` has 2 dimensions, not a scalar",
        at(text, 8, "mean(x)"),
        "assign a value of the state's shape",
    )


def test_a_tensor_of_unknown_rank_is_checked_when_traced():
    """No error: the generated step checks the shape (stepc.lower.state)."""
    text = spec("assign alpha = mean(x, axis=0)", "return a=alpha")
    assert errors(text) == []


def test_assign_in_a_predict_step():
    text = (
        spec(*BODY)
        + "    predict(x):\n        assign count = 1\n        out = net(x)\n        return out\n"
    )
    check(
        the_error(text),
        "a predict step cannot update state",
        at(text, 15, "assign"),
        "assign state in the train or the test step",
    )


def test_minimize_over_a_state():
    text = spec(
        "loss = mean(square(net(x) - y)) + alpha", "minimize loss over alpha", "return l=loss"
    )
    check(
        the_error(text),
        "`alpha` is a state, which is never trained",
        at(text, 9, "alpha"),
        "minimize over a model the loss depends on; a state changes only by `assign alpha = ...`",
    )


def test_gradient_with_respect_to_a_state():
    text = spec(
        "loss = mean(square(net(x) - y)) * alpha",
        "g = gradient(loss, alpha)",
        "return g=mean(g)",
    )
    check(
        the_error(text),
        "`alpha` is a state, which is never trained",
        at(text, 9, "alpha)"),
        "take the gradient with respect to a model or a tensor; a state changes only by "
        "`assign alpha = ...`",
    )


def test_every_error_of_a_file_is_reported():
    text = spec(
        "assign count = 0.5",
        "assign queue = 1.0",
        "return c=count",
        states=("state d: double = 0.0",),
    )
    found = [(e.span.line, e.message) for e in errors(text)]
    assert found == [
        (7, "unknown state dtype `double`"),
        (9, "state `count` is int, but this value is a float"),
        (10, "state `queue` has 2 dimensions, not a scalar"),
    ]


def test_assign_in_a_shared_block():
    header = HEADER.replace("    train(x, y):\n", "")
    text = header + (
        "    shared(x, y):\n"
        "        assign count = count + 1\n"
        "    train:\n"
        "        loss = mean(square(net(x) - y))\n"
        "        minimize loss over net\n"
        "        return loss=loss\n"
    )
    check(
        the_error(text),
        "a shared block cannot assign state: it runs in the test step too",
        at(text, 8, "assign"),
        "assign state in the train or the test step itself",
    )
