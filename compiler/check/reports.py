"""Stage 2, what a step reports: its `return`, Keras's loss tracker, and that
it reports something.

Owns the checks of `return` (trackers by name, values by key, compiled metrics
whole or by entry, each key once, last in the step), of `update loss(...)`
(Keras's own `loss` entry: a value, once per step, not in a repeat block) and
of a step whose several compiled losses leave `loss` undecided
(`stepc.check.loss_report` decides), and that a train or test step reports at
least one value. A mixin of `stepc.check.steps.StepChecker`.
"""

from __future__ import annotations

from stepc.check.exprs import ExprChecker, Value, article
from stepc.check.loss_report import LOSS_TRACKER, Source, is_loss_tracker_update, loss_report
from stepc.check.symbols import Kind
from stepc.diagnostics import Diagnostic, error
from stepc.parse import ir
from stepc.tables.builtins import VALUES_UPDATE_PARAMS, Type, object_call_op


def _loss_tracker_twice(statement: ir.Update, in_repeat: bool) -> Diagnostic:
    if in_repeat:
        return error(
            "update loss(...) in a repeat block updates Keras's loss tracker on every pass",
            statement.span,
            "update it once per step, after the block, with the value `loss` should report",
        )
    return error(
        "Keras's loss tracker is updated twice in one step",
        statement.span,
        "write one update loss(...), with the value `loss` should report",
    )


class ReportChecks(ExprChecker):
    reports: bool

    def _update_loss_tracker(self, statement: ir.Update) -> None:
        """`update loss(value)`: what Keras's own `loss` entry reports (a Mean)."""
        op = object_call_op(LOSS_TRACKER, VALUES_UPDATE_PARAMS)
        self._check_arguments(op, statement.args, statement.keywords, statement.span)
        values = self._values(statement.args, statement.keywords)
        for node, value in zip(statement.args, values[: len(statement.args)], strict=True):
            self._check_reportable(node, value)

    def _check_loss_report(self) -> None:
        """Keras's loss tracker is updated once per step, with a value the
        statements decide (stepc.check.loss_report)."""
        top = [s for s in self.step.body if is_loss_tracker_update(s)]
        for statement in ir.statements(self.step.body):
            if is_loss_tracker_update(statement) and not any(s is statement for s in top):
                self.out.append(_loss_tracker_twice(statement, in_repeat=True))
        for statement in top[1:]:
            self.out.append(_loss_tracker_twice(statement, in_repeat=False))
        report = loss_report(self.step.body)
        # A line with a syntax error may have been the `update loss(...)`.
        recovered = any(isinstance(s, ir.Recovered) for s in ir.statements(self.step.body))
        if report.source is Source.AMBIGUOUS and not recovered:
            self.out.append(
                error(
                    "`loss` in the logs could be any of this step's compiled losses",
                    report.node.span,
                    "say what Keras's loss tracker reports with `update loss(value)`, e.g. "
                    "`update loss(clean + adv)` (without it, it reports a step's one "
                    "compiled_loss, or the one loss minimized of several)",
                )
            )

    def _return(self, statement: ir.Return, is_last: bool) -> None:
        self.reports = True
        if not is_last:
            self.out.append(error("return must be the last statement of a step", statement.span))
        keys: set[str] = set()
        for item in statement.items:
            key = self._return_item(item)
            if key is not None and key in keys:
                self.out.append(error(f"`{key}` is returned twice", item.span))
            keys.add(key)

    def _return_item(self, item: ir.ReturnItem) -> str | None:
        if item.entry is not None:
            return self._return_entry(item)
        if item.value is not None:
            self._check_reportable(item.value, self.expr(item.value))
            return item.name.id
        symbol = self.symbols.get(item.name.id)
        if symbol is not None and symbol.is_own_metric:
            self.usage.names.add(item.name.id)
        else:
            self.expr(item.name)
        return item.name.id

    def _return_entry(self, item: ir.ReturnItem) -> str | None:
        """`compiled_metrics["mae"]`: the compiled metric Keras reports as "mae"
        (checked when the step is traced: compile() names them)."""
        symbol = self.symbols.get(item.name.id)
        self.usage.names.add(item.name.id)
        compiled = symbol is not None and symbol.kind is Kind.COMPILED_METRICS
        if compiled and item.entry:
            return item.entry
        if not compiled:
            message = f"only compiled_metrics is returned by entry, not `{item.name.id}`"
            hint = f"return a tracker by its name (`return {item.name.id}`), or key=value"
        else:
            message = "a compiled metric's name cannot be empty"
            hint = 'name it as compile() reports it, e.g. `compiled_metrics["mae"]`'
        self.out.append(error(message, item.span, hint))
        return None  # reported: no "returned twice" follows

    def _check_reportable(self, node: ir.Expr, value: Value) -> None:
        unreportable = (Type.MODEL, Type.OPTIMIZER, Type.LOSS, Type.METRIC, Type.STRING)
        if value.type in (*unreportable, Type.GRADIENTS):
            self.out.append(
                error(
                    f"a step cannot report {article(value.type.value)}",
                    node.span,
                    "return numbers or tensors (a tracker by its name reports its result)",
                )
            )

    def _check_reports(self) -> None:
        if self.step.kind is ir.StepKind.PREDICT:
            if not any(isinstance(s, (ir.Return, ir.Recovered)) for s in self.step.body):
                self.out.append(error("a predict step must return its predictions", self.step.span))
            return
        if not (self.reports or self.compiled_loss_span):
            self.out.append(
                error(
                    f"the {self.step.kind.value} step reports nothing",
                    self.step.span,
                    "fit() and evaluate() need at least one value: update a metric "
                    "(`update tracker(loss)`) or `return total=loss`",
                )
            )
