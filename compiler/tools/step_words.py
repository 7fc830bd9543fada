"""The compiler's decisions in words, and where the lowering moved a statement.

Owns the sentences of stepc.tools.step_facts that read one plan record (how a
differentiated loss is scaled, what a state write does, which passes a
recording holds) and the one placement question the plan answers only by
order: a statement placed before a recording (or loop) that holds lines
after it, or after a recording that holds lines after it, was moved there by
the lowering (stepc.lower.step), and why.
"""

from __future__ import annotations

from stepc.lower.plan import (
    BATCH_SIZE,
    FULL_PRECISION,
    GATHER,
    LOOP_BLOCKS,
    REPLICA_MEAN,
    SCALE,
    UNSCALE,
    Compute,
    GradientRegion,
    TakeGradient,
)
from stepc.parse import ir
from stepc.tables.builtins import KERAS_OPTIMIZER

PSEUDO_CALLS = {SCALE, UNSCALE, FULL_PRECISION, BATCH_SIZE, GATHER, REPLICA_MEAN}
LABEL_WIDTH = 36  # longer spec text is cut in a node's label (explain prints it whole)


def unique(base: str, taken) -> str:
    name, counter = base, 2
    while name in taken:
        name, counter = f"{base}_{counter}", counter + 1
    return name


def cut(text: str) -> str:
    return text if len(text) <= LABEL_WIDTH else text[: LABEL_WIDTH - 1] + "…"


def line_span(lines) -> str:
    first, last = min(lines), max(lines)
    return f"line {first}" if first == last else f"lines {first}–{last}"


def recording_span(lines) -> str:
    first, last = min(lines), max(lines)
    return (
        f"one recording of line {first}"
        if first == last
        else (f"one recording from line {first} to {last}")
    )


def passes_words(passes) -> list[str]:
    """`critic called in training mode at 20, 24`: the passes of a recording, by model."""
    lines: dict[str, list[int]] = {}
    for node in passes:
        model, mode = node.label.split("\n")
        lines.setdefault(f"{model} called in {mode}", []).append(node.line)
    return [f"{what} at {', '.join(map(str, sorted(set(at))))}" for what, at in lines.items()]


def lines_words(lines) -> str:
    if len(lines) == 1:
        return f"line {lines[0]}"
    return f"lines {', '.join(map(str, lines[:-1]))} and {lines[-1]}"


def optimizer_label(name: str) -> str:
    return "compile()'s optimizer" if name == KERAS_OPTIMIZER else name


def stripped(expr: ir.Expr) -> ir.Expr:
    """`expr` without the lowering's pseudo-calls around it."""
    while isinstance(expr, ir.Call) and expr.func.id in PSEUDO_CALLS and expr.args:
        expr = expr.args[0]
    return expr


def calls(node, name: str) -> bool:
    return any(isinstance(n, ir.Call) and n.func.id == name for n in ir.walk(node))


def scaling_words(loss) -> str:
    if calls(loss.loss, SCALE):
        words = "divided among the replicas for its gradient (a hand-written value is the batch's)"
    else:
        words = "already this replica's share (a Keras loss object's value), not scaled again"
    if loss.optimizer:
        words += f"; times {optimizer_label(loss.optimizer)}'s loss scale under mixed precision"
    if loss.check_scalar:
        words += "; its rank is unknown here, so it is checked to be a scalar when traced"
    return words


def state_words(state) -> str:
    words = f"writes the state {state.state}, which no recording holds"
    if calls(state.value, GATHER):
        words += "; every replica's batch values gathered first, so the replicas agree"
    if calls(state.value, REPLICA_MEAN):
        words += "; a batch value averaged over the replicas, so they agree"
    if state.check_shape:
        words += "; its shape is checked against the state's when traced"
    return words


def neighbouring_blocks(items) -> tuple[list, list]:
    """For each item, the nearest recording or loop before it and after it."""
    blocks = (GradientRegion, *LOOP_BLOCKS)
    before, after = [None] * len(items), [None] * len(items)
    last = None
    for index, item in enumerate(items):
        before[index] = last
        last = item if isinstance(item, blocks) else last
    last = None
    for index in reversed(range(len(items))):
        after[index] = last
        last = items[index] if isinstance(items[index], blocks) else last
    return before, after


def item_lines(item) -> list[int]:
    """The spec lines of a plan item and of every statement in it."""
    if isinstance(item, GradientRegion):
        own = [loss.loss.span.line for loss in item.losses] + [
            loss.span.line for loss in item.losses
        ]
        return own + [line for inner in item.body for line in item_lines(inner)]
    if isinstance(item, LOOP_BLOCKS):
        span = item.statement.span
        return list(range(span.line, span.end_line + 1))
    return [item.statement.span.line]


def first_line(block) -> int:
    return min(item_lines(block))


def last_line(block) -> int:
    return max(item_lines(block))


def moved_reason(item, earlier, later) -> str:
    """Why the lowering placed `item` before or after the block it was written in
    (`earlier`, `later`: the nearest recording or loop before and after it); "" if
    it did not."""
    if not isinstance(item, (Compute, TakeGradient)):
        return ""
    line = item.statement.span.line
    if later is not None and first_line(later) < line <= last_line(later):
        return moved_before(later)
    if isinstance(earlier, GradientRegion) and line < last_line(earlier):
        return moved_after(item, earlier)
    return ""


def moved_before(block) -> str:
    span = line_span(item_lines(block))
    if isinstance(block, LOOP_BLOCKS):
        return (
            f"moved before the loop ({span}): the value it differentiates is computed "
            "before the block, so every pass would take the same gradient"
        )
    if all(g.optimizer for g in block.gradients):
        reason = "it carries no gradient to the models updated and reads nothing recorded"
    else:
        reason = "it does not depend on what the gradient is taken with respect to"
    return f"moved before the recording ({span}): {reason}"


def moved_after(item, region: GradientRegion) -> str:
    span = line_span(item_lines(region))
    if isinstance(item.statement, ir.Update):
        reason = "a metric update of a recorded value needs no gradient"
    elif isinstance(item, Compute) and item.state is not None:
        reason = "a state write, which no recording holds"
    else:
        reason = "it reads recorded values but needs no gradient"
    return f"moved after the recording ({span}): {reason}"
