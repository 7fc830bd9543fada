"""What each gradient region reads and leaves behind, and whether it is nested.

Owns a pass over a step's placed items that fills `GradientRegion.reads`,
`.leaves` and `.nested`. A tape (TensorFlow) needs none of it; a backend that
writes a region as a function of its recorded statements (JAX) passes `reads`
in and returns `leaves`, and one that differentiates twice (a gradient penalty
on torch) keeps the graph of a `nested` region.
"""

from __future__ import annotations

import dataclasses

from stepc.lower.plan import (
    LOOP_BLOCKS,
    ApplyEdited,
    ApplyGradients,
    Compute,
    ForEachBlock,
    GradientRegion,
    PlanItem,
    RepeatBlock,
    ReturnPlan,
    TakeGradient,
)
from stepc.parse import ir


def annotate_regions(items, returns: ReturnPlan | None) -> tuple[PlanItem, ...]:
    """`items` with every region's reads, leaves and nesting filled in."""
    after = _returned_names(returns)
    return _annotated(tuple(items), after, nested=False)


def _annotated(items: tuple, after: set[str], nested: bool) -> tuple:
    """Each item annotated, knowing the names read after the whole sequence.

    Walked backwards, so the names read after each item are gathered once
    (linear in the step's length, which may be thousands of statements)."""
    out = []
    later = set(after)
    for item in reversed(items):
        out.append(_annotated_item(item, later, nested) if _has_region(item) else item)
        later |= _item_reads(item)
    return tuple(reversed(out))


def _has_region(item) -> bool:
    """A region, or a repeat block holding one: the items this pass changes."""
    if isinstance(item, GradientRegion):
        return True
    return isinstance(item, LOOP_BLOCKS) and any(_has_region(i) for i in item.items)


def _annotated_item(item, later: set[str], nested: bool):
    if isinstance(item, LOOP_BLOCKS):  # a later iteration reads what an earlier one binds
        inner = later | reads_of(item.items)
        return dataclasses.replace(item, items=_annotated(item.items, inner, nested))
    if not isinstance(item, GradientRegion):
        return item
    own = {loss.name for loss in item.losses}
    body = _annotated(item.body, later | reads_of(item.body) | own, nested=True)
    bound = binds_of(item.body)
    return dataclasses.replace(
        item,
        body=body,
        reads=tuple(sorted(_free_reads(item) - {"self"})),
        leaves=tuple(sorted(bound & later)),
        nested=nested,
    )


def _free_reads(region: GradientRegion) -> set[str]:
    """Names the region reads before (or without) binding them itself."""
    bound: set[str] = set()
    free: set[str] = set()
    for item in region.body:
        # A nested region's own free reads: what it binds before reading is its own.
        reads = _free_reads(item) if isinstance(item, GradientRegion) else reads_of((item,))
        free |= reads - bound
        bound |= binds_of((item,))
    for loss in region.losses:
        free |= _names(loss.loss) - bound
    return free | (set(region.watched) - bound)


def reads_of(items) -> set[str]:
    """Every name the items read (a superset of the step values: calls' names too)."""
    names: set[str] = set()
    for item in items:
        names |= _item_reads(item)
    return names


def _item_reads(item) -> set[str]:
    if isinstance(item, Compute):
        return _names(item.statement)
    if isinstance(item, GradientRegion):
        losses = set().union(*(_names(loss.loss) for loss in item.losses))
        return reads_of(item.body) | losses | set(item.watched)
    if isinstance(item, ApplyEdited):
        return _names(item.gradients)
    if isinstance(item, ApplyGradients):
        clips = set().union(*(_names(clip.threshold) for clip in item.clips))
        return {item.loss_name} | clips
    if isinstance(item, TakeGradient):
        return {item.value_name, *([] if item.of_model else item.sources)}
    if isinstance(item, RepeatBlock):
        return _names(item.count) | reads_of(item.items)
    if isinstance(item, ForEachBlock):
        return _names(item.iterable) | reads_of(item.items)
    return set()


def binds_of(items) -> set[str]:
    """Every step value the items bind (assignments, gradients, losses for gradients)."""
    names: set[str] = set()
    for item in items:
        assigns = isinstance(item, Compute) and isinstance(item.statement, ir.Assign)
        if assigns or isinstance(item, TakeGradient):
            names |= {t.id for t in item.statement.targets if t.id != "_"}
        elif isinstance(item, GradientRegion):
            names |= binds_of(item.body) | {loss.name for loss in item.losses}
        elif isinstance(item, LOOP_BLOCKS):
            names |= binds_of(item.items)
    return names


def _names(node) -> set[str]:
    if isinstance(node, ir.Assign):  # its value: the targets are bound, not read
        node = node.value
    if isinstance(node, ir.AssignWeights):
        node = node.value
    return {n.id for n in ir.walk(node) if isinstance(n, ir.Name)}


def _returned_names(returns: ReturnPlan | None) -> set[str]:
    if returns is None:
        return set()
    values = [v.value for v in returns.values if v.value is not None]
    return set().union(*(_names(v) for v in values))
