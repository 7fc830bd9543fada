"""Stage 3: gradients the step edits, and their `apply`.

Owns which step values are a model's gradients (`g = gradient(loss, m)` and the
edits computed from them), which names an edit maps over (each of those it
reads, but not inside `global_norm(...)`, which reduces them, nor subscripted:
`g[0]` is one tensor), and the `ApplyEdited` record of an `apply` statement.
The gradient itself is the region `stepc.lower.gradients` places for any
`gradient(loss, model)`: the whole batch's, unscaled (summed over replicas);
the backends scale it again for `optimizer.apply` (see `ApplyEdited`).
"""

from __future__ import annotations

import dataclasses

from stepc.lower.plan import ApplyEdited, Compute
from stepc.parse import ir
from stepc.tables.builtins import GRADIENT, KERAS_OPTIMIZER

_REDUCES = "global_norm"


def gradient_values(body, models: set[str]) -> dict[str, str]:
    """Each name the step binds to a model's gradients (at any point), to the model."""
    found: dict[str, str] = {}
    for statement in ir.statements(body):
        if not isinstance(statement, ir.Assign) or len(statement.targets) != 1:
            continue
        model = _gradients_model(statement.value, models) or _edited_model(statement.value, found)
        if model:
            found[statement.targets[0].id] = model
    return found


def _gradients_model(value: ir.Expr, models: set[str]) -> str:
    """`gradient(loss, m)`: m; else ""."""
    if not (isinstance(value, ir.Call) and value.func.id == GRADIENT and len(value.args) == 2):
        return ""
    source = value.args[1]
    return source.id if isinstance(source, ir.Name) and source.id in models else ""


def _edited_model(value: ir.Expr, found: dict[str, str]) -> str:
    names = mapped_names(value, found)
    return found[names[0]] if names else ""


def mapped_names(expr: ir.Expr, gradients: dict[str, str]) -> tuple[str, ...]:
    """The gradients values `expr` maps over, in first-read order."""
    names: list[str] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ir.Call) and node.func.id == _REDUCES:
            continue
        if isinstance(node, ir.Subscript) and isinstance(node.value, ir.Name):
            stack.append(node.index)
            continue
        if isinstance(node, ir.Name) and node.id in gradients and node.id not in names:
            names.append(node.id)
        stack.extend(reversed(ir.children(node)))
    return tuple(names)


def loss_scaled_gradients(body, gradients: dict[str, str]) -> dict[str, str]:
    """Each `g = gradient(loss, m)` an `apply` uses (through its edits), to the
    apply's optimizer: its loss is scaled by that optimizer (a LossScaleOptimizer's
    scale, against underflow in float16) and the gradient unscaled before the edit."""
    roots: dict[str, set[str]] = {}
    found: dict[str, str] = {}
    for statement in ir.statements(body):
        if isinstance(statement, ir.ApplyEdited):
            optimizer = statement.optimizer.id if statement.optimizer else KERAS_OPTIMIZER
            for name in mapped_names(statement.gradients, gradients):
                found.update(dict.fromkeys(roots.get(name, ()), optimizer))
        elif isinstance(statement, ir.Assign) and len(statement.targets) == 1:
            target = statement.targets[0].id
            read = mapped_names(statement.value, gradients)
            roots[target] = set().union(*(roots.get(n, set()) for n in read)) if read else {target}
    return {name: optimizer for name, optimizer in found.items() if name in gradients}


def mapped_compute(statement: ir.Assign, value: ir.Expr, gradients: dict[str, str]) -> Compute:
    """An assignment, rewritten to `value`; an edit of gradients names what it maps over."""
    rewritten = dataclasses.replace(statement, value=value)
    return Compute(rewritten, maps=mapped_names(value, gradients))


def apply_edited(statement: ir.ApplyEdited, gradients: dict[str, str]) -> ApplyEdited:
    optimizer = statement.optimizer.id if statement.optimizer else KERAS_OPTIMIZER
    maps = mapped_names(statement.gradients, gradients)
    if isinstance(statement.gradients, ir.Name):
        maps = ()  # applied as they are
    return ApplyEdited(statement.model.id, optimizer, statement.gradients, maps, statement)


def without_unused_edits(body, models: set[str]) -> tuple:
    """A derived test step's statements (its applies removed) without the model
    gradients and edits nothing reads any more: evaluate() takes no gradient only
    an update used."""
    gradients = gradient_values(body, models)
    while True:
        read = {n.id for s in ir.statements(body) for n in ir.walk(s) if isinstance(n, ir.Name)}
        unused = {name for name in gradients if name not in read}
        pruned = _without_assignments(body, unused)
        if pruned == tuple(body):
            return pruned
        body = pruned


def _without_assignments(body, names: set[str]) -> tuple:
    kept = []
    for statement in body:
        if isinstance(statement, ir.LOOPS):
            inner = _without_assignments(statement.body, names)
            statement = dataclasses.replace(statement, body=inner) if inner else None
        elif isinstance(statement, ir.Assign) and {t.id for t in statement.targets} <= names:
            statement = None
        if statement is not None:
            kept.append(statement)
    return tuple(kept)
