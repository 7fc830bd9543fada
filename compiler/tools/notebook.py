"""The IPython extension: the `%%stepc` cell magic, and a model class's step picture.

Owns what `%load_ext stepc` registers (`register`, called by
`stepc.load_ipython_extension`): the cell magic, which compiles the cell with
`stepc.load_source` and defines the spec's model classes in the notebook, and
display formatters that show a compiled model class as its step picture (SVG from
`stepc.tools.graph`; the Mermaid source as Markdown when Graphviz is missing).

A cell whose spec does not compile fails without a traceback: `SpecCellError`'s
`_render_traceback_` (IPython's hook for exceptions that render themselves) gives
the diagnostics as the terminal shows them, and the cell still counts as failed,
so a notebook's *Run All* stops there. IPython's `UsageError` would also skip the
traceback, but prefixes the first diagnostic with `UsageError: `.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from stepc.diagnostics import SpecError, render_text
from stepc.pipeline import LoadedSpec, load_source

SVG = "image/svg+xml"
MARKDOWN = "text/markdown"


def register(ipython) -> None:
    """The `%%stepc` magic and the model classes' pictures, in the shell `ipython`."""
    ipython.register_magics(StepcMagics)
    formatters = ipython.display_formatter.formatters
    _show_models_as(formatters[SVG], svg_picture)
    _show_models_as(formatters[MARKDOWN], mermaid_picture)


@magics_class
class StepcMagics(Magics):
    @magic_arguments()
    @argument(
        "name",
        nargs="?",
        help="the file name the cell's diagnostics show, and the module's name "
        "(default: <cell N>, N the execution count); give one to a spec whose models "
        "you save, so a later session registers them under the same Keras name",
    )
    @cell_magic
    def stepc(self, line: str, cell: str) -> None:
        """Compile the cell's spec and define its model classes in the notebook."""
        name = parse_argstring(self.stepc, line).name or f"<cell {self._cell_number()}>"
        colour = self.shell.colors != "nocolor"  # a notebook shows ANSI colours, as a terminal
        try:
            # The `%%stepc` line stays as a blank line 1: diagnostics give the cell's lines.
            module = load_source("\n" + cell, name)
        except SpecError as exc:
            raise SpecCellError(exc.path, exc.source, exc.diagnostics, colour) from None
        _show_warnings(module.__stepc_spec__, colour)
        classes = model_classes(module)
        self.shell.push(classes)
        print(f"{name}: defined {', '.join(classes)}")

    def _cell_number(self) -> int:
        """The running cell's number (`In [N]`): IPython counts a cell it keeps in its
        history before running it."""
        return self.shell.execution_count - 1


def _show_warnings(spec: LoadedSpec, colour: bool) -> None:
    """A compiled cell's warnings, on stderr as `stepc compile` prints them."""
    if spec.warnings:
        print(render_text(spec.name, spec.text, spec.warnings, colour), file=sys.stderr)


class SpecCellError(SpecError):
    """A `%%stepc` cell's spec does not compile; IPython shows its diagnostics, no traceback."""

    def __init__(self, path, source, diagnostics, colour: bool = False):
        super().__init__(path, source, diagnostics)
        self.colour = colour

    def _render_traceback_(self) -> list[str]:
        return render_text(self.path, self.source, self.diagnostics, self.colour).split("\n")


def model_classes(module: ModuleType) -> dict[str, type]:
    """The model classes a compiled module defines, by name (its only public classes)."""
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type)
        and not name.startswith("_")
        and value.__module__ == module.__name__
    }


def spec_of_class(obj: object) -> tuple[LoadedSpec, str] | None:
    """The spec and model name of a class `stepc.load` or `load_source` compiled, else None."""
    if not isinstance(obj, type):
        return None
    module = sys.modules.get(obj.__module__)
    spec = getattr(module, "__stepc_spec__", None)
    if not isinstance(spec, LoadedSpec) or model_classes(module).get(obj.__name__) is not obj:
        return None
    return spec, obj.__name__


# ---------------------------------------------------------------- pictures


@functools.lru_cache(maxsize=64)
def svg_picture(spec: LoadedSpec, model: str) -> str | None:
    """The model's steps as SVG; None without Graphviz."""
    from stepc.tools.graph import svg_of_model

    return svg_of_model(spec.text, spec.name, model)


@functools.lru_cache(maxsize=64)
def mermaid_picture(spec: LoadedSpec, model: str) -> str | None:
    """The model's steps as a Markdown Mermaid block, only when there is no SVG: a
    front end shows the richest output it can, and JupyterLab ranks Markdown above SVG."""
    if svg_picture(spec, model) is not None:
        return None
    from stepc.tools.graph import graphs_of_model, step_graphs, to_mermaid

    graphs = graphs_of_model(step_graphs(spec.text, spec.name), model)
    return f"```mermaid\n{to_mermaid(graphs)}\n```"


@dataclass(frozen=True)
class _ModelPicture:
    """A display formatter's printer for classes (IPython looks printers up by the type
    of the object, and a class's type is its metaclass, so this one is registered for
    `type`): a compiled model class gets its picture, any other class what the printer
    registered before gave it (IPython itself shows no class as anything but text)."""

    draw: Callable[[LoadedSpec, str], str | None]
    previous: Callable[[object], object] | None

    def __call__(self, obj: object):
        found = spec_of_class(obj)
        if found is not None:
            return self.draw(*found)
        return self.previous(obj) if self.previous is not None else None


def _show_models_as(formatter, draw: Callable[[LoadedSpec, str], str | None]) -> None:
    previous = formatter.for_type(type)
    if isinstance(previous, _ModelPicture):  # `%reload_ext stepc`: replace, don't stack
        previous = previous.previous
    formatter.for_type(type, _ModelPicture(draw, previous))
