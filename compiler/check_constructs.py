"""Stage 2, the step constructs beyond assignments and calls: their checks.

Owns the checks of `repeat` blocks, `assign MODEL = ...` (weights set outside
an optimizer), per-target gradient clipping, frozen models, and the two calls
that are not plain operations: `gradient(y, x)` and `regularization_loss(m)`.
`stepc.check_steps.StepChecker` mixes these in; whether a gradient's value
really depends on its tensor is a data-flow question the lowering answers.
"""

from __future__ import annotations

from stepc import ir
from stepc.builtins import CLIP_KINDS, FROZEN_MODEL, GRADIENT, OPS, Type
from stepc.check_exprs import ExprChecker, Value, article
from stepc.diagnostics import did_you_mean, error
from stepc.symbols import Kind

_WEIGHT_VALUES = (Type.NUMBER, Type.SCALAR, Type.UNKNOWN)


class ConstructChecks(ExprChecker):
    """Checks of repeat, assign, clipping, frozen models, gradient(...)."""

    whole_value: ir.Expr | None = None  # the value of the assignment being checked
    called: set[str]  # models called so far in the step, in evaluation order
    weights_of: set[str] | None = None  # inside `assign`: models standing for weights

    def _statement(self, statement, is_last: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- repeat

    def _repeat(self, statement: ir.Repeat) -> None:
        self._check_count(statement.count)
        for inner in statement.body:
            self._statement(inner, is_last=False)

    def _check_count(self, count: ir.Expr) -> None:
        if isinstance(count, ir.Number) and count.is_int and int(count.text) >= 1:
            return
        symbol = self.symbols.get(count.id) if isinstance(count, ir.Name) else None
        if symbol is not None and symbol.detail == "int":
            self.usage.names.add(symbol.name)
            return
        if isinstance(count, ir.Name) and symbol is None and count.id not in self.locals:
            self._unknown_name(count)
            return
        what = "0" if isinstance(count, ir.Number) and count.is_int else "this"
        self.out.append(
            error(
                f"a repeat count must be a positive whole number, not {what}",
                count.span,
                "write a literal such as `repeat 5:` or name an int parameter: "
                "`init(..., critic_steps: int)` and `repeat critic_steps:`",
            )
        )

    # ---------------------------------------------------------------- assign

    def _assign_weights(self, statement: ir.AssignWeights) -> None:
        if self.step.kind is not ir.StepKind.TRAIN:
            self.out.append(
                error(
                    f"a {self.step.kind.value} step cannot update weights",
                    statement.span,
                    "assign belongs in the train step",
                )
            )
        self._check_weight_target(statement.target)
        self.weights_of = set()
        try:
            value = self.expr(statement.value)
        finally:
            self.weights_of = None
        self._check_per_weight(statement.value, value)

    def _check_weight_target(self, target: ir.Name) -> None:
        symbol = self.symbols.get(target.id)
        if symbol is not None and symbol.type in (Type.MODEL, Type.UNKNOWN):
            self.usage.names.add(target.id)
            return
        models = [n for n, s in self.symbols.items() if s.type is Type.MODEL]
        self.out.append(
            error(
                f"`{target.id}` is not a model: assign sets the weights of a model",
                target.span,
                did_you_mean(target.id, models) or "the models: " + ", ".join(models),
            )
        )

    def _check_per_weight(self, expr: ir.Expr, value: Value) -> None:
        """One weight at a time: the expression may mix models' weights with
        numbers and scalars, not with batch tensors or model outputs."""
        for node in ir.walk(expr):
            problem = None
            if isinstance(node, ir.Call) and self._is_model(node.func.id):
                problem = f"`{node.func.id}(...)` is an output of the model, not its weights"
            elif self._is_batch_tensor(node):
                problem = f"`{node.id}` is a tensor of the batch, not one number"
            if problem:
                self.out.append(
                    error(
                        problem,
                        node.span,
                        "assign combines each weight of the named models with numbers "
                        "and scalars: `assign teacher = 0.99 * teacher + 0.01 * student`",
                    )
                )
                return

    def _is_batch_tensor(self, node) -> bool:
        local = self.locals.get(node.id) if isinstance(node, ir.Name) else None
        return local is not None and local.value.type not in _WEIGHT_VALUES

    def _expr_Name(self, node: ir.Name) -> Value:
        symbol = self.symbols.get(node.id)
        if self.weights_of is not None and symbol is not None and symbol.type is Type.MODEL:
            self.weights_of.add(node.id)
            self.usage.names.add(node.id)
            return Value(Type.TENSOR)
        return super()._expr_Name(node)

    # ---------------------------------------------------------------- minimize

    def _check_clips(self, statement: ir.Minimize) -> None:
        for option in statement.bad_options:
            self.out.append(
                error(
                    "a target takes one clipping option, written as a keyword",
                    option.span,
                    "for example `over critic (clip_norm=1.0)`; the options: "
                    + ", ".join(CLIP_KINDS),
                )
            )
        for clip in statement.clips:
            self._check_clip(clip)

    def _check_clip(self, clip: ir.Clip) -> None:
        if clip.kind not in CLIP_KINDS:
            hint = did_you_mean(clip.kind, CLIP_KINDS) or (
                "the options: " + "; ".join(f"{k}: {v}" for k, v in CLIP_KINDS.items())
            )
            self.out.append(error(f"unknown clipping option `{clip.kind}`", clip.span, hint))
        value = self.expr(clip.threshold)
        threshold = clip.threshold
        positive_literal = isinstance(threshold, ir.Number) and float(threshold.text) > 0
        parameter = isinstance(threshold, ir.Name) and value.type in (Type.NUMBER, Type.UNKNOWN)
        if not (positive_literal or parameter):
            self.out.append(
                error(
                    "a clipping threshold must be a positive number",
                    clip.threshold.span,
                    "a literal such as 1.0, or a float parameter of init(...)",
                )
            )

    def _check_not_frozen(self, target: ir.Name, doing: str) -> bool:
        symbol = self.symbols.get(target.id)
        if symbol is None or symbol.detail != FROZEN_MODEL:
            return True
        self.out.append(
            error(
                f"`{target.id}` is a FrozenModel: it is never {doing}",
                target.span,
                f"declare it `{target.id}: Model` to train it",
            )
        )
        return False

    def _check_frozen_call(self, node: ir.Call) -> None:
        self.called.add(node.func.id)
        symbol = self.symbols.get(node.func.id)
        if symbol is None or symbol.detail != FROZEN_MODEL:
            return
        for keyword in node.keywords:
            if keyword.name == "training" and not (
                isinstance(keyword.value, ir.Name) and keyword.value.id == "False"
            ):
                self.out.append(
                    error(
                        f"`{node.func.id}` is a FrozenModel: it always runs in inference mode",
                        keyword.span,
                        "remove `training=...`, or declare it `Model`",
                    )
                )

    # ---------------------------------------------------------------- calls

    def _call_special(self, node: ir.Call) -> Value | None:
        """gradient(...) and regularization_loss(...); None for other calls."""
        if node.func.id == GRADIENT:
            return self._gradient(node)
        if node.func.id == "regularization_loss":
            return self._regularization_loss(node)
        return None

    def _gradient(self, node: ir.Call) -> Value:
        self._check_arguments(OPS[GRADIENT], node.args, node.keywords, node.span)
        if node is not self.whole_value:
            self.out.append(
                error(
                    "a gradient must be the whole value of an assignment",
                    node.span,
                    "name it first: `g = gradient(loss, x)`, then use g",
                )
            )
        if len(node.args) != 2 or node.keywords:
            self._values(node.args, node.keywords)
            return Value(Type.TENSOR)
        value = self.expr(node.args[0])
        if value.type not in (Type.SCALAR, Type.UNKNOWN):
            self.out.append(
                error(
                    f"gradient(...) differentiates a scalar, not {article(value.type.value)}",
                    node.args[0].span,
                    "reduce it first: the gradient of sum(y) gives each example's gradient",
                )
            )
        return self._gradient_sources(node.args[1], value)

    def _gradient_sources(self, wrt: ir.Expr, value: Value) -> Value:
        if isinstance(wrt, (ir.TupleExpr, ir.ListExpr)) and wrt.items:
            for item in wrt.items:
                self._gradient_source(item, value)
            return Value(Type.MULTI, value.models, value.names)
        return Value(self._gradient_source(wrt, value), value.models, value.names)

    def _gradient_source(self, wrt: ir.Expr, value: Value) -> Type:
        if isinstance(wrt, ir.Name):
            local = self.locals.get(wrt.id)
            if local is not None and local.value.type in (Type.TENSOR, Type.SCALAR):
                local.used = True
                return Type.TENSOR
            symbol = self.symbols.get(wrt.id)
            if symbol is not None and symbol.type is Type.MODEL:
                return self._gradient_model(wrt, value)
            if local is None and symbol is None:
                self._unknown_name(wrt)
                return Type.TENSOR
        self.out.append(
            error(
                "a gradient is taken with respect to a tensor of the step, "
                "a tuple of them, or a model",
                wrt.span,
                "name the tensor first: `x_mix = ...`, then `gradient(y, x_mix)`",
            )
        )
        return Type.TENSOR

    def _gradient_model(self, wrt: ir.Name, value: Value) -> Type:
        self.usage.names.add(wrt.id)
        if not self._check_not_frozen(wrt, "differentiated"):
            return Type.GRADIENTS
        if value.type is Type.SCALAR and wrt.id != "self" and wrt.id not in value.models:
            self.out.append(
                error(
                    f"the value does not depend on `{wrt.id}`: its gradient would be None",
                    wrt.span,
                    f"call `{wrt.id}` in the value (and not inside stop_gradient)",
                )
            )
        return Type.GRADIENTS

    def _regularization_loss(self, node: ir.Call) -> Value:
        self._check_arguments(OPS["regularization_loss"], node.args, node.keywords, node.span)
        model = node.args[0] if node.args else None
        symbol = self.symbols.get(model.id) if isinstance(model, ir.Name) else None
        if isinstance(model, ir.Name) and symbol is None and model.id not in self.locals:
            self._unknown_name(model)
            return Value(Type.SCALAR)
        if symbol is None or symbol.type is not Type.MODEL:
            if model is not None:
                self.out.append(
                    error(
                        "regularization_loss(...) takes a model",
                        model.span,
                        "for example `regularization_loss(self)`: the sum of its layers' "
                        "regularization and add_loss() terms",
                    )
                )
            return Value(Type.SCALAR)
        self.usage.names.add(model.id)
        self._check_called_before(model)
        models = {model.id} if symbol.kind is not Kind.SELF else {"self"}
        return Value(Type.SCALAR, frozenset(models))

    def _check_called_before(self, model: ir.Name) -> None:
        """Keras collects a model's activity regularization when it runs: read
        before the model's call, `model.losses` would hold a stale value."""
        ran = bool(self.called) if model.id == "self" else model.id in self.called
        if not ran:
            self.out.append(
                error(
                    f"regularization_loss({model.id}) is read before `{model.id}` runs "
                    "in this step",
                    model.span,
                    "the model's losses are collected when it runs; write the term after "
                    "its call: `loss = mse(y, self(x)) + regularization_loss(self)`",
                )
            )
