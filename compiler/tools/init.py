"""`stepc init [DIR]`: a starter spec and the `[tool.stepc]` table that compiles it.

Owns the starter project: `specs/model.step` (a small commented spec that
compiles and trains: a Functional model, compile()'s loss, a tracker of its
own, a train and a test step) and the table (`specs`, `out`, `backend`
commented out), written to a new `pyproject.toml` or appended to one that has
no `[tool.stepc]`, its own bytes kept as they were. It never overwrites: a
spec already there, or a table already there, refuses the whole run (exit 1)
before anything is written. Afterwards `stepc compile` with no arguments works.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from stepc.diagnostics import render_text, shown_path
from stepc.tools.config import PYPROJECT, ConfigError, has_stepc_table, shown_relative

EXIT_OK, EXIT_REFUSED = 0, 1
SPEC_PATH = Path("specs") / "model.step"

STARTER_SPEC = """\
# A starter spec. `stepc compile` turns it into generated/model.py, a Keras
# model class whose train_step and test_step do what the steps below say:
#   from generated.model import Regressor
#   inputs = keras.Input((4,))
#   model = Regressor(inputs, keras.layers.Dense(1)(inputs))
#   model.compile(optimizer="adam", loss="mse")
#   model.fit(x, y, validation_data=(x_val, y_val))
model Regressor(Functional):
    # A tracker of its own: fit() and evaluate() report it as `mae`.
    metric mae = MeanAbsoluteError(name="mae")

    train(x, y):
        y_pred = self(x)
        # compile()'s loss; it also updates Keras's loss tracker (`loss`).
        loss = compiled_loss(y, y_pred)
        minimize loss over self using optimizer
        update mae(y, y_pred)

    test(x, y):
        y_pred = self(x)
        loss = compiled_loss(y, y_pred)
        update mae(y, y_pred)
"""

TABLE = """\
[tool.stepc]
# What `stepc compile` and `stepc check` use when given no SPEC: paths or glob
# patterns, relative to this file.
specs = ["specs/*.step"]
# Where `stepc compile` writes <spec stem>.py when given no -o.
out = "generated"
# Write one Keras backend's steps only (default: every backend's).
# backend = "tensorflow"
"""


def run(args) -> int:
    directory = Path(args.directory)
    spec, pyproject = directory / SPEC_PATH, directory / PYPROJECT
    refusal = _refusal(spec, pyproject)
    if refusal:
        print(f"stepc init: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        written = [_write_spec(spec), _write_table(pyproject)]
    except OSError as exc:
        print(f"stepc init: cannot write: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return EXIT_REFUSED
    for line in written:
        print(line)
    print(f"next: {_next_command(directory)}")
    return EXIT_OK


def _refusal(spec: Path, pyproject: Path) -> str | None:
    """Why init must write nothing here, or None."""
    if os.path.lexists(spec):
        return f"`{_shown(spec)}` already exists; nothing was written (init never overwrites)"
    if not os.path.lexists(pyproject):
        return None
    if not pyproject.is_file() or not os.access(pyproject, os.R_OK | os.W_OK):
        return f"`{_shown(pyproject)}` is not a file stepc can read and append to"
    try:
        if has_stepc_table(pyproject):
            return (
                f"`{_shown(pyproject)}` already has [tool.stepc]; nothing was written"
                " (init never overwrites)"
            )
    except ConfigError as exc:
        shown = render_text(exc.path, exc.source, exc.diagnostics)
        return f"cannot add [tool.stepc] to a pyproject.toml stepc cannot read:\n{shown}"
    return None


def _write_spec(spec: Path) -> str:
    spec.parent.mkdir(parents=True, exist_ok=True)
    with open(spec, "x", encoding="utf-8", newline="\n") as file:  # "x": never overwrite
        file.write(STARTER_SPEC)
    return f"wrote {_shown(spec)}"


def _write_table(pyproject: Path) -> str:
    """A new pyproject.toml with the table, or the table appended to the one there."""
    if not pyproject.exists():
        with open(pyproject, "x", encoding="utf-8", newline="\n") as file:
            file.write(TABLE)
        return f"wrote {_shown(pyproject)} with [tool.stepc]"
    existing = pyproject.read_bytes()
    newline = b"\r\n" if b"\r\n" in existing else b"\n"
    # A blank line before the table; a last line without its line break gets one.
    separator = newline if existing.endswith(b"\n") else newline * 2
    table = TABLE.encode("utf-8").replace(b"\n", newline)
    with open(pyproject, "ab") as file:  # appended: the file's own bytes stay as they are
        file.write((separator if existing else b"") + table)
    return f"added [tool.stepc] to {_shown(pyproject)}"


def _next_command(directory: Path) -> str:
    if directory.absolute() == Path.cwd():
        return "stepc compile"
    return f"cd {shlex.quote(_shown(directory))} && stepc compile"


def _shown(path: Path) -> str:
    return shown_path(shown_relative(path))
