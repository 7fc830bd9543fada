"""Loops: `repeat n as i:` and `for targets in ...:`, what the checker accepts and refuses.

Each diagnostic the loop checks (`stepc.check.loops`) give, with its message,
position and hint; and the forms that compile (the module is Python). The style
of `tests/test_checker.py`, with the helpers of `tests/support/checker.py`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from stepc.pipeline import compile_source

from tests.support.checker import at, check, errors, functional, submodels, the_error, warnings

LOSS = ("loss = mean(square(self(x) - y))", "minimize loss over self")
TENSOR_HINT = (
    "a for loop runs over a tuple or list (unrolled when traced); to loop over an "
    "axis of a tensor, write `repeat n as i:` and index it: `x[:, i]`"
)
RENAME_HINT = "a loop variable is a name of its own, gone after the loop: pick another name"


def accepted(text: str) -> str:
    """No error, and the module is Python; the module's text."""
    assert errors(text) == []
    module = compile_source(text, "t.step")
    compile(module, "t.py", "exec")
    return module


def with_loss(*lines: str, uses: str = "") -> str:
    """A Functional train step: `lines`, then a loss (plus `uses`) minimized and returned."""
    loss = f"loss = mean(square(self(x) - y)){uses}"
    return functional(*lines, loss, "minimize loss over self", "return loss=loss")


# ---------------------------------------------------------------- accepted


def test_repeat_index_in_arithmetic_and_subscripts_is_accepted() -> None:
    module = accepted(
        with_loss(
            "total = 0.0",
            "repeat 3 as i:",
            "    z = self(x)",
            "    total = total + mean(z[:, i]) * (i + 1) - i * 0.5",
            uses=" + total",
        )
    )
    assert "for i in range(3):" in module
    lines = [line.strip() for line in module.split("\n")]
    assert '_check_index(z, 1, i, "t.step:6")' in lines


def test_for_over_zip_and_enumerate_is_accepted() -> None:
    module = accepted(
        with_loss(
            "total = 0.0",
            "for a, b in zip([x, 2.0 * x], [y, y]):",
            "    total = total + mean(a * b)",
            "for k, c in enumerate((x, y)):",
            "    total = total + k * mean(c)",
            uses=" + total",
        )
    )
    assert "for a, b in zip([x, 2.0 * x], [y, y], strict=True):" in module
    assert "for k, c in enumerate((x, y)):" in module


def test_an_enumerate_position_in_a_subscript_is_checked_when_traced() -> None:
    module = accepted(
        with_loss(
            "z = self(x)",
            "total = 0.0",
            "for k, c in enumerate([x, y]):",
            "    total = total + mean(z[:, k] * c)",
            uses=" + total",
        )
    )
    assert '_check_index(z, 1, k, "t.step:6")' in [line.strip() for line in module.split("\n")]


def test_for_over_a_sub_models_outputs_and_nested_loops_is_accepted() -> None:
    accepted(
        submodels(
            "total = 0.0",
            "feats = disc(gen(x))",
            "for f in feats:",
            "    repeat 2 as j:",
            "        for g in [f, 2.0 * f]:",
            "            total = total + mean(g) * j",
            "minimize total over gen using g_opt",
            "update tracker(total)",
        )
    )


def test_names_assigned_in_a_loop_are_visible_after_it() -> None:
    accepted(with_loss("for a in [x, y]:", "    last = mean(a)", uses=" + last"))


def test_several_minimizes_in_a_loop_are_accepted() -> None:
    accepted(
        submodels(
            "repeat 2 as i:",
            "    d_loss = mean(disc(x)) - mean(disc(gen(x))) * i",
            "    minimize d_loss over disc using d_opt",
            "    g_loss = mean(disc(gen(x)))",
            "    minimize g_loss over gen using g_opt",
            "update tracker(g_loss)",
        )
    )


# ---------------------------------------------------------------- loop variables


def test_assigning_the_index_is_refused() -> None:
    text = with_loss("repeat 2 as i:", "    i = 3")
    check(
        the_error(text),
        "`i` is the variable of the loop on line 3: it cannot be assigned",
        at(text, 4, "i"),
        "the loop sets it on each pass; assign the value to another name",
    )


def test_assigning_a_loop_variable_is_refused() -> None:
    text = with_loss("for a, b in zip([x], [y]):", "    c, b = a, a", "    d = mean(c)")
    found = [e for e in errors(text) if "cannot be assigned" in e.message]
    assert len(found) == 1
    check(
        found[0],
        "`b` is the variable of the loop on line 3: it cannot be assigned",
        at(text, 4, "b ="),
        "the loop sets it on each pass; assign the value to another name",
    )


@pytest.mark.parametrize("header", ["repeat 2 as i:", "for i in [x, y]:"])
def test_a_loop_variable_is_not_visible_after_the_loop(header: str) -> None:
    text = with_loss(header, "    z = self(x)", "w = i", uses=" + mean(w) + mean(z)")
    found = the_error(text)
    assert found.message == "undefined name `i`"
    assert (found.span.line, found.span.column) == at(text, 5, "i")


def test_a_loop_variable_naming_a_step_value_is_refused() -> None:
    text = with_loss("for x in [y]:", "    z = mean(x)", uses=" + z")
    message = "`x` is already a value of the step (line 2)"
    check(the_error(text), message, at(text, 3, "x"), RENAME_HINT)


def test_a_nested_loop_reusing_the_variable_is_refused() -> None:
    text = with_loss("repeat 2 as i:", "    repeat 3 as i:", "        z = mean(x) * i", uses=" + z")
    check(
        the_error(text),
        "`i` is already the variable of the loop on line 3",
        at(text, 4, "i:"),
        RENAME_HINT,
    )


def test_a_loop_variable_shadowing_a_declaration_is_refused() -> None:
    text = submodels("for gen in [x]:", "    z = mean(x)", "update tracker(z)")
    found = the_error(text)
    assert found.message.startswith("`gen` shadows the")
    assert (found.span.line, found.span.column) == at(text, 6, "gen")


@pytest.mark.parametrize("header", ["repeat 2 as i:", "for i, a in enumerate([x, y]):"])
def test_a_loop_variable_never_read_is_a_warning(header: str) -> None:
    text = with_loss(header, "    z = mean(x)", uses=" + z")
    if header.startswith("for"):
        text = text.replace("mean(x)\n", "mean(a)\n", 1)
    found = warnings(text)
    assert [w.message for w in found] == ["loop variable `i` is never used"]
    assert (found[0].span.line, found[0].span.column) == at(text, 3, "i")
    assert found[0].hint == "name it `_`, which names no value"


def test_a_discarded_loop_variable_is_no_warning() -> None:
    text = with_loss("for _, a in enumerate([x, y]):", "    z = mean(a)", uses=" + z")
    assert warnings(text) == []


# ---------------------------------------------------------------- what a for iterates


@pytest.mark.parametrize(("iterable", "what"), [("x", "a tensor"), ("mean(x)", "a scalar")])
def test_iterating_a_tensor_is_refused_with_the_repeat_hint(iterable: str, what: str) -> None:
    text = with_loss(f"for a in {iterable}:", "    z = mean(a)", uses=" + z")
    check(the_error(text), f"a for loop cannot iterate {what}", at(text, 3, iterable), TENSOR_HINT)


def test_iterating_a_model_is_refused() -> None:
    text = with_loss("for a in self:", "    z = mean(a)", uses=" + z")
    check(the_error(text), "a for loop cannot iterate a model", at(text, 3, "self"), TENSOR_HINT)


def test_iterating_an_empty_sequence_is_refused() -> None:
    text = with_loss("for a in []:", "    z = mean(a)", uses=" + z")
    check(
        the_error(text),
        "a for loop over an empty sequence runs no pass",
        at(text, 3, "[]"),
        "its body would never run, and the names it assigns never exist",
    )


def test_zip_of_sequences_of_different_lengths_is_refused() -> None:
    text = with_loss("for a, b in zip([x, x], [y, y, y]):", "    z = mean(a * b)", uses=" + z")
    check(
        the_error(text),
        "zip(...) of sequences of different lengths (2, 3)",
        at(text, 3, "zip"),
        "the generated loop zips them with strict=True, which would fail; "
        "zip sequences of the same length",
    )


def test_zip_with_a_keyword_is_refused() -> None:
    text = with_loss("for a in zip([x], strict=True):", "    z = mean(a[0])", uses=" + z")
    check(
        the_error(text),
        "zip(...) in a for loop takes its sequences by position",
        at(text, 3, "strict"),
        "write `zip(a, b)`",
    )


@pytest.mark.parametrize("args", ["", "[x], [y]"])
def test_enumerate_takes_one_sequence(args: str) -> None:
    text = with_loss(f"for a in enumerate({args}):", "    z = a", uses=" + mean(x)")
    found = [e for e in errors(text) if "enumerate" in e.message]
    assert [e.message for e in found] == ["enumerate(...) takes one sequence"]
    assert (found[0].span.line, found[0].span.column) == at(text, 3, "enumerate")


def test_zip_outside_a_for_loop_is_not_an_operation() -> None:
    text = with_loss("z = zip([x], [y])", uses=" + mean(x)")
    assert "`zip` is not an allowed operation" in [e.message for e in errors(text)]


def test_unpacking_more_names_than_each_item_holds_is_refused() -> None:
    text = with_loss("for a, b, c in zip([x], [y]):", "    z = mean(a * b)", uses=" + z")
    check(
        the_error(text),
        "3 names but each item holds 2 values",
        at(text, 3, "a"),
        "unpack as many names as each item holds",
    )


def test_unpacking_a_tensor_item_is_refused() -> None:
    text = with_loss("for a, b in [x, y]:", "    z = mean(a * b)", uses=" + z")
    check(
        the_error(text),
        "each item is a tensor: it cannot be unpacked into 2 names",
        at(text, 3, "a"),
        "name the item once (`for item in ...`), or iterate `zip(a, b)` to take items "
        "of several sequences together",
    )


# ---------------------------------------------------------------- index range


def test_an_index_past_a_known_axis_is_refused() -> None:
    text = with_loss(
        "z = normal((4, 3, 2))", "repeat 5 as i:", "    p = z[:, i]", uses=" + mean(p)"
    )
    check(
        the_error(text),
        "`i` goes up to 4, past the end of axis 1 of `z` (of length 3)",
        at(text, 5, "i]"),
        "the loop on line 4 makes 5 passes; `z` has 3 along this axis: loop 3 times, "
        "or index within it",
    )


def test_an_enumerate_position_past_a_known_axis_is_refused() -> None:
    text = with_loss(
        "z = zeros((2, 4))",
        "for k, c in enumerate([x, x, x]):",
        "    p = z[k] + mean(c)",
        uses=" + mean(p)",
    )
    found = the_error(text)
    assert found.message == "`k` goes up to 2, past the end of axis 0 of `z` (of length 2)"
    assert (found.span.line, found.span.column) == at(text, 5, "k]")


@pytest.mark.parametrize("count", ["3", "2"])
def test_an_index_within_a_known_axis_is_accepted(count: str) -> None:
    accepted(
        with_loss(
            "z = normal((4, 3, 2))", f"repeat {count} as i:", "    p = z[:, i]", uses=" + mean(p)"
        )
    )


# ---------------------------------------------------------------- syntax errors


def test_a_bad_for_header_is_its_only_error() -> None:
    """Recovery keeps the loop's variables, so their reads in the body are not reported."""
    text = with_loss("for a b in [x, x]:", "    p = self(a)", uses=" + mean(p)")
    found = the_error(text)
    assert found.message == "unexpected name `b`"


def test_a_bad_repeat_as_header_is_its_only_error() -> None:
    text = with_loss("repeat 3 as i j:", "    p = self(x)[:, i]", uses=" + mean(p)")
    found = the_error(text)
    assert found.message == "unexpected name `j`"


@pytest.mark.parametrize("keyword", ["for", "in", "as"])
def test_loop_keywords_are_not_names(keyword: str) -> None:
    text = with_loss(f"{keyword} = mean(x)", uses="")
    assert errors(text)


def test_a_for_loop_in_a_shared_block_is_accepted() -> None:
    """`for` loops and `repeat ... as` in a shared block run in both steps."""
    text = (
        "model M(Functional):\n"
        "    shared(x, y):\n"
        "        total = 0.0\n"
        "        for a in [x, y]:\n"
        "            total = total + mean(a)\n"
        "    train:\n"
        f"        {LOSS[0]} + total\n"
        f"        {LOSS[1]}\n"
        "        return loss=loss\n"
        "    test:\n"
        "        return total=total\n"
    )
    accepted(text)


def test_a_step_without_a_data_line_does_not_take_loop_variables_as_data() -> None:
    """`train:` with no shared block is reported; the loop's variables are not
    taken as the missing data line's names."""
    text = functional(
        "repeat 2 as i:",
        "    z = x[:, i]",
        "loss = mean(z)",
        "minimize loss over self",
        header="model M(Functional):\n    train:\n",
    )
    assert not any("already" in e.message for e in errors(text)), errors(text)


# ---------------------------------------------------------------- generated code

SPECS = Path(__file__).parent / "specs"


@pytest.mark.parametrize("name", ["loops_index", "loops_heads", "loops_pair", "loops_nested"])
def test_generated_loops_are_formatted_and_lint_clean(name: str, tmp_path) -> None:
    """No formatter runs at compile time: the pinned ruff finds nothing to change,
    and no closure in a loop reads the loop's variable (B023) on any backend."""
    path = tmp_path / f"{name}.py"
    text = (SPECS / f"{name}.step").read_text(encoding="utf-8")
    path.write_text(compile_source(text, f"{name}.step"), encoding="utf-8")
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    for args in (["format", "--check", "--diff"], ["check", "--select", "E,F,W,B"]):
        run = subprocess.run([ruff, *args, "--isolated", str(path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_a_jax_region_in_a_loop_takes_the_loops_values_as_defaults() -> None:
    """Each pass's function holds that pass's index: `def ..._region(i=i):`."""
    text = (SPECS / "loops_pair.step").read_text(encoding="utf-8")
    module = compile_source(text, "loops_pair.step", backend="jax")
    assert "def scaled_f_loss_region(i=i):" in module
    assert "def scaled_g_loss_region(i=i):" in module


def test_every_backend_writes_the_index_check() -> None:
    text = (SPECS / "loops_index.step").read_text(encoding="utf-8")
    for backend in ("tensorflow", "jax", "torch"):
        module = compile_source(text, "loops_index.step", backend=backend)
        lines = [line.strip() for line in module.split("\n")]
        assert '_check_index(z, 1, i, "loops_index.step:6")' in lines, backend
        assert '_check_index(y, 1, i, "loops_index.step:6")' in lines, backend
        assert "def _check_index(value, axis, index, where):" in lines, backend
