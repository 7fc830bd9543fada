"""`stepc explain`: the compiler's decisions about each step, as text with spec lines.

Owns the text rendering of the step pictures' facts (stepc.tools.step_facts, the
same walk `stepc graph` draws): per step a heading, then one line per decision,
`spec:LINE  what was decided`, in the order of the spec's lines: the batch's
parts, each forward pass and its mode, where each recording begins and ends,
what was moved out of one and why, how each loss is scaled (for distribution
and mixed precision), which optimizer updates which variables, state writes,
metric updates and what the step reports.
"""

from __future__ import annotations

import sys

from stepc.tools.graph import EXIT_FAILED, EXIT_USAGE, chosen, spec_graphs, use_colour, write_output
from stepc.tools.step_facts import StepGraph, step_graphs


def explain(text: str, path: str = "<spec>") -> str:
    """The decisions of every step of the spec; raises SpecError if it does not compile."""
    return explain_graphs(step_graphs(text, path))


def explain_graphs(graphs) -> str:
    return "\n".join(_step_text(graph) for graph in graphs)


def _step_text(graph: StepGraph) -> str:
    derived = (
        ": derived from the train step, without its weight updates, in inference mode"
        if graph.derived
        else ""
    )
    heading = f"{graph.name} ({graph.spec}:{graph.line}){derived}"
    # A recording or loop begins before the facts of its first line; among the
    # facts of one line, the walk's own order.
    facts = [(c.first_line, 0, c.explanation) for c in graph.clusters]
    facts += [(node.line, 1, node.explanation) for node in graph.nodes]
    ordered = sorted(enumerate(facts), key=lambda item: (*item[1][:2], item[0]))
    lines = [f"{graph.spec}:{line}  {sentence}" for _, (line, _, sentence) in ordered]
    return "\n".join([heading, *lines]) + "\n"


def run(args) -> int:
    graphs = spec_graphs(args.spec, use_colour(args.color))
    if graphs is None:
        return EXIT_FAILED
    graphs = chosen(graphs, args.model, None)
    if isinstance(graphs, str):
        sys.stderr.write(f"stepc explain: {graphs}\n")
        return EXIT_USAGE
    return write_output(explain_graphs(graphs), None, "stepc explain")
