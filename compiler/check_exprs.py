"""Stage 2, inside a step: the type of each expression and the checks of its calls.

Owns `Value` (a small type, plus the models an expression calls and the
definitions it reads, which the gradient checks follow through the step's
`stepc.check_depends.DependencyGraph`) and `ExprChecker`: names resolve to
step values, the spec's declarations or the allowlist; calls are checked
against their signatures; arithmetic only on numbers and tensors.
`stepc.check_steps` builds the statement checks on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from stepc import ir
from stepc.builtins import (
    COMPILED_LOSS,
    COMPILED_LOSS_OP,
    LOSS_CALL_PARAMS,
    NOT_DIFFERENTIABLE,
    OPS,
    Op,
    Result,
    Type,
    model_call_op,
    object_call_op,
)
from stepc.check_binding import bind, kind_problem
from stepc.check_depends import ANY, TENSORS
from stepc.check_hints import suggest, unknown_operation
from stepc.diagnostics import Diagnostic, error, has_errors
from stepc.symbols import Kind, Symbol

_NUMERIC = (Type.TENSOR, Type.SCALAR, Type.NUMBER)
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
# The operators of two whole numbers whose result is one.
_INTEGER_OPERATORS = ("+", "-", "*", "//")
# How an index's type is named when it is not a whole number.
_INDEX_TYPES = {Type.NUMBER: "a number that is not whole", Type.BOOL: "a bool"}
_OPTIONAL_HINT = "it is optional (`?`) and may be None; pass it only to losses and metrics"
# What a subscript can take a part of; MULTI (a model's outputs) and
# GRADIENTS (one per variable) are Python sequences too.
_SUBSCRIPTABLE = (
    Type.TENSOR,
    Type.SHAPE,
    Type.SEQUENCE,
    Type.MULTI,
    Type.GRADIENTS,
    Type.UNKNOWN,
)


@dataclass
class Usage:
    """What the steps of a model use, for the unused-declaration warnings."""

    names: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Value:
    type: Type
    # The models its own expression calls and the definitions (`Local.key`) it
    # reads, outside what no gradient flows through; the rest is in the step's
    # `DependencyGraph` (a value does not carry its ancestors: see check_depends).
    models: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()  # the locals it was computed from, for messages
    reads: frozenset[int] = frozenset()
    items: tuple[Value, ...] | None = None  # a literal tuple's elements, each its own
    integer: bool = False  # a whole number: what an index must be


@dataclass
class Local:
    value: Value
    span: ir.Span
    is_data: bool
    used: bool = False
    feeds_loss_tracker: bool = False  # compiled_loss: used by Keras's loss tracker
    key: int = ANY  # its node in the dependency graph


def reported(value: Value) -> Value:
    """A value whose checks found an error: it may depend on anything, so no
    "does not depend" error follows from it."""
    return replace(value, reads=value.reads | {ANY}, items=None)


class ExprChecker:
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
            return Value(value.type, frozenset(), value.names, reads, value.items, value.integer)
        symbol = self.symbols.get(node.id)
        if symbol is not None:
            self.usage.names.add(node.id)
            if symbol.type is Type.UNKNOWN:  # its declaration's error was reported
                return reported(Value(symbol.type))
            return Value(symbol.type, integer=symbol.detail == "int")
        self._unknown_name(node)
        return Value(Type.UNKNOWN)  # reported: nothing follows from it

    def _unknown_name(self, node: ir.Name) -> None:
        hint = suggest(node.id, [*self.locals, *self.symbols])
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
        return replace(_merge(Type.SEQUENCE, items), items=tuple(items))

    def _expr_Negate(self, node: ir.Negate) -> Value:
        value = self.expr(node.operand)
        if not self._check_numeric(node.operand, value):
            return replace(value, type=Type.TENSOR)  # reported once
        return value

    def _expr_BinaryOp(self, node: ir.BinaryOp) -> Value:
        left, right = self.expr(node.left), self.expr(node.right)
        self._check_numeric(node.left, left)
        self._check_numeric(node.right, right)
        types = {left.type, right.type}
        result = Type.TENSOR if Type.TENSOR in types else Type.NUMBER
        if Type.SCALAR in types and Type.TENSOR not in types:
            result = Type.SCALAR
        if Type.UNKNOWN in types:  # an operand whose error was reported
            result = Type.UNKNOWN
        integer = left.integer and right.integer and node.op in _INTEGER_OPERATORS
        if node.op == "//":  # TensorFlow's FloorDiv has no gradient
            return Value(result, names=_merge(result, [left, right]).names, integer=integer)
        return _merge(result, [left, right], integer)

    def _check_numeric(self, node: ir.Expr, value: Value) -> bool:
        if value.type in _NUMERIC or value.type is Type.UNKNOWN:
            return True
        hint = None
        if value.type is Type.OPTIONAL_TENSOR:
            hint = _OPTIONAL_HINT
        self.out.append(error(f"arithmetic on {article(value.type.value)}", node.span, hint))
        return False

    def _expr_Subscript(self, node: ir.Subscript) -> Value:
        value = self.expr(node.value)
        sliced = isinstance(node.index, ir.Slice)
        for index in ir.children(node.index) if sliced else (node.index,):
            self._check_index(index, self.expr(index))
        if value.type not in _SUBSCRIPTABLE:
            what = "sliced" if sliced else "indexed"
            message = f"{article(value.type.value)} cannot be {what}"
            self.out.append(error(message, node.value.span))
            return Value(Type.UNKNOWN, value.models, value.names, value.reads)  # reported once
        if value.items is not None and not sliced:
            self._check_in_range(value.items, node.index)
        part = literal_part(value.items, node.index) if value.items is not None else None
        if part is not None:  # of a literal tuple: that element (or elements) alone
            return part
        if sliced:  # a part of the same kind of value
            return replace(value, items=None)
        type_ = Type.NUMBER if value.type is Type.SHAPE else Type.TENSOR
        return Value(type_, value.models, value.names, value.reads, integer=type_ is Type.NUMBER)

    def _check_index(self, index: ir.Expr, value: Value) -> None:
        """Python and TensorFlow index with whole numbers (or None: a new axis)."""
        if value.integer or value.type in (Type.UNKNOWN, Type.NONE):
            return
        what = _INDEX_TYPES.get(value.type) or article(value.type.value)
        self.out.append(
            error(
                f"an index must be a whole number, not {what}",
                index.span,
                "an int literal, an int parameter, shape(...)[i], or arithmetic of them (+ - * //)",
            )
        )

    def _check_in_range(self, items: tuple[Value, ...], index: ir.Expr) -> None:
        position, count = _literal_int(index), len(items)
        if position is not None and not -count <= position < count:
            self.out.append(
                error(
                    f"index {position} is past the end of a tuple of {count}",
                    index.span,
                    f"the tuple's indices are 0 to {count - 1} (or -{count} to -1)",
                )
            )

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
        special = self._call_special(node)
        if special is not None:
            return special
        if name in OPS:
            return self._call_op(node, OPS[name])
        callables = [*OPS, COMPILED_LOSS, *(n for n, s in self.symbols.items() if _callable(s))]
        message, hint = unknown_operation(name, callables)
        self.out.append(error(message, node.func.span, hint))
        # Of unknown type, through its arguments' models: nothing false follows.
        return _merge(Type.UNKNOWN, self._values(node.args, node.keywords))

    def _call_symbol(self, node: ir.Call, symbol: Symbol) -> Value:
        if symbol.type is Type.UNKNOWN:  # its declaration was already reported
            return _merge(Type.UNKNOWN, self._values(node.args, node.keywords))
        if symbol.type is Type.LOSS:
            op = object_call_op(symbol.name, LOSS_CALL_PARAMS)
            return self._call_checked(node, op, Type.SCALAR, optional=True)
        if self._is_model(symbol.name):
            self._check_frozen_call(node)
            value = self._call_checked(node, model_call_op(symbol.name), Type.TENSOR)
            return replace(value, models=value.models | {symbol.name})
        message = f"{article(symbol.kind.value)} cannot be called"
        if symbol.kind is Kind.SELF:
            message = "`self` has no forward pass: this model holds sub-models; call one of them"
        self.out.append(error(message, node.func.span))
        self._values(node.args, node.keywords)
        return Value(Type.TENSOR)

    def _call_special(self, node: ir.Call) -> Value | None:
        """A call that is not an ordinary operation (the step checker's own)."""
        return None

    def _check_frozen_call(self, node: ir.Call) -> None:
        """Checks of a call to a model that only the step checker knows."""

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
        value = self._call_checked(node, COMPILED_LOSS_OP, Type.SCALAR, optional=True)
        # It adds the model's losses, whose activity regularizers read any input.
        return replace(value, reads=value.reads | {TENSORS})

    def _call_op(self, node: ir.Call, op: Op) -> Value:
        self._check_arguments(op, node.args, node.keywords, node.span)
        values = self.typed_values(op, node.args, node.keywords)
        first = values[0].type if node.args else Type.TENSOR
        value = _merge(_op_result(op, node, first), values)
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
        names = [op.params[i] if i < len(op.params) else "" for i in range(len(args))]
        names += [k.name for k in keywords]
        exprs = [*args, *(k.value for k in keywords)]
        for name, expr, value in zip(names, exprs, values, strict=True):
            if op.name == "global_norm":
                self._check_gradient_list(expr, value)
                continue
            refused = value.type in _NOT_ARGUMENTS and not (
                (value.type is Type.STRING and name == "dtype")
                or (value.type is Type.OPTIONAL_TENSOR and optional)
            )
            if refused:
                hint = _OPTIONAL_HINT if value.type is Type.OPTIONAL_TENSOR else None
                message = f"`{op.name}` cannot take {article(value.type.value)}"
                self.out.append(error(message, expr.span, hint))
            elif name in (*op.params, *op.keywords):  # else reported by bind
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


def article(noun: str) -> str:
    """`noun` with its indefinite article: "an optimizer", "a model"."""
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _callable(symbol: Symbol) -> bool:
    return symbol.type in (Type.MODEL, Type.LOSS)


# A message shows the last few names of a chain; keeping all of them would make
# checking a long chain of statements quadratic in time and memory.
CHAIN_NAMES = 6


def chain(names: tuple[str, ...], name: str) -> tuple[str, ...]:
    return (*names, name)[-CHAIN_NAMES:]


def _merge(result: Type, values: list[Value], integer: bool = False) -> Value:
    models = frozenset().union(*(v.models for v in values)) if values else frozenset()
    reads = frozenset().union(*(v.reads for v in values)) if values else frozenset()
    names: tuple[str, ...] = ()
    for value in values:
        names += tuple(n for n in value.names if n not in names)
    return Value(result, models, names[-CHAIN_NAMES:], reads, integer=integer)


def _integer_cast(op: Op, node: ir.Call) -> bool:
    """`cast(x, "int32")`: TensorFlow's cast has a gradient between float types only."""
    if op.name != "cast":
        return False
    given = [*node.args[1:2], *(k.value for k in node.keywords if k.name == "dtype")]
    dtype = given[0] if given else None
    return isinstance(dtype, ir.String) and dtype.value.startswith(("int", "uint", "bool"))


def literal_part(items: tuple[Value, ...], index: ir.Expr) -> Value | None:
    """`t[1]`, `t[-1]` or `t[1:]` of a literal tuple `t`: the element(s) it
    names, or None when the index is not a literal within range."""
    if isinstance(index, ir.Slice):
        written = (index.start, index.stop)
        bounds = [_literal_int(b) for b in written]
        if any(b is None and w is not None for b, w in zip(bounds, written, strict=True)):
            return None
        part = items[slice(*bounds)]
        return replace(_merge(Type.SEQUENCE, list(part)), items=part)
    position = _literal_int(index)
    if position is None or not -len(items) <= position < len(items):
        return None
    return items[position]


def _literal_int(expr: ir.Expr | None) -> int | None:
    if isinstance(expr, ir.Number) and expr.is_int:
        return int(expr.text)
    if isinstance(expr, ir.Negate):
        inner = _literal_int(expr.operand)
        return -inner if inner is not None else None
    return None


def _op_result(op: Op, node: ir.Call, first: Type) -> Type:
    if op.result is Result.SHAPE:
        return Type.SHAPE
    if op.result is Result.SAME:
        return first if first in (Type.SCALAR, Type.NUMBER, Type.UNKNOWN) else Type.TENSOR
    if op.result is Result.REDUCE:
        return _reduced(node, first)
    return Type.TENSOR


def _reduced(node: ir.Call, first: Type) -> Type:
    """A reduction's result: a scalar over every axis; with `keepdims=True`, of
    the input's rank; over an axis, the input's rank less one, unknown here
    (mean(v, 0) of a vector is a scalar), so not refused as a loss."""
    given = {k.name: k.value for k in node.keywords}
    given.update(zip(("x", "axis", "keepdims"), node.args, strict=False))
    if _is_name(given.get("keepdims"), "True"):
        return first if first in (Type.SCALAR, Type.NUMBER, Type.UNKNOWN) else Type.TENSOR
    every_axis = "axis" not in given or _is_name(given["axis"], "None")
    if every_axis and (_is_name(given.get("keepdims"), "False") or "keepdims" not in given):
        return Type.SCALAR
    return Type.UNKNOWN


def _is_name(expr: ir.Expr | None, name: str) -> bool:
    return isinstance(expr, ir.Name) and expr.id == name
