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

from stepc.check.symbols import Symbol
from stepc.lower.plan import FULL_PRECISION, SCALE, UNSCALE, pseudo_call
from stepc.parse import ir
from stepc.tables.builtins import COMPILED_LOSS, OPS, Result, Type
from stepc.tables.operators import BINARY, Kind

# Operations that keep a value's scale (and scalar-ness).
_LINEAR_OPS = {"negative", "stop_gradient", FULL_PRECISION}


class Facts:
    def __init__(self, symbols: dict[str, Symbol]):
        self.symbols = symbols
        self.scaled: dict[str, bool] = {}
        self.scalar: dict[str, bool] = {}
        self.batchless: dict[str, bool] = {}
        self.batch_counts: set[str] = set()
        self.counts: set[str] = set()  # names of numbers of shape(...) entries

    def assign(self, targets: tuple[ir.Name, ...], value: ir.Expr, scaled: bool) -> None:
        single = len(targets) == 1
        for target in targets:
            self.scaled[target.id] = scaled and single
            self.scalar[target.id] = single and self.is_scalar(value)
            self.batchless[target.id] = single and self.is_batchless(value)
            for names, test in (
                (self.batch_counts, self.is_batch_count),
                (self.counts, self.is_count),
            ):
                (names.add if single and test(value) else names.discard)(target.id)

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
        if expr.op == "/" and left_scaled and self.is_batch_count(expr.right):
            # A sum over this replica's examples by their count is its mean: an
            # estimate of the whole value, as `mean(...)` is, not a share.
            return ir.BinaryOp(expr.op, left, right, expr.span), False
        linear = (expr.op in ("+", "-") and left_scaled and right_scaled) or (
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
        # Only a sum over this replica's examples is its share of the batch's sum:
        # not one of a batch mean's entries (SCAN's entropy of the mean assignment).
        full_sum = name == "sum" and len(expr.args) == 1 and not expr.keywords
        full_sum = full_sum and not self.is_batchless(expr.args[0])
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
        if isinstance(expr, ir.Invert):  # `~(loss > 1.0)` compares the true loss
            return ir.Invert(self.unscaled(expr.operand), expr.span)
        return expr

    # ---------------------------------------------------------------- batch axis

    def is_batch_count(self, expr: ir.Expr) -> bool:
        """This replica's number of examples: `shape(t)[0]`, cast or not, or a name of it."""
        if isinstance(expr, ir.Name):
            return expr.id in self.batch_counts
        if isinstance(expr, ir.Call) and expr.func.id == "cast" and expr.args:
            return self.is_batch_count(expr.args[0])
        if not (isinstance(expr, ir.Subscript) and isinstance(expr.value, ir.Call)):
            return False
        index = expr.index
        first = isinstance(index, ir.Number) and index.is_int and int(index.text) == 0
        return first and expr.value.func.id == "shape"

    def is_batchless(self, expr: ir.Expr) -> bool:
        """Has no axis of examples: a constant, or what a reduction over the batch
        axis (or over every axis) leaves, and elementwise arithmetic of such values."""
        if isinstance(expr, ir.Name):
            return self.batchless.get(expr.id, False) or self.is_constant(expr)
        if isinstance(expr, (ir.Number, ir.Negate, ir.BinaryOp)):
            parts = ir.children(expr)
            return all(self.is_batchless(p) for p in parts)
        if isinstance(expr, ir.Call) and expr.func.id in OPS:
            return self._call_is_batchless(expr, OPS[expr.func.id])
        return False

    def _call_is_batchless(self, expr: ir.Call, op) -> bool:
        if op.result is Result.REDUCE:
            axis = op.given(expr.args, expr.keywords).get("axis")
            if op.over_every_axis(expr.args, expr.keywords) or _names_axis_zero(axis):
                return True
        tensors = [a for a in expr.args if not isinstance(a, ir.String)]
        return bool(tensors) and all(self.is_batchless(a) for a in tensors)

    # ---------------------------------------------------------------- scalar

    def is_scalar(self, expr: ir.Expr) -> bool:
        if isinstance(expr, ir.Name):
            return self.scalar.get(expr.id, False)
        if isinstance(expr, ir.Negate):
            return self.is_scalar(expr.operand)
        if isinstance(expr, ir.BinaryOp):
            if not _arithmetic(expr):  # a comparison is a mask, `@` of unknown rank: no loss
                return False
            sides = [self.is_scalar(expr.left), self.is_scalar(expr.right)]
            constants = [self._is_constant_or_count(s) for s in (expr.left, expr.right)]
            return all(s or c for s, c in zip(sides, constants, strict=True)) and any(sides)
        if isinstance(expr, ir.Call):
            return self._call_is_scalar(expr)
        return False

    def _is_constant_or_count(self, expr: ir.Expr) -> bool:
        """In a per-batch scalar's arithmetic, a count of the batch's shape is as good
        as a constant: `sum(t) / shape(t)[0]`, `h_tv / ((shape(t)[2] - 1) * w)`."""
        return self.is_constant(expr) or self.is_count(expr)

    def is_count(self, expr: ir.Expr) -> bool:
        """A number of the batch's shape: `shape(t)[i]`, cast or not, arithmetic of
        such numbers and constants, or a name of one."""
        if isinstance(expr, ir.Name):
            return expr.id in self.counts or self.is_constant(expr)
        if isinstance(expr, ir.Number):
            return True
        if isinstance(expr, ir.BinaryOp):
            both = self.is_count(expr.left) and self.is_count(expr.right)
            return both and _arithmetic(expr)
        if isinstance(expr, ir.Call) and expr.func.id == "cast" and expr.args:
            return self.is_count(expr.args[0])
        value = expr.value if isinstance(expr, ir.Subscript) else None
        return isinstance(value, ir.Call) and value.func.id == "shape"

    def is_constant(self, expr: ir.Expr) -> bool:
        """A compile-time constant: a number literal, an int / float parameter, or
        arithmetic of them (`2.0 ** 2`, `-w`, `(1.0 + w) / 2`), whatever its spelling."""
        if isinstance(expr, ir.Number):
            return True
        if isinstance(expr, ir.Negate):
            return self.is_constant(expr.operand)
        if isinstance(expr, ir.BinaryOp):
            both = self.is_constant(expr.left) and self.is_constant(expr.right)
            return both and _arithmetic(expr)
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


def _arithmetic(expr: ir.BinaryOp) -> bool:
    """`+ - * / // % **`: a number of numbers (not a comparison, a mask or `@`)."""
    return BINARY[expr.op].kind is Kind.ARITHMETIC


def _names_axis_zero(axis: ir.Expr) -> bool:
    """`0`, or a tuple or list of axes holding `0`: the reduction removes the batch axis."""
    items = axis.items if isinstance(axis, (ir.TupleExpr, ir.ListExpr)) else (axis,)
    return any(isinstance(i, ir.Number) and i.is_int and int(i.text) == 0 for i in items)
