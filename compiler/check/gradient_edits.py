"""Stage 2, inside a step: gradients the step edits before applying them.

Owns what the checker knows of a model's gradients (`g = gradient(loss, m)`, a
GRADIENTS value remembering `m`): which expressions map over each tensor
(arithmetic, and the elementwise operations of the ops table, whose kind is
`Result.SAME`), and the checks of `apply GRADS to MODEL [using OPTIMIZER]`.
Every misuse (gradients of two models combined, a reduction of them, gradients
of one model applied to another, a tensor applied) is refused with a hint.
`stepc.check.exprs.ExprChecker` mixes in `GradientMapping`,
`stepc.check.steps.StepChecker` mixes in `ApplyChecks`.
"""

from __future__ import annotations

from dataclasses import replace

from stepc.check.values import Value, article, merge
from stepc.diagnostics import error
from stepc.parse import ir
from stepc.tables.builtins import OPS, Op, Result, Type
from stepc.tables.operators import BINARY, Kind

# `where(mask, g, 0.0)` maps too: its result has its tensor arguments' shape.
_ALSO_MAPPED = ("where",)
_EDIT_HINT = (
    "edit gradients with arithmetic and elementwise operations (`grads * mask`, "
    "`clip(grads, -1.0, 1.0)`, `where(...)`); global_norm(grads) gives their norm"
)


def maps_over_gradients(op: Op) -> bool:
    """An operation applied to each gradient tensor in turn: an elementwise one."""
    return (op.result is Result.SAME or op.name in _ALSO_MAPPED) and not op.random


def refused_hint(op_name: str) -> str:
    """Why a call cannot take a model's gradients, and what can."""
    op = OPS.get(op_name)
    if op is not None and op.result is Result.REDUCE:
        return f"`{op_name}` would reduce them (one tensor per variable): {_EDIT_HINT}"
    return _EDIT_HINT


class GradientMapping:
    """Arithmetic and elementwise calls over a GRADIENTS value (for `ExprChecker`)."""

    def _mapped_binary(self, node: ir.BinaryOp, left: Value, right: Value) -> Value | None:
        """`grads * mask`: one result per gradient; None when neither side is gradients."""
        if Type.GRADIENTS not in (left.type, right.type):
            return None
        kind = BINARY[node.op].kind
        if kind is Kind.MATMUL:
            message = f"`{node.op}` does not map over a model's gradients"
            self.out.append(error(message, node.span, _EDIT_HINT))
            return replace(merge(Type.GRADIENTS, [left, right]), gradients_of="")
        operands = [(node.left, left), (node.right, right)]
        if kind is not Kind.ARITHMETIC:  # `grads > 0.0`: a mask per gradient, for where()
            return replace(self._mapped(node.span, operands), boolean=True)
        for expr, value in operands:  # `grads * mask`: a number or a tensor, not a bool mask
            if value.type is not Type.GRADIENTS:
                self._check_numeric(expr, value, node.op)
        return self._mapped(node.span, operands)

    def _mapped_negate(self, node: ir.Negate, value: Value) -> Value | None:
        """`-grads`: the gradients of the same model, negated; None for other values."""
        return value if value.type is Type.GRADIENTS else None

    def _mapped_call(self, node: ir.Call, op: Op, values: list[Value]) -> Value | None:
        """`clip(grads, -1.0, 1.0)`: an elementwise operation of each gradient (its
        other arguments were checked against their parameters' kinds)."""
        if not any(v.type is Type.GRADIENTS for v in values):
            return None
        exprs = [*node.args, *(k.value for k in node.keywords)]
        return self._mapped(node.span, list(zip(exprs, values, strict=True)))

    def _mapped(self, span: ir.Span, operands: list[tuple[ir.Expr, Value]]) -> Value:
        """The gradients of one model, edited (gradients of two are refused)."""
        models = dict.fromkeys(v.gradients_of for _, v in operands if v.type is Type.GRADIENTS)
        models.pop("", None)  # an error already reported
        if len(models) > 1:
            first, second = list(models)[:2]
            self.out.append(
                error(
                    f"gradients of `{first}` and of `{second}` cannot be combined",
                    span,
                    "each list follows its own model's variables: edit each apart "
                    "and apply each to its model",
                )
            )
        result = merge(Type.GRADIENTS, [v for _, v in operands])
        return replace(result, gradients_of=next(iter(models), "") if len(models) == 1 else "")


class ApplyChecks:
    """`apply GRADS to MODEL [using OPTIMIZER]` (for `StepChecker`)."""

    def _apply_edited(self, statement: ir.ApplyEdited) -> None:
        if self.step.kind is not ir.StepKind.TRAIN:
            self.out.append(
                error(
                    f"a {self.step.kind.value} step cannot update weights",
                    statement.span,
                    "apply belongs in the train step",
                )
            )
        value = self.expr(statement.gradients)
        model = statement.model
        is_model = self._check_target(model) and self._check_not_frozen(model, "trained")
        self._check_applied(statement, value, is_model)
        self._check_optimizer(statement, (model.id,))

    def _check_applied(self, statement: ir.ApplyEdited, value: Value, is_model: bool) -> None:
        model = statement.model.id
        if value.type is Type.UNKNOWN:
            return  # its error was reported
        if value.type is Type.GRADIENTS and value.boolean:
            self.out.append(
                error(
                    "apply takes a model's gradients, not a mask of them",
                    statement.gradients.span,
                    "choose with the mask: `where(mask, grads, 0.0)`",
                )
            )
        elif value.type is not Type.GRADIENTS:
            self.out.append(
                error(
                    f"apply takes a model's gradients, not {article(value.type.value)}",
                    statement.gradients.span,
                    f"take them with `grads = gradient(loss, {model})`, edit them, "
                    f"then `apply grads to {model}`",
                )
            )
        elif is_model and value.gradients_of and value.gradients_of != model:
            self.out.append(
                error(
                    f"these are gradients of `{value.gradients_of}`, not of `{model}`",
                    statement.gradients.span,
                    f"apply them to `{value.gradients_of}`, or take "
                    f"`gradient(loss, {model})` for `{model}`",
                )
            )
