"""Stage 2, a model's `shared(...)` block: what it may hold, and the data lines.

The parser has already put the block's statements at the start of the train
and the test step (`stepc.parse.ir_builder`), so each step's checks see them as
its own. Owns what only the block as written shows: a second block, a
statement that cannot run alike in both steps (`minimize`, `assign`,
`return`: left out of the steps, so reported once, here), a step's data line
that differs from the block's or that is missing; and the merging of the
steps' findings, so a shared statement's error is reported once and its
"never used" warning only if no step uses the value.
"""

from __future__ import annotations

from stepc.diagnostics import Diagnostic, Severity, error, warning
from stepc.parse import ir

_REFUSED = {
    ir.Minimize: ("minimize", "minimize in the train step, after the shared block"),
    ir.AssignWeights: ("assign weights", "assign in the train step, after the shared block"),
    ir.ApplyEdited: ("apply", "apply in the train step, after the shared block"),
    ir.Return: ("return", "return in each step: the train and the test step report apart"),
}

# `assign STATE = ...`: each step updates its state itself (a test step may not).
_STATE_REFUSED = ("assign state", "assign state in the train or the test step itself")


def shared_block_problems(model: ir.Model) -> list[Diagnostic]:
    """The block's own problems (none without a block)."""
    found = [
        error("a model has at most one shared(...) block", span, "merge the blocks into one")
        for span in model.repeated_shared
    ]
    block = model.shared
    if block is None:
        return found
    states = {decl.name.id for decl in model.states}
    for statement in ir.statements(block.body):
        refused = _REFUSED.get(type(statement))
        if isinstance(statement, ir.AssignWeights) and statement.target.id in states:
            refused = _STATE_REFUSED
        if refused is not None:
            what, hint = refused
            message = f"a shared block cannot {what}: it runs in the test step too"
            found.append(error(message, statement.span, hint))
    takers = [s for s in model.steps if s.kind is not ir.StepKind.PREDICT]
    if model.steps and not takers:
        found.append(
            warning(
                "the shared block runs in no step",
                block.span,
                "it runs at the start of the train and the test step: add `train:` or `test:`",
            )
        )
    return found


def data_line_problems(model: ir.Model, step: ir.Step) -> list[Diagnostic]:
    """A step's data line: missing where there is no block to take it from,
    or different from the shared block's."""
    if not step.data:  # `train:`, and no shared block (or a predict step)
        return [_missing_data_line(step)]
    written, block = step.written_data, model.shared
    if written is None or block is None or _same_data(written, block.data):
        return []
    span = ir.Span(written[0].span.line, written[0].span.column, *_end(written[-1].span))
    return [
        error(
            f"this data line differs from the shared block's, "
            f"shared({_data_text(block.data)}) on line {block.span.line}",
            span,
            f"omit it (`{step.kind.value}:`) to take the shared block's, or write the same",
        )
    ]


def _missing_data_line(step: ir.Step) -> Diagnostic:
    kind = step.kind.value
    if step.kind is ir.StepKind.PREDICT:
        return error(
            "a predict step needs its data line",
            step.span,
            "write it, e.g. `predict(x):` (a shared block runs only in train and test)",
        )
    return error(
        f"`{kind}:` takes the data line of a shared(...) block, and this model has none",
        step.span,
        f"write the data line, e.g. `{kind}(x, y):`, or add a `shared(x, y):` block",
    )


def _same_data(a: tuple[ir.DataParam, ...], b: tuple[ir.DataParam, ...]) -> bool:
    return [(p.name.id, p.optional) for p in a] == [(p.name.id, p.optional) for p in b]


def _data_text(data: tuple[ir.DataParam, ...]) -> str:
    return ", ".join(p.name.id + "?" * p.optional for p in data)


def _end(span: ir.Span) -> tuple[int, int]:
    return span.end_line, span.end_column


def merge_step_findings(model: ir.Model, per_step: list[list[Diagnostic]]) -> list[Diagnostic]:
    """The steps' findings, each once; a warning about a shared statement only
    if every step that runs the block gives it (a value the train step uses
    and the test step does not is used)."""
    block = model.shared
    takers = sum(1 for step in model.steps if step.shared)
    counts: dict[Diagnostic, int] = {}
    for found in per_step:
        for diagnostic in dict.fromkeys(found):
            counts[diagnostic] = counts.get(diagnostic, 0) + 1
    return [d for d, n in counts.items() if not _unused_elsewhere(d, n, block, takers)]


def _unused_elsewhere(d: Diagnostic, count: int, block, takers: int) -> bool:
    shared = block is not None and block.span.line <= d.span.line <= block.span.end_line
    return shared and d.severity is Severity.WARNING and count < takers
