"""Stage 2, inside a step: the type of each expression and the checks of its calls.

Owns `ExprChecker`, which gives each expression its `stepc.check.values.Value`:
names resolve to step values, the spec's declarations or the allowlist; calls
are checked against their signatures; operators and subscripts are typed by
`stepc.check.operators`.
`stepc.check.steps` builds the statement checks on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from stepc.check.binding import STRING_KINDS, bind, kind_problem, parameter_names
from stepc.check.depends import ANY, TENSORS
from stepc.check.gradient_edits import GradientMapping, maps_over_gradients, refused_hint
from stepc.check.hints import suggestion, unknown_operation
from stepc.check.operators import OperatorChecks
from stepc.check.symbols import Kind, Symbol
from stepc.check.values import CHAIN_NAMES, Value, article, chain, reported
from stepc.check.values import merge as _merge
from stepc.diagnostics import Diagnostic, error, has_errors
from stepc.parse import ir
from stepc.tables.builtins import (
    COMPILED_LOSS,
    COMPILED_LOSS_OP,
    LOSS_CALL_PARAMS,
    MODEL_SHAPES,
    NOT_DIFFERENTIABLE,
    OPS,
    Arg,
    Op,
    Result,
    Type,
    model_call_op,
    object_call_op,
)

_DATA_ROLES = ("x", "y", "sample_weight")
# What no call takes as an argument (a string may name a dtype; a loss or a
# metric may take a `sample_weight?` that is None).
_NOT_ARGUMENTS = (
    Type.MODEL,
    Type.OPTIMIZER,
    Type.LOSS,
    Type.METRIC,
    Type.GRADIENTS,
    Type.STRING,
    Type.OPTIONAL_TENSOR,
)
_OPTIONAL_HINT = "it is optional (`?`) and may be None; pass it only to losses and metrics"
# Importable from here, where they were defined before stepc.check.values.
__all__ = ["CHAIN_NAMES", "ExprChecker", "Local", "Usage", "Value", "article", "chain", "reported"]


@dataclass
class Usage:
    """What the steps of a model use, for the unused-declaration warnings."""

    names: set[str] = field(default_factory=set)


@dataclass
class Local:
    """A name a step defines: its value, where, and how it is used."""

    value: Value
    span: ir.Span
    is_data: bool
    used: bool = False
    feeds_loss_tracker: bool = False  # compiled_loss: used by Keras's loss tracker
    key: int = ANY  # its node in the dependency graph


class ExprChecker(GradientMapping, OperatorChecks):
    """Types expressions; the step checker subclasses it and adds statements."""

    step: ir.Step
    symbols: dict[str, Symbol]
    functional: bool
    usage: Usage
    out: list[Diagnostic]
    locals: dict[str, Local]
    compiled_loss_span: ir.Span | None

    # ---------------------------------------------------------------- expressions

    def _values(self, args, keywords) -> list[Value]:
        return [self.expr(a) for a in args] + [self.expr(k.value) for k in keywords]

    def expr(self, node: ir.Expr) -> Value:
        before = len(self.out)
        value = getattr(self, "_expr_" + type(node).__name__)(node)
        if len(self.out) > before and has_errors(self.out[before:]):
            return reported(value)
        return value

    def _expr_Number(self, node: ir.Number) -> Value:
        return Value(Type.NUMBER, integer=node.is_int)

    def _expr_String(self, node: ir.String) -> Value:
        return Value(Type.STRING)

    def _expr_Name(self, node: ir.Name) -> Value:
        local = self.locals.get(node.id)
        if local is not None:
            local.used = True
            value = local.value
            reads = frozenset({local.key})
            return replace(value, models=frozenset(), reads=reads)
        symbol = self.symbols.get(node.id)
        if symbol is not None:
            self.usage.names.add(node.id)
            if symbol.type is Type.UNKNOWN:  # its declaration's error was reported
                return reported(Value(symbol.type))
            return Value(symbol.type, integer=symbol.detail == "int")
        self._unknown_name(node)
        return Value(Type.UNKNOWN)  # reported: nothing follows from it

    def _unknown_name(self, node: ir.Name) -> None:
        best = suggestion(node.id, [*self.locals, *self.symbols])
        hint = f"did you mean `{best}`?" if best else None
        if node.id in _DATA_ROLES and hint is None:
            hint = f"declare it in the step's data: `{self.step.kind.value}(x, y, sample_weight?)`"
        if node.id in OPS:
            message = f"`{node.id}` is an operation; call it: `{OPS[node.id].signature()}`"
        else:
            message = f"undefined name `{node.id}`"
        self.out.append(error(message, node.span, hint, replacement=best))

    def _expr_TupleExpr(self, node) -> Value:
        return self._sequence(node)

    def _expr_ListExpr(self, node) -> Value:
        return self._sequence(node)

    def _sequence(self, node) -> Value:
        items = [self.expr(item) for item in node.items]
        return replace(_merge(Type.SEQUENCE, items), items=tuple(items))

    def _expr_Call(self, node: ir.Call) -> Value:
        name = node.func.id
        if name in self.locals:
            hint = _hides(name, self.locals[name])
            message = f"`{name}` is a value, not something to call"
            self.out.append(error(message, node.func.span, hint))
            self._values(node.args, node.keywords)
            return Value(Type.TENSOR)
        symbol = self.symbols.get(name)
        if symbol is not None:
            self.usage.names.add(name)
            return self._call_symbol(node, symbol)
        if name == COMPILED_LOSS:
            return self._call_compiled_loss(node)
        special = self._call_special(node)
        if special is not None:
            return special
        if name in MODEL_SHAPES:
            return self._model_shape(node, OPS[name])
        if name in OPS:
            return self._call_op(node, OPS[name])
        callables = [*OPS, COMPILED_LOSS, *(n for n, s in self.symbols.items() if _callable(s))]
        self.out.append(unknown_operation(node.func, callables))
        # Of unknown type, through its arguments' models: nothing false follows.
        return _merge(Type.UNKNOWN, self._values(node.args, node.keywords))

    def _model_shape(self, node: ir.Call, op: Op) -> Value:
        """`input_shape(generator)`: a shape of a built sub-model (a number of it is
        a whole number), through which no gradient flows."""
        self._check_arguments(op, node.args, node.keywords, node.span)
        for arg in (*node.args, *(k.value for k in node.keywords))[:1]:
            if isinstance(arg, ir.Name) and self._is_model(arg.id):
                self.usage.names.add(arg.id)
                continue
            self.out.append(
                error(
                    f"{op.name}(...) takes a model",
                    arg.span,
                    f"a sub-model given to init(...), e.g. `{op.name}(generator)[1]` for the "
                    "size of its inputs' second axis",
                )
            )
        return Value(Type.SHAPE)

    def _call_symbol(self, node: ir.Call, symbol: Symbol) -> Value:
        if symbol.type is Type.UNKNOWN:  # its declaration was already reported
            return _merge(Type.UNKNOWN, self._values(node.args, node.keywords))
        if symbol.type is Type.LOSS:
            op = object_call_op(symbol.name, LOSS_CALL_PARAMS)
            return self._call_checked(node, op, Type.SCALAR, optional=True)
        if self._is_model(symbol.name):
            self._check_frozen_call(node)
            op = model_call_op("self") if symbol.kind is Kind.SELF else _sub_model_op(node)
            value = self._call_checked(node, op, Type.TENSOR)
            return replace(value, models=value.models | {symbol.name})
        if symbol.type is Type.CALLABLE:  # a plain function: any arguments, any rank
            return self._call_checked(node, _function_call_op(symbol.name, node), Type.UNKNOWN)
        message, hint = f"{article(symbol.kind.value)} cannot be called", None
        if symbol.kind is Kind.SELF:
            message = "`self` has no forward pass: this model holds sub-models; call one of them"
        elif symbol.type is Type.METRIC and symbol.kind in (Kind.INIT_PARAM, Kind.COMPILE_PARAM):
            message = f"`{symbol.name}` is a metric: it cannot be called"
            hint = (
                f"update it with `update {symbol.name}(...)`, report it with `return {symbol.name}`"
            )
        self.out.append(error(message, node.func.span, hint))
        self._values(node.args, node.keywords)
        return Value(Type.TENSOR)

    def _call_special(self, node: ir.Call) -> Value | None:
        """A call that is not an ordinary operation (the step checker's own)."""
        return None

    def _check_frozen_call(self, node: ir.Call) -> None:
        """Checks of a call to a model that only the step checker knows."""

    def _call_compiled_loss(self, node: ir.Call) -> Value:
        # Several are fine (clean and adversarial): which one Keras's loss tracker
        # reports is the step checker's question (stepc.check.loss_report).
        self.compiled_loss_span = self.compiled_loss_span or node.span
        value = self._call_checked(node, COMPILED_LOSS_OP, Type.SCALAR, optional=True)
        # It adds the model's losses, whose activity regularizers read any input.
        return replace(value, reads=value.reads | {TENSORS})

    def _call_op(self, node: ir.Call, op: Op) -> Value:
        self._check_arguments(op, node.args, node.keywords, node.span)
        values = self.typed_values(op, node.args, node.keywords)
        mapped = self._mapped_call(node, op, values) if maps_over_gradients(op) else None
        if mapped is not None:
            return mapped
        value = _merge(_op_result(op, node, values), values)
        if _integer_cast(op, node):  # a whole number, through which no gradient flows
            return Value(value.type, names=value.names, integer=True)
        if op.name in NOT_DIFFERENTIABLE:  # no gradient flows back through it
            return Value(value.type, frozenset(), value.names)
        return value

    def _call_checked(self, node: ir.Call, op: Op, result: Type, optional=False) -> Value:
        self._check_arguments(op, node.args, node.keywords, node.span)
        return _merge(result, self.typed_values(op, node.args, node.keywords, optional))

    def typed_values(self, op: Op, args, keywords, optional: bool = False) -> list[Value]:
        """The arguments' values; those the call cannot take are reported (a
        model, an optimizer, a string except a dtype, ...: the traced call
        would fail). `optional`: it takes a `sample_weight?` that may be None."""
        values = self._values(args, keywords)
        names = parameter_names(op, args, keywords)
        exprs = [*args, *(k.value for k in keywords)]
        for name, expr, value in zip(names, exprs, values, strict=True):
            if op.name == "global_norm":
                self._check_gradient_list(expr, value)
                continue
            refused = value.type in _NOT_ARGUMENTS and not (
                (value.type is Type.STRING and op.kind(name) in STRING_KINDS)
                or (value.type is Type.OPTIONAL_TENSOR and optional)
                or (value.type is Type.GRADIENTS and maps_over_gradients(op))
            )
            if refused:
                hint = _OPTIONAL_HINT if value.type is Type.OPTIONAL_TENSOR else None
                hint = refused_hint(op.name) if value.type is Type.GRADIENTS else hint
                message = f"`{op.name}` cannot take {article(value.type.value)}"
                self.out.append(error(message, expr.span, hint))
            elif name and name in (*op.params, *op.keywords, op.varargs):  # else reported by bind
                problem = kind_problem(op, name, value, expr)
                self.out.extend([problem] if problem else [])
        return values

    def _check_gradient_list(self, expr: ir.Expr, value: Value) -> None:
        if value.type not in (Type.GRADIENTS, Type.SEQUENCE, Type.MULTI, Type.UNKNOWN):
            self.out.append(
                error(
                    f"global_norm(...) takes a list of gradients, not {article(value.type.value)}",
                    expr.span,
                    "the gradients with respect to a model: `g = gradient(loss, model)`, "
                    "then global_norm(g)",
                )
            )

    def _check_arguments(self, op: Op, args, keywords, span: ir.Span) -> None:
        self.out.extend(bind(op, args, keywords, span))

    def _is_model(self, name: str) -> bool:
        symbol = self.symbols.get(name)
        if symbol is None or symbol.type is not Type.MODEL:
            return False
        return symbol.kind is not Kind.SELF or self.functional


def _hides(name: str, local: Local) -> str | None:
    if name not in OPS:
        return None
    return f"the value of line {local.span.line} hides the operation `{name}`: rename the value"


def returns_tuple(name: str) -> bool:
    """An operation whose result is several tensors (`values, indices = top_k(x, 2)`)."""
    return name in OPS and OPS[name].result is Result.TUPLE


def _callable(symbol: Symbol) -> bool:
    return symbol.type in (Type.MODEL, Type.LOSS, Type.CALLABLE)


def _sub_model_op(node: ir.Call) -> Op:
    """A sub-model's (or a layer's) call: its input by position, and whatever
    else its own call() takes (`decoder(tokens, encoded, mask=mask)`): unknown
    to stepc, so bound as written, `training` among them. (A Functional model's
    own call takes its inputs and `training` only.)"""
    op = model_call_op(node.func.id)
    known = (*op.params, *op.keywords)
    others = tuple(dict.fromkeys(k.name for k in node.keywords if k.name not in known))
    varargs = "arguments" if len(node.args) > 1 else ""
    return replace(op, keywords=op.keywords + others, varargs=varargs)


def _function_call_op(name: str, node: ir.Call) -> Op:
    """A `Callable` parameter's call, with the arity the spec uses: the result
    is a tensor of unknown rank (a minimize of it is checked when traced)."""
    return Op(name, "", (), 0, tuple(k.name for k in node.keywords), varargs="arguments")


def _integer_cast(op: Op, node: ir.Call) -> bool:
    """`cast(x, "int32")`: TensorFlow's cast has a gradient between float types only."""
    if op.name != "cast":
        return False
    given = [*node.args[1:2], *(k.value for k in node.keywords if k.name == "dtype")]
    dtype = given[0] if given else None
    return isinstance(dtype, ir.String) and dtype.value.startswith(("int", "uint", "bool"))


# The result type of each kind of operation that does not look at its arguments.
_RESULT_TYPES = {
    Result.SHAPE: Type.SHAPE,
    Result.TUPLE: Type.MULTI,  # unpacked or subscripted, as a model's outputs are
    Result.ANY_RANK: Type.UNKNOWN,  # det(m) of a matrix is a scalar: not refused as a loss
    Result.TENSOR: Type.TENSOR,
}
# How ranks widen: a tensor among the arguments makes the result one.
_WIDTH = (Type.NUMBER, Type.SCALAR, Type.UNKNOWN, Type.TENSOR)


def _op_result(op: Op, node: ir.Call, values: list[Value]) -> Type:
    if op.result is Result.SAME:
        return _elementwise(op, node, values)
    if op.result is Result.REDUCE:
        return _reduced(op, node, values[0].type if values else Type.TENSOR)
    return _RESULT_TYPES[op.result]


def _elementwise(op: Op, node: ir.Call, values: list[Value]) -> Type:
    """Of tensor arguments that are all scalars or numbers, the widest of them
    (`maximum(loss, 0.0)` is a scalar); else a tensor."""
    names = parameter_names(op, node.args, node.keywords)
    given = [v.type for n, v in zip(names, values, strict=True) if op.kind(n) is Arg.TENSOR]
    given = given or [values[0].type if values else Type.TENSOR]
    return _WIDTH[max(_WIDTH.index(t) if t in _WIDTH else len(_WIDTH) - 1 for t in given)]


def _reduced(op: Op, node: ir.Call, first: Type) -> Type:
    """A reduction's result: a scalar over every axis; with `keepdims=True`, of
    the input's rank; over an axis, the input's rank less one, unknown here
    (mean(v, 0) of a vector is a scalar), so not refused as a loss."""
    given = op.given(node.args, node.keywords)
    if _is_name(given.get("keepdims"), "True"):
        return first if first in (Type.SCALAR, Type.NUMBER, Type.UNKNOWN) else Type.TENSOR
    axes_dropped = _is_name(given.get("keepdims"), "False") or "keepdims" not in given
    if op.over_every_axis(node.args, node.keywords) and axes_dropped:
        return Type.SCALAR
    return Type.UNKNOWN


def _is_name(expr: ir.Expr | None, name: str) -> bool:
    return isinstance(expr, ir.Name) and expr.id == name
