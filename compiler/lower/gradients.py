"""Where a `gradient(y, x)` is recorded: part of the lowering (`stepc.lower.module`).

Owns the recording of each gradient: the statements that compute `y` from
`x` go on one tape, placed where a tape can hold them. A gradient inside a
`repeat` of a value computed entirely before the block is the same on every
pass (the forward pass it differentiates ran once), so it is taken once,
before the block, where that computation can be recorded; a value computed
partly before the block and partly in it cannot be recorded by either tape
and is refused, as is a loss minimized in the block from a value computed
before it.
"""

from __future__ import annotations

import dataclasses

from stepc.diagnostics import error
from stepc.lower.dataflow import Block, Dataflow, defined_names
from stepc.lower.loops import loop_names
from stepc.lower.plan import (
    LOOP_BLOCKS,
    Compute,
    GradientRegion,
    LossForGradient,
    PlanItem,
    RegionGradient,
    TakeGradient,
)
from stepc.parse import ir
from stepc.tables.builtins import GRADIENT


class GradientPlacement:
    """The gradient half of `lower_step.StepLowering` (which provides `flow`, `models`,
    `facts`, `out`, `fresh`, `depends`, `_recorded`, `_split_range`, `_lower_unit`)."""

    # ------------------------------------------------------------ invariant gradients

    def _hoist_invariant_gradients(self, body: list) -> list:
        """A gradient in a repeat block of a value computed before the block: taken
        once before it (every pass would differentiate the same recording)."""
        units: list = []
        for unit in body:
            if isinstance(unit, ir.LOOPS):
                hoisted: dict[int, str] = {}
                # A gradient reading a loop's variable differs from pass to pass.
                inner = defined_names(unit.body) | _loop_variables(unit)
                for statement in ir.statements(unit.body):
                    if _is_gradient(statement) and self._is_invariant(statement.value, inner):
                        name = self.fresh(f"{statement.targets[0].id}_before_repeat")
                        hoisted[id(statement)] = name
                        target = (ir.Name(name, statement.span),)
                        units.append(ir.Assign(target, statement.value, statement.span))
                unit = _replaced(unit, hoisted) if hoisted else unit
            units.append(unit)
        return units

    def _is_invariant(self, call: ir.Call, inner: set[str]) -> bool:
        """Reads nothing the block defines, and calls or reads no model (whose
        weights a pass may change)."""
        names = {n.id for n in ir.walk(call) if isinstance(n, ir.Name)}
        value = {n.id for n in ir.walk(call.args[0]) if isinstance(n, ir.Name)}
        return not names & inner and not value & (self.models | {"self"})

    # ------------------------------------------------------------ recordings

    def _collapse_gradients(self, units: list) -> list:
        """Each `g = gradient(y, x)` with the statements its recording holds
        becomes one `Block`, at the place where a tape can hold them."""
        for statement in [u for u in units if type(u) is ir.Assign and _is_gradient(u)]:
            self.flow = Dataflow(units, self.models)
            index = next(i for i, u in enumerate(units) if u is statement)
            recorded = self._with_minimizes(units, index, self._gradient_statements(units, index))
            start = min(recorded, default=index)
            before, inside, after = self._split_range(units, start, index, recorded)
            block = Block((*(units[i] for i in inside), statement), statement.span)
            units = [
                *units[:start],
                *(units[i] for i in before),
                block,
                *(units[i] for i in after),
                *units[index + 1 :],
            ]
        return units

    def _with_minimizes(self, units: list, index: int, recorded: set[int]) -> set[int]:
        """A minimize the recording holds (of a loss computed before it, whose
        gradient is taken after) gets its own region inside it: the statements
        that region records go in too, so it records all of its loss."""
        while True:
            _, inside, _ = self._split_range(units, min(recorded, default=index), index, recorded)
            needed = set().union(
                *(
                    self._tape_statements(units, i)
                    for i in inside
                    if isinstance(units[i], ir.Minimize)
                )
            )
            if needed <= set(inside):
                return recorded
            recorded = recorded | needed

    def _gradient_statements(self, units: list, index: int) -> set[int]:
        """What the recording of a gradient holds; reports a value that does not
        depend on what it is differentiated with respect to."""
        call = units[index].value
        sources = gradient_sources(call)
        if sources and sources[0] in self.models:
            models = self._models_of({sources[0]})
            touches = lambda i: bool(models & self._models_used(i))  # noqa: E731
            recorded = self._recorded(units, index, touches)
            if not recorded and not self.depends.expr_reaches(call.args[0], models | {"self"}):
                self._report_independent(call, sources[0])
            self._check_recordable(units, index, recorded, models, call.args[0].span)
            return recorded
        recorded: set[int] = set()
        for name in sources:
            found = self._recorded(units, index, lambda i, n=name: self._reads_same(i, index, n))
            if not found and name not in _names_carrying_gradient(call.args[0]):
                self._report_independent(call, name)
            recorded |= found
        self._check_recordable(units, index, recorded, set(sources), call.args[0].span)
        return recorded

    def _check_recordable(self, units, index: int, recorded: set[int], sources, span) -> None:
        """Refuses a value that reaches what it is differentiated with respect to
        through a value computed before this block: no tape here can record that."""
        flow = self.flow
        for i in sorted(recorded | {index}):
            outside = {n for n in flow.reads[i] if n not in flow.sources[i]}
            late = sorted(n for n in outside if self.depends.name_reaches(n, sources))
            if late and self.outer_depth:
                self._report_before_block(late[0], sources, span)
                return

    def _report_before_block(self, name: str, sources, span: ir.Span) -> None:
        what = ", ".join(f"`{s}`" for s in sorted(sources))
        self.out.append(
            error(
                f"`{name}` is computed from {what} before the repeat block, so no tape "
                "in the block can record that part of the value",
                span,
                f"compute `{name}` inside the block, or compute the whole value before it",
            )
        )

    def _reads_same(self, i: int, index: int, name: str) -> bool:
        """body[i] reads the value of `name` that body[index] reads."""
        flow = self.flow
        return name in flow.reads[i] and flow.sources[i].get(name) == flow.sources[index].get(name)

    def _report_independent(self, call: ir.Call, name: str) -> None:
        wrt = next(n for n in ir.walk(call.args[1]) if isinstance(n, ir.Name) and n.id == name)
        self.out.append(
            error(
                f"the value does not depend on `{name}`: its gradient would be None",
                wrt.span,
                f"compute the value from `{name}` (and not through stop_gradient)",
            )
        )

    # ------------------------------------------------------------ plan items

    def _gradient_items(self, block: Block) -> list[PlanItem]:
        """A Block as a recording (watching its tensors) and the gradient taken."""
        statement = block.parts[-1]
        call = statement.value
        sources = gradient_sources(call)
        of_model = bool(sources) and sources[0] in self.models
        recorder = self.fresh("tape")
        # Placed as a block of its own: a minimize in the recorded range (a gradient
        # of a loss computed before that update) gets its region inside this one.
        body = list(self._place(list(block.parts[:-1])))
        # Applied after an edit: scaled by the apply's optimizer (stepc.lower.gradient_edits).
        optimizer = self.loss_scaled.get(statement.targets[0].id, "") if of_model else ""
        value = self._gradient_value(call.args[0], statement, optimizer)
        watched = () if of_model else sources
        # A source the recording itself assigns is watched once it has its value.
        late = [n for n in watched if _watch_after_assignment(body, recorder, n)]
        watched = tuple(n for n in watched if n not in late)
        body = tuple(body)
        gradient = RegionGradient(recorder, value.name, sources, of_model, "")
        region = GradientRegion(
            (recorder,), body, (value,), statement.span, watched, gradients=(gradient,)
        )
        tuple_result = isinstance(call.args[1], (ir.TupleExpr, ir.ListExpr))
        take = TakeGradient(
            recorder, value.name, sources, of_model, tuple_result, statement, optimizer
        )
        self.facts.assign(statement.targets, statement.value, False)
        self._note_depends(statement.targets, statement.value)
        return [region, take]

    def _gradient_value(self, expr: ir.Expr, statement: ir.Assign, optimizer="") -> LossForGradient:
        """The value differentiated: this replica's share of it under distribution,
        so a gradient with respect to its examples is the one-device gradient."""
        value, scaled = self.facts.normalize(expr)
        if not scaled:
            value = self.facts.scale(value)
        unknown = not self.facts.is_scalar(expr)  # a rank the lowering cannot tell
        if isinstance(value, ir.Name) and not optimizer:
            return LossForGradient(value.id, value, "", statement.span, unknown)
        base = statement.targets[0].id if len(statement.targets) == 1 else "gradient"
        name = self.fresh(f"value_for_{base}")
        return LossForGradient(name, value, optimizer, statement.span, unknown)

    # ------------------------------------------------------------ dependencies

    def _note_depends(self, targets, value: ir.Expr) -> None:
        """What each assigned name is computed from (models and names), through
        values that carry a gradient: what `_check_recordable` asks of a name
        read from before a block."""
        self.depends.assign(targets, value)


def _watch_after_assignment(items: list, recorder: str, name: str) -> bool:
    """Marks the last plan item assigning `name` (in a nested region or repeat
    block too: each pass watches its value) to watch it; False when no item
    placed at this level, in a region or in a block does."""
    for index in reversed(range(len(items))):
        item = items[index]
        if isinstance(item, (GradientRegion, *LOOP_BLOCKS)):
            field = "body" if isinstance(item, GradientRegion) else "items"
            inner = list(getattr(item, field))
            if _watch_after_assignment(inner, recorder, name):
                items[index] = dataclasses.replace(item, **{field: tuple(inner)})
                return True
        elif isinstance(item, Compute) and _assigns(item, name):
            items[index] = dataclasses.replace(item, watches=(*item.watches, (recorder, name)))
            return True
    return False


def _assigns(item: Compute, name: str) -> bool:
    statement = item.statement
    return isinstance(statement, ir.Assign) and any(t.id == name for t in statement.targets)


def _loop_variables(loop) -> set[str]:
    """The variables of `loop` and of every loop inside it."""
    return set().union(*(loop_names(s) for s in ir.statements((loop,))))


def _replaced(repeat, hoisted: dict[int, str]):
    """The block with each hoisted gradient's statement reading its hoisted value."""
    body = []
    for statement in repeat.body:
        if id(statement) in hoisted:
            statement = ir.Assign(
                statement.targets, ir.Name(hoisted[id(statement)], statement.span), statement.span
            )
        elif isinstance(statement, ir.LOOPS):
            statement = _replaced(statement, hoisted)
        body.append(statement)
    return dataclasses.replace(repeat, body=tuple(body))


def _is_gradient(statement) -> bool:
    return (
        isinstance(statement, ir.Assign)
        and isinstance(statement.value, ir.Call)
        and statement.value.func.id == GRADIENT
    )


def _names_carrying_gradient(expr: ir.Expr) -> set[str]:
    """The names an expression reads outside any stop_gradient(...)."""
    if isinstance(expr, ir.Name):
        return {expr.id}
    if isinstance(expr, ir.Call) and expr.func.id == "stop_gradient":
        return set()
    return set().union(*(_names_carrying_gradient(c) for c in ir.children(expr)))


def gradient_sources(call: ir.Call) -> tuple[str, ...]:
    """The names a gradient(y, x) is taken with respect to: x, or x's items."""
    if len(call.args) < 2:
        return ()
    wrt = call.args[1]
    items = wrt.items if isinstance(wrt, (ir.TupleExpr, ir.ListExpr)) else (wrt,)
    return tuple(i.id for i in items if isinstance(i, ir.Name))
