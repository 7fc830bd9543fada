"""Stage 3, one step: a step's statements become its `StepPlan`.

Owns the decisions inside a step: which statements each `minimize` records on
its tape (the loss's ancestors that go through a model it updates), which run
before the recording, how overlapping recordings form one simultaneous
update, how each loss is scaled for distribution and each reported value
unscaled, and the batch size a tracker is weighted by.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from stepc.check.loss_report import is_loss_tracker_update
from stepc.check.models import CheckedModel
from stepc.check.symbols import Kind
from stepc.diagnostics import Diagnostic, error
from stepc.lower.compiled_loss import explicit_loss_report, name_compiled_losses
from stepc.lower.data import data_plan
from stepc.lower.dataflow import Block, Dataflow, Dependencies
from stepc.lower.gradient_edits import (
    apply_edited,
    gradient_values,
    loss_scaled_gradients,
    mapped_compute,
    without_unused_edits,
)
from stepc.lower.gradients import GradientPlacement
from stepc.lower.loops import index_checks, loop_block, loop_names, note_loop_variables
from stepc.lower.plan import (
    BATCH_SIZE,
    COMPILED_LOSS_VALUE,
    COMPILED_METRICS,
    KERAS_LOSS_TRACKER,
    ApplyGradients,
    Compute,
    DataPlan,
    GradientRegion,
    LossForGradient,
    PlanItem,
    RegionGradient,
    ReturnPlan,
    ReturnValue,
    StepPlan,
    fresh_name,
    pseudo_call,
)
from stepc.lower.precision import cast_model_outputs
from stepc.lower.regions import annotate_regions
from stepc.lower.scaling import Facts
from stepc.lower.state import BatchValues, is_state_update, state_update
from stepc.lower.training import with_training_mode
from stepc.parse import ir
from stepc.tables.builtins import COMPILED_LOSS, FROZEN_MODEL, KERAS_OPTIMIZER, Type


class StepLowering(GradientPlacement):
    def __init__(self, checked: CheckedModel, step: ir.Step, out: list[Diagnostic], derived=False):
        self.derived = derived
        self.symbols = checked.symbols
        self.models = {n for n, s in self.symbols.items() if s.type is Type.MODEL}
        step = dataclasses.replace(step, body=self._cast_model_outputs(step.body))
        self.functional = checked.functional
        self.out = out
        self.facts = Facts(self.symbols)
        self.taken = {p.name.id for p in step.data} | set(self.symbols)
        self.taken |= {
            t.id for s in ir.statements(step.body) if isinstance(s, ir.Assign) for t in s.targets
        }
        self.taken |= set().union(*(loop_names(s) for s in ir.statements(step.body)))
        body = explicit_loss_report(name_compiled_losses(step.body, self.fresh), self.fresh)
        if derived:  # the train step's report of the loss is made explicit first
            step = dataclasses.replace(step, kind=ir.StepKind.TEST)
            body = without_unused_edits(without_updates(body), self.models)
        frozen = {n for n, s in self.symbols.items() if s.detail == FROZEN_MODEL}
        training = step.kind is ir.StepKind.TRAIN
        body = with_training_mode(body, training, self.models, frozen)
        step = dataclasses.replace(step, body=body)
        self.step = step
        self.gradient_values = gradient_values(step.body, self.models)  # edited gradients
        self.loss_scaled = loss_scaled_gradients(step.body, self.gradient_values)
        self._batch_size_local = _batch_size_local(list(step.body), step.data[0].name.id)
        # Where each statement is in the step's own body (a repeat's, its block's).
        self._position = {
            id(inner): index
            for index, statement in enumerate(step.body)
            for inner in ir.statements((statement,))
        }
        self.flow = Dataflow([])
        self.outer_depth = 0  # how many repeat blocks the statements placed are in
        self.depends = Dependencies(self.models)  # what each name is computed from
        self.batch_values = BatchValues(step, self.models, self)  # what a replica has its share of

    def _cast_model_outputs(self, body):
        """Mixed precision: model outputs the spec computes with, in float32."""
        losses = {n for n, s in self.symbols.items() if s.type is Type.LOSS}
        return cast_model_outputs(body, self.models, losses)

    def run(self) -> StepPlan:
        body = [s for s in self.step.body if not isinstance(s, ir.Return)]
        returns = [s for s in self.step.body if isinstance(s, ir.Return)]
        items = self._place(body)
        return_plan = self._return_plan(returns[0]) if returns else None
        return StepPlan(
            self.step.kind,
            self._data_plan(),
            annotate_regions(items, return_plan),
            return_plan,
            frozenset(self.taken),
            index_checks=index_checks(self.step.body),
        )

    # ---------------------------------------------------------------- names

    def fresh(self, base: str) -> str:
        return fresh_name(base, self.taken)

    # ---------------------------------------------------------------- data

    def _data_plan(self) -> DataPlan:
        return data_plan(self.step, self.derived)  # stepc.lower.data

    # ---------------------------------------------------------------- placement

    def _place(self, body) -> list[PlanItem]:
        """A block of statements (the step's, or a repeat's) as plan items."""
        outer = self.flow
        body = self._collapse_gradients(self._hoist_invariant_gradients(list(body)))
        minimizes = [i for i, s in enumerate(body) if isinstance(s, ir.Minimize)]
        # Placement questions arise only around a minimize.
        self.flow = Dataflow(body if minimizes else [], self.models)
        tapes = {i: self._tape_statements(body, i) for i in minimizes}
        for i in minimizes:
            self._check_recorded_here(body, i, tapes[i])
        groups = self._group(body, minimizes, tapes)
        items: list[PlanItem] = []
        done: set[int] = set()
        for group in groups:
            items += self._group_items(body, group, tapes, done)
        items += self._computes(body, range(len(body)), done)
        self.flow = outer
        return items

    def _tape_statements(self, body: list, index: int) -> set[int]:
        """Statements the loss of body[index] needs that go through a target."""
        targets = self._models_of({t.id for t in body[index].targets})
        return self._recorded(body, index, lambda i: bool(self._models_used(i) & targets))

    def _check_recorded_here(self, body: list, index: int, recorded: set[int]) -> None:
        """A loss computed outside the block of its minimize (before a repeat
        block that minimizes it) has nothing on this block's recording."""
        minimize = body[index]
        targets = self._models_of({t.id for t in minimize.targets})
        called = {n.func.id for n in ir.walk(minimize.loss) if isinstance(n, ir.Call)}
        if recorded or called & targets or self.outer_depth == 0:
            self._check_recordable(body, index, recorded, targets, minimize.loss.span)
            return
        self.out.append(
            error(
                "the loss is computed outside the repeat block that minimizes it",
                minimize.loss.span,
                "compute the loss inside the block, so each pass records it",
            )
        )

    def _models_of(self, names: set[str]) -> set[str]:
        """The models behind gradient targets: `self` stands for all of them."""
        return self.models if "self" in names else names

    def _models_used(self, index: int) -> set[str]:
        """Models a unit calls or reads (regularization_loss(m), gradient(y, m))."""
        flow = self.flow
        return flow.calls[index] | (flow.reads[index] & self.models)

    def _recorded(self, body: list, index: int, touches) -> set[int]:
        """The ancestors of body[index] that `touches`, or that read one of them:
        what a recording must hold. Stopped values and assigns carry no gradient."""
        tainted: set[int] = set()
        for i in sorted(self.flow.ancestors(index)):
            if self.flow.stops[i] or isinstance(body[i], (ir.AssignWeights, ir.ApplyEdited)):
                continue
            if touches(i) or self.flow.reads_from(i, tainted):
                tainted.add(i)
        return tainted

    # ---------------------------------------------------------------- placement

    def _group(self, body, minimizes, tapes) -> list[list[int]]:
        """Minimizes whose recordings overlap share one region (simultaneous updates)."""
        groups: list[list[int]] = []
        for index in minimizes:
            start = min(tapes[index], default=index)
            if groups and start < groups[-1][0]:
                first = groups[-1][0]
                late = sorted(i for i in tapes[index] if i > first)
                if late:
                    self._report_split(body, index, first, late[0])
                    continue
                groups[-1].append(index)
            else:
                groups.append([index])
        return groups

    def _report_split(self, body, index: int, first: int, late: int) -> None:
        self.out.append(
            error(
                f"the loss minimized on line {body[index].span.line} is computed partly before "
                f"and partly after the minimize on line {body[first].span.line}",
                body[late].span,
                "compute this loss entirely before that minimize (a simultaneous update) "
                "or entirely after it",
            )
        )

    def _group_items(self, body, group: list[int], tapes, done: set[int]) -> list[PlanItem]:
        """Statements up to the group's last minimize: before, in and after its region."""
        recorded = set().union(*(tapes[i] for i in group))
        start = min(recorded, default=group[0])
        items = self._computes(body, range(start), done)
        before, inside, after = self._split_range(body, start, group[0], recorded)
        items += self._computes(body, before, done)
        recorders = tuple(self.fresh("tape") for _ in group)
        recorded_items = tuple(self._computes(body, inside, done))
        # After the recorded statements: the facts about their values are known.
        losses = tuple(self._loss_for_gradient(body[i]) for i in group)
        gradients = tuple(
            _minimize_gradient(recorder, loss, body[index])
            for recorder, loss, index in zip(recorders, losses, group, strict=True)
        )
        span = body[group[0]].span
        region = GradientRegion(recorders, recorded_items, losses, span, gradients=gradients)
        items += [region, *self._computes(body, after, done)]
        for recorder, loss, index in zip(recorders, losses, group, strict=True):
            items += self._computes(body, range(index), done)
            items.append(self._apply(recorder, loss, body[index]))
            done.add(index)
        return items

    def _computes(self, body, indices, done: set[int]) -> list[PlanItem]:
        """Lower the units at `indices` not lowered yet, in that order."""
        todo = [i for i in indices if i not in done and not isinstance(body[i], ir.Minimize)]
        done.update(todo)
        return [item for i in todo for item in self._lower_unit(body[i])]

    def _lower_unit(self, unit) -> list[PlanItem]:
        if isinstance(unit, Block):
            return self._gradient_items(unit)
        if isinstance(unit, ir.LOOPS):
            note_loop_variables(unit, self.facts, self.depends)
            self.outer_depth += 1
            items = tuple(self._place(unit.body))
            self.outer_depth -= 1
            return [loop_block(unit, items, self.facts)]
        return [self._compute(unit)]

    def _split_range(self, body, start: int, stop: int, recorded: set[int]):
        """Statements in [start, stop): before the recording, in it, or after it.

        Hoisting a statement above the recording is safe only if it reads
        nothing recorded, redefines no name a recorded statement before it
        uses, and draws no random number after a recorded draw (the draw
        order is the random stream). Metric updates of recorded values go
        after the recording; anything else that cannot be hoisted stays in it.
        """
        flow = self.flow
        before, inside, after = [], [], []
        kept: set[int] = set()  # inside or after: what a hoisted statement must not read
        touched: set[str] = set()  # names read or defined by the recorded statements
        random_inside = False
        for i in range(start, stop):
            conflicts = bool(flow.defines[i] & touched) or (random_inside and flow.random[i])
            if i in recorded or conflicts:
                inside.append(i)
            elif flow.reads_from(i, kept):
                later = isinstance(body[i], ir.Update) or is_state_update(body[i], self.symbols)
                (after if later else inside).append(i)
            else:
                before.append(i)
                continue
            kept.add(i)
            if inside and inside[-1] == i:
                touched |= flow.reads[i] | flow.defines[i]
                random_inside = random_inside or flow.random[i]
        return before, inside, after

    # ---------------------------------------------------------------- statements

    def _compute(self, statement: ir.Statement) -> Compute:
        if is_state_update(statement, self.symbols):
            return state_update(statement, self.facts.unscaled(statement.value), self)
        if isinstance(statement, ir.AssignWeights):
            return self._assign_weights(statement)
        if isinstance(statement, ir.ApplyEdited):
            return apply_edited(statement, self.gradient_values)
        if isinstance(statement, ir.Assign):
            value, scaled = self.facts.normalize(statement.value)
            self.facts.assign(statement.targets, statement.value, scaled)
            self._note_depends(statement.targets, statement.value)
            compiled = isinstance(value, ir.Call) and value.func.id == COMPILED_LOSS
            role = COMPILED_LOSS_VALUE if compiled else ""
            if self.gradient_values and not compiled:
                return mapped_compute(statement, value, self.gradient_values)
            return Compute(dataclasses.replace(statement, value=value), role=role)
        return self._update(statement)

    def _assign_weights(self, statement: ir.AssignWeights) -> Compute:
        read = [n.id for n in ir.walk(statement.value) if isinstance(n, ir.Name)]
        models = [statement.target.id] + [n for n in read if n in self.models]
        value = self.facts.unscaled(statement.value)
        rewritten = dataclasses.replace(statement, value=value)
        return Compute(rewritten, weights_of=tuple(dict.fromkeys(models)))

    def _update(self, statement: ir.Update) -> Compute:
        # Keras's loss tracker is a Mean, weighted by batch size as its own step does.
        keras_loss = is_loss_tracker_update(statement)
        detail = "Mean" if keras_loss else self.symbols[statement.metric.id].detail
        args = tuple(self.facts.unscaled(a) for a in statement.args)
        keywords = tuple(
            dataclasses.replace(k, value=self.facts.unscaled(k.value)) for k in statement.keywords
        )
        weighted = detail == "Mean" and len(args) == 1 and not keywords
        if weighted and self.facts.is_scalar(statement.args[0]):
            keywords = (ir.Keyword("sample_weight", self._batch_size(statement), statement.span),)
        role = KERAS_LOSS_TRACKER if keras_loss else ""
        if statement.metric.id == "compiled_metrics":
            role = COMPILED_METRICS
        rewritten = dataclasses.replace(statement, args=args, keywords=keywords)
        return Compute(rewritten, detail, role=role)

    def _batch_size(self, update: ir.Update) -> ir.Expr:
        """The examples in the batch (x may be a dict or a tuple: its first tensor's
        first dimension), or the spec's own `shape(x)[0]`, so it is computed once."""
        x, span = self.step.data[0].name.id, update.span
        existing = self._batch_size_local
        if existing is not None and existing[1] < self._position[id(update)]:
            return ir.Name(existing[0], span)
        return pseudo_call(BATCH_SIZE, ir.Name(x, span))

    def _loss_for_gradient(self, minimize: ir.Minimize) -> LossForGradient:
        loss, scaled = self.facts.normalize(minimize.loss)
        if not scaled:
            loss = self.facts.scale(loss)
        optimizer = minimize.optimizer.id if minimize.optimizer else KERAS_OPTIMIZER
        base = minimize.loss.id if isinstance(minimize.loss, ir.Name) else "loss"
        name = self.fresh(f"scaled_{base}")
        unknown = not self.facts.is_scalar(minimize.loss)  # e.g. mean(v, 0)
        return LossForGradient(name, loss, optimizer, minimize.span, unknown)

    def _apply(self, recorder: str, loss: LossForGradient, minimize: ir.Minimize):
        targets = tuple(t.id for t in minimize.targets)
        return ApplyGradients(
            recorder, loss.name, targets, loss.optimizer, minimize, minimize.clips
        )

    # ---------------------------------------------------------------- returns

    def _return_plan(self, statement: ir.Return) -> ReturnPlan:
        values = []
        for item in statement.items:
            symbol = self.symbols.get(item.name.id)
            if item.entry is not None:  # compiled_metrics["mae"]
                values.append(ReturnValue(item.entry, None, None, True, item.entry))
            elif item.value is None and symbol is not None and symbol.kind is Kind.COMPILED_METRICS:
                values.append(ReturnValue(item.name.id, None, None, compiled_metrics=True))
            elif item.value is None and symbol is not None and symbol.is_own_metric:
                values.append(ReturnValue(item.name.id, item.name.id, None))
            else:
                value = self.facts.unscaled(item.value or item.name)
                values.append(ReturnValue(item.name.id, None, value))
        bare = self.step.kind is ir.StepKind.PREDICT and len(values) == 1
        bare = bare and statement.items[0].value is None
        return ReturnPlan(tuple(values), statement.span, bare)


# ---------------------------------------------------------------- dependencies


def _minimize_gradient(recorder: str, loss: LossForGradient, minimize: ir.Minimize):
    """The gradient a minimize takes: its loss's, with respect to its targets."""
    targets = tuple(t.id for t in minimize.targets)
    return RegionGradient(recorder, loss.name, targets, True, loss.optimizer)


def _batch_size_local(body, x: str) -> tuple[str, int] | None:
    """A local assigned `shape(x)[0]` once (and where), neither it nor x reassigned."""
    assigned = Counter(t.id for s in body if isinstance(s, ir.Assign) for t in s.targets)
    if assigned[x]:
        return None
    for index, statement in enumerate(body):
        if isinstance(statement, ir.Assign) and len(statement.targets) == 1:
            name = statement.targets[0].id
            if assigned[name] == 1 and _is_batch_size_of(statement.value, x):
                return name, index
    return None


def _is_batch_size_of(expr: ir.Expr, x: str) -> bool:
    if not (isinstance(expr, ir.Subscript) and isinstance(expr.index, ir.Number)):
        return False
    call = expr.value
    return (
        expr.index.is_int
        and int(expr.index.text) == 0
        and isinstance(call, ir.Call)
        and call.func.id == "shape"
        and not call.keywords
        and len(call.args) == 1
        and isinstance(call.args[0], ir.Name)
        and call.args[0].id == x
    )


def without_updates(body) -> tuple[ir.Statement, ...]:
    """The statements that do not change weights, repeat blocks included."""
    kept = []
    for statement in body:
        if isinstance(statement, ir.LOOPS):
            inner = without_updates(statement.body)
            statement = dataclasses.replace(statement, body=inner) if inner else None
        elif isinstance(statement, (ir.Minimize, ir.AssignWeights, ir.ApplyEdited)):
            statement = None
        if statement is not None:
            kept.append(statement)
    return tuple(kept)
