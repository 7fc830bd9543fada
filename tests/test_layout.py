"""The emitter's own layout (``stepc.emit.pyexpr``) of statements that end with a
subscript, against the pinned ruff: ``ruff format --isolated`` must leave the emitted
lines as they are. (The goldens check the same for whole modules; these are the forms
that once differed: ruff splits a trailing ``[index]`` first when the line up to it fits,
and breaks the call before it otherwise.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from stepc.emit.pyexpr import INDENT, Group, call, layout, subscript

ARGUMENTS = ["captions", "1", "i", '"image_captioning.step:25"']


def ruff_formatted(source: str) -> str:
    """``source`` as the pinned ruff formats it (88 columns, no project config)."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    done = subprocess.run(
        [ruff, "format", "--isolated", "-"], input=source, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def nested(lines: list[str], depth: int) -> str:
    """The lines inside ``depth`` nested ``if True:`` blocks (a statement's indentation)."""
    header = [INDENT * d + "if True:" for d in range(depth)]
    return "\n".join([*header, *lines]) + "\n"


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize(
    "name, arguments, index",
    [
        ("caption", ARGUMENTS, ":, i, :"),  # the line up to `[` fits: the index is split
        ("slopes", ["value_for_slopes", "[interpolates]", "create_graph=True"], "0"),
        ("x", ["a_rather_long_argument_name"] * 3, "0"),  # it does not: the call is
    ],
)
def test_a_trailing_subscript_is_laid_out_as_ruff_does(depth, name, arguments, index):
    """``name = f(arguments)[index]`` at ``depth`` levels, too long for one line: the
    emitted lines are what ruff writes."""
    doc = subscript(call("_checked_index", arguments), index).doc
    source = nested(layout(f"{name} = ", doc, INDENT * depth), depth)
    assert len(source.splitlines()) > depth + 1  # too long for one line
    assert ruff_formatted(source) == source


@pytest.mark.parametrize("count", [1, 3, 4])
def test_a_function_with_defaults_is_laid_out_as_ruff_does(count):
    """A region's ``def f(a=a, ...):`` at 4 levels with ``count`` defaults: on one line,
    on one indented line or one per line with a trailing comma, as ruff writes it."""
    names = ["mask", "tokens_in", "tokens_true", "weights"][:count]
    group = Group("(", tuple(f"{n}={n}" for n in names), ")")
    lines = layout("def scaled_loss_region", group, INDENT * 4, reserve=1)
    lines[-1] += ":"
    # ruff puts an empty line before a nested function, as the emitter does.
    source = nested(["", *lines, INDENT * 5 + "pass"], 4)
    assert ruff_formatted(source) == source
