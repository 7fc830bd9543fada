"""`compiled_loss(...)` anywhere in a step: part of the lowering (`stepc.lower`).

Keras's `compute_loss` is a method call that also feeds Keras's loss tracker,
so the backend spells it only as the whole value of an assignment (the value
the tracker is updated with). A call inside a larger expression, a minimize's
loss, a metric update or a returned value is therefore first given a local of
its own, assigned just before the statement that uses it, in source order.
"""

from __future__ import annotations

import dataclasses

from stepc import ir
from stepc.builtins import COMPILED_LOSS


def name_compiled_losses(body, fresh) -> tuple:
    """`body` with each nested compiled_loss(...) read from a new local (`fresh`
    names it)."""
    return _Naming(fresh).statements(body)


def _is_compiled_loss(expr) -> bool:
    return isinstance(expr, ir.Call) and expr.func.id == COMPILED_LOSS


class _Naming:
    def __init__(self, fresh):
        self.fresh = fresh
        self.pending: list[ir.Assign] = []  # locals the current statement reads

    def statements(self, body) -> tuple:
        out: list = []
        for statement in body:
            if not any(_is_compiled_loss(n) for n in ir.walk(statement)):
                out.append(statement)  # most statements: kept, not rebuilt
                continue
            rewritten = self.statement(statement)
            out += [*self.pending, rewritten]
            self.pending = []
        return tuple(out)

    def statement(self, statement):
        if isinstance(statement, ir.Repeat):
            return dataclasses.replace(statement, body=self.statements(statement.body))
        if isinstance(statement, ir.Assign):
            if _is_compiled_loss(statement.value):  # the backend's own form
                return dataclasses.replace(statement, value=self.call_inside(statement.value))
            return dataclasses.replace(statement, value=self.expr(statement.value))
        if isinstance(statement, ir.Minimize):
            return dataclasses.replace(statement, loss=self.expr(statement.loss))
        if isinstance(statement, ir.Update):
            args = tuple(map(self.expr, statement.args))
            return dataclasses.replace(statement, args=args, keywords=self.keywords(statement))
        if isinstance(statement, ir.Return):
            return dataclasses.replace(statement, items=tuple(map(self.item, statement.items)))
        return statement  # AssignWeights: the checker allows no loss there

    def item(self, item: ir.ReturnItem) -> ir.ReturnItem:
        value = self.expr(item.value) if item.value is not None else None
        return dataclasses.replace(item, value=value)

    def keywords(self, node) -> tuple[ir.Keyword, ...]:
        return tuple(dataclasses.replace(k, value=self.expr(k.value)) for k in node.keywords)

    def call_inside(self, call: ir.Call) -> ir.Call:
        """The call with its own arguments' nested calls named."""
        args = tuple(map(self.expr, call.args))
        return ir.Call(call.func, args, self.keywords(call), call.span)

    def expr(self, expr):
        if _is_compiled_loss(expr):
            name = self.fresh("compiled_loss_value")
            target = ir.Name(name, expr.span)
            self.pending.append(ir.Assign((target,), self.call_inside(expr), expr.span))
            return target
        if isinstance(expr, ir.Call):
            return self.call_inside(expr)
        if isinstance(expr, ir.BinaryOp):
            return ir.BinaryOp(expr.op, self.expr(expr.left), self.expr(expr.right), expr.span)
        if isinstance(expr, ir.Negate):
            return ir.Negate(self.expr(expr.operand), expr.span)
        if isinstance(expr, ir.Subscript):
            index = expr.index if isinstance(expr.index, ir.Slice) else self.expr(expr.index)
            return ir.Subscript(self.expr(expr.value), index, expr.span)
        if isinstance(expr, (ir.TupleExpr, ir.ListExpr)):
            return type(expr)(tuple(map(self.expr, expr.items)), expr.span)
        return expr
