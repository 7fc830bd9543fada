"""Drawing step pictures: DOT (Graphviz), Mermaid (renders on GitHub) and SVG.

Owns the spelling of a `StepGraph` (stepc.tools.step_facts) in each format: one
cluster per step holding its recordings and loops as nested clusters, a shape
per kind of node, forward passes in training mode filled and in inference mode
dashed, moved values dashed and labelled why, and the escaping that lets any
spec text stand in a label. Node ids are the graph's stable ids prefixed by
model and step, so the output is the same on every run. SVG is Graphviz's
rendering of the DOT (`dot -Tsvg`), or None when Graphviz is not installed.
"""

from __future__ import annotations

import shutil
import subprocess

from stepc.tools.step_records import (
    ASSIGN,
    DATA,
    GRADIENT,
    LOSS,
    METRIC,
    OPTIMIZER,
    PASS,
    RECORDING,
    REPORT,
    STATE,
    VALUE,
    WEIGHTS,
    Cluster,
    Node,
    StepGraph,
)

# Each kind's shape, style and fill colour.
_DOT_SHAPES = {
    DATA: ("parallelogram", "filled", "#e8f0fe"),
    PASS: ("box", "rounded,filled", "#d7e8ff"),
    LOSS: ("ellipse", "filled", "#ffe0e0"),
    GRADIENT: ("invtrapezium", "filled", "#fdebd0"),
    OPTIMIZER: ("hexagon", "filled", "#e2f4d8"),
    WEIGHTS: ("cylinder", "filled", "#f2f2f2"),
    METRIC: ("tab", "filled", "#fff8d0"),
    STATE: ("cylinder", "filled", "#efe0ff"),
    ASSIGN: ("box", "filled", "#efe0ff"),
    VALUE: ("note", "filled", "#ffffff"),
    REPORT: ("folder", "filled", "#e0f7f4"),
}
_INFERENCE = ("box", "rounded,dashed,filled", "#f4f4f4")
_CLUSTER_STYLES = {
    RECORDING: 'style="rounded,filled"; fillcolor="#fff4e0"; color="#d08a20"',
    "repeat": 'style="rounded,dashed"; color="#607080"',
    "for": 'style="rounded,dashed"; color="#607080"',
}

# Mermaid node shapes: (opening, closing) around the quoted label.
_MERMAID_SHAPES = {
    DATA: ("[/", "/]"),
    PASS: ("(", ")"),
    LOSS: ("([", "])"),
    GRADIENT: ("[\\", "/]"),
    OPTIMIZER: ("{{", "}}"),
    WEIGHTS: ("[(", ")]"),
    METRIC: (">", "]"),
    STATE: ("[(", ")]"),
    ASSIGN: ("[", "]"),
    VALUE: ("[", "]"),
    REPORT: ("[[", "]]"),
}
_MERMAID_CLASSES = (
    ("training", "fill:#d7e8ff,stroke:#3b6fb6"),
    ("inference", "fill:#f4f4f4,stroke:#777,stroke-dasharray:4 3"),
    ("moved", "stroke-dasharray:5 4"),
    ("loss", "fill:#ffe0e0"),
    ("optimizer", "fill:#e2f4d8"),
)


# ---------------------------------------------------------------- shared


def graph_key(graph: StepGraph) -> str:
    """The prefix of a graph's ids: model and step, both identifiers."""
    return f"{graph.model}_{graph.step}"


def _title(graph: StepGraph) -> str:
    derived = ", derived from the train step" if graph.derived else ""
    return f"{graph.name} ({graph.spec}:{graph.line}{derived})"


def _label(node: Node) -> str:
    if not node.moved:
        return node.label
    return f"{node.label}\n({node.moved.split(' (')[0]})"


def _children(graph: StepGraph, parent: str) -> tuple[list[Node], list[Cluster]]:
    """The nodes and clusters directly inside `parent` ("": the step's own)."""
    nodes = [node for node in graph.nodes if node.cluster == parent]
    clusters = [cluster for cluster in graph.clusters if cluster.parent == parent]
    return nodes, sorted(clusters, key=lambda cluster: cluster.first_line)


# ---------------------------------------------------------------- DOT


def to_dot(graphs) -> str:
    """One Graphviz digraph: a cluster per step, its recordings nested inside."""
    out = [
        "digraph stepc {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, newrank=true];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for graph in graphs:
        out += _dot_graph(graph)
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_graph(graph: StepGraph) -> list[str]:
    key = graph_key(graph)
    out = [f'  subgraph "cluster_{key}" {{', f"    label={_dot_text(_title(graph))};"]
    out += ['    style=rounded; color="#9aa5b1"; labeljust=l;']
    out += _dot_members(graph, "", key, depth=2)
    out.append("  }")
    for edge in graph.edges:
        label = f" [label={_dot_text(edge.label)}]" if edge.label else ""
        out.append(f'  "{key}__{edge.source}" -> "{key}__{edge.target}"{label};')
    return out


def _dot_members(graph: StepGraph, parent: str, key: str, depth: int) -> list[str]:
    pad = "  " * depth
    nodes, clusters = _children(graph, parent)
    out = [
        f'{pad}"{key}__{node.id}" [label={_dot_text(_label(node))}, {_dot_style(node)}];'
        for node in nodes
    ]
    for cluster in clusters:
        out.append(f'{pad}subgraph "cluster_{key}__{cluster.id}" {{')
        out.append(f"{pad}  label={_dot_text(cluster.label)}; {_CLUSTER_STYLES[cluster.kind]};")
        out += _dot_members(graph, cluster.id, key, depth + 1)
        out.append(f"{pad}}}")
    return out


def _dot_style(node: Node) -> str:
    inference = node.kind == PASS and node.training is False
    shape, style, fill = _INFERENCE if inference else _DOT_SHAPES[node.kind]
    if node.moved:
        style = f"dashed,{style}"
    return f'shape={shape}, style="{style}", fillcolor="{fill}"'


def _dot_text(text: str) -> str:
    """A DOT string: quotes and backslashes escaped, line breaks centred."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


# ---------------------------------------------------------------- Mermaid


def to_mermaid(graphs) -> str:
    """A Mermaid flowchart: a subgraph per step, its recordings nested inside."""
    out = ["flowchart TB"]
    classes: dict[str, list[str]] = {name: [] for name, _ in _MERMAID_CLASSES}
    for graph in graphs:
        out += _mermaid_graph(graph, classes)
    for name, style in _MERMAID_CLASSES:
        if classes[name]:
            out.append(f"  classDef {name} {style}")
            out.append(f"  class {','.join(classes[name])} {name}")
    return "\n".join(out) + "\n"


def _mermaid_graph(graph: StepGraph, classes: dict[str, list[str]]) -> list[str]:
    key = graph_key(graph)
    out = [f'  subgraph {key}["{_mermaid_text(_title(graph))}"]']
    out += _mermaid_members(graph, "", key, 2, classes)
    out.append("  end")
    for edge in graph.edges:
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        out.append(f"  {key}__{edge.source} -->{label} {key}__{edge.target}")
    return out


def _mermaid_members(graph, parent: str, key: str, depth: int, classes) -> list[str]:
    pad = "  " * depth
    nodes, clusters = _children(graph, parent)
    out = []
    for node in nodes:
        opening, closing = _MERMAID_SHAPES[node.kind]
        out.append(f'{pad}{key}__{node.id}{opening}"{_mermaid_text(_label(node))}"{closing}')
        for name in _mermaid_classes(node):
            classes[name].append(f"{key}__{node.id}")
    for cluster in clusters:
        out.append(f'{pad}subgraph {key}__{cluster.id}["{_mermaid_text(cluster.label)}"]')
        out += _mermaid_members(graph, cluster.id, key, depth + 1, classes)
        out.append(f"{pad}end")
        if cluster.kind == RECORDING:
            out.append(f"{pad}style {key}__{cluster.id} fill:#fff4e0,stroke:#d08a20")
    return out


def _mermaid_classes(node: Node) -> list[str]:
    names = []
    if node.kind == PASS and node.training is not None:
        names.append("training" if node.training else "inference")
    if node.kind in (LOSS, OPTIMIZER):
        names.append(node.kind)
    if node.moved:
        names.append("moved")
    return names


# Characters that would end a quoted Mermaid label or be read as markup, as
# Mermaid's entity codes (`#` first: every code starts with it).
_MERMAID_ESCAPES = (
    ("#", "#35;"),
    ('"', "#quot;"),
    ("<", "#lt;"),
    (">", "#gt;"),
    ("&", "#38;"),
    ("`", "#96;"),
)


def _mermaid_text(text: str) -> str:
    for character, code in _MERMAID_ESCAPES:
        text = text.replace(character, code)
    return text.replace("\n", "<br/>")


# ---------------------------------------------------------------- SVG


def to_svg(graphs) -> str | None:
    """Graphviz's SVG of the pictures; None when `dot` is not on PATH."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    run = subprocess.run(
        [dot, "-Tsvg"], input=to_dot(graphs), capture_output=True, text=True, check=False
    )
    if run.returncode != 0:  # stepc wrote DOT that Graphviz refuses: a bug of stepc
        raise RuntimeError(f"Graphviz could not draw the step picture: {run.stderr.strip()}")
    return run.stdout
