"""What Keras's own `loss` entry reports: the one update of its loss tracker in a step.

Keras's loss tracker (`loss` in the logs, a batch-size weighted `Mean`) is
updated once per step, with a true (not replica-scaled) value. Which value is
decided here, from the statements alone, for the checker (which refuses the
undecidable case) and the lowering (which writes the update as an ordinary
`update loss(...)` statement) alike:

- `update loss(value)` in the step: that value, where it is written, and no
  compiled_loss(...) updates the tracker;
- else one `compiled_loss(...)`: its value, right after it, as Keras's own
  step reports the compiled loss it computes (in a repeat block, each pass's:
  the tracker's mean is then the passes' mean);
- else (several compiled losses, clean and adversarial) the loss of the
  step's one `minimize` built from compiled losses, outside repeat blocks: the
  value it minimizes, right after the minimize, as Keras's own step reports
  the loss it minimizes;
- else nothing can say which: the checker asks for `update loss(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from stepc.parse import ir
from stepc.tables.builtins import COMPILED_LOSS

# `update loss(...)`: Keras's own loss tracker (`loss` is a reserved model
# attribute, so no declared metric has this name).
LOSS_TRACKER = "loss"


class Source(Enum):
    NONE = "no compiled loss and no update loss(...)"
    EXPLICIT = "update loss(...)"
    COMPILED = "the one compiled_loss(...)"
    MINIMIZED = "the minimized loss"
    AMBIGUOUS = "several compiled losses"


@dataclass(frozen=True)
class LossReport:
    """How a train step reports its loss, and the statement that decides it."""

    source: Source
    # EXPLICIT: the update; COMPILED: the call; MINIMIZED: the minimize;
    # AMBIGUOUS: the second compiled_loss call (what the error points at).
    node: ir.Update | ir.Call | ir.Minimize | None = None


def is_compiled_loss(node) -> bool:
    return isinstance(node, ir.Call) and node.func.id == COMPILED_LOSS


def is_loss_tracker_update(node) -> bool:
    return isinstance(node, ir.Update) and node.metric.id == LOSS_TRACKER


def loss_report(body) -> LossReport:
    """Which value of `body` (a step's statements) Keras's loss tracker reports."""
    explicit = [s for s in ir.statements(body) if is_loss_tracker_update(s)]
    if explicit:
        return LossReport(Source.EXPLICIT, explicit[0])
    calls = [n for s in body for n in ir.walk(s) if is_compiled_loss(n)]
    if not calls:
        return LossReport(Source.NONE)
    if len(calls) == 1:
        return LossReport(Source.COMPILED, calls[0])
    minimizes = _minimizes_of_compiled_losses(body)
    if len(minimizes) == 1 and any(s is minimizes[0] for s in body):
        return LossReport(Source.MINIMIZED, minimizes[0])
    return LossReport(Source.AMBIGUOUS, calls[1] if len(calls) > 1 else calls[0])


def _minimizes_of_compiled_losses(body) -> list[ir.Minimize]:
    """The minimizes (repeat blocks' too) whose loss is computed from a compiled
    loss: it calls one, or reads a name last assigned from one."""
    built: set[str] = set()  # names whose current value comes from a compiled loss
    found = []
    for statement in ir.statements(body):
        if isinstance(statement, ir.Assign):
            names = {t.id for t in statement.targets}
            if _from_compiled_loss(statement.value, built):
                built |= names
            else:
                built -= names
        elif isinstance(statement, ir.Minimize) and _from_compiled_loss(statement.loss, built):
            found.append(statement)
    return found


def _from_compiled_loss(expr, built: set[str]) -> bool:
    return any(
        is_compiled_loss(node) or (isinstance(node, ir.Name) and node.id in built)
        for node in ir.walk(expr)
    )
