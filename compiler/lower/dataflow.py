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

from stepc.parse import ir
from stepc.tables.builtins import OPS
from stepc.tables.operators import is_boolean


@dataclass(frozen=True)
class Block:
    """Statements lowered as one unit: a gradient's recording and the gradient."""

    parts: tuple
    span: ir.Span


def is_stop(statement) -> bool:
    """A value computed entirely inside stop_gradient, or a comparison or logical
    operation (a boolean mask): it carries no gradient."""
    if not isinstance(statement, ir.Assign):
        return False
    value = statement.value
    return is_boolean(value) or (isinstance(value, ir.Call) and value.func.id == "stop_gradient")


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
    def __init__(self, body: list, models=frozenset()):
        self.models = models  # a minimize over `self` writes every model's weights
        self.reads: list[set[str]] = []
        self.defines: list[set[str]] = []
        self.sources: list[dict[str, int]] = []  # read name -> defining statement
        self.calls: list[set[str]] = []
        self.random: list[bool] = []
        self.stops: list[bool] = []
        # The last update of weights a statement reads (a minimize's): an order to
        # keep, not a value a gradient flows back through.
        self.updates: list[int | None] = []
        last_definition: dict[str, int] = {}
        last_update: dict[str, int] = {}
        for index, statement in enumerate(body):
            written = self._record(statement)
            reads = self.reads[-1]
            self.sources.append({n: last_definition[n] for n in reads if n in last_definition})
            self.updates.append(
                max((last_update[n] for n in reads if n in last_update), default=None)
            )
            for name in self.defines[-1] - written:
                last_definition[name] = index
            for name in written:
                last_update[name] = index

    def _record(self, unit) -> set[str]:
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
        written: set[str] = set()
        if type(unit) is ir.Assign:  # the common case, without a walk
            self.defines.append({t.id for t in unit.targets})
        else:
            written = self._weights_written(parts) - defined_names(parts)
            self.defines.append(defined_names(parts) | written)
        self.calls.append(calls)
        self.random.append(any(name in OPS and OPS[name].random for name in calls))
        self.stops.append(is_stop(unit))
        return written

    def _weights_written(self, parts) -> set[str]:
        """The models a minimize gives new weights, as `assign` does: a call of
        one reads them, so it is never moved across the update."""
        written: set[str] = set()
        for part in parts:
            if isinstance(part, (Block, *ir.LOOPS)):
                inner = part.parts if isinstance(part, Block) else part.body
                written |= self._weights_written(inner)
            elif isinstance(part, ir.ApplyEdited):
                written |= {part.model.id, "self"}
            elif isinstance(part, ir.Minimize):
                names = {t.id for t in part.targets}
                written |= names | {"self"} | (self.models if "self" in names else set())
        return written

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
        """body[index] reads a value, or weights, one of `statements` gives."""
        if self.updates[index] in statements:
            return True
        return any(source in statements for source in self.sources[index].values())


def _nodes(part):
    if isinstance(part, Block):
        return [node for inner in part.parts for node in _nodes(inner)]
    return ir.walk(part)


class Dependencies:
    """What each assigned value is computed from (models and names), through
    values that carry a gradient, asked of one value at a time.

    Each assignment records only what its expression reads directly (a node
    whose children are the nodes of the values it reads); a question (does
    this value reach one of these names?) walks back from it once and
    remembers every answer for those names, so a chain of n statements costs
    O(n) in all, where sets of everything upstream grow with the chain.
    """

    def __init__(self, models: set[str]):
        self.models = models
        self._callers = models | {"self"}
        self._labels: list[frozenset[str]] = []  # names and models a node reads directly
        self._children: list[tuple[int, ...]] = []  # nodes of the values it reads
        self._current: dict[str, int] = {}  # name -> node of its latest value
        self._answers: dict[frozenset[str], dict[int, bool]] = {}

    def assign(self, targets, value: ir.Expr) -> None:
        node = self._node(value)
        for target in targets:
            self._current[target.id] = node

    def name_reaches(self, name: str, sources) -> bool:
        """The value of `name` is computed from one of `sources`."""
        node = self._current.get(name)
        return node is not None and self._reaches(node, frozenset(sources))

    def expr_reaches(self, expr: ir.Expr, sources) -> bool:
        """`expr` reads or is computed from one of `sources`."""
        return self._reaches(self._node(expr), frozenset(sources))

    def _node(self, expr: ir.Expr) -> int:
        labels: set[str] = set()
        children: set[int] = set()
        self._direct(expr, labels, children)
        self._labels.append(frozenset(labels))
        self._children.append(tuple(children))
        return len(self._labels) - 1

    def _direct(self, expr: ir.Expr, labels: set[str], children: set[int]) -> None:
        """What `expr` reads, not looking inside stop_gradient (an explicit stack:
        a long expression must not reach Python's recursion limit)."""
        stack = [expr]
        while stack:
            node = stack.pop()
            if isinstance(node, ir.Call) and node.func.id == "stop_gradient" or is_boolean(node):
                continue  # no gradient flows back through it
            if isinstance(node, ir.Name):
                labels.add(node.id)
                if node.id in self._current:
                    children.add(self._current[node.id])
            elif isinstance(node, ir.Call) and node.func.id in self._callers:
                labels.add(node.func.id)
                labels.update(self.models if node.func.id == "self" else ())
            stack.extend(ir.children(node))

    def _reaches(self, start: int, sources: frozenset[str]) -> bool:
        known = self._answers.setdefault(sources, {})
        if start not in known:
            # A node's children are older nodes: answering the unknown ones in
            # the order they were made answers each child before its parents.
            for node in sorted(self._unknown_below(start, known)):
                known[node] = bool(self._labels[node] & sources) or any(
                    known[child] for child in self._children[node]
                )
        return known[start]

    def _unknown_below(self, start: int, known: dict[int, bool]) -> set[int]:
        found = {start}
        pending = [start]
        while pending:
            for child in self._children[pending.pop()]:
                if child not in known and child not in found:
                    found.add(child)
                    pending.append(child)
        return found
