"""Emission of gradients the step edits: mapped edits and their `apply`.

Owns how an edit of a model's gradients is written, a list comprehension over
each gradient tensor (`[g * row_mask for g in grads]`, `zip` for several lists of
one model), and the shared part of `apply GRADS to MODEL`: the gradients scaled
for the optimizer (`_for_apply`), then `optimizer.apply`. A framework's writer
names the helper and wraps the call (JAX's scope, torch's no_grad).
"""

from __future__ import annotations

import dataclasses

from stepc.emit.pyexpr import (
    INDENT,
    LINE_LENGTH,
    Concat,
    Rendered,
    assignment,
    call,
    flat,
    layout,
)
from stepc.lower.plan import ApplyEdited, TakeGradient
from stepc.parse import ir

# The element of a gradients list inside a comprehension: "g", "g_2", ...
_ELEMENT = "g"


def mapped_lines(writer, target: str, expr, maps: tuple[str, ...], depth: int) -> None:
    """`target = [expr for g in grads]`: `expr` once per gradient tensor of the
    lists `maps` names; a `global_norm(...)` in it is computed once, before."""
    expr = _hoisted_norms(writer, expr, depth)
    elements = [writer.names.fresh(_ELEMENT) for _ in maps]
    writer.names.taken -= set(elements)  # a comprehension's own: free after it
    body = writer.expr(_each(expr, dict(zip(maps, elements, strict=True)))).doc
    # None: a variable the loss does not reach (every list of one model alike).
    body = Concat((f"None if {elements[0]} is None else ", body))
    lists = [writer.names.python(name) for name in maps]
    source = lists[0] if len(lists) == 1 else f"zip({', '.join(lists)}, strict=True)"
    loop = f"for {', '.join(elements)} in {source}"
    indent = INDENT * depth
    line = f"{indent}{target} = [{flat(body)} {loop}]"
    if len(line) <= LINE_LENGTH:
        writer.lines.append(line)
        return
    # As ruff formats a comprehension that does not fit: inside the brackets on a
    # line of its own, or, still too long, its parts on lines of their own.
    inner = indent + INDENT
    one_line = f"{inner}{flat(body)} {loop}"
    parts = [one_line] if len(one_line) <= LINE_LENGTH else [*layout("", body, inner), inner + loop]
    writer.lines += [f"{indent}{target} = [", *parts, indent + "]"]


def _hoisted_norms(writer, expr, depth: int):
    """`expr` with each `global_norm(...)` in it named on a line before (a reduction
    of the whole list: the same for every tensor of the comprehension)."""
    calls = [n for n in ir.walk(expr) if isinstance(n, ir.Call) and n.func.id == "global_norm"]
    for node in calls:
        base = node.args[0].id if node.args and isinstance(node.args[0], ir.Name) else "grads"
        name = writer.names.fresh(f"{base}_norm")
        writer.lines += layout(f"{name} = ", writer.expr(node).doc, INDENT * depth)
        expr = _replaced(expr, node, ir.Name(name, node.span))
    return expr


def _replaced(node, old, new):
    """`node` with the sub-expression `old` (that very node) replaced by `new`."""
    if node is old:
        return new
    return ir.rebuilt(node, lambda child: _replaced(child, old, new))


def _each(node, elements: dict[str, str]):
    """`node` with each gradients list it maps over read as one element of it; a list
    inside `global_norm(...)` (which reduces it) or subscripted (`g[0]`) stays whole."""
    if isinstance(node, ir.Name):
        return dataclasses.replace(node, id=elements[node.id]) if node.id in elements else node
    if isinstance(node, ir.Call) and node.func.id == "global_norm":
        return node
    if isinstance(node, ir.Subscript) and isinstance(node.value, ir.Name):
        return dataclasses.replace(node, index=_each(node.index, elements))
    return ir.rebuilt(node, lambda child: _each(child, elements))


def unscaled(writer, grads, take: TakeGradient) -> Rendered:
    """A model's gradients (a Rendered or a name) of a loss its optimizer scaled, with
    the scale divided out: the true gradient an edit sees (`apply` scales it again)."""
    writer.used.add("unscaled")
    doc = grads.doc if isinstance(grads, Rendered) else grads
    return call("_unscaled", [doc, writer.names.python(take.unscale_by)])


def apply_lines(writer, apply: ApplyEdited, helper: str, sources: str, depth: int):
    """`grads, variables = helper(<edited>, sources, optimizer)` (`sources`: the
    model's trainable variables) and the comment; the two names. An edit written in
    the statement itself is computed on a line before."""
    edited = apply.gradients.id if isinstance(apply.gradients, ir.Name) else "the edit"
    writer.comment(depth, apply.statement.span, f"apply {edited} to {apply.model}")
    if apply.maps:
        edited = writer.names.fresh("edited_grads")
        mapped_lines(writer, edited, apply.gradients, apply.maps, depth)
    else:
        edited = flat(writer.expr(apply.gradients).doc)
    grads, variables = writer.names.fresh("grads"), writer.names.fresh("variables")
    writer.names.taken -= {grads, variables}  # reused by the next update
    optimizer = writer.names.python(apply.optimizer)
    rendered = call(helper, [edited, sources, optimizer])
    writer.lines += assignment([grads, variables], rendered.doc, INDENT * depth)
    return grads, variables


HELPERS = {
    "unscaled": (
        "def _unscaled(grads, optimizer):",
        '    """Gradients of a loss a LossScaleOptimizer scaled, with its scale (a power of',
        '    two: exact) divided out; as they are under any other optimizer."""',
        '    scale = optimizer.scale_loss(ops.ones((), dtype="float32"))',
        "    return [None if g is None else g / ops.cast(scale, g.dtype) for g in grads]",
    ),
    "for_apply": (
        "def _for_apply(grads, variables, optimizer):",
        '    """Edited gradients and their variables as optimizer.apply() takes them: times a',
        "    LossScaleOptimizer's scale, which apply() divides out (skipping a step that is",
        "    not finite); a None (a variable the loss does not reach) left out with its",
        '    variable, which the update leaves alone."""',
        '    scale = optimizer.scale_loss(ops.ones((), dtype="float32"))',
        "    pairs = [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]",
        "    return [g * ops.cast(scale, g.dtype) for g, _ in pairs], [v for _, v in pairs]",
    ),
}
