"""Stage 2, inside a step: the type of each expression and the checks of its calls.

Owns `Value` (a small type plus the models an expression's computation went
through, which the gradient checks use) and `ExprChecker`: names resolve to
step values, the spec's declarations or the allowlist; calls are checked
against their signatures; arithmetic only on numbers and tensors.
`stepc.check_steps` builds the statement checks on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stepc import ir
from stepc.builtins import COMPILED_LOSS, COMPILED_LOSS_OP, OPS, Op, Result, Type
from stepc.diagnostics import Diagnostic, did_you_mean, error
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
class Local:
    value: Value
    span: ir.Span
    is_data: bool
    used: bool = False
    feeds_loss_tracker: bool = False  # compiled_loss: used by Keras's loss tracker


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
        self.out.append(error(f"arithmetic on {article(value.type.value)}", node.span, hint))
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
            self.out.append(
                error(f"{article(value.type.value)} cannot be indexed", node.value.span)
            )
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
        special = self._call_special(node)
        if special is not None:
            return special
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
            self._check_frozen_call(node)
            op = Op(symbol.name, "", ("inputs",), 1, ("training",))
            value = self._call_checked(node, op, Type.TENSOR)
            return Value(Type.TENSOR, value.models | {symbol.name}, value.names)
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


def _merge(result: Type, values: list[Value]) -> Value:
    models = frozenset().union(*(v.models for v in values)) if values else frozenset()
    names: tuple[str, ...] = ()
    for value in values:
        names += tuple(n for n in value.names if n not in names)
    return Value(result, models, names[-CHAIN_NAMES:])


def _op_result(op: Op, node: ir.Call, first: Type) -> Type:
    if op.result is Result.SHAPE:
        return Type.SHAPE
    if op.result is Result.SAME:
        return first if first in (Type.SCALAR, Type.NUMBER) else Type.TENSOR
    if op.result is Result.REDUCE:
        has_axis = len(node.args) > 1 or any(k.name in ("axis", "keepdims") for k in node.keywords)
        return Type.TENSOR if has_axis else Type.SCALAR
    return Type.TENSOR
