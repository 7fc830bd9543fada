"""Notebooks: `stepc.load_source`, and `%load_ext stepc` in IPython's own shell.

The cells really run in one `InteractiveShell` (module fixture): a `%%stepc` cell
defines the spec's model class, which builds and fits (TensorFlow, unless
KERAS_BACKEND says otherwise); a cell with errors shows every diagnostic as the
terminal does (file name = the cell, the cell's line numbers), no traceback, and
fails; a model class displays as its step picture (SVG when Graphviz is installed:
CI installs it, so there a missing `dot` fails; the Mermaid source as Markdown
without it); instances display as Keras shows them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest
import stepc
from stepc.diagnostics import render_text

from tests.support.models import SPECS_DIR

BASIC = (SPECS_DIR / "basic.step").read_text(encoding="utf-8")
# Two errors on the spec's lines 8 and 9 (the cell's lines 9 and 10).
BROKEN = BASIC.replace("compiled_loss(y, y_pred)", "compiled_los(y, y_pred)").replace(
    "over self using", "over selfx using"
)
FIT_CELL = """
import keras
import numpy as np
inputs = keras.Input((3,))
model = CustomModel(inputs, keras.layers.Dense(1)(inputs))
model.compile(optimizer="adam", loss="mse", metrics=["mae"])
rng = np.random.default_rng(0)
history = model.fit(rng.normal(size=(10, 3)), rng.normal(size=(10, 1)), epochs=1, verbose=0)
"""


@pytest.fixture(scope="module")
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    ipython = InteractiveShell.instance(colors="nocolor")
    assert ipython.run_cell("%load_ext stepc").success
    yield ipython
    ipython.run_cell("%reset -f")


def run(shell, cell: str, stream: str = "both"):
    """Run `cell` as a notebook does (counted in the history); its result and its
    output on `stream` ("stdout", "stderr" or "both")."""
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        result = shell.run_cell(cell, store_history=True)
    if stream == "both":
        return result, captured.stdout + captured.stderr
    return result, getattr(captured, stream)


# ---------------------------------------------------------------- load_source


def test_load_source_imports_the_module_keras_finds():
    import keras

    module = stepc.load_source(BASIC, "basic_text")
    assert sys.modules["stepc_generated.basic_text"] is module
    assert keras.saving.get_registered_object("stepc.basic_text>CustomModel") is module.CustomModel
    assert module.__stepc_spec__ == stepc.pipeline.LoadedSpec("basic_text", BASIC)


def test_load_source_raises_the_terminal_rendering_named_after_the_text():
    with pytest.raises(stepc.SpecError) as raised:
        stepc.load_source(BROKEN, "mine")
    assert len(raised.value.diagnostics) == 2
    assert str(raised.value) == render_text("mine", BROKEN, raised.value.diagnostics)
    assert str(raised.value).startswith("mine:8:16: error: `compiled_los`")


def test_import_stepc_does_not_import_ipython():
    probe = "import sys, stepc; stepc.load_ipython_extension; print('IPython' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ, check=True
    )
    assert done.stdout.strip() == "False"


# ---------------------------------------------------------------- the cell magic


def test_a_stepc_cell_defines_its_model_which_fits(shell):
    result, output = run(shell, "%%stepc\n" + BASIC)
    assert result.success, output
    assert output == f"<cell {result.execution_count}>: defined CustomModel\n"
    assert shell.user_ns["CustomModel"].__name__ == "CustomModel"
    result, output = run(shell, FIT_CELL)
    assert result.success, output
    assert set(shell.user_ns["history"].history) == {"loss", "mae"}


def test_a_cell_with_errors_shows_each_as_the_terminal_does_and_fails(shell):
    result, output = run(shell, "%%stepc\n" + BROKEN)
    assert not result.success
    assert isinstance(result.error_in_exec, stepc.SpecError)
    assert sys.last_value is result.error_in_exec  # where the README says to look
    cell = f"<cell {result.execution_count}>"
    assert output.startswith(f"{cell}:9:16: error: `compiled_los` is not an allowed operation\n")
    assert f"{cell}:10:28: error: unknown model `selfx`" in output
    assert "   9 |         loss = compiled_los(y, y_pred)\n" in output
    assert "     |                ^^^^^^^^^^^^\n" in output
    assert "  hint: did you mean `compiled_loss`?" in output
    assert "  hint: did you mean `self`?" in output
    assert "Traceback" not in output and "SpecCellError" not in output


def test_a_cell_with_warnings_shows_them_on_stderr_and_defines_its_model(shell):
    unused = BASIC.replace("        loss =", "        twice = y_pred * 2\n        loss =")
    result, errors = run(shell, "%%stepc\n" + unused, stream="stderr")
    assert result.success
    assert errors.startswith(f"<cell {result.execution_count}>:9:9: warning: `twice` is computed")
    assert "  hint: remove it\n" in errors


def test_a_named_cell_is_named_in_its_diagnostics_and_module(shell):
    result, output = run(shell, "%%stepc my_gan\n" + BROKEN)
    assert output.startswith("my_gan:9:16: error:")
    result, output = run(shell, "%%stepc my_gan\n" + BASIC)
    assert output == "my_gan: defined CustomModel\n"
    assert shell.user_ns["CustomModel"].__module__ == "stepc_generated.my_gan"


def test_diagnostics_are_coloured_when_the_shell_is(shell):
    shell.colors = "linux"
    try:
        result, output = run(shell, "%%stepc\n" + BROKEN)
    finally:
        shell.colors = "nocolor"
    assert "\033[1;31m" in output and "Traceback" not in output


def test_a_second_name_is_a_usage_error(shell):
    result, output = run(shell, "%%stepc one two\n" + BASIC)
    assert not result.success
    assert output.startswith("UsageError: unrecognized arguments: two")


# ---------------------------------------------------------------- pictures


def shown(shell, name: str) -> dict:
    """The display data of the notebook's object `name`, by MIME type."""
    data, _ = shell.display_formatter.format(shell.user_ns[name])
    return data


def test_a_model_class_shows_its_step_picture_as_svg(shell):
    if shutil.which("dot") is None:
        assert not os.environ.get("CI"), "CI installs Graphviz"
        pytest.skip("Graphviz (dot) is not installed")
    run(shell, "%%stepc pictured\n" + BASIC)
    data = shown(shell, "CustomModel")
    assert ElementTree.fromstring(data["image/svg+xml"]).tag.endswith("svg")
    assert "CustomModel.train_step (pictured:" in data["image/svg+xml"]
    assert "text/markdown" not in data  # JupyterLab would prefer it to the SVG


def test_without_graphviz_a_model_class_shows_its_mermaid_source(shell, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot`
    run(shell, "%%stepc unpictured\n" + BASIC)
    data = shown(shell, "CustomModel")
    assert "image/svg+xml" not in data
    assert data["text/markdown"].startswith("```mermaid\nflowchart")
    assert data["text/markdown"].endswith("\n```")
    assert "CustomModel.train_step (unpictured:" in data["text/markdown"]
    assert data["text/plain"] == "stepc_generated.unpictured.CustomModel"


def test_other_objects_display_as_before(shell):
    run(shell, "%%stepc\n" + BASIC)
    run(shell, FIT_CELL + "class Plain: pass\nplain_model = keras.Sequential([keras.Input((2,))])")
    assert set(shown(shell, "model")) == set(shown(shell, "plain_model")) == {"text/plain"}
    assert set(shown(shell, "Plain")) == {"text/plain"}


def test_reloading_the_extension_does_not_stack_its_printers(shell):
    from stepc.tools.notebook import SVG

    formatter = shell.display_formatter.formatters[SVG]
    before = formatter.for_type(type)
    assert shell.run_cell("%reload_ext stepc").success
    assert formatter.for_type(type).previous is before.previous
