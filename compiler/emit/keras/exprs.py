"""Spec expressions as Python, spelled alike in a step and in `__init__`.

Owns `ExpressionWriter`: names, numbers, strings, operators, tuples and lists,
subscripts, and calls (an operation's `keras.ops` target, the module helper it
needs, and the model's seed generator for a random draw). `StepWriter`
(`stepc.emit.keras.steps`) extends it with what only a step has: pseudo-calls,
checked subscripts, a model's matching weight inside `assign`; a state's initial
value in `__init__` (`stepc.emit.keras.state`) is written by it as it is.
"""

from __future__ import annotations

from collections.abc import Callable

from stepc.emit.pyexpr import (
    Concat,
    Rendered,
    atom,
    call,
    index_text,
    invert,
    negate,
    operation,
    python_number,
    sequence,
    string_literal,
)
from stepc.emit.pyexpr import subscript as subscript_doc
from stepc.parse import ir
from stepc.tables.builtins import OPS


class ExpressionWriter:
    """Writes expressions; a subclass provides `used` (the module helpers it needs)
    and may spell names (`name_text`), subscripts and calls its own way."""

    used: set[str]

    def name_text(self, name: str) -> str:
        raise NotImplementedError

    def expr(self, node) -> Rendered:
        if isinstance(node, ir.Name):
            return atom(self.name_text(node.id))
        if isinstance(node, ir.Number):
            return atom(python_number(node))
        if isinstance(node, ir.String):
            return atom(string_literal(node.value))
        if isinstance(node, ir.BinaryOp | ir.Negate | ir.Invert):
            return self._operator(node)
        if isinstance(node, ir.Subscript):
            return self.subscript(node)
        if isinstance(node, ir.TupleExpr):
            return sequence("(", [self.expr(i).doc for i in node.items], ")")
        if isinstance(node, ir.ListExpr):
            return sequence("[", [self.expr(i).doc for i in node.items], "]")
        return self._call(node)

    def subscript(self, node: ir.Subscript) -> Rendered:
        return subscript_doc(self.expr(node.value), index_text(node.index, self.expr))

    def _operator(self, node) -> Rendered:
        if isinstance(node, ir.Negate):
            return negate(self.expr(node.operand))
        if isinstance(node, ir.Invert):
            return invert(self.expr(node.operand))
        return operation(node.op, self.expr(node.left), self.expr(node.right))

    def _call(self, node: ir.Call) -> Rendered:
        args = [self.expr(a).doc for a in node.args]
        keywords = {k.name: self.expr(k.value).doc for k in node.keywords}
        return self.call_of(node.func.id, args, keywords)

    def call_of(self, name: str, args: list, keywords: dict) -> Rendered:
        """A call of `name` with its arguments written: an operation, or a model
        (or a loss or metric object) the spec names."""
        if name in OPS:
            return self._op(name, args, keywords)
        func = "self" if name == "self" else self.name_text(name)
        return call(func, args + [keyword(k, v) for k, v in keywords.items()])

    def _op(self, name: str, args: list, keywords: dict) -> Rendered:
        op = OPS[name]
        if op.random:
            keywords["seed"] = "self.seed_generator"
        if op.helper:
            self.used.add(op.helper)
        return call(op.target, args + [keyword(k, v) for k, v in keywords.items()])


class InitialValueWriter(ExpressionWriter):
    """A state's initial value in `__init__`: literals, `init` numbers (`self.`) and
    operations, as the steps spell them (`python` spells a spec name)."""

    def __init__(self, python: Callable[[str], str], used: set[str]):
        self.python = python
        self.used = used

    def name_text(self, name: str) -> str:
        return self.python(name)


def keyword(name: str, doc) -> Concat:
    return Concat((f"{name}=", doc))
