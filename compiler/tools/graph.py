"""`stepc graph`: a picture of each step, drawn from the compiler's own plan.

Owns the command and the library calls around it: `step_graphs` (the facts,
stepc.tools.step_facts), the renderers (stepc.tools.graph_render), filtering
by model and step, `svg_of_model` for a notebook's rich display, and reading
a spec for a tool command, which prints a spec's diagnostics as `stepc check`
does and exits 1 (shared with `stepc explain`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from stepc.cli import use_colour
from stepc.diagnostics import SpecError, render_text
from stepc.parse.sources import read_spec
from stepc.tools.graph_render import to_dot, to_mermaid, to_svg
from stepc.tools.step_facts import StepGraph, graphs_of_model, step_graphs

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
RENDERERS = {"dot": to_dot, "mermaid": to_mermaid, "svg": to_svg}


def svg_of_model(text: str, path: str, model_name: str) -> str | None:
    """The SVG of one model's step pictures (None without Graphviz or such a model);
    raises SpecError for a spec that does not compile."""
    graphs = graphs_of_model(step_graphs(text, path), model_name)
    return to_svg(graphs) if graphs else None


def spec_graphs(path: str, colour: bool) -> tuple[StepGraph, ...] | None:
    """The pictures of the spec at `path`, or None after printing why there are none."""
    source, problems = read_spec(path)
    if source is None:
        _say(render_text(path, "", problems, colour))
        return None
    try:
        return step_graphs(source, path)
    except SpecError as exc:
        _say(render_text(path, exc.source, exc.diagnostics, colour))
        return None


def chosen(graphs, model: str | None, step: str | None) -> tuple[StepGraph, ...] | str:
    """The graphs the filters keep, or what is wrong with the filters."""
    if model is not None:
        models = list(dict.fromkeys(graph.model for graph in graphs))
        if model not in models:
            return f"no model `{model}` in the spec (it has {', '.join(models) or 'none'})"
        graphs = graphs_of_model(graphs, model)
    if step is not None:
        kept = tuple(graph for graph in graphs if graph.step == step)
        if not kept:
            return f"no {step} step to draw (the steps: {_steps(graphs)})"
        graphs = kept
    return tuple(graphs)


def _steps(graphs) -> str:
    return ", ".join(graph.name for graph in graphs) or "none"


def run(args) -> int:
    colour = use_colour(args.color)
    graphs = spec_graphs(args.spec, colour)
    if graphs is None:
        return EXIT_FAILED
    graphs = chosen(graphs, args.model, args.step)
    if isinstance(graphs, str):
        _say(f"stepc graph: {graphs}")
        return EXIT_USAGE
    text = RENDERERS[args.format](graphs)
    if text is None:
        _say(
            "stepc graph: --format svg needs Graphviz's `dot` on PATH "
            "(install Graphviz, e.g. `apt install graphviz`), or use --format dot or mermaid"
        )
        return EXIT_FAILED
    return write_output(text, args.out, "stepc graph")


def write_output(text: str, out: str | None, command: str) -> int:
    """`text` on stdout, or in the file `out`."""
    if out is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        _say(f"{command}: cannot write {out}: {exc.strerror or exc}")
        return EXIT_FAILED
    return EXIT_OK


def _say(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")


__all__ = [
    "graphs_of_model",
    "run",
    "step_graphs",
    "svg_of_model",
    "to_dot",
    "to_mermaid",
    "to_svg",
]
