"""Facts about values that the lowering needs: loss scale and scalar-ness.

Owns two questions about an expression inside a step:
- is it *replica-scaled*, that is this replica's share of the whole batch's
  value? Keras loss objects (and `compute_loss`) divide their batch mean by the
  number of replicas under `tf.distribute`, and a full `sum(...)` over the
  replica's examples is its share of the sum over the batch; a hand-written
  mean is not (it estimates the whole value). `normalize` rewrites an
  expression so it never mixes the two: a scaled value combined non-linearly
  with anything is unscaled first.
- is it a per-batch scalar? A `Mean` tracker updated with one is weighted by
  the batch size, as Keras's loss tracker is. The rule: a loss object's value,
  `compiled_loss(...)` and a full reduction (`mean(t)`, `sum(t)`) are per-batch
  scalars; so is an elementwise operation of one (`sqrt(mean(t))`), and `+ - * /
  **` of per-batch scalars and compile-time constants (numbers, int / float
  parameters, and any arithmetic of them: `4.0` and `2.0 ** 2` are the same
  constant) with at least one per-batch scalar. Anything else (a tensor, a
  reduction over an axis, a value of unknown rank) is tracked unweighted.
"""

from __future__ import annotations

from stepc import ir
from stepc.builtins import COMPILED_LOSS, OPS, Result, Type
from stepc.plan import FULL_PRECISION, SCALE, UNSCALE, pseudo_call
from stepc.symbols import Symbol

# Operations that keep a value's scale (and scalar-ness).
_LINEAR_OPS = {"negative", "stop_gradient", FULL_PRECISION}


class Facts:
    def __init__(self, symbols: dict[str, Symbol]):
        self.symbols = symbols
        self.scaled: dict[str, bool] = {}
        self.scalar: dict[str, bool] = {}

    def assign(self, targets: tuple[ir.Name, ...], value: ir.Expr, scaled: bool) -> None:
        single = len(targets) == 1
        for target in targets:
            self.scaled[target.id] = scaled and single
            self.scalar[target.id] = single and self.is_scalar(value)

    # ---------------------------------------------------------------- scale

    def scale(self, expr: ir.Expr) -> ir.Expr:
        return pseudo_call(SCALE, expr)

    def unscaled(self, expr: ir.Expr) -> ir.Expr:
        """The expression at its true (global-batch) value."""
        value, scaled = self.normalize(expr)
        return pseudo_call(UNSCALE, value) if scaled else value

    def normalize(self, expr: ir.Expr) -> tuple[ir.Expr, bool]:
        """Rewrite so no operation mixes scaled and unscaled values; say if the
        result is replica-scaled."""
        if isinstance(expr, ir.Name):
            return expr, self.scaled.get(expr.id, False)
        if isinstance(expr, ir.Negate):
            operand, scaled = self.normalize(expr.operand)
            return ir.Negate(operand, expr.span), scaled
        if isinstance(expr, ir.BinaryOp):
            return self._binary(expr)
        if isinstance(expr, ir.Call):
            return self._call(expr)
        return self._rebuild_unscaled(expr), False

    def _binary(self, expr: ir.BinaryOp) -> tuple[ir.Expr, bool]:
        left, left_scaled = self.normalize(expr.left)
        right, right_scaled = self.normalize(expr.right)
        linear = (expr.op in "+-" and left_scaled and right_scaled) or (
            left_scaled != right_scaled and (expr.op == "*" or (expr.op == "/" and left_scaled))
        )
        if linear:
            return ir.BinaryOp(expr.op, left, right, expr.span), True
        left = pseudo_call(UNSCALE, left) if left_scaled else left
        right = pseudo_call(UNSCALE, right) if right_scaled else right
        return ir.BinaryOp(expr.op, left, right, expr.span), False

    def _call(self, expr: ir.Call) -> tuple[ir.Expr, bool]:
        name = expr.func.id
        if name in _LINEAR_OPS and len(expr.args) == 1 and not expr.keywords:
            arg, scaled = self.normalize(expr.args[0])
            return ir.Call(expr.func, (arg,), (), expr.span), scaled
        rebuilt = self._rebuild_unscaled(expr)
        full_sum = name == "sum" and len(expr.args) == 1 and not expr.keywords
        return rebuilt, full_sum or name == COMPILED_LOSS or self._is_loss(name)

    def _is_loss(self, name: str) -> bool:
        symbol = self.symbols.get(name)
        return symbol is not None and symbol.type is Type.LOSS

    def _rebuild_unscaled(self, expr):
        """The same node with every sub-expression at its true value."""
        if isinstance(expr, ir.Call):
            args = tuple(self.unscaled(a) for a in expr.args)
            keywords = tuple(
                ir.Keyword(k.name, self.unscaled(k.value), k.span) for k in expr.keywords
            )
            return ir.Call(expr.func, args, keywords, expr.span)
        if isinstance(expr, ir.Subscript):
            index = expr.index
            if not isinstance(index, ir.Slice):
                index = self.unscaled(index)
            return ir.Subscript(self.unscaled(expr.value), index, expr.span)
        if isinstance(expr, (ir.TupleExpr, ir.ListExpr)):
            return type(expr)(tuple(self.unscaled(i) for i in expr.items), expr.span)
        return expr

    # ---------------------------------------------------------------- scalar

    def is_scalar(self, expr: ir.Expr) -> bool:
        if isinstance(expr, ir.Name):
            return self.scalar.get(expr.id, False)
        if isinstance(expr, ir.Negate):
            return self.is_scalar(expr.operand)
        if isinstance(expr, ir.BinaryOp):
            sides = [self.is_scalar(expr.left), self.is_scalar(expr.right)]
            constants = [self.is_constant(s) for s in (expr.left, expr.right)]
            return all(s or c for s, c in zip(sides, constants, strict=True)) and any(sides)
        if isinstance(expr, ir.Call):
            return self._call_is_scalar(expr)
        return False

    def is_constant(self, expr: ir.Expr) -> bool:
        """A compile-time constant: a number literal, an int / float parameter, or
        arithmetic of them (`2.0 ** 2`, `-w`, `(1.0 + w) / 2`), whatever its spelling."""
        if isinstance(expr, ir.Number):
            return True
        if isinstance(expr, ir.Negate):
            return self.is_constant(expr.operand)
        if isinstance(expr, ir.BinaryOp):
            return self.is_constant(expr.left) and self.is_constant(expr.right)
        symbol = self.symbols.get(expr.id) if isinstance(expr, ir.Name) else None
        return symbol is not None and symbol.type is Type.NUMBER

    def _call_is_scalar(self, expr: ir.Call) -> bool:
        name = expr.func.id
        if name in (SCALE, UNSCALE) or name in _LINEAR_OPS:
            return bool(expr.args) and self.is_scalar(expr.args[0])
        if name == COMPILED_LOSS or self._is_loss(name):
            return True
        op = OPS.get(name)
        if op is None:
            return False
        if op.result is Result.REDUCE:
            return len(expr.args) == 1 and not expr.keywords
        return op.result is Result.SAME and bool(expr.args) and self.is_scalar(expr.args[0])
