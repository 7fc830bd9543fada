"""Stage 2, the step constructs beyond assignments and calls: their checks.

Owns the checks of `repeat` blocks, `assign MODEL = ...` (weights set outside
an optimizer), per-target gradient clipping, frozen models, and the two calls
that are not plain operations: `gradient(y, x)` and `regularization_loss(m)`.
`stepc.check.steps.StepChecker` mixes these in. Whether a gradient's value
depends on what it is taken with respect to is answered on the step's
`stepc.check.depends.DependencyGraph`; where its recording goes is the
lowering's question.
"""

from __future__ import annotations

import math

from stepc.check.depends import TENSORS, Reach
from stepc.check.exprs import ExprChecker, Value, article
from stepc.check.hints import misspelt, suggest
from stepc.check.symbols import Kind
from stepc.diagnostics import error
from stepc.parse import ir
from stepc.tables.builtins import CLIP_KINDS, FROZEN_MODEL, GRADIENT, OPS, Type

_WEIGHT_VALUES = (Type.NUMBER, Type.SCALAR, Type.UNKNOWN)
# A repeat block is unrolled at trace time: a bound on the passes of nested
# blocks together keeps the traced graph sane.
MAX_REPEAT = 1000
MAX_REPEAT_NESTING = 8
# Python's limit on statically nested blocks (for, with, try) in one function.
MAX_BLOCKS = 20


def block_depth(body) -> int:
    """An upper bound on the blocks the TensorFlow backend nests for `body`.

    A repeat is a `for`, an `assign` a `for` over the weights; at one level
    a minimize's recording is one `with` and each gradient's recording one
    more (a gradient's recording may hold earlier ones: at worst a chain).
    """
    minimize = any(isinstance(s, ir.Minimize) for s in body)
    gradients = sum(1 for s in body if _is_gradient(s))
    inner = max((1 + block_depth(s.body) for s in body if isinstance(s, ir.LOOPS)), default=0)
    if any(isinstance(s, ir.AssignWeights) for s in body):
        inner = max(inner, 1)
    return int(minimize) + gradients + inner


def _merge_unknown(values: list[Value]) -> Value:
    """A gradient whose error was reported: of unknown type, through the models
    of its arguments."""
    return Value(Type.UNKNOWN, frozenset().union(*(v.models for v in values)))


def _is_gradient(statement) -> bool:
    value = statement.value if isinstance(statement, ir.Assign) else None
    return isinstance(value, ir.Call) and value.func.id == GRADIENT


class ConstructChecks(ExprChecker):
    """Checks of repeat, assign, clipping, frozen models, gradient(...)."""

    whole_value: ir.Expr | None = None  # the value of the assignment being checked
    repeats: list[int]  # the counts of the repeat blocks around the statement (1: unknown)
    called: set[str]  # models called so far in the step, in evaluation order
    weights_of: set[str] | None = None  # inside `assign`: models standing for weights

    def _statement(self, statement, is_last: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---------------------------------------------------------------- repeat

    def _repeat(self, statement: ir.Repeat) -> None:
        count = self._check_count(statement.count)
        self.repeats.append(count)
        self._check_repeat_limits(statement)
        entry = dict(self.locals)
        used = {name: local.used for name, local in entry.items()}
        for local in entry.values():
            local.used = False  # now: read in the block, before any reassignment
        for inner in statement.body:
            self._statement(inner, is_last=False)
        self.repeats.pop()
        for name, local in entry.items():
            self._carry(local, self.locals[name])
            local.used = local.used or used[name]

    def _carry(self, before, after) -> None:
        """A later pass reads what the earlier one assigned where the first read
        the value from before the block: that value is used, and depended on."""
        if after is before:
            return
        self.graph.carry(before.key, after.key)
        if before.used:
            after.used = True

    def _check_count(self, count: ir.Expr) -> int:
        """The count of a literal (1 for a parameter or an error, which is reported)."""
        if isinstance(count, ir.Number) and count.is_int:
            return self._check_literal_count(count)
        symbol = self.symbols.get(count.id) if isinstance(count, ir.Name) else None
        if symbol is not None and (symbol.detail == "int" or symbol.type is Type.UNKNOWN):
            self.usage.names.add(symbol.name)
            return 1
        if isinstance(count, ir.Name) and symbol is None and count.id not in self.locals:
            self._unknown_name(count)
            return 1
        self._bad_count("a repeat count must be a positive whole number, not this", count)
        return 1

    def _check_literal_count(self, count: ir.Number) -> int:
        digits = count.text.lstrip("0")
        if not digits:
            self._bad_count("a repeat count must be a positive whole number, not 0", count)
            return 1
        # The length first: int() of thousands of digits is refused by Python.
        if len(digits) > len(str(MAX_REPEAT)) or int(digits) > MAX_REPEAT:
            shown = digits if len(digits) < 20 else f"a {len(digits)}-digit number"
            self._bad_count(f"a repeat count is at most {MAX_REPEAT}, not {shown}", count)
            return 1
        return int(digits)

    def _bad_count(self, message: str, count: ir.Expr) -> None:
        hint = (
            "a repeat block is unrolled when the step is traced: write a whole number from 1 "
            f"to {MAX_REPEAT} (`repeat 5:`), or name an int parameter "
            "(`init(..., critic_steps: int)`)"
        )
        self.out.append(error(message, count.span, hint))

    def _check_repeat_limits(self, statement: ir.Repeat) -> None:
        """Nested blocks: Python's limit on nesting, and how often they unroll."""
        if len(self.repeats) == MAX_REPEAT_NESTING + 1:
            self.out.append(
                error(
                    f"repeat blocks nest at most {MAX_REPEAT_NESTING} deep",
                    statement.span,
                    f"Python allows {MAX_BLOCKS} nested blocks in a function; move the inner "
                    "blocks out, or merge them into one repeat with a larger count",
                )
            )
        passes = math.prod(self.repeats)
        if passes > MAX_REPEAT and math.prod(self.repeats[:-1]) <= MAX_REPEAT:
            counts = " x ".join(str(n) for n in self.repeats if n > 1)
            self.out.append(
                error(
                    f"these nested repeat blocks unroll their statements {passes} times ({counts})",
                    statement.span,
                    "the step is traced with every pass written out; at most "
                    f"{MAX_REPEAT} passes in all",
                )
            )

    def _check_nesting(self) -> None:
        """The generated step must stay within Python's 20 nested blocks."""
        depth = block_depth(self.step.body)
        if depth <= MAX_BLOCKS:
            return
        first = next((s for s in self.step.body if isinstance(s, ir.LOOPS)), None)
        self.out.append(
            error(
                f"this step's code would nest {depth} blocks (repeat loops and gradient "
                f"recordings); Python allows {MAX_BLOCKS}",
                first.span if first is not None else self.step.span,
                "move a repeat block out, or take fewer gradients inside it",
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
        message = f"`{target.id}` is not a model: assign sets the weights of a model"
        self.out.append(misspelt(message, target, models, "the models: " + ", ".join(models)))

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
            hint = suggest(clip.kind, CLIP_KINDS) or (
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
        if node.keywords:  # the lowering reads the two by position
            self.out.append(
                error(
                    "gradient(...) takes its arguments by position",
                    node.keywords[0].span,
                    "write `gradient(y, x)`: the value, then what it is taken with respect to",
                )
            )
        if len(node.args) != 2 or node.keywords:
            return _merge_unknown(self._values(node.args, node.keywords))
        value = self.expr(node.args[0])
        if value.type not in (Type.SCALAR, Type.UNKNOWN):
            self.out.append(
                error(
                    f"gradient(...) differentiates a scalar, not {article(value.type.value)}",
                    node.args[0].span,
                    self._swapped_hint(*node.args)
                    or "reduce it first: the gradient of sum(y) gives each example's gradient",
                )
            )
        return self._gradient_sources(node.args[1], value)

    def _swapped_hint(self, y: ir.Expr, x: ir.Expr) -> str | None:
        """`gradient(x, loss)`: a tensor, then a scalar value of the step."""
        local = self.locals.get(x.id) if isinstance(x, ir.Name) else None
        if local is None or local.value.type is not Type.SCALAR or not isinstance(y, ir.Name):
            return None
        return (
            "the value comes first, then what it is taken with respect to: "
            f"`gradient({x.id}, {y.id})`"
        )

    def _gradient_sources(self, wrt: ir.Expr, value: Value) -> Value:
        """The gradient's value, computed from the value and what it is taken
        with respect to (a gradient of a gradient is a second derivative)."""
        reach = self.graph.reach(value.models, value.reads)
        items = wrt.items if isinstance(wrt, (ir.TupleExpr, ir.ListExpr)) and wrt.items else None
        types = [self._gradient_source(item, value, reach) for item in items or (wrt,)]
        keys = {self.locals[n.id].key for n in items or (wrt,) if self._is_local(n)}
        type_ = Type.MULTI if items else types[0]
        model = wrt.id if type_ is Type.GRADIENTS and isinstance(wrt, ir.Name) else ""
        return Value(type_, value.models, value.names, value.reads | keys, gradients_of=model)

    def _is_local(self, node: ir.Expr) -> bool:
        return isinstance(node, ir.Name) and node.id in self.locals

    def _gradient_source(self, wrt: ir.Expr, value: Value, reach: Reach) -> Type:
        if isinstance(wrt, ir.Name):
            local = self.locals.get(wrt.id)
            if local is not None and local.value.type in (Type.TENSOR, Type.SCALAR, Type.UNKNOWN):
                local.used = True  # unknown: its error was reported
                self._check_reaches(wrt, value, reach.depends_on(local.key))
                return Type.TENSOR
            symbol = self.symbols.get(wrt.id)
            if symbol is not None and symbol.type is Type.UNKNOWN:  # its error was reported
                self.usage.names.add(wrt.id)
                return Type.UNKNOWN
            if symbol is not None and symbol.type is Type.MODEL:
                return self._gradient_model(wrt, value, reach)
            if symbol is not None and symbol.kind is Kind.STATE:
                self.refuse_training_state(
                    wrt, "take the gradient with respect to a model or a tensor"
                )
                return Type.TENSOR
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

    def _gradient_model(self, wrt: ir.Name, value: Value, reach: Reach) -> Type:
        self.usage.names.add(wrt.id)
        if not self._check_not_frozen(wrt, "differentiated"):
            return Type.GRADIENTS
        if wrt.id != "self" and not reach.depends_on_model(wrt.id):
            self._independent(
                wrt, value, f"call `{wrt.id}` in the value (and not inside stop_gradient)"
            )
        return Type.GRADIENTS

    def _check_reaches(self, wrt: ir.Name, value: Value, depends: bool) -> None:
        if not depends:
            hint = f"compute the value from `{wrt.id}` (and not through stop_gradient)"
            self._independent(wrt, value, hint)

    def _independent(self, wrt: ir.Name, value: Value, hint: str) -> None:
        if value.type not in (Type.SCALAR, Type.UNKNOWN):
            return  # a value that is not a scalar is reported instead
        self.out.append(
            error(
                f"the value does not depend on `{wrt.id}`: its gradient would be None",
                wrt.span,
                hint,
            )
        )

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
        # Activity regularizers are computed from the model's inputs: any tensor.
        return Value(Type.SCALAR, frozenset(models), reads=frozenset({TENSORS}))

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
