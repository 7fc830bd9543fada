"""Stage 2, inside a step: names, types, calls, gradient targets, metric updates.

Owns the statement checks of one `train` / `test` / `predict` block: the
data line, every name defined before use and none shadowing a declaration,
every `minimize` with a scalar loss that depends on each of its targets and an
optimizer used for one target set only, metric updates with the right
arguments, and a step that reports at least one value. Expression typing is
in `stepc.check_exprs`.
"""

from __future__ import annotations

from stepc import ir
from stepc.builtins import COMPILED_LOSS, METRIC_CLASSES, MetricArgs, Op, Type
from stepc.check_constructs import ConstructChecks
from stepc.check_exprs import Local, Usage, Value, article, chain
from stepc.diagnostics import Diagnostic, did_you_mean, error, warning
from stepc.symbols import Kind, Symbol

__all__ = ["StepChecker", "Usage"]


class StepChecker(ConstructChecks):
    def __init__(self, step, symbols, functional, usage, out):
        self.step: ir.Step = step
        self.symbols: dict[str, Symbol] = symbols
        self.functional: bool = functional
        self.usage: Usage = usage
        self.out: list[Diagnostic] = out
        self.locals: dict[str, Local] = {}
        self.optimizer_targets: dict[str, tuple[tuple[str, ...], ir.Span]] = {}
        self.compiled_loss_span: ir.Span | None = None
        self.reports = False
        self.called: set[str] = set()

    def run(self) -> None:
        self._declare_data()
        for index, statement in enumerate(self.step.body):
            self._statement(statement, is_last=index == len(self.step.body) - 1)
        self._check_reports()
        self._warn_unused_locals()

    # ---------------------------------------------------------------- data

    def _declare_data(self) -> None:
        data = self.step.data
        limit = 1 if self.step.kind is ir.StepKind.PREDICT else 3
        if len(data) > limit:
            self.out.append(
                error(
                    f"a {self.step.kind.value} step's data has at most {limit} part(s)",
                    data[limit].span,
                    "the parts are x, then y, then sample_weight",
                )
            )
        for position, param in enumerate(data[:limit]):
            self._declare_data_param(position, param)

    def _declare_data_param(self, position: int, param: ir.DataParam) -> None:
        from stepc.check import check_identifier

        if param.optional and position == 0:
            self.out.append(
                error("x cannot be optional", param.span, "only y and sample_weight may be")
            )
        if not check_identifier(param.name, self.out) or self._shadows(param.name):
            return
        if param.name.id in self.locals:
            self.out.append(error(f"`{param.name.id}` names two parts of the data", param.span))
        type_ = Type.OPTIONAL_TENSOR if param.optional else Type.TENSOR
        self.locals[param.name.id] = Local(Value(type_), param.name.span, is_data=True)

    def _shadows(self, name: ir.Name) -> bool:
        symbol = self.symbols.get(name.id)
        if symbol is None:
            return False
        where = f" declared on line {symbol.span.line}" if symbol.span else ""
        self.out.append(
            error(
                f"`{name.id}` shadows the {symbol.kind.value}{where}",
                name.span,
                "pick another name for the value",
            )
        )
        return True

    # ---------------------------------------------------------------- statements

    def _statement(self, statement: ir.Statement, is_last: bool) -> None:
        if isinstance(statement, ir.Assign):
            self._assign(statement)
        elif isinstance(statement, ir.Minimize):
            self._minimize(statement)
        elif isinstance(statement, ir.Update):
            self._update(statement)
        elif isinstance(statement, ir.Repeat):
            self._repeat(statement)
        elif isinstance(statement, ir.AssignWeights):
            self._assign_weights(statement)
        else:
            self._return(statement, is_last)

    def _assign(self, statement: ir.Assign) -> None:
        from stepc.check import check_identifier

        self.whole_value = statement.value
        value = self.expr(statement.value)
        self.whole_value = None
        if value.type in (Type.MODEL, Type.OPTIMIZER, Type.LOSS, Type.METRIC):
            self.out.append(
                error(
                    f"{article(value.type.value)} cannot be given another name",
                    statement.value.span,
                    "call it, or name it directly where it is used",
                )
            )
        if len(statement.targets) > 1:
            self._check_unpacking(statement)
            value = Value(Type.TENSOR, value.models, value.names)
        for target in statement.targets:
            if check_identifier(target, self.out) and not self._shadows(target):
                names = chain(value.names, target.id)
                tracked = isinstance(statement.value, ir.Call)
                tracked = tracked and statement.value.func.id == COMPILED_LOSS
                self.locals[target.id] = Local(
                    Value(value.type, value.models, names), target.span, False, False, tracked
                )

    def _check_unpacking(self, statement: ir.Assign) -> None:
        value = statement.value
        count = len(statement.targets)
        if isinstance(value, (ir.TupleExpr, ir.ListExpr)):
            if len(value.items) != count:
                self.out.append(
                    error(
                        f"{count} names but {len(value.items)} values",
                        statement.span,
                        "unpack as many names as there are values",
                    )
                )
        elif not (isinstance(value, ir.Call) and self._unpackable(value)):
            self.out.append(
                error(
                    "only a model's outputs or a tuple can be unpacked into several names",
                    value.span,
                )
            )

    def _unpackable(self, value: ir.Call) -> bool:
        """A model's outputs, or the gradients with respect to a tuple of tensors."""
        if value.func.id == "gradient" and len(value.args) == 2:
            return isinstance(value.args[1], (ir.TupleExpr, ir.ListExpr))
        return self._is_model(value.func.id)

    def _minimize(self, statement: ir.Minimize) -> None:
        if self.step.kind is not ir.StepKind.TRAIN:
            self.out.append(
                error(
                    f"a {self.step.kind.value} step cannot update weights",
                    statement.span,
                    "minimize belongs in the train step",
                )
            )
        loss = self.expr(statement.loss)
        self._check_scalar_loss(statement.loss, loss)
        targets = tuple(t for t in statement.targets if self._check_target(t))
        targets = tuple(t for t in targets if self._check_not_frozen(t, "trained"))
        self._check_clips(statement)
        for target in targets:
            self._check_depends(statement.loss, loss, target)
        self._check_optimizer(statement, tuple(t.id for t in targets))

    def _check_scalar_loss(self, expr: ir.Expr, loss: Value) -> None:
        if loss.type is Type.SCALAR:
            return
        hint = None
        if loss.type is Type.TENSOR:
            hint = (
                "reduce it with mean(...) or sum(...), or use a loss object "
                "(`loss mse = MeanSquaredError()`), which returns a scalar"
            )
        self.out.append(
            error(
                f"the loss to minimize must be a scalar, not {article(loss.type.value)}",
                expr.span,
                hint,
            )
        )

    def _check_target(self, target: ir.Name) -> bool:
        self.usage.names.add(target.id)
        if self._is_model(target.id):
            return True
        symbol = self.symbols.get(target.id)
        if symbol is not None and symbol.type is Type.UNKNOWN:
            return False  # its declaration's error was reported
        if target.id == "self":
            message = "`self` is not a gradient target in a model of sub-models"
        elif target.id in self.locals:
            message = f"`{target.id}` is a value, not a model"
        elif target.id in self.symbols:
            kind = self.symbols[target.id].kind.value
            message = f"`{target.id}` is {article(kind)}, not a model"
        else:
            message = f"unknown model `{target.id}`"
        models = [n for n in self.symbols if self._is_model(n)]
        hint = did_you_mean(target.id, models) if target.id != "self" else None
        hint = hint or "the models it can update: " + ", ".join(models)
        self.out.append(error(message, target.span, hint))
        return False

    def _check_depends(self, expr: ir.Expr, loss: Value, target: ir.Name) -> None:
        depends = bool(loss.models) if target.id == "self" else target.id in loss.models
        if depends or loss.type is not Type.SCALAR:
            return
        chain = " <- ".join(reversed(loss.names)) if loss.names else "the expression"
        through = ", ".join(sorted(loss.models)) or "no model"
        self.out.append(
            error(
                f"the loss does not depend on `{target.id}`: its gradient would be None",
                expr.span,
                f"{chain} goes through {through}; call `{target.id}` in the loss "
                "(and not inside stop_gradient)",
            )
        )

    def _check_optimizer(self, statement: ir.Minimize, targets: tuple[str, ...]) -> None:
        name = statement.optimizer
        if name is None:
            if "optimizer" not in self.symbols:
                self.out.append(
                    error(
                        "say which optimizer updates these weights",
                        statement.span,
                        "this model has its own compile(); add `using <optimizer parameter>`",
                    )
                )
            return
        self.usage.names.add(name.id)
        symbol = self.symbols.get(name.id)
        if symbol is None or symbol.type is not Type.OPTIMIZER:
            optimizers = [n for n, s in self.symbols.items() if s.type is Type.OPTIMIZER]
            hint = did_you_mean(name.id, optimizers) or (
                "declare it in compile(...): `compile(" + name.id + ": Optimizer)`"
            )
            self.out.append(error(f"`{name.id}` is not a declared optimizer", name.span, hint))
            return
        self._check_optimizer_reuse(name, targets)

    def _check_optimizer_reuse(self, name: ir.Name, targets: tuple[str, ...]) -> None:
        previous = self.optimizer_targets.get(name.id)
        if previous is None:
            self.optimizer_targets[name.id] = (targets, name.span)
        elif set(previous[0]) != set(targets):
            self.out.append(
                error(
                    f"optimizer `{name.id}` already updates {', '.join(previous[0])} "
                    f"(line {previous[1].line})",
                    name.span,
                    "an optimizer keeps state per variable; give each target set its own optimizer",
                )
            )

    def _update(self, statement: ir.Update) -> None:
        name = statement.metric.id
        self.reports = True
        symbol = self.symbols.get(name)
        if symbol is None or symbol.type is not Type.METRIC:
            metrics = [n for n, s in self.symbols.items() if s.type is Type.METRIC]
            hint = did_you_mean(name, metrics) or "declare it: `metric name = Mean()`"
            self.out.append(error(f"`{name}` is not a metric", statement.metric.span, hint))
            self._values(statement.args, statement.keywords)
            return
        self.usage.names.add(name)
        labels = symbol.kind is Kind.COMPILED_METRICS
        labels = labels or METRIC_CLASSES.get(symbol.detail) is MetricArgs.LABELS
        params = ("y_true", "y_pred", "sample_weight") if labels else ("values", "sample_weight")
        op = Op(name, "", params, len(params) - 1)
        self._check_arguments(op, statement.args, statement.keywords, statement.span)
        self._values(statement.args, statement.keywords)

    def _return(self, statement: ir.Return, is_last: bool) -> None:
        self.reports = True
        if not is_last:
            self.out.append(error("return must be the last statement of a step", statement.span))
        keys: set[str] = set()
        for item in statement.items:
            key = self._return_item(item)
            if key in keys:
                self.out.append(error(f"`{key}` is returned twice", item.span))
            keys.add(key)

    def _return_item(self, item: ir.ReturnItem) -> str:
        if item.value is not None:
            self._check_reportable(item.value, self.expr(item.value))
            return item.name.id
        symbol = self.symbols.get(item.name.id)
        if symbol is not None and symbol.kind is Kind.METRIC:
            self.usage.names.add(item.name.id)
        else:
            self.expr(item.name)
        return item.name.id

    def _check_reportable(self, node: ir.Expr, value: Value) -> None:
        if value.type in (Type.MODEL, Type.OPTIMIZER, Type.LOSS, Type.METRIC, Type.STRING):
            self.out.append(
                error(
                    f"a step cannot report {article(value.type.value)}",
                    node.span,
                    "return numbers or tensors (a tracker by its name reports its result)",
                )
            )

    def _check_reports(self) -> None:
        if self.step.kind is ir.StepKind.PREDICT:
            if not any(isinstance(s, ir.Return) for s in self.step.body):
                self.out.append(error("a predict step must return its predictions", self.step.span))
            return
        if not (self.reports or self.compiled_loss_span):
            self.out.append(
                error(
                    f"the {self.step.kind.value} step reports nothing",
                    self.step.span,
                    "fit() and evaluate() need at least one value: update a metric "
                    "(`update tracker(loss)`) or `return loss=loss`",
                )
            )

    def _warn_unused_locals(self) -> None:
        for name, local in self.locals.items():
            if not local.used and not local.is_data and not local.feeds_loss_tracker:
                self.out.append(
                    warning(f"`{name}` is computed but never used", local.span, "remove it")
                )
