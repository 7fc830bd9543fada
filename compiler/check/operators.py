"""Stage 2, inside a step: the types and errors of operators and subscripts.

Owns `OperatorChecks`, the part of `stepc.check.exprs.ExprChecker` that types
Python's operator forms (`stepc.tables.operators`): arithmetic on numbers and
tensors, `@` of tensors, comparisons and `& | ~` (boolean results, through
which no gradient flows, and which arithmetic cannot take), and subscripts in
full (several axes, slices with steps, `None`, `...`, a string key). Where a
result's rank cannot be known here (`x[0, 0]`, `a @ b`) its type is unknown,
so it is not refused as a loss: the generated step checks it when traced.
"""

from __future__ import annotations

from dataclasses import replace

from stepc.check.values import (
    Value,
    article,
    is_reported,
    literal_int,
    literal_part,
    merge,
    reported,
    without_gradient,
)
from stepc.diagnostics import error
from stepc.parse import ir
from stepc.tables.builtins import Type
from stepc.tables.operators import BINARY, INVERT, ORDERING, Kind

_NUMERIC = (Type.TENSOR, Type.SCALAR, Type.NUMBER)
_LOGICAL = (Type.TENSOR, Type.SCALAR, Type.BOOL)
# The operators of two whole numbers whose result is one.
_INTEGER_OPERATORS = ("+", "-", "*", "//", "%")
# How an index's type is named when it is not a whole number.
_INDEX_TYPES = {
    Type.NUMBER: "a number that is not whole",
    Type.BOOL: "a bool",
    Type.UNKNOWN: "a tensor not known to hold one",  # `x[0]` of a batch tensor
}
_INDEX_HINT = "an int literal, an int parameter, shape(...)[i], or arithmetic of them (+ - * //)"
_OPTIONAL_HINT = "it is optional (`?`) and may be None; pass it only to losses and metrics"
_MASK_HINT = 'cast it first: `cast(mask, "float32")`, or choose with `where(mask, a, b)`'
# Python sequences: one position or one slice, by Python ints.
_SEQUENCES = (Type.SHAPE, Type.SEQUENCE, Type.MULTI, Type.GRADIENTS)
# What a subscript can take a part of; MULTI (a model's outputs) and
# GRADIENTS (one per variable) are Python sequences too.
_SUBSCRIPTABLE = (Type.TENSOR, Type.UNKNOWN, *_SEQUENCES)


class OperatorChecks:
    """Operators and subscripts, for `ExprChecker` (which provides `expr`, `out`, `locals`)."""

    # ---------------------------------------------------------------- operators

    def _expr_BinaryOp(self, node: ir.BinaryOp) -> Value:
        left, right = self.expr(node.left), self.expr(node.right)
        mapped = self._mapped_binary(node, left, right)  # stepc.check.gradient_edits
        if mapped is not None:
            return mapped
        kind = BINARY[node.op].kind
        if kind is Kind.COMPARISON:
            return self._comparison(node, left, right)
        if kind is Kind.LOGICAL:
            return self._logical(node.op, [(node.left, left), (node.right, right)])
        self._check_numeric(node.left, left, node.op)
        self._check_numeric(node.right, right, node.op)
        if kind is Kind.MATMUL:
            return self._matmul(node, left, right)
        result = _arithmetic_type(left.type, right.type)
        integer = left.integer and right.integer and node.op in _INTEGER_OPERATORS
        if node.op == "//":  # TensorFlow's FloorDiv has no gradient
            return Value(result, names=merge(result, [left, right]).names, integer=integer)
        return merge(result, [left, right], integer)

    def _expr_Negate(self, node: ir.Negate) -> Value:
        value = self.expr(node.operand)
        if self._mapped_negate(node, value) is not None:
            return value
        if not self._check_numeric(node.operand, value, "-"):
            return replace(value, type=Type.TENSOR, boolean=False)  # reported once
        return value

    def _expr_Invert(self, node: ir.Invert) -> Value:
        return self._logical(INVERT.symbol, [(node.operand, self.expr(node.operand))])

    def _expr_ChainedComparison(self, node: ir.ChainedComparison) -> Value:
        values = [self.expr(operand) for operand in node.operands]
        first, second = node.ops[:2]
        self.out.append(
            error(
                f"comparisons do not chain: `a {first} b {second} c` compares tensors "
                "element-wise, one pair at a time",
                node.span,
                f"compare each pair and combine the masks: `(a {first} b) & (b {second} c)`",
            )
        )
        return reported(merge(Type.TENSOR, values))

    def _check_numeric(self, node: ir.Expr, value: Value, op: str) -> bool:
        """An operand of arithmetic (or of `@`): a number or a tensor, not a mask."""
        if value.boolean:
            message = f"`{op}` cannot take a boolean value (a comparison's or `& | ~`'s result)"
            self.out.append(error(message, node.span, _MASK_HINT))
            return False
        if value.type in _NUMERIC or value.type is Type.UNKNOWN:
            return True
        hint = _OPTIONAL_HINT if value.type is Type.OPTIONAL_TENSOR else None
        self.out.append(error(f"arithmetic on {article(value.type.value)}", node.span, hint))
        return False

    def _matmul(self, node: ir.BinaryOp, left: Value, right: Value) -> Value:
        for operand, value in ((node.left, left), (node.right, right)):
            if value.type in (Type.NUMBER, Type.SCALAR) and not value.boolean:
                self.out.append(
                    error(
                        f"`@` multiplies tensors of rank 1 or more, "
                        f"not {article(value.type.value)}",
                        operand.span,
                        "multiply by a number or a scalar with `*`",
                    )
                )
        # A product of two vectors is a scalar, of matrices a matrix: the rank is
        # not known here, so the step checks it when traced where a scalar is needed.
        return merge(Type.UNKNOWN, [left, right])

    def _comparison(self, node: ir.BinaryOp, left: Value, right: Value) -> Value:
        for operand, value in ((node.left, left), (node.right, right)):
            self._check_compared(node.op, operand, value)
        result = _boolean_type(left.type, right.type)
        return without_gradient(merge(result, [left, right]), boolean=True)

    def _check_compared(self, op: str, operand: ir.Expr, value: Value) -> None:
        if op in ORDERING and (value.boolean or value.type is Type.BOOL):
            self.out.append(
                error(
                    f"`{op}` cannot order boolean values",
                    operand.span,
                    'compare them with `==` or `!=`, or cast them first: `cast(mask, "int32")`',
                )
            )
            return
        allowed = (*_NUMERIC, Type.UNKNOWN) + (() if op in ORDERING else (Type.BOOL,))
        if value.type not in allowed:
            hint = _OPTIONAL_HINT if value.type is Type.OPTIONAL_TENSOR else None
            noun = "None" if value.type is Type.NONE else article(value.type.value)
            message = f"`{op}` cannot compare {noun}"
            self.out.append(error(message, operand.span, hint))

    def _logical(self, op: str, operands: list[tuple[ir.Expr, Value]]) -> Value:
        """`& | ~`: element-wise logic on boolean tensors (masks such as `x > 0`)."""
        for operand, value in operands:
            if value.type in (*_LOGICAL, Type.UNKNOWN):
                continue
            hint = "`&`, `|` and `~` combine boolean tensors (masks such as `x > 0`)"
            if value.type is Type.OPTIONAL_TENSOR:
                hint = _OPTIONAL_HINT
            message = f"`{op}` cannot take {article(value.type.value)}"
            self.out.append(error(message, operand.span, hint))
        values = [value for _, value in operands]
        result = _boolean_type(*(v.type for v in values))
        return without_gradient(merge(result, values), boolean=True)

    # ---------------------------------------------------------------- subscripts

    def _expr_Subscript(self, node: ir.Subscript) -> Value:
        value = self.expr(node.value)
        items = node.index.items if isinstance(node.index, ir.Indices) else (node.index,)
        if isinstance(node.index, ir.String):
            return self._keyed(node, value)
        bounds = [pair for item in items for pair in self._check_item(item, items)]
        if value.type not in _SUBSCRIPTABLE:
            what = "sliced" if isinstance(node.index, ir.Slice) else "indexed"
            self.out.append(error(f"{article(value.type.value)} cannot be {what}", node.value.span))
            return Value(Type.UNKNOWN, value.models, value.names, value.reads)  # reported once
        if value.type in _SEQUENCES:
            return self._sequence_part(node, value, bounds)
        return self._tensor_part(value, items)

    def _check_item(self, item: ir.Index, items) -> list[tuple[ir.Expr, Value]]:
        """Reports what one axis cannot be; its expressions with their values."""
        if isinstance(item, ir.EllipsisIndex):
            ellipses = [i for i in items if isinstance(i, ir.EllipsisIndex)]
            if item is not ellipses[0]:
                hint = "`...` stands for every axis not otherwise indexed; write it once"
                self.out.append(error("a subscript has at most one `...`", item.span, hint))
            return []
        if isinstance(item, ir.String):
            hint = 'a key is the whole subscript: `batch["source"]`'
            self.out.append(error("a string key cannot index an axis", item.span, hint))
            return []
        bounds = ir.children(item) if isinstance(item, ir.Slice) else (item,)
        pairs = [(bound, self.expr(bound)) for bound in bounds]
        for bound, found in pairs:
            self._check_index(bound, found)
        if isinstance(item, ir.Slice) and literal_int(item.step) == 0:
            hint = "a step is a whole number other than 0 (negative: backwards)"
            self.out.append(error("a slice step cannot be zero", item.step.span, hint))
        return pairs

    def _check_index(self, index: ir.Expr, value: Value) -> None:
        """Python and TensorFlow index with whole numbers (or None: a new axis);
        a value of unknown type is one if its error was reported."""
        if value.integer or value.type is Type.NONE or is_reported(value):
            return
        what = _INDEX_TYPES.get(value.type) or article(value.type.value)
        hint = _INDEX_HINT
        if value.boolean:
            what, hint = "a boolean mask", "select with `where(mask, x, 0.0)`; " + _INDEX_HINT
        elif value.type is Type.UNKNOWN:
            hint += ', or a tensor cast to one: `cast(i, "int32")`'
        self.out.append(error(f"an index must be a whole number, not {what}", index.span, hint))

    def _sequence_part(self, node: ir.Subscript, value: Value, bounds) -> Value:
        """A position or a slice of a Python tuple (a shape, a literal tuple, a
        model's outputs, gradients): no axes, no `None`, a Python int."""
        index = node.index
        if not self._python_index(index, value, bounds):
            return reported(Value(Type.UNKNOWN, value.models, value.names, value.reads))
        sliced = isinstance(index, ir.Slice)
        if value.items is not None and not sliced:
            self._check_in_range(value.items, index)
        part = literal_part(value.items, index) if value.items is not None else None
        if part is not None:  # of a literal tuple: that element (or elements) alone
            return part
        if sliced:  # a part of the same kind of value
            return replace(value, items=None)
        type_ = Type.NUMBER if value.type is Type.SHAPE else Type.TENSOR
        return Value(type_, value.models, value.names, value.reads, integer=type_ is Type.NUMBER)

    def _python_index(self, index, value: Value, bounds) -> bool:
        noun = article(value.type.value)
        if isinstance(index, ir.Indices | ir.EllipsisIndex) or _is_none(index):
            message = f"{noun} is indexed as a Python tuple: one index or slice, no axes"
            hint = "index its elements one at a time: `t[0][:, 1]`"
            self.out.append(error(message, index.span, hint))
            return False
        for bound, found in bounds:
            if found.type in (Type.TENSOR, Type.SCALAR) and not is_reported(found):
                message = f"{noun} is indexed by a Python int, not a tensor"
                hint = "an int literal, an int parameter or shape(...)[i]"
                self.out.append(error(message, bound.span, hint))
                return False
        return True

    def _check_in_range(self, items: tuple[Value, ...], index: ir.Expr) -> None:
        position, count = literal_int(index), len(items)
        if position is not None and not -count <= position < count:
            self.out.append(
                error(
                    f"index {position} is past the end of a tuple of {count}",
                    index.span,
                    f"the tuple's indices are 0 to {count - 1} (or -{count} to -1)",
                )
            )

    def _tensor_part(self, value: Value, items) -> Value:
        """A slice or `None` keeps (or adds) an axis; indices alone may leave a
        scalar (`x[0, 0]` of a matrix), a rank unknown here."""
        keeps_axis = any(isinstance(i, ir.Slice) or _is_none(i) for i in items)
        only_ellipsis = all(isinstance(i, ir.EllipsisIndex) for i in items)
        type_ = value.type if keeps_axis or only_ellipsis else Type.UNKNOWN
        return replace(value, type=type_, items=None)

    def _keyed(self, node: ir.Subscript, value: Value) -> Value:
        """`batch["source"]`, `outs["logits"]`: an entry of a dict batch part or
        of a model's dict outputs."""
        local = self.locals.get(node.value.id) if isinstance(node.value, ir.Name) else None
        # A local holding a model's outputs (`outs = backbone(x)`) keeps its models.
        from_model = local is not None and bool(local.value.models)
        keyed = value.type is Type.UNKNOWN or bool(value.models) or from_model
        keyed = keyed or (local is not None and local.is_data)
        if not keyed or value.type not in (Type.TENSOR, Type.MULTI, Type.UNKNOWN):
            self.out.append(
                error(
                    f"{article(value.type.value)} has no keys",
                    node.index.span,
                    "a key reads an entry of a dict: a batch part or a model's outputs",
                )
            )
        return replace(value, type=Type.UNKNOWN, items=None, integer=False, boolean=False)


def _arithmetic_type(left: Type, right: Type) -> Type:
    types = {left, right}
    if Type.UNKNOWN in types:  # an operand whose error was reported, or of unknown rank
        return Type.UNKNOWN
    if Type.TENSOR in types:
        return Type.TENSOR
    return Type.SCALAR if Type.SCALAR in types else Type.NUMBER


def _boolean_type(*types: Type) -> Type:
    """A comparison or logical result: a tensor of the operands' shape (a
    scalar tensor even of two numbers: `ops.less(1, 2)`)."""
    if Type.UNKNOWN in types:
        return Type.UNKNOWN
    return Type.TENSOR if Type.TENSOR in types else Type.SCALAR


def _is_none(expr) -> bool:
    return isinstance(expr, ir.Name) and expr.id == "None"
