"""`compiled_loss(...)` anywhere in a step: part of the lowering (`stepc.lower.module`).

Keras's `compute_loss` is a method call that also feeds Keras's loss tracker,
so the backend spells it only as the whole value of an assignment (the value
the tracker is updated with). A call inside a larger expression, a minimize's
loss, a metric update or a returned value is therefore first given a local of
its own, assigned just before the statement that uses it, in source order.
Then Keras's loss tracker update is written out as an `update loss(...)`
statement where `stepc.check.loss_report` decides (after the compiled loss it
reports, or after the minimize of the loss it reports), so it is placed and
derived like any metric update.
"""

from __future__ import annotations

import dataclasses

from stepc.check.loss_report import LOSS_TRACKER, Source, loss_report
from stepc.parse import ir
from stepc.tables.builtins import COMPILED_LOSS


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
        if isinstance(statement, ir.LOOPS):
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
        if isinstance(expr, ir.Negate | ir.Invert):
            return type(expr)(self.expr(expr.operand), expr.span)
        if isinstance(expr, ir.Subscript):
            index = expr.index if isinstance(expr.index, ir.Slice) else self.expr(expr.index)
            return ir.Subscript(self.expr(expr.value), index, expr.span)
        if isinstance(expr, (ir.TupleExpr, ir.ListExpr)):
            return type(expr)(tuple(map(self.expr, expr.items)), expr.span)
        return expr


def explicit_loss_report(body, fresh) -> tuple:
    """`body` (its compiled losses named) with Keras's loss tracker update written
    as an `update loss(...)` statement where `stepc.check.loss_report` places it."""
    report = loss_report(body)
    if report.source is Source.COMPILED:
        return _after_compiled_loss(body)
    if report.source is Source.MINIMIZED:
        return _after_minimize(body, report.node, fresh)
    return tuple(body)  # written by the spec, or nothing to report


def _after_minimize(body, minimize: ir.Minimize, fresh) -> tuple:
    """`body` with the tracker updated right after `minimize`, with its loss (given
    a local of its own when it is an expression, so that it is computed once)."""
    index = next(i for i, s in enumerate(body) if s is minimize)
    loss, before = minimize.loss, []
    if not isinstance(loss, ir.Name):
        loss = ir.Name(fresh("reported_loss"), loss.span)
        before = [ir.Assign((loss,), minimize.loss, minimize.loss.span)]
        minimize = dataclasses.replace(minimize, loss=loss)
    update = _tracker_update(loss, minimize.span)
    return (*body[:index], *before, minimize, update, *body[index + 1 :])


def _after_compiled_loss(body) -> tuple:
    """`body` with the tracker updated right after the one compiled loss (in
    the repeat block that computes it, if one does)."""
    out: list = []
    for statement in body:
        if isinstance(statement, ir.LOOPS):
            statement = dataclasses.replace(statement, body=_after_compiled_loss(statement.body))
        out.append(statement)
        if isinstance(statement, ir.Assign) and _is_compiled_loss(statement.value):
            out.append(_tracker_update(statement.targets[0], statement.span))
    return tuple(out)


def _tracker_update(value: ir.Name, span: ir.Span) -> ir.Update:
    return ir.Update(ir.Name(LOSS_TRACKER, span), (ir.Name(value.id, span),), (), span)
