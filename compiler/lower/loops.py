"""Stage 3, loops: a `repeat ... as i` or `for ... in ...` block as a plan item,
and the subscripts whose loop index is checked when the step is traced.

Owns two decisions. A loop's statements are placed as a step's are (each
minimize in it records what its loss needs and updates in statement order:
`stepc.lower.step`); this module makes the block's plan item. And each subscript
of a tensor by an expression reading a loop index gets an `IndexCheck` (which
axis, which line): JAX and XLA clamp an index past the end of an axis, so the
generated step checks it against the axis's static length when traced.
"""

from __future__ import annotations

import dataclasses

from stepc.check.loops import ENUMERATE, LOOP_CALLS
from stepc.lower.plan import ForEachBlock, IndexCheck, PlanItem, RepeatBlock
from stepc.lower.scaling import Facts
from stepc.parse import ir


def loop_block(loop: ir.Repeat | ir.ForEach, items: tuple[PlanItem, ...], facts) -> PlanItem:
    """The plan item of a loop whose statements were placed as `items`."""
    if isinstance(loop, ir.Repeat):
        return RepeatBlock(loop.count, items, loop)
    targets = tuple(t.id for t in loop.targets)
    iterable = _at_true_value(loop.iterable, facts)
    return ForEachBlock(targets, iterable, items, loop, _checked_sequences(loop.iterable))


def note_loop_variables(loop, facts: Facts, depends) -> None:
    """What the lowering knows of a loop's variables before placing its body: an
    index is a Python int (a constant to the batch-size weighting); a for loop's
    variables hold true (not replica-scaled) values, computed from its iterable."""
    if isinstance(loop, ir.Repeat) and loop.index is not None:
        facts.assign((loop.index,), ir.Number("0", True, loop.index.span), False)
    elif isinstance(loop, ir.ForEach):
        facts.assign(loop.targets, loop.iterable, False)
        depends.assign(loop.targets, loop.iterable)


def _at_true_value(iterable: ir.Expr, facts: Facts) -> ir.Expr:
    """Each item of a literal tuple or list at its true value (a loss object's is
    one replica's share under distribution), as the loop variables are taken."""
    if isinstance(iterable, (ir.TupleExpr, ir.ListExpr)):
        items = tuple(_at_true_value(item, facts) for item in iterable.items)
        return dataclasses.replace(iterable, items=items)
    if isinstance(iterable, ir.Call) and iterable.func.id in LOOP_CALLS:
        args = tuple(_at_true_value(arg, facts) for arg in iterable.args)
        return dataclasses.replace(iterable, args=args)
    return facts.unscaled(iterable)


def _checked_sequences(iterable: ir.Expr) -> tuple[ir.Expr, ...]:
    """The sequences a for loop iterates that are not literal tuples or lists."""
    zipped = isinstance(iterable, ir.Call) and iterable.func.id in LOOP_CALLS
    sequences = iterable.args if zipped else (iterable,)
    return tuple(s for s in sequences if not isinstance(s, (ir.TupleExpr, ir.ListExpr)))


def loop_names(loop) -> set[str]:
    """The names a loop binds on each pass: its index, or its targets."""
    if isinstance(loop, ir.Repeat):
        return {loop.index.id} if loop.index is not None else set()
    if isinstance(loop, ir.ForEach):
        return {t.id for t in loop.targets}
    return set()


def index_checks(body) -> tuple[IndexCheck, ...]:
    """Every subscript of the step whose index reads an index of a loop around it
    (a repeat's, or an enumerate's position)."""
    return tuple(_checks_in(body, frozenset()))


def _checks_in(body, indices: frozenset[str]):
    for statement in body:
        if isinstance(statement, ir.Repeat):
            yield from _subscript_checks(statement.count, indices)
            inner = indices | (loop_names(statement) if statement.index else set())
            yield from _checks_in(statement.body, frozenset(inner))
        elif isinstance(statement, ir.ForEach):
            yield from _subscript_checks(statement.iterable, indices)
            yield from _checks_in(statement.body, indices | _position(statement))
        elif indices:
            yield from _subscript_checks(statement, indices)


def _position(loop: ir.ForEach) -> frozenset[str]:
    """`for k, item in enumerate(...)`: `k`, an index as a repeat's is."""
    iterable = loop.iterable
    enumerated = isinstance(iterable, ir.Call) and iterable.func.id == ENUMERATE
    return frozenset({loop.targets[0].id}) if enumerated and len(loop.targets) == 2 else frozenset()


def _subscript_checks(node, indices: frozenset[str]):
    if not indices:
        return
    for found in ir.walk(node):
        if isinstance(found, ir.Subscript) and not isinstance(found.index, ir.String):
            yield from _axis_checks(found, indices)


def _axis_checks(node: ir.Subscript, indices: frozenset[str]):
    """The axes of one subscript indexed by an expression reading a loop index.

    Axes are counted as the tensor's: `None` adds one (not of the tensor), and
    those after a `...` are counted from the end."""
    items = node.index.items if isinstance(node.index, ir.Indices) else (node.index,)
    axes = [i for i in items if not _is_none(i)]
    ellipsis = next((n for n, i in enumerate(axes) if isinstance(i, ir.EllipsisIndex)), None)
    for position, item in enumerate(axes):
        if isinstance(item, (ir.Slice, ir.EllipsisIndex)) or not _reads(item, indices):
            continue
        axis = position if ellipsis is None or position < ellipsis else position - len(axes)
        yield IndexCheck(node, axis, item, item.span)


def _reads(expr, names: frozenset[str]) -> bool:
    return any(isinstance(n, ir.Name) and n.id in names for n in ir.walk(expr))


def _is_none(expr) -> bool:
    return isinstance(expr, ir.Name) and expr.id == "None"
