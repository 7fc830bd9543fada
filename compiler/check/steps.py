"""Stage 2, inside a step: names, types, calls, gradient targets, metric updates.

Owns the statement checks of one `train` / `test` / `predict` block: the
data line, every name defined before use and none shadowing a declaration,
every `minimize` with a scalar loss that depends on each of its targets and an
optimizer used for one target set only, metric updates with the right
arguments. Expression typing is in `stepc.check.exprs`, the data line's
checks in `stepc.check.data`, what a step reports in `stepc.check.reports`.
"""

from __future__ import annotations

from dataclasses import replace

from stepc.check.depends import DependencyGraph
from stepc.check.exprs import Local, Usage, Value, article, chain, reported, returns_tuple
from stepc.check.gradient_edits import ApplyChecks
from stepc.check.hints import misspelt
from stepc.check.loops import LoopChecks, loop_variables
from stepc.check.loss_report import LOSS_TRACKER
from stepc.check.reports import ReportChecks
from stepc.check.state import StateChecks
from stepc.check.symbols import Kind, Symbol
from stepc.diagnostics import Diagnostic, error, has_errors, warning
from stepc.parse import ir
from stepc.tables.builtins import (
    COMPILED_LOSS,
    KERAS_OPTIMIZER,
    LABELS_UPDATE_PARAMS,
    METRIC_CLASSES,
    OPS,
    VALUES_UPDATE_PARAMS,
    MetricArgs,
    Type,
    metric_update_op,
    object_call_op,
)

__all__ = ["StepChecker", "Usage"]


# An unpacking target that names no value.
DISCARD = "_"


class _RecordingLocals(dict):
    """The step's values by name, which also records each definition's `Value` by
    the span that defines it (read-only, for the language tools: `CheckedModel.values`)."""

    def __init__(self, defined: dict[ir.Span, Value]):
        super().__init__()
        self.defined = defined

    def __setitem__(self, name: str, local: Local) -> None:
        super().__setitem__(name, local)
        self.defined[local.span] = local.value


class StepChecker(ApplyChecks, ReportChecks, LoopChecks, StateChecks):
    def __init__(self, step, symbols, functional, usage, out, defined=None):
        self.step: ir.Step = step
        self.symbols: dict[str, Symbol] = symbols
        self.functional: bool = functional
        self.usage: Usage = usage
        self.out: list[Diagnostic] = out
        # Each definition's value, by its span (kept after loops forget their names).
        self.defined: dict[ir.Span, Value] = {} if defined is None else defined
        self.locals: dict[str, Local] = _RecordingLocals(self.defined)
        self.optimizer_targets: dict[str, tuple[tuple[str, ...], ir.Span]] = {}
        self.compiled_loss_span: ir.Span | None = None
        self.reports = False
        self.called: set[str] = set()
        self.repeats: list[int] = []
        self.loop_names: dict[str, tuple[ir.Span, int | None]] = {}
        self.graph = DependencyGraph()

    def run(self) -> None:
        if not self.step.data:
            self._declare_missing_data()
        self._declare_data()
        for index, statement in enumerate(self.step.body):
            self._statement(statement, is_last=index == len(self.step.body) - 1)
        self._check_reports()
        self._check_loss_report()
        self._check_nesting()
        self._warn_unused_locals()

    # ---------------------------------------------------------------- data

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
        before = len(self.out)
        self._dispatch(statement, is_last)
        if has_errors(self.out[before:]):
            self._count_uses(statement)

    def _count_uses(self, statement: ir.Statement) -> None:
        """A statement with an error still uses what it names: no "never used"
        warning follows from the error."""
        names = [n for n in ir.walk(statement) if isinstance(n, ir.Name)]
        names += [n.func for n in ir.walk(statement) if isinstance(n, ir.Call)]
        if isinstance(statement, ir.Minimize):
            names += [*statement.targets, *([statement.optimizer] if statement.optimizer else [])]
        elif isinstance(statement, ir.Update):
            names.append(statement.metric)
        elif isinstance(statement, ir.ApplyEdited):
            names += [statement.model, *([statement.optimizer] if statement.optimizer else [])]
        for name in names:
            if name.id in self.locals:
                self.locals[name.id].used = True
            elif name.id in self.symbols:
                self.usage.names.add(name.id)

    # The checks of each kind of statement (`_return` also takes whether it is last).
    _CHECKS = {
        ir.Assign: "_assign",
        ir.Minimize: "_minimize",
        ir.Update: "_update",
        ir.Repeat: "_repeat",
        ir.ForEach: "_for_each",
        ir.AssignWeights: "_assign_weights",
        ir.ApplyEdited: "_apply_edited",
        ir.Recovered: "_recovered",
    }

    def _dispatch(self, statement: ir.Statement, is_last: bool) -> None:
        if isinstance(statement, ir.Return):
            self._return(statement, is_last)
        elif isinstance(statement, ir.AssignWeights) and self.is_state(statement.target):
            self.assign_state(statement)
        elif type(statement) in self._CHECKS:
            getattr(self, self._CHECKS[type(statement)])(statement)
        else:  # a new kind of statement must get its own checks
            raise TypeError(f"no checks for {type(statement).__name__}")

    def _recovered(self, statement: ir.Recovered) -> None:
        """A statement with a syntax error (already reported): the names it would have
        defined exist, of unknown type and through any model, and those it mentions
        are used, so none of the error's consequences is reported."""
        self.reports = True  # it may have been the update or the return
        for name in statement.mentions:
            if name in self.locals:
                self.locals[name].used = True
            elif name in self.symbols:
                self.usage.names.add(name)
        models = frozenset(n for n in self.symbols if self._is_model(n))
        for name in statement.defines:
            value = reported(Value(Type.UNKNOWN, models))
            key = self.graph.define(value.models, value.reads)
            self.locals[name] = Local(value, statement.span, is_data=False, used=True, key=key)

    def _assign(self, statement: ir.Assign) -> None:
        from stepc.check.models import check_identifier

        self.whole_value = statement.value
        value = self.expr(statement.value)
        self.whole_value = None
        tracked = isinstance(statement.value, ir.Call)
        tracked = tracked and statement.value.func.id == COMPILED_LOSS
        for target, (part, expr) in zip(
            statement.targets, self._unpacked(statement, value), strict=True
        ):
            self._check_nameable(part, expr)
            if target.id == DISCARD and len(statement.targets) > 1:
                continue  # `a, _ = pair`: an output the step does not use, as in Python
            if not self.check_not_loop_name(target):
                continue
            if check_identifier(target, self.out, value=True) and not self._shadows(target):
                self._define(target, part, tracked)

    def _unpacked(self, statement: ir.Assign, value: Value) -> list[tuple[Value, ir.Expr]]:
        """Each target's value and the expression it comes from: a literal tuple's
        element for each name, else the whole value (a model's outputs may each
        be computed from all of its input)."""
        whole = statement.value
        if len(statement.targets) == 1:
            return [(value, whole)]
        structured = self.unpack_structure(statement)  # a data part: stepc.check.data
        if structured is not None:
            return structured
        if not self._check_unpacking(statement):
            return [(reported(Value(Type.TENSOR)), whole)] * len(statement.targets)
        if value.items is not None and isinstance(whole, (ir.TupleExpr, ir.ListExpr)):
            return list(zip(value.items, whole.items, strict=True))
        part = Value(Type.TENSOR, value.models, value.names, value.reads)
        return [(part, whole)] * len(statement.targets)

    def _check_nameable(self, value: Value, expr: ir.Expr) -> None:
        """A name holds values, not objects of the model (nor a tuple of them)."""
        if value.items is not None and isinstance(expr, (ir.TupleExpr, ir.ListExpr)):
            for item, item_expr in zip(value.items, expr.items, strict=True):
                self._check_nameable(item, item_expr)
            return
        self.check_not_aliased(value, expr)  # a data part used as a structure
        if value.type in (Type.MODEL, Type.OPTIMIZER, Type.LOSS, Type.METRIC):
            self.out.append(
                error(
                    f"{article(value.type.value)} cannot be given another name",
                    expr.span,
                    "call it, or name it directly where it is used",
                )
            )

    def _define(self, target: ir.Name, value: Value, tracked: bool) -> None:
        key = self.graph.define(value.models, value.reads)
        names = chain(value.names, target.id)
        value = replace(value, names=names)
        self.locals[target.id] = Local(value, target.span, False, False, tracked, key)

    def _check_unpacking(self, statement: ir.Assign) -> bool:
        value = statement.value
        count = len(statement.targets)
        if isinstance(value, (ir.TupleExpr, ir.ListExpr)):
            if len(value.items) == count:
                return True
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
        else:
            return True
        return False

    def _unpackable(self, value: ir.Call) -> bool:
        """A model's outputs, an operation's tuple (top_k, split), or the
        gradients with respect to a tuple of tensors."""
        name = value.func.id
        if returns_tuple(name) and name not in self.locals and name not in self.symbols:
            return True
        if value.func.id == "gradient" and len(value.args) == 2:
            return isinstance(value.args[1], (ir.TupleExpr, ir.ListExpr))
        symbol = self.symbols.get(value.func.id)
        if symbol is not None and symbol.type is Type.UNKNOWN:  # its error was reported
            return True
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
        targets = tuple(t for t in self._unique_targets(statement) if self._check_target(t))
        targets = tuple(t for t in targets if self._check_not_frozen(t, "trained"))
        self._check_clips(statement)
        for target in targets:
            self._check_depends(statement.loss, loss, target)
        self._check_optimizer(statement, tuple(t.id for t in targets))

    def _unique_targets(self, statement: ir.Minimize) -> list[ir.Name]:
        """Each target once: the optimizer would update a repeated one's variables twice."""
        seen: set[str] = set()
        unique = []
        for target in statement.targets:
            if target.id in seen:
                self.out.append(
                    error(
                        f"`{target.id}` is a target twice",
                        target.span,
                        "name each model once; its variables would be updated twice",
                    )
                )
                continue
            seen.add(target.id)
            unique.append(target)
        return unique

    def _check_scalar_loss(self, expr: ir.Expr, loss: Value) -> None:
        if loss.type in (Type.SCALAR, Type.UNKNOWN):  # unknown: its error was reported
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
        if self.is_state(target):
            self.refuse_training_state(target, "minimize over a model the loss depends on")
            return False
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
        otherwise = "the models it can update: " + ", ".join(models)
        self.out.append(misspelt(message, target, models if target.id != "self" else (), otherwise))
        return False

    def _check_depends(self, expr: ir.Expr, loss: Value, target: ir.Name) -> None:
        reach = self.graph.reach(loss.models, loss.reads)
        if reach.depends_on_model(target.id) or loss.type not in (Type.SCALAR, Type.UNKNOWN):
            return
        chain = " <- ".join(reversed(loss.names)) if loss.names else "the expression"
        through = ", ".join(sorted(reach.models)) or "no model"
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
        if symbol is not None and symbol.type is Type.UNKNOWN:
            return  # its declaration's error was reported
        if symbol is None or symbol.type is not Type.OPTIMIZER:
            optimizers = [n for n, s in self.symbols.items() if s.type is Type.OPTIMIZER]
            message = f"`{name.id}` is not a declared optimizer"
            self.out.append(misspelt(message, name, optimizers, self._declare_optimizer_hint(name)))
            return
        self._check_optimizer_reuse(name, targets)

    def _declare_optimizer_hint(self, name: ir.Name) -> str:
        """How to declare it, naming it only if the checker accepts that name."""
        from stepc.check.models import check_attribute_name, check_identifier

        if name.id == KERAS_OPTIMIZER:
            return (
                "this model has its own compile(), which does not set Keras's `optimizer`: "
                "declare one, e.g. `compile(opt: Optimizer)`, and write `using opt`"
            )
        refused: list[Diagnostic] = []
        if check_identifier(name, refused) and check_attribute_name(name, refused, self.functional):
            return f"declare it in compile(...): `compile({name.id}: Optimizer)`"
        return "declare one in compile(...), e.g. `compile(opt: Optimizer)`, and write `using opt`"

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
        if name == LOSS_TRACKER and symbol is None:
            self._update_loss_tracker(statement)
            return
        if symbol is not None and symbol.type is Type.UNKNOWN:  # its error was reported
            self.usage.names.add(name)
            self._values(statement.args, statement.keywords)
            return
        if symbol is None or symbol.type is not Type.METRIC:
            metrics = [n for n, s in self.symbols.items() if s.type is Type.METRIC]
            hint = "declare it: `metric name = Mean()`"
            self.out.append(misspelt(f"`{name}` is not a metric", statement.metric, metrics, hint))
            self._values(statement.args, statement.keywords)
            return
        self.usage.names.add(name)
        if symbol.kind in (Kind.INIT_PARAM, Kind.COMPILE_PARAM):  # a `Metric` parameter
            self._update_metric_parameter(statement)
            return
        labels = symbol.kind is Kind.COMPILED_METRICS
        labels = labels or METRIC_CLASSES.get(symbol.detail) is MetricArgs.LABELS
        op = object_call_op(name, LABELS_UPDATE_PARAMS if labels else VALUES_UPDATE_PARAMS)
        self._check_arguments(op, statement.args, statement.keywords, statement.span)
        self.typed_values(op, statement.args, statement.keywords, optional=True)

    def _update_metric_parameter(self, statement: ir.Update) -> None:
        """`update kid(images, generated)`: a metric the caller built, whose
        update_state stepc does not know; the arguments go to it as written."""
        if not statement.args and not statement.keywords:
            name = statement.metric.id
            self.out.append(
                error(
                    f"`update {name}()` gives the metric nothing to update with",
                    statement.span,
                    f"pass what `{name}.update_state` takes, e.g. `update {name}(y, y_pred)`",
                )
            )
        op = metric_update_op(statement.metric.id, statement.keywords)
        self._check_arguments(op, statement.args, statement.keywords, statement.span)
        self.typed_values(op, statement.args, statement.keywords, optional=True)

    def _declare_missing_data(self) -> None:
        """A step without a data line (reported by stepc.check.shared): each name it
        reads and never assigns is taken as a data part of unknown type, so that no
        "undefined name" follows from the missing line."""
        statements = list(ir.statements(self.step.body))
        assigned = {t.id for s in statements if isinstance(s, ir.Assign) for t in s.targets}
        assigned |= loop_variables(statements)
        read = [n.id for s in self.step.body for n in ir.walk(s) if isinstance(n, ir.Name)]
        for name in dict.fromkeys(read):
            if name not in assigned and name not in self.symbols and name not in OPS:
                key = self.graph.define(frozenset(), frozenset())
                value = reported(Value(Type.UNKNOWN))
                self.locals[name] = Local(value, self.step.span, True, used=True, key=key)

    def _warn_unused_locals(self) -> None:
        for name, local in self.locals.items():
            if not local.used and not local.is_data and not local.feeds_loss_tracker:
                self.out.append(
                    warning(f"`{name}` is computed but never used", local.span, "remove it")
                )
