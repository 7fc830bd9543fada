"""Mixed precision: where a sub-model's output is cast to full precision.

Under Keras's `mixed_float16` (or `mixed_bfloat16`) policy a model returns half
precision, while the step's other tensors (data, random draws, losses,
gradients) are float32, and TensorFlow's operators never convert one into the
other: the VAE's `z_mean + exp(0.5 * z_log_var) * normal(...)` fails to trace,
and a spec's own loss arithmetic would run in float16. Keras's loss objects,
metrics and models cast what they are given, so a model's output passed
straight to one of them, or returned, stays as it is. Used anywhere else (the
spec's arithmetic and operations) it is cast to full precision: the lowering
wraps it in the FULL_PRECISION pseudo-call, which the backend spells as a
helper that does nothing unless the value is half precision. Under float32 the
step is unchanged; under mixed precision its own arithmetic runs in float32,
as Keras's losses do.

The cast goes where the output is made: `z_mean, z_log_var = encoder(x)` is
cast as a whole if one use of its names needs it; a model call inside an
expression is cast in place.
"""

from __future__ import annotations

import dataclasses

from stepc.lower.plan import FULL_PRECISION, pseudo_call
from stepc.parse import ir
from stepc.tables.builtins import COMPILED_LOSS


def cast_model_outputs(
    body: tuple[ir.Statement, ...], models: set[str], losses: set[str]
) -> tuple[ir.Statement, ...]:
    """`body` with every model output that the spec's own arithmetic uses cast.

    `models` are the names that call a model (`self` included), `losses` the
    loss objects; both cast their inputs themselves, as metric updates do.
    """
    casting = _Casting(models, losses | {COMPILED_LOSS})
    outputs = {t.id for s in ir.statements(body) if casting.defines_output(s) for t in s.targets}
    _scan(body, outputs, casting)
    if not casting.calling:  # no model call: nothing to cast (most of a long spec)
        return body
    return casting.statements(body)


def _scan(body, outputs: set[str], casting: _Casting) -> None:
    """Note the names in `outputs` that have a use where nothing casts them, and the
    statements that call a model (only those can change)."""
    for statement in ir.statements(body):
        calls = False
        for expr, cast_free in casting.uses(statement):
            calls = _visit(expr, cast_free, outputs, casting) or calls
        if calls:
            casting.calling.add(id(statement))


def _visit(expr, cast_free: bool, outputs: set[str], casting: _Casting) -> bool:
    """Note the uses in `expr` that need a cast; say whether it calls a model."""
    if isinstance(expr, ir.Name):
        if not cast_free and expr.id in outputs:
            casting.needy.add(expr.id)
        return False
    is_call = isinstance(expr, ir.Call)
    calls = is_call and expr.func.id in casting.models
    inner_free = is_call and casting.casts_inputs(expr)
    for child in ir.children(expr):
        calls = _visit(child, inner_free, outputs, casting) or calls
    return calls


class _Casting:
    """What casts its inputs itself, what the scan found, and the rewriting."""

    def __init__(self, models: set[str], consumers: set[str]):
        self.models = models
        self.consumers = consumers | models  # they cast what they are given
        self.needy: set[str] = set()  # outputs with a use that nothing casts
        self.calling: set[int] = set()  # id() of each statement that calls a model

    def is_model_call(self, expr) -> bool:
        return isinstance(expr, ir.Call) and expr.func.id in self.models

    def casts_inputs(self, call: ir.Call) -> bool:
        return call.func.id in self.consumers

    def defines_output(self, statement) -> bool:
        return isinstance(statement, ir.Assign) and self.is_model_call(statement.value)

    def uses(self, statement) -> list[tuple[ir.Expr, bool]]:
        """The expressions a statement reads, each with whether its consumer casts it."""
        if isinstance(statement, (ir.Update, ir.Return)):  # metrics and logs cast
            return [(e, True) for e in ir.children(statement)]
        if isinstance(statement, ir.Repeat):
            return [(statement.count, False)]
        if isinstance(statement, ir.ForEach):
            return [(statement.iterable, False)]
        return [(e, False) for e in ir.children(statement)]

    # ---------------------------------------------------------------- rewriting

    def statements(self, body) -> tuple[ir.Statement, ...]:
        return tuple(self.statement(s) for s in body)

    def statement(self, statement):
        if isinstance(statement, ir.LOOPS):
            return dataclasses.replace(statement, body=self.statements(statement.body))
        if id(statement) not in self.calling:
            return statement
        if isinstance(statement, ir.Assign):
            cast = self.defines_output(statement) and any(
                t.id in self.needy for t in statement.targets
            )
            return dataclasses.replace(statement, value=self.expr(statement.value, not cast))
        if isinstance(statement, ir.Update):
            return dataclasses.replace(
                statement,
                args=tuple(self.expr(a, True) for a in statement.args),
                keywords=self._keywords(statement.keywords, True),
            )
        if isinstance(statement, ir.Minimize):
            return dataclasses.replace(statement, loss=self.expr(statement.loss, False))
        if isinstance(statement, ir.Return):
            return dataclasses.replace(statement, items=tuple(map(self._item, statement.items)))
        if isinstance(statement, ir.AssignWeights):  # a state's new value from a model
            return dataclasses.replace(statement, value=self.expr(statement.value, False))
        return statement

    def _item(self, item: ir.ReturnItem) -> ir.ReturnItem:
        value = self.expr(item.value, True) if item.value is not None else None
        return dataclasses.replace(item, value=value)

    def _keywords(self, keywords, cast_free: bool) -> tuple[ir.Keyword, ...]:
        return tuple(dataclasses.replace(k, value=self.expr(k.value, cast_free)) for k in keywords)

    def expr(self, expr, cast_free: bool):
        """`expr` with the model calls in it cast where nothing else casts them."""
        if isinstance(expr, ir.Call):
            inner_free = self.casts_inputs(expr)
            args = tuple(self.expr(a, inner_free) for a in expr.args)
            call = ir.Call(expr.func, args, self._keywords(expr.keywords, inner_free), expr.span)
            if self.is_model_call(expr) and not cast_free:
                return pseudo_call(FULL_PRECISION, call)
            return call
        if isinstance(expr, ir.BinaryOp):
            left, right = self.expr(expr.left, False), self.expr(expr.right, False)
            return ir.BinaryOp(expr.op, left, right, expr.span)
        if isinstance(expr, ir.Negate):
            return ir.Negate(self.expr(expr.operand, False), expr.span)
        if isinstance(expr, ir.Invert):
            return ir.Invert(self.expr(expr.operand, False), expr.span)
        if isinstance(expr, ir.Subscript):
            index = expr.index
            if not isinstance(index, ir.Slice):
                index = self.expr(index, False)
            return ir.Subscript(self.expr(expr.value, False), index, expr.span)
        if isinstance(expr, (ir.TupleExpr, ir.ListExpr)):
            return type(expr)(tuple(self.expr(i, False) for i in expr.items), expr.span)
        return expr
