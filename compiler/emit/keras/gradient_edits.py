"""Emission of gradients the step edits: mapped edits and their `apply`.

Owns how an edit of a model's gradients is written, a list comprehension over
each gradient tensor (`[g * row_mask for g in grads]`, `zip` for several lists of
one model), and the shared part of `apply GRADS to MODEL`: the gradients scaled
for the optimizer (`_for_apply`), then `optimizer.apply`. A framework's writer
names the helper and wraps the call (JAX's scope, torch's no_grad).
"""

from __future__ import annotations

from stepc.emit.pyexpr import INDENT, Concat, Rendered, call, layout, sequence
from stepc.lower.plan import ApplyEdited

# The element of a gradients list inside a comprehension: "g", "g_2", ...
_ELEMENT = "g"


def mapped(writer, expr, maps: tuple[str, ...]) -> Rendered:
    """`expr` computed once per gradient tensor of the lists `maps` names."""
    elements = [writer.names.fresh(_ELEMENT) for _ in maps]
    writer.names.taken -= set(elements)  # a comprehension's own: free after it
    writer.substitute.update(zip(maps, elements, strict=True))
    body = writer.expr(expr)
    for name in maps:
        writer.substitute.pop(name)
    lists = [writer.names.python(name) for name in maps]
    source = lists[0] if len(lists) == 1 else f"zip({', '.join(lists)}, strict=True)"
    return sequence("[", [Concat((body.doc, f" for {', '.join(elements)} in {source}"))], "]")


def edited_gradients(writer, apply: ApplyEdited) -> Rendered:
    """The gradients applied, edited in place when the statement maps over them."""
    if apply.maps:
        return mapped(writer, apply.gradients, apply.maps)
    return writer.expr(apply.gradients)


def apply_lines(writer, apply: ApplyEdited, helper: str, depth: int) -> str:
    """`grads = helper(<edited>, optimizer)` and the comment; the gradients' name."""
    writer.comment(depth, apply.statement.span, f"apply ... to {apply.model}")
    grads = writer.names.fresh("grads")
    writer.names.taken.discard(grads)  # reused by the next update
    optimizer = writer.names.python(apply.optimizer)
    rendered = call(helper, [edited_gradients(writer, apply).doc, optimizer])
    writer.lines += layout(f"{grads} = ", rendered.doc, INDENT * depth)
    return grads


HELPERS = {
    "for_apply": (
        "def _for_apply(grads, optimizer):",
        '    """Edited gradients as optimizer.apply() takes them: times a LossScaleOptimizer\'s',
        '    scale, which apply() divides out (skipping a step that is not finite)."""',
        '    scale = optimizer.scale_loss(ops.ones((), dtype="float32"))',
        "    return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]",
    ),
}
