"""The checker on Python's expression forms: their types, their errors (message,
span and hint) and the absence of false positives.

Comparisons and `& | ~` give boolean masks, through which no gradient flows
and on which arithmetic fails when traced; `@` takes tensors of rank 1 or more;
subscripts take whole numbers, `None`, `...` and slices, several axes on
tensors but one index on Python sequences (a shape, a literal tuple). Where a
rank is unknown (`x[0, 0]`, `mean(v, 0)`) a loss is accepted and the generated
step checks it when traced, naming the spec line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from stepc.emit import pyexpr
from stepc.pipeline import analyze

from tests.support.checker import at, check, errors, functional, the_error, warnings

MASK_HINT = 'cast it first: `cast(mask, "float32")`, or choose with `where(mask, a, b)`'
INDEX_HINT = "an int literal, an int parameter, shape(...)[i], or arithmetic of them (+ - * //)"


def step(line: str) -> str:
    """A Functional model's train step with `line` on line 4 (its value reported)."""
    return functional(
        "y_pred = self(x)",
        line,
        "loss = compiled_loss(y, y_pred)",
        "minimize loss over self",
        f"return loss=loss, v={line.split(' = ')[0]}",
    )


def minimizing(loss: str, *before: str) -> str:
    return functional(*before, f"loss = {loss}", "minimize loss over self", "return loss=loss")


# ---------------------------------------------------------------- accepted


ACCEPTED = [
    "v = x[:, :-1]",
    "v = x[..., 0]",
    "v = x[::2]",
    "v = x[1:-1, 0]",
    "v = x[-1]",
    "v = y_pred[:, :, None, None]",
    "v = x[::-1, ...]",
    "v = x[shape(x)[0] // 2 :]",
    "v = x[0, shape(x)[1] - 1]",
    'v = x[cast(shape(x)[0] % 2, "int32")]',
    "v = x[shape(x)[0] % 3]",
    'v = x["source"]',
    'v = self(x)["logits"]',
    "v = (x > 0.5) & ~(y <= 0.0) | (x == y)",
    "v = (x != y) == True",
    "v = where(x > 0, x, 0.0 * x)",
    'v = cast(y_pred >= 0.5, "float32") * y',
    "v = x @ x[0]",
    "v = x % 2.0",
    "v = (1, 2, 3)[::2]",
    "v = 3 < 4",
]


@pytest.mark.parametrize("line", ACCEPTED)
def test_accepted_forms(line: str) -> None:
    module, diagnostics = analyze(step(line), "t.step")
    assert [d.message for d in diagnostics if d.severity.name == "ERROR"] == []
    assert module is not None


@pytest.mark.parametrize(
    "loss",
    ["mean(y_pred, 0)", "y_pred[0, 0]", "y_pred[..., 0]", "y_pred[0] @ y_pred[1]"],
)
def test_a_loss_of_unknown_rank_is_checked_when_traced(loss: str) -> None:
    """No false positive: `x[0, 0]` of a matrix is a scalar. The generated step
    checks the rank when traced and names the spec line."""
    text = minimizing(loss, "y_pred = square(self(x) - y)")
    module, diagnostics = analyze(text, "t.step")
    assert [d.message for d in diagnostics] == []
    assert "_require_scalar(" in module
    assert '"t.step:5: minimize needs a scalar' in module


def test_a_comparison_of_scalars_is_a_scalar_mask() -> None:
    """`mean(y_pred) > 0` is a scalar: a cast of it times a scalar is accepted
    as a loss (not being a loss value, its rank is checked when traced)."""
    text = minimizing('cast(mean(y_pred) > 0.0, "float32") * mean(y_pred)', "y_pred = self(x)")
    module, diagnostics = analyze(text, "t.step")
    assert diagnostics == []
    assert '"t.step:5: minimize needs a scalar' in module


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize(
    "loss",
    [
        'cast(self(x) > 0.5, "float32")',
        'mean(cast((self(x) > 0.5) & (y > 0.0), "float32"))',
        'mean(cast(~(self(x) == y), "float32"))',
    ],
)
def test_no_gradient_flows_through_a_comparison(loss: str) -> None:
    text = minimizing(f"mean({loss})" if not loss.startswith("mean") else loss)
    check(
        the_error(text),
        "the loss does not depend on `self`: its gradient would be None",
        at(text, 4, "loss"),
        "loss goes through no model; call `self` in the loss (and not inside stop_gradient)",
    )


def test_a_mask_beside_a_differentiable_value_keeps_its_gradient() -> None:
    text = minimizing('mean(square(y_pred - y) * cast(y > 0.0, "float32"))', "y_pred = self(x)")
    assert errors(text) == []


def test_a_gradient_of_a_comparison_does_not_depend_on_its_operand() -> None:
    text = functional(
        "y_pred = self(x)",
        'g = gradient(mean(cast(x > 0.0, "float32")), x)',
        "loss = compiled_loss(y, y_pred) + 0.0 * mean(g)",
        "minimize loss over self",
    )
    (diag,) = errors(text)
    assert "does not depend on `x`" in diag.message


# ---------------------------------------------------------------- operator errors


def test_a_chained_comparison() -> None:
    text = step("v = x < y < x")
    check(
        the_error(text),
        "comparisons do not chain: `a < b < c` compares tensors element-wise, one pair at a time",
        at(text, 4, "x < y"),
        "compare each pair and combine the masks: `(a < b) & (b < c)`",
    )


@pytest.mark.parametrize(
    ("line", "operand", "op"),
    [
        ("v = (x > 0) * x", "x > 0", "*"),
        ("v = y + (x == y)", "x == y", "+"),
        ("v = -(x > 0)", "x > 0", "-"),
        ("v = ~x @ x", "~x", "@"),
    ],
)
def test_arithmetic_on_a_mask(line: str, operand: str, op: str) -> None:
    text = step(line)
    check(
        the_error(text),
        f"`{op}` cannot take a boolean value (a comparison's or `& | ~`'s result)",
        at(text, 4, operand),
        MASK_HINT,
    )


def test_a_mask_assigned_to_a_name_stays_a_mask() -> None:
    text = functional("m = x > 0", "v = m * x", "loss = mean(self(v))", "minimize loss over self")
    text += "        return loss=loss\n"
    check(the_error(text), "`*` cannot take a boolean value (a comparison's or `& | ~`'s result)",
          at(text, 4, "m *"), MASK_HINT)  # fmt: skip


def test_ordering_masks() -> None:
    text = step("v = (x > 0) <= y")
    check(
        the_error(text),
        "`<=` cannot order boolean values",
        at(text, 4, "x > 0"),
        'compare them with `==` or `!=`, or cast them first: `cast(mask, "int32")`',
    )


@pytest.mark.parametrize(("line", "operand"), [("v = x & 1", "1"), ("v = ~2.0", "2.0")])
def test_logic_on_a_number(line: str, operand: str) -> None:
    text = step(line)
    op = "&" if "&" in line else "~"
    check(
        the_error(text),
        f"`{op}` cannot take a number",
        at(text, 4, operand),
        "`&`, `|` and `~` combine boolean tensors (masks such as `x > 0`)",
    )


def test_comparing_none() -> None:
    text = step("v = x == None")
    check(the_error(text), "`==` cannot compare None", at(text, 4, "None"))


def test_comparing_a_model() -> None:
    text = step("v = x < self")
    check(the_error(text), "`<` cannot compare a model", at(text, 4, "self"))


@pytest.mark.parametrize(
    ("line", "operand", "what"),
    [("v = mean(x) @ x", "mean(x)", "a scalar"), ("v = x @ 2", "2", "a number")],
)
def test_matmul_of_a_scalar(line: str, operand: str, what: str) -> None:
    text = step(line)
    check(
        the_error(text),
        f"`@` multiplies tensors of rank 1 or more, not {what}",
        at(text, 4, operand),
        "multiply by a number or a scalar with `*`",
    )


# ---------------------------------------------------------------- subscript errors


@pytest.mark.parametrize("line", ["v = shape(x)[:, 0]", "v = shape(x)[None]", "v = (x, y)[...]"])
def test_axes_of_a_python_sequence(line: str) -> None:
    text = step(line)
    noun = "a shape" if "shape" in line else "a sequence"
    index = line.split("[", 1)[1][:-1]
    check(
        the_error(text),
        f"{noun} is indexed as a Python tuple: one index or slice, no axes",
        at(text, 4, index),
        "index its elements one at a time: `t[0][:, 1]`",
    )


def test_a_tensor_index_into_a_python_sequence() -> None:
    text = step("v = shape(x)[mean(x)]")
    (diag, *rest) = errors(text)
    assert diag.message == "an index must be a whole number, not a scalar"


def test_a_cast_tensor_index_into_a_shape() -> None:
    text = step('v = shape(x)[cast(mean(x), "int32")]')
    check(
        the_error(text),
        "a shape is indexed by a Python int, not a tensor",
        at(text, 4, "cast"),
        "an int literal, an int parameter or shape(...)[i]",
    )


def test_two_ellipses() -> None:
    text = step("v = x[..., 0, ...]")
    check(
        the_error(text),
        "a subscript has at most one `...`",
        (4, text.split("\n")[3].rindex("...") + 1),
        "`...` stands for every axis not otherwise indexed; write it once",
    )


@pytest.mark.parametrize("line", ["v = x[::0]", "v = (1, 2)[1:2:0]"])
def test_a_zero_step(line: str) -> None:
    text = step(line)
    check(
        the_error(text),
        "a slice step cannot be zero",
        (4, line.rindex("0") + 9),
        "a step is a whole number other than 0 (negative: backwards)",
    )


def test_a_mask_as_an_index() -> None:
    text = step("v = x[x > 0]")
    check(
        the_error(text),
        "an index must be a whole number, not a boolean mask",
        at(text, 4, "x > 0"),
        "select with `where(mask, x, 0.0)`; " + INDEX_HINT,
    )


def test_an_index_of_unknown_rank() -> None:
    text = step("v = x[mean(x, 0)]")
    check(
        the_error(text),
        "an index must be a whole number, not a tensor not known to hold one",
        at(text, 4, "mean(x, 0)"),
        INDEX_HINT + ', or a tensor cast to one: `cast(i, "int32")`',
    )


def test_a_key_on_a_computed_tensor() -> None:
    text = step('v = square(x)["a"]')
    check(
        the_error(text),
        "a tensor has no keys",
        at(text, 4, '"a"'),
        "a key reads an entry of a dict: a batch part or a model's outputs",
    )


def test_a_key_among_axes() -> None:
    text = step('v = x[0, "a"]')
    check(
        the_error(text),
        "a string key cannot index an axis",
        at(text, 4, '"a"'),
        'a key is the whole subscript: `batch["source"]`',
    )


def test_a_bare_tuple_is_a_literal_tuple() -> None:
    """`p, q = a, b` unpacks each element with its own dependencies."""
    text = functional(
        "y_pred = self(x)",
        "p, q = y_pred, 2.0 * y",
        "loss = mean(q)",
        "minimize loss over self",
        "return loss=loss",
    )
    (diag,) = errors(text)
    assert diag.message == "the loss does not depend on `self`: its gradient would be None"


def test_an_error_in_an_index_is_reported_once() -> None:
    text = step("v = x[undefined_name, 0]")
    check(the_error(text), "undefined name `undefined_name`", at(text, 4, "undefined_name"))


# ---------------------------------------------------------------- the emitted code

EMITTED = {
    "a = x[:, :-1]": "a = x[:, :-1]",
    "a = x[shape(x)[0] // 2 :, ::2]": "a = x[ops.shape(x)[0] // 2 :, ::2]",
    "a = x[:: shape(x)[1] - 1]": "a = x[:: ops.shape(x)[1] - 1]",
    "a = x[1 + 1 :]": "a = x[1 + 1 :]",
    "a = x[..., 0, None]": "a = x[..., 0, None]",
    "a = x[-1:-3:-1]": "a = x[-1:-3:-1]",
    "a = (x > 0) & ~(y <= 0)": (
        "a = ops.logical_and(ops.greater(x, 0), ops.logical_not(ops.less_equal(y, 0)))"
    ),
    "a = (x == y) | (x != y)": "a = ops.logical_or(ops.equal(x, y), ops.not_equal(x, y))",
    "a = x < y": "a = ops.less(x, y)",
    "a = x >= y": "a = ops.greater_equal(x, y)",
    "a = x @ x[0] + x % 2.0": "a = ops.matmul(x, x[0]) + ops.mod(x, 2.0)",
    "a, b = x, y[0]": "a, b = (x, y[0])",
}


def _module(lines) -> str:
    text = functional(
        *lines, "loss = compiled_loss(y, self(x))", "minimize loss over self", "return loss=loss"
    )
    module, diagnostics = analyze(text, "t.step")
    assert module is not None, [d.message for d in diagnostics]
    return module


def test_operators_are_spelled_as_keras_ops_and_indices_as_python() -> None:
    """`a == b` is `ops.equal(a, b)` (the same on every backend and on numbers);
    subscripts are Python's, laid out as ruff lays them out."""
    code = [line.strip() for line in _module(EMITTED).split("\n")]
    for spec_line, python in EMITTED.items():
        assert python in code, spec_line


def test_the_emitted_subscripts_are_already_formatted(tmp_path) -> None:
    """No formatter runs at compile time: the pinned ruff finds nothing to change."""
    path = tmp_path / "exprs.py"
    path.write_text(_module(EMITTED), encoding="utf-8")
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    run = subprocess.run(
        [ruff, "format", "--isolated", "--check", "--diff", str(path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_long_product_ending_in_a_name_is_parenthesized_as_ruff_does(tmp_path) -> None:
    """`name = f(...) / t` too long for a line: ruff parenthesizes the right-hand
    side (one line inside if it fits); `name = t / f(...)` breaks inside the call."""
    call = pyexpr.call("ops.einsum", ['"ae,pe->ap"', "anchor_embeddings", "positive_embeddings"])
    name = pyexpr.atom("self.temperature")
    statements = [
        ("similarities = ", pyexpr.binary("/", call, name)),
        ("similarities = ", pyexpr.binary("/", name, call)),
        ("similarities = ", pyexpr.binary("/", call, pyexpr.atom("t"))),
        ("similarities = ", pyexpr.operation("@", call, name)),
    ]
    lines = ["def f():", "    if a:", "        if b:"]
    for prefix, rendered in statements:
        lines += pyexpr.layout(prefix, rendered.doc, pyexpr.INDENT * 3)
    laid_out = "\n".join(lines) + "\n"
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    run = subprocess.run(
        [ruff, "format", "--isolated", "-"], input=laid_out, capture_output=True, text=True
    )
    assert run.stdout == laid_out
    assert lines[3:6] == [
        "            similarities = (",
        '                ops.einsum("ae,pe->ap", anchor_embeddings, positive_embeddings)',
        "                / self.temperature",
    ]


def test_a_long_subscripted_call_breaks_where_ruff_does() -> None:
    """`name = f(...)[0]` too long for a line: ruff breaks the subscript's brackets
    when the line up to `[` fits, else the call's (keeping `)[0]`), and likewise for
    `[0][1]` (found by a torch gradient penalty at depth 2)."""
    call = pyexpr.call(
        "_torch_gradients", ["value_for_slopes", "[interpolates]", "create_graph=True"]
    )
    longer = pyexpr.call(
        "_torch_gradients", ["value_for_slopes", "[interpolates]", "create_graph=True, x=1"]
    )
    statements = [
        pyexpr.subscript(call, "0"),
        pyexpr.subscript(longer, "0"),
        pyexpr.subscript(pyexpr.subscript(call, "0"), "1"),
    ]
    lines = ["def f():", "    if a:"]
    for rendered in statements:
        lines += pyexpr.layout("slopes = ", rendered.doc, pyexpr.INDENT * 2)
    laid_out = "\n".join(lines) + "\n"
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    run = subprocess.run(
        [ruff, "format", "--isolated", "-"], input=laid_out, capture_output=True, text=True
    )
    assert run.stdout == laid_out
    assert lines[2].endswith(")[") and lines[7].endswith(")[0]") and lines[-1].endswith("][1]")


def test_an_unpacking_may_discard_an_output_with_an_underscore() -> None:
    # keras.io's MAE ignores the patch encoder's fifth output; `_` names no value.
    loss = ("loss = mean(square(self(a)))", "minimize loss over self", "return loss=loss")
    text = functional("a, _ = x, y", *loss)
    assert errors(text) == [] and warnings(text) == []
    read = functional("a, _ = x, y", "a = _ + a", *loss)
    assert [d.message for d in errors(read)] == ["undefined name `_`"]
    alone = functional("_ = x", "a = x", *loss)
    assert [d.message for d in errors(alone)] == ["`_` is a reserved name"]
