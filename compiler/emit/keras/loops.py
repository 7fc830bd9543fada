"""The loops of a step, spelled alike on every backend: `for i in range(n):`,
`for a, b in zip(x, y, strict=True):`, `for i, c in enumerate(x):`.

Owns the text of a `ForEachBlock`, the loop variable of a `RepeatBlock`, and the
subscripts the plan checks (`StepPlan.index_checks`): each is written as
`_check_index(value, axis, index, where)` on a line before the statement (or
around the value, when it is not a name), which reads the axis's static length
when the step is traced (no graph op) and raises IndexError naming the spec
line, as JAX and XLA would otherwise clamp the index silently.
`stepc.emit.keras.steps.StepWriter` mixes it in.
"""

from __future__ import annotations

from stepc.emit.pyexpr import INDENT, Concat, Rendered, call, index_text, layout, string_literal
from stepc.emit.pyexpr import subscript as subscript_doc
from stepc.lower.plan import ForEachBlock, IndexCheck, RepeatBlock
from stepc.parse import ir

_ZIP, _ENUMERATE = "zip", "enumerate"


class LoopWriter:
    """`for` loops and checked subscripts; the writer provides emit, expr, names, and
    `index_checks_by_subscript` (`checks_by_subscript`) and `checked_before` (the
    subscripts whose checks were written as lines before their statement)."""

    def loop_variable(self, block: RepeatBlock) -> str:
        """The name a repeat's `for` binds: its index, or `_` when it has none."""
        index = block.statement.index
        return self.names.python(index.id) if index is not None else "_"

    def repeat_text(self, block: RepeatBlock) -> str:
        """A repeat's header as the spec wrote it, for its comment."""
        count = block.count
        text = f"repeat {count.id if isinstance(count, ir.Name) else count.text}"
        index = block.statement.index
        return f"{text} as {index.id}" if index is not None else text

    def _for_each(self, block: ForEachBlock, depth: int) -> None:
        if not block.items:  # nothing left to run (a block that only updated weights)
            return
        self.comment(depth, block.statement.span, _for_text(block))
        targets = ", ".join(self.names.python(t) for t in block.targets)
        iterable = self._iterable(block, block.iterable)
        # Broken as ruff format breaks a long header: inside the last brackets.
        self.lines += layout(f"for {targets} in ", Concat((iterable.doc, ":")), INDENT * depth)
        for item in block.items:
            self._item(item, depth + 1)

    def _iterable(self, block: ForEachBlock, node: ir.Expr) -> Rendered:
        """`zip(...)` as Python's, strict (the lengths were checked where known);
        `enumerate(...)` as Python's; each sequence the plan checks, checked."""
        if isinstance(node, ir.Call) and node.func.id in (_ZIP, _ENUMERATE):
            args = [self._sequence(block, a).doc for a in node.args]
            if node.func.id == _ZIP:
                args.append("strict=True")
            return call(node.func.id, args)
        return self._sequence(block, node)

    def _sequence(self, block: ForEachBlock, node: ir.Expr) -> Rendered:
        rendered = self.expr(node)
        if node not in block.checked:
            return rendered
        self.used.add("as_sequence")
        where = string_literal(f"{self.spec_name}:{block.statement.span.line}")
        return call("_as_sequence", [rendered.doc, where])

    def index_checks(self, statement, depth: int) -> None:
        """The checks of a statement's subscripts of named values, as lines before it."""
        for node in ir.walk(statement):
            if not (isinstance(node, ir.Subscript) and isinstance(node.value, ir.Name)):
                continue
            for check in self._checks_of(node):
                rendered = self._check_call(self.expr(node.value).doc, check)
                self.lines += layout("", rendered.doc, INDENT * depth)
            self.checked_before.add(node)

    def subscript(self, node: ir.Subscript) -> Rendered:
        """A subscript; a value not checked before its statement is checked in it
        (`_check_index(value, ...)[...]`) where a loop index reads an axis."""
        value = self.expr(node.value)
        if node not in self.checked_before:
            for check in self._checks_of(node):
                value = self._check_call(value.doc, check)
        return subscript_doc(value, index_text(node.index, self.expr))

    def _check_call(self, value, check: IndexCheck) -> Rendered:
        self.used.add("check_index")
        where = string_literal(f"{self.spec_name}:{check.span.line}")
        index = self.expr(check.index).doc
        return call("_check_index", [value, str(check.axis), index, where])

    def _checks_of(self, node: ir.Subscript) -> list[IndexCheck]:
        return self.index_checks_by_subscript.get(node, [])


def checks_by_subscript(step) -> dict[ir.Subscript, list[IndexCheck]]:
    """The plan's index checks of a step (`StepPlan.index_checks`) by their subscript."""
    checks: dict[ir.Subscript, list[IndexCheck]] = {}
    for check in step.index_checks:
        checks.setdefault(check.subscript, []).append(check)
    return checks


def _for_text(block: ForEachBlock) -> str:
    """The loop's header as the spec wrote it, shortened to what it iterates."""
    iterable = block.iterable
    what = iterable.func.id + "(...)" if isinstance(iterable, ir.Call) else "a list"
    if isinstance(iterable, ir.Name):
        what = iterable.id
    elif isinstance(iterable, ir.TupleExpr):
        what = "a tuple"
    return f"for {', '.join(block.targets)} in {what}"
