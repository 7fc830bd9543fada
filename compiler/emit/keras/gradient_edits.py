"""Emission of gradients the step edits: mapped edits and their `apply`.

Owns how an edit of a model's gradients is written, a list comprehension over
each gradient tensor (`[g * row_mask for g in grads]`, `zip` for several lists of
one model), and the shared part of `apply GRADS to MODEL`: the gradients scaled
for the optimizer (`_for_apply`), then `optimizer.apply`. A framework's writer
names the helper and wraps the call (JAX's scope, torch's no_grad).
"""

from __future__ import annotations

import dataclasses

from stepc.emit.pyexpr import INDENT, Concat, Rendered, call, layout, sequence
from stepc.lower.plan import ApplyEdited, TakeGradient
from stepc.parse import ir

# The element of a gradients list inside a comprehension: "g", "g_2", ...
_ELEMENT = "g"


def mapped(writer, expr, maps: tuple[str, ...]) -> Rendered:
    """`expr` computed once per gradient tensor of the lists `maps` names."""
    elements = [writer.names.fresh(_ELEMENT) for _ in maps]
    writer.names.taken -= set(elements)  # a comprehension's own: free after it
    body = writer.expr(_each(expr, dict(zip(maps, elements, strict=True))))
    lists = [writer.names.python(name) for name in maps]
    source = lists[0] if len(lists) == 1 else f"zip({', '.join(lists)}, strict=True)"
    return sequence("[", [Concat((body.doc, f" for {', '.join(elements)} in {source}"))], "]")


def _each(node, elements: dict[str, str]):
    """`node` with each gradients list it maps over read as one element of it; a list
    inside `global_norm(...)` (which reduces it) or subscripted (`g[0]`) stays whole."""
    if isinstance(node, ir.Name):
        return dataclasses.replace(node, id=elements[node.id]) if node.id in elements else node
    if isinstance(node, ir.Call) and node.func.id == "global_norm":
        return node
    if isinstance(node, ir.Subscript) and isinstance(node.value, ir.Name):
        return dataclasses.replace(node, index=_each(node.index, elements))
    if not dataclasses.is_dataclass(node):
        return node
    changes = {}
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        if isinstance(value, tuple):
            changes[field.name] = tuple(_each(item, elements) for item in value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, ir.Span):
            changes[field.name] = _each(value, elements)
    if isinstance(node, ir.Call):
        changes.pop("func", None)  # the callee is an operation's name
    return dataclasses.replace(node, **changes)


def unscaled(writer, rendered: Rendered, take: TakeGradient) -> Rendered:
    """A model's gradient of a loss its optimizer scaled, with the scale divided out:
    the true gradient an edit sees (`apply` scales it again)."""
    if not take.unscale_by:
        return rendered
    writer.used.add("unscaled")
    return call("_unscaled", [rendered.doc, writer.names.python(take.unscale_by)])


def edited_gradients(writer, apply: ApplyEdited) -> Rendered:
    """The gradients applied, edited in place when the statement maps over them."""
    if apply.maps:
        return mapped(writer, apply.gradients, apply.maps)
    return writer.expr(apply.gradients)


def apply_lines(writer, apply: ApplyEdited, helper: str, depth: int) -> str:
    """`grads = helper(<edited>, optimizer)` and the comment; the gradients' name."""
    edited = apply.gradients.id if isinstance(apply.gradients, ir.Name) else "the edit"
    writer.comment(depth, apply.statement.span, f"apply {edited} to {apply.model}")
    grads = writer.names.fresh("grads")
    writer.names.taken.discard(grads)  # reused by the next update
    optimizer = writer.names.python(apply.optimizer)
    rendered = call(helper, [edited_gradients(writer, apply).doc, optimizer])
    writer.lines += layout(f"{grads} = ", rendered.doc, INDENT * depth)
    return grads


HELPERS = {
    "unscaled": (
        "def _unscaled(grads, optimizer):",
        '    """Gradients of a loss a LossScaleOptimizer scaled, with its scale (a power of',
        '    two: exact) divided out; as they are under any other optimizer."""',
        '    scale = optimizer.scale_loss(ops.ones((), dtype="float32"))',
        "    return [None if g is None else g / ops.cast(scale, g.dtype) for g in grads]",
    ),
    "for_apply": (
        "def _for_apply(grads, optimizer):",
        '    """Edited gradients as optimizer.apply() takes them: times a LossScaleOptimizer\'s',
        '    scale, which apply() divides out (skipping a step that is not finite)."""',
        '    scale = optimizer.scale_loss(ops.ones((), dtype="float32"))',
        "    return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]",
    ),
}
