"""The records of a step's picture: what `stepc graph` draws and `stepc explain` prints.

Owns the frozen dataclasses the walk of stepc.tools.step_facts produces: a
`StepGraph` per (model, step) of `Node`s (each with its spec line and the
decision in words), `Edge`s (what feeds what) and `Cluster`s (recordings and
loops, nested by `parent`), and the kinds of node and cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

# The kinds of node a picture has (the renderers give each its shape).
DATA, PASS, LOSS, GRADIENT, OPTIMIZER, WEIGHTS = (
    "data",
    "pass",
    "loss",
    "gradient",
    "optimizer",
    "weights",
)
METRIC, STATE, ASSIGN, VALUE, REPORT = "metric", "state", "assign", "value", "report"
RECORDING, REPEAT, FOR = "recording", "repeat", "for"


@dataclass(frozen=True)
class Node:
    id: str  # unique within its graph, stable: kind and spec position
    kind: str  # one of the kinds above
    label: str  # short, for the picture; lines separated by "\n"
    line: int  # the spec line it came from
    explanation: str  # the decision in words, for `stepc explain`
    cluster: str = ""  # the innermost recording or loop holding it; "" none
    training: bool | None = None  # a forward pass: in training mode or not
    moved: str = ""  # why the lowering placed it outside the recording it was written in


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""


@dataclass(frozen=True)
class Cluster:
    id: str
    kind: str  # recording, repeat or for
    label: str
    lines: tuple[int, ...]  # the spec lines of the statements inside, nested ones too
    explanation: str
    parent: str = ""  # the cluster it is nested in; "" none

    @property
    def first_line(self) -> int:
        return self.lines[0]

    @property
    def last_line(self) -> int:
        return self.lines[-1]


@dataclass(frozen=True)
class StepGraph:
    spec: str  # the spec's file name
    model: str
    step: str  # train, test or predict
    line: int  # the step's data line
    derived: bool  # a test step the compiler derived from the train step
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    clusters: tuple[Cluster, ...]

    @property
    def name(self) -> str:
        return f"{self.model}.{self.step}_step"
