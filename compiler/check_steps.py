"""Stage 2, inside a step: names, types, calls, gradient targets, metric updates.

Owns the checks of one `train` / `test` / `predict` block: every name is
defined before use, every call is to the allowlist or to the spec's own
declarations with the right arguments, every `minimize` has a scalar loss that
depends on each of its targets and an optimizer used for one target set only,
and the step reports at least one value. Values carry a small type and the set
of models their computation went through, which is what the gradient checks use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stepc import ir
from stepc.builtins import (
    COMPILED_LOSS,
    COMPILED_LOSS_OP,
    METRIC_CLASSES,
    OPS,
    MetricArgs,
    Op,
    Result,
    Type,
)
from stepc.diagnostics import Diagnostic, did_you_mean, error, warning
from stepc.symbols import Kind, Symbol

_NUMERIC = (Type.TENSOR, Type.SCALAR, Type.NUMBER)
_DATA_ROLES = ("x", "y", "sample_weight")


@dataclass
class Usage:
    """What the steps of a model use, for the unused-declaration warnings."""

    names: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Value:
    type: Type
    models: frozenset[str] = frozenset()  # models whose forward pass it went through
    names: tuple[str, ...] = ()  # the locals it was computed from, for messages


@dataclass
class _Local:
    value: Value
    span: ir.Span
    is_data: bool
    used: bool = False
    feeds_loss_tracker: bool = False  # compiled_loss: used by Keras's loss tracker


class StepChecker:
    def __init__(self, step, symbols, functional, usage, out):
        self.step: ir.Step = step
        self.symbols: dict[str, Symbol] = symbols
        self.functional: bool = functional
        self.usage: Usage = usage
        self.out: list[Diagnostic] = out
        self.locals: dict[str, _Local] = {}
        self.optimizer_targets: dict[str, tuple[tuple[str, ...], ir.Span]] = {}
        self.compiled_loss_span: ir.Span | None = None
        self.reports = False

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
        self.locals[param.name.id] = _Local(Value(type_), param.name.span, is_data=True)

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
        else:
            self._return(statement, is_last)

    def _assign(self, statement: ir.Assign) -> None:
        from stepc.check import check_identifier

        value = self.expr(statement.value)
        if value.type in (Type.MODEL, Type.OPTIMIZER, Type.LOSS, Type.METRIC):
            self.out.append(
                error(
                    f"{_a(value.type.value)} cannot be given another name",
                    statement.value.span,
                    "call it, or name it directly where it is used",
                )
            )
        if len(statement.targets) > 1:
            self._check_unpacking(statement)
            value = Value(Type.TENSOR, value.models, value.names)
        for target in statement.targets:
            if check_identifier(target, self.out) and not self._shadows(target):
                names = (*value.names, target.id)
                tracked = isinstance(statement.value, ir.Call)
                tracked = tracked and statement.value.func.id == COMPILED_LOSS
                self.locals[target.id] = _Local(
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
        elif not (isinstance(value, ir.Call) and self._is_model(value.func.id)):
            self.out.append(
                error(
                    "only a model's outputs or a tuple can be unpacked into several names",
                    value.span,
                )
            )

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
                f"the loss to minimize must be a scalar, not {_a(loss.type.value)}", expr.span, hint
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
            message = f"`{target.id}` is {_a(self.symbols[target.id].kind.value)}, not a model"
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
                    f"a step cannot report {_a(value.type.value)}",
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

    # ---------------------------------------------------------------- expressions

    def _values(self, args, keywords) -> list[Value]:
        return [self.expr(a) for a in args] + [self.expr(k.value) for k in keywords]

    def expr(self, node: ir.Expr) -> Value:
        method = getattr(self, "_expr_" + type(node).__name__)
        return method(node)

    def _expr_Number(self, node: ir.Number) -> Value:
        return Value(Type.NUMBER)

    def _expr_String(self, node: ir.String) -> Value:
        return Value(Type.STRING)

    def _expr_Name(self, node: ir.Name) -> Value:
        local = self.locals.get(node.id)
        if local is not None:
            local.used = True
            return local.value
        symbol = self.symbols.get(node.id)
        if symbol is not None:
            self.usage.names.add(node.id)
            return Value(symbol.type)
        self._unknown_name(node)
        return Value(Type.TENSOR)

    def _unknown_name(self, node: ir.Name) -> None:
        hint = did_you_mean(node.id, [*self.locals, *self.symbols])
        if node.id in _DATA_ROLES and hint is None:
            hint = f"declare it in the step's data: `{self.step.kind.value}(x, y, sample_weight?)`"
        if node.id in OPS:
            message = f"`{node.id}` is an operation; call it: `{OPS[node.id].signature()}`"
        else:
            message = f"undefined name `{node.id}`"
        self.out.append(error(message, node.span, hint))

    def _expr_TupleExpr(self, node) -> Value:
        return self._sequence(node)

    def _expr_ListExpr(self, node) -> Value:
        return self._sequence(node)

    def _sequence(self, node) -> Value:
        items = [self.expr(item) for item in node.items]
        return _merge(Type.SEQUENCE, items)

    def _expr_Negate(self, node: ir.Negate) -> Value:
        value = self.expr(node.operand)
        if not self._check_numeric(node.operand, value):
            return Value(Type.TENSOR, value.models, value.names)  # reported once
        return value

    def _expr_BinaryOp(self, node: ir.BinaryOp) -> Value:
        left, right = self.expr(node.left), self.expr(node.right)
        self._check_numeric(node.left, left)
        self._check_numeric(node.right, right)
        types = {left.type, right.type}
        result = Type.TENSOR if Type.TENSOR in types else Type.NUMBER
        if Type.SCALAR in types and Type.TENSOR not in types:
            result = Type.SCALAR
        return _merge(result, [left, right])

    def _check_numeric(self, node: ir.Expr, value: Value) -> bool:
        if value.type in _NUMERIC or value.type is Type.UNKNOWN:
            return True
        hint = None
        if value.type is Type.OPTIONAL_TENSOR:
            hint = "it is optional (`?`) and may be None; pass it only to losses and metrics"
        self.out.append(error(f"arithmetic on {_a(value.type.value)}", node.span, hint))
        return False

    def _expr_Subscript(self, node: ir.Subscript) -> Value:
        value = self.expr(node.value)
        if isinstance(node.index, ir.Slice):
            bounds = [b for b in (node.index.start, node.index.stop) if b is not None]
            for bound in bounds:
                self.expr(bound)
            return Value(value.type, value.models, value.names)
        self.expr(node.index)
        if value.type is Type.SHAPE:
            return Value(Type.NUMBER, value.models, value.names)
        if value.type not in (Type.TENSOR, Type.SEQUENCE):
            self.out.append(error(f"{_a(value.type.value)} cannot be indexed", node.value.span))
        return Value(Type.TENSOR, value.models, value.names)

    def _expr_Call(self, node: ir.Call) -> Value:
        name = node.func.id
        if name in self.locals:
            self.out.append(error(f"`{name}` is a value, not something to call", node.func.span))
            self._values(node.args, node.keywords)
            return Value(Type.TENSOR)
        symbol = self.symbols.get(name)
        if symbol is not None:
            self.usage.names.add(name)
            return self._call_symbol(node, symbol)
        if name == COMPILED_LOSS:
            return self._call_compiled_loss(node)
        if name in OPS:
            return self._call_op(node, OPS[name])
        callables = [*OPS, COMPILED_LOSS, *(n for n, s in self.symbols.items() if _callable(s))]
        hint = did_you_mean(name, callables) or "see the operation list in docs/language.md"
        self.out.append(error(f"`{name}` is not an allowed operation", node.func.span, hint))
        self._values(node.args, node.keywords)
        return Value(Type.TENSOR)

    def _call_symbol(self, node: ir.Call, symbol: Symbol) -> Value:
        if symbol.type is Type.UNKNOWN:  # its declaration was already reported
            return _merge(Type.UNKNOWN, self._values(node.args, node.keywords))
        if symbol.type is Type.LOSS:
            op = Op(symbol.name, "", ("y_true", "y_pred", "sample_weight"), 2)
            return self._call_checked(node, op, Type.SCALAR)
        if self._is_model(symbol.name):
            op = Op(symbol.name, "", ("inputs",), 1, ("training",))
            value = self._call_checked(node, op, Type.TENSOR)
            return Value(Type.TENSOR, value.models | {symbol.name}, value.names)
        message = f"{_a(symbol.kind.value)} cannot be called"
        if symbol.kind is Kind.SELF:
            message = "`self` has no forward pass: this model holds sub-models; call one of them"
        self.out.append(error(message, node.func.span))
        self._values(node.args, node.keywords)
        return Value(Type.TENSOR)

    def _call_compiled_loss(self, node: ir.Call) -> Value:
        if self.compiled_loss_span is not None:
            self.out.append(
                error(
                    "compiled_loss is used twice in one step",
                    node.span,
                    f"it updates the loss tracker each time (first use: line "
                    f"{self.compiled_loss_span.line}); compute it once and reuse the value",
                )
            )
        self.compiled_loss_span = node.span
        return self._call_checked(node, COMPILED_LOSS_OP, Type.SCALAR)

    def _call_op(self, node: ir.Call, op: Op) -> Value:
        self._check_arguments(op, node.args, node.keywords, node.span)
        values = self._values(node.args, node.keywords)
        first = values[0].type if node.args else Type.TENSOR
        value = _merge(_op_result(op, node, first), values)
        if op.name == "stop_gradient":  # no gradient flows back through it
            return Value(value.type, frozenset(), value.names)
        return value

    def _call_checked(self, node: ir.Call, op: Op, result: Type) -> Value:
        self._check_arguments(op, node.args, node.keywords, node.span)
        return _merge(result, self._values(node.args, node.keywords))

    def _check_arguments(self, op: Op, args, keywords, span: ir.Span) -> None:
        allowed = set(op.params[len(args) :]) | set(op.keywords)
        given = len(args) + sum(1 for k in keywords if k.name in op.params)
        problem = None
        if len(args) > len(op.params):
            problem = f"takes at most {len(op.params)} positional arguments, got {len(args)}"
        elif given < op.required:
            problem = f"needs {op.required} argument(s), got {given}"
        for kw in keywords:
            if kw.name not in allowed:
                self.out.append(
                    error(
                        f"`{op.name}` has no parameter `{kw.name}` here",
                        kw.span,
                        f"the signature is {op.signature()}",
                    )
                )
        if problem:
            self.out.append(
                error(f"`{op.name}` {problem}", span, f"the signature is {op.signature()}")
            )

    def _is_model(self, name: str) -> bool:
        symbol = self.symbols.get(name)
        if symbol is None or symbol.type is not Type.MODEL:
            return False
        return symbol.kind is not Kind.SELF or self.functional


def _a(noun: str) -> str:
    """`noun` with its indefinite article: "an optimizer", "a model"."""
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _callable(symbol: Symbol) -> bool:
    return symbol.type in (Type.MODEL, Type.LOSS)


def _merge(result: Type, values: list[Value]) -> Value:
    models = frozenset().union(*(v.models for v in values)) if values else frozenset()
    names: tuple[str, ...] = ()
    for value in values:
        names += tuple(n for n in value.names if n not in names)
    return Value(result, models, names)


def _op_result(op: Op, node: ir.Call, first: Type) -> Type:
    if op.result is Result.SHAPE:
        return Type.SHAPE
    if op.result is Result.SAME:
        return first if first in (Type.SCALAR, Type.NUMBER) else Type.TENSOR
    if op.result is Result.REDUCE:
        has_axis = len(node.args) > 1 or any(k.name in ("axis", "keepdims") for k in node.keywords)
        return Type.TENSOR if has_axis else Type.SCALAR
    return Type.TENSOR
