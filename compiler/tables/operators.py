"""The operators of the expression language: what each means and how it is spelled.

Owns the table of Python's operators a spec may write. `+ - * / // **` and
unary `-` are Python's own on tensors and numbers alike; the others are
spelled as the `keras.ops` function that means them (`a == b` is
`ops.equal(a, b)`, `a @ b` is `ops.matmul(a, b)`), so they mean the same on
every Keras backend and on Python numbers (where `==` would give a bool).
Comparisons and the logical operators give boolean tensors, through which no
gradient flows. `tests/test_exprs_runtime.py` checks each target against the
pinned Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from stepc.parse import ir


class Kind(Enum):
    ARITHMETIC = "arithmetic"  # numbers and tensors: + - * / // % **
    MATMUL = "matrix product"  # tensors of rank 1 or more: @
    COMPARISON = "comparison"  # element-wise, a boolean result: == != < <= > >=
    LOGICAL = "logical operation"  # boolean tensors: & | ~


@dataclass(frozen=True)
class Operator:
    """An operator a spec may write, and what it compiles to."""

    symbol: str
    kind: Kind
    target: str = ""  # the `keras.ops` function spelling it; "": Python's operator


_TABLE = (
    *(Operator(s, Kind.ARITHMETIC) for s in ("+", "-", "*", "/", "//", "**")),
    Operator("%", Kind.ARITHMETIC, "ops.mod"),
    Operator("@", Kind.MATMUL, "ops.matmul"),
    Operator("==", Kind.COMPARISON, "ops.equal"),
    Operator("!=", Kind.COMPARISON, "ops.not_equal"),
    Operator("<", Kind.COMPARISON, "ops.less"),
    Operator("<=", Kind.COMPARISON, "ops.less_equal"),
    Operator(">", Kind.COMPARISON, "ops.greater"),
    Operator(">=", Kind.COMPARISON, "ops.greater_equal"),
    Operator("&", Kind.LOGICAL, "ops.logical_and"),
    Operator("|", Kind.LOGICAL, "ops.logical_or"),
)
BINARY: dict[str, Operator] = {op.symbol: op for op in _TABLE}
# `~mask`, the only unary operator spelled as a function.
INVERT = Operator("~", Kind.LOGICAL, "ops.logical_not")
# Comparisons that order their operands (booleans have no order in TensorFlow).
ORDERING = frozenset({"<", "<=", ">", ">="})


def is_boolean(expr: ir.Expr) -> bool:
    """A comparison or a logical operation: a boolean value, no gradient through it."""
    if isinstance(expr, ir.Invert | ir.ChainedComparison):
        return True
    if isinstance(expr, ir.BinaryOp):
        return BINARY[expr.op].kind in (Kind.COMPARISON, Kind.LOGICAL)
    return False
