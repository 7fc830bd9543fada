"""The loops of a step, spelled alike on every backend: `for i in range(n):`,
`for a, b in zip(x, y, strict=True):`, `for i, c in enumerate(x):`.

Owns the text of a `ForEachBlock`, the loop variable of a `RepeatBlock`, and the
subscripts the plan checks (`StepPlan.index_checks`): each is written as
`_checked_index(value, axis, index, where)[...]`, which reads the axis's static
length when the step is traced (no graph op) and raises IndexError naming the
spec line, as JAX and XLA would otherwise clamp the index silently.
`stepc.emit.keras.steps.StepWriter` mixes it in.
"""

from __future__ import annotations

from stepc.emit.pyexpr import Rendered, call, flat, index_text, string_literal
from stepc.emit.pyexpr import subscript as subscript_doc
from stepc.lower.plan import ForEachBlock, IndexCheck, RepeatBlock
from stepc.parse import ir

_ZIP, _ENUMERATE = "zip", "enumerate"


class LoopWriter:
    """`for` loops and checked subscripts; the writer provides emit, expr, names, ..."""

    def loop_variable(self, block: RepeatBlock) -> str:
        """The name a repeat's `for` binds: its index, or `_` when it has none."""
        index = block.statement.index
        return self.names.python(index.id) if index is not None else "_"

    def _for_each(self, block: ForEachBlock, depth: int) -> None:
        if not block.items:  # nothing left to run (a block that only updated weights)
            return
        self.comment(depth, block.statement.span, _for_text(block))
        targets = ", ".join(self.names.python(t) for t in block.targets)
        iterable = self._iterable(block, block.iterable)
        header = f"for {targets} in {flat(iterable.doc)}:"
        self.emit(depth, header)
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

    def subscript(self, node: ir.Subscript) -> Rendered:
        """A subscript, its value checked first where a loop index reads an axis."""
        value = self.expr(node.value)
        for check in self._checks_of(node):
            self.used.add("checked_index")
            where = string_literal(f"{self.spec_name}:{check.span.line}")
            index = self.expr(check.index).doc
            value = call("_checked_index", [value.doc, str(check.axis), index, where])
        return subscript_doc(value, index_text(node.index, self.expr))

    def _checks_of(self, node: ir.Subscript) -> list[IndexCheck]:
        checks = getattr(self, "_index_checks", None)
        if checks is None:
            checks = {}
            for check in self.step.index_checks:
                checks.setdefault(check.subscript, []).append(check)
            self._index_checks = checks
        return checks.get(node, [])


def _for_text(block: ForEachBlock) -> str:
    """The loop's header as the spec wrote it, shortened to what it iterates."""
    iterable = block.iterable
    what = iterable.func.id + "(...)" if isinstance(iterable, ir.Call) else "the sequence"
    if isinstance(iterable, ir.Name):
        what = iterable.id
    return f"for {', '.join(block.targets)} in {what}"
