"""Def-use facts of one step's statements, computed once, in one pass.

Owns, per statement: the names it reads and defines, which earlier statement
each read comes from (its reaching definition), the models it calls and
whether it draws random numbers, and whether its value is `stop_gradient(...)`
(no gradient flows back through it). A unit is a statement or a `Block` of
statements the lowering keeps together. The lowering's placement questions (what a
loss depends on, what a statement reads from) are answered from these tables
in time linear in the answer, so compiling stays linear in the spec's size.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepc import ir
from stepc.builtins import OPS


@dataclass(frozen=True)
class Block:
    """Statements lowered as one unit: a gradient's recording and the gradient."""

    parts: tuple
    span: ir.Span


def is_stop(statement) -> bool:
    """A value computed entirely inside stop_gradient: it carries no gradient."""
    return (
        isinstance(statement, ir.Assign)
        and isinstance(statement.value, ir.Call)
        and statement.value.func.id == "stop_gradient"
    )


def defined_names(parts) -> set[str]:
    """The names statements define: assigned values and models given new weights."""
    names: set[str] = set()
    for statement in ir.statements(parts):
        if isinstance(statement, ir.Assign):
            names.update(t.id for t in statement.targets)
        elif isinstance(statement, ir.AssignWeights):
            names.add(statement.target.id)
        elif isinstance(statement, Block):
            names |= defined_names(statement.parts)
    return names


class Dataflow:
    def __init__(self, body: list):
        self.reads: list[set[str]] = []
        self.defines: list[set[str]] = []
        self.sources: list[dict[str, int]] = []  # read name -> defining statement
        self.calls: list[set[str]] = []
        self.random: list[bool] = []
        self.stops: list[bool] = []
        last_definition: dict[str, int] = {}
        for index, statement in enumerate(body):
            self._record(statement)
            self.sources.append(
                {n: last_definition[n] for n in self.reads[-1] if n in last_definition}
            )
            for name in self.defines[-1]:
                last_definition[name] = index

    def _record(self, unit) -> None:
        parts = unit.parts if isinstance(unit, Block) else (unit,)
        names: set[str] = set()
        calls: set[str] = set()
        for part in parts:
            for node in _nodes(part):
                if type(node) is ir.Name:
                    names.add(node.id)
                elif type(node) is ir.Call:
                    calls.add(node.func.id)
        # A called model is read too: `assign` may have given it new weights.
        self.reads.append(names | calls)
        if type(unit) is ir.Assign:  # the common case, without a walk
            self.defines.append({t.id for t in unit.targets})
        else:
            self.defines.append(defined_names(parts))
        self.calls.append(calls)
        self.random.append(any(name in OPS and OPS[name].random for name in calls))
        self.stops.append(is_stop(unit))

    def ancestors(self, index: int) -> set[int]:
        """Every statement body[index] depends on through values that carry a
        gradient, transitively: a stop_gradient value is found, not followed."""
        found: set[int] = set()
        pending = [index]
        while pending:
            for source in self.sources[pending.pop()].values():
                if source not in found:
                    found.add(source)
                    if not self.stops[source]:
                        pending.append(source)
        return found

    def reads_from(self, index: int, statements: set[int]) -> bool:
        return any(source in statements for source in self.sources[index].values())


def _nodes(part):
    if isinstance(part, Block):
        return [node for inner in part.parts for node in _nodes(inner)]
    return ir.walk(part)
