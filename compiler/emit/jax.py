"""The JAX spelling of a step: the stateless step of Keras's JAX trainer.

Owns only what JAX writes differently from the shared Keras layer
(`stepc.emit.keras.steps`). fit() passes the step its state (the model's
trainable and other variables, the optimizers' and the metrics' variables) and
takes the new values back: the whole step runs inside one `keras.StatelessScope`
over that state (`_StatelessStep`), so the spec's statements stay ordinary
Keras code. A gradient region is a nested function of its recorded statements
that returns the values differentiated and the values the step reads after it
(`leaves`); `_differentiate_on_jax` runs it under `jax.vjp`, in a scope of its
own, and writes back what it changed (BatchNorm statistics, seed state). The
tensors a `gradient(y, x)` is taken with respect to are the function's
arguments. Gradients are applied inside the step's scope (`_apply_on_jax`).
`compile()` sets `model.optimizer` to every optimizer the step uses
(`_StepOptimizers`), the only optimizer state fit() threads. `@scale` /
`@unscale` are the loss itself: Keras's JAX trainer does not rescale.
"""

from __future__ import annotations

from stepc.emit.jax_helpers import HELPERS  # noqa: F401  (stepc.emit.frameworks reads it here)
from stepc.emit.keras.gradient_edits import apply_lines, unscaled
from stepc.emit.keras.steps import StepWriter, _minimize_text, variables_of
from stepc.emit.pyexpr import (
    INDENT,
    LINE_LENGTH,
    Chain,
    Concat,
    Group,
    Rendered,
    assignment,
    call,
    layout,
    sequence,
    string_literal,
)
from stepc.lower.loops import loop_names
from stepc.lower.plan import (
    LOOP_BLOCKS,
    SCALE,
    UNSCALE,
    ApplyEdited,
    ApplyGradients,
    GradientRegion,
    LossForGradient,
    ModelPlan,
    TakeGradient,
)
from stepc.lower.regions import binds_of
from stepc.parse import ir

IMPORT = "import jax"
_KERAS_OPTIMIZER = "optimizer"  # Keras's own, which fit() already threads


class JaxStepWriter(StepWriter):
    """A step as Keras's JAX trainer calls one: `(state, data) -> (logs, state)`."""

    FRAMEWORK = "jax"
    CLIP_HELPER = "_clipped_on_jax"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scope = ""  # the _StatelessStep's name in the step
        self._grads: dict[str, str] = {}  # recorder -> its gradients' name
        self._variables: dict[str, str] = {}  # recorder -> its variables' name
        self._loop_bound: list[set[str]] = []  # what each enclosing repeat binds

    def signature(self) -> str:
        return f"def {self.method_name}(self, state, data):"

    def begin(self, depth: int) -> int:
        self.used.update(("stateless_step", "build_by_tracing"))  # the latter: mixin_methods
        if compile_lines(self.model):  # the class's compile() sets model.optimizer to one
            self.used.add("step_optimizers")
        self.scope = self.names.fresh("step")
        self.emit(depth, "# Every variable below reads and writes its value in fit()'s state.")
        self.emit(depth, f"with _StatelessStep(self, state) as {self.scope}:")
        return depth + 1

    def finish(self, value, depth: int) -> None:
        state = f"{self.scope}.state()"
        if self.method_name == "predict_step":  # predict() keeps the non-trainable only
            state += "[1]"
        self.lines += layout("return ", _comma_pair(value, state), INDENT * depth)

    def expr(self, node) -> Rendered:
        # No distribution scaling on JAX: the loss itself, with its precedence.
        if isinstance(node, ir.Call) and node.func.id in (SCALE, UNSCALE):
            return self.expr(node.args[0])
        return super().expr(node)

    def watch(self, recorder: str, name: str, depth: int) -> None:
        # A value the region computes: its gradient is that of a zero added to it.
        rendered = call(f"{self.scope}.watched", [string_literal(name), name])
        self.lines += layout(f"{name} = ", rendered.doc, INDENT * depth)

    # ------------------------------------------------------------ regions

    def region(self, region: GradientRegion, depth: int) -> None:
        self._variable_lists(region, depth)
        function = self.names.fresh(f"{_region_base(region)}_region")
        self._blank_line()
        what = "value differentiated" if region.watched else "loss"
        self.comment(depth, region.span, f"the recorded computation of the {what}, a function")
        # Laid out as ruff does: the parameters (defaults from a loop) may not fit.
        parameters = Group("(", tuple(self._parameters(region)), ")")
        signature = layout(f"def {function}", parameters, INDENT * depth, reserve=1)
        signature[-1] += ":"
        self.lines += signature
        for item in region.body:
            self._item(item, depth + 1)
        for loss in region.losses:
            self._loss_line(loss, depth + 1)
        leaves = _own_leaves(region)
        values = f"[{', '.join(g.value for g in region.gradients)}]"
        self.lines += _return_pair(values, leaves, INDENT * (depth + 1))
        self.lines.append("")
        self._differentiate(region, function, leaves, depth)

    def _variable_lists(self, region: GradientRegion, depth: int) -> None:
        """Each minimize's variables, named before its region: they are what the
        region's function is differentiated with respect to."""
        for gradient in region.gradients:
            if not gradient.of_model:
                continue
            variables = self.names.fresh("variables")
            self._variables[gradient.recorder] = variables
            parts = [variables_of(t) for t in gradient.sources]
            self.lines += layout(f"{variables} = ", _sum(parts), INDENT * depth)
            if gradient.optimizer:
                self._check_variables(gradient.sources, region.span, variables, depth)

    def _check_variables(self, targets, span: ir.Span, variables: str, depth: int) -> None:
        self.checked_once(depth, f"if not {variables}:")
        message = (
            f"{self.spec_name}:{span.line}: {', '.join(targets)} has no trainable "
            "variables to minimize over (frozen, or not built yet)"
        )
        self._raise(message, depth + 1)

    def _parameters(self, region: GradientRegion) -> list[str]:
        """The tensors differentiated with respect to; then each value bound before
        the region that its statements bind again, passed as a default (a name the
        function assigns is its own local from its first line)."""
        rebound = _function_binds(region.body) | {loss.name for loss in region.losses}
        # A value a loop binds is passed too: the function, defined in the loop, then
        # holds this iteration's value in its own name (a closure would read the
        # loop's variable, which lint flags though the function runs at once).
        rebound |= set().union(*self._loop_bound)
        again = [n for n in region.reads if n in rebound and n not in region.watched]
        return [*region.watched, *(f"{n}={n}" for n in again)]

    def _repeat(self, block, depth: int) -> None:
        self._loop_bound.append(binds_of(block.items) | loop_names(block.statement))
        super()._repeat(block, depth)
        self._loop_bound.pop()

    def _for_each(self, block, depth: int) -> None:
        self._loop_bound.append(binds_of(block.items) | loop_names(block.statement))
        super()._for_each(block, depth)
        self._loop_bound.pop()

    def _loss_line(self, loss: LossForGradient, depth: int) -> None:
        if loss.optimizer:
            self.emit(depth, "# Scaled for a LossScaleOptimizer (mixed precision); else as is.")
        elif isinstance(loss.loss, ir.Name) and loss.loss.id == loss.name:
            return  # the spec's own value, differentiated as it is
        self.lines += layout(f"{loss.name} = ", self.scaled_loss(loss).doc, INDENT * depth)
        if loss.check_scalar:
            self._check_scalar(loss, depth)

    def _differentiate(self, region: GradientRegion, function: str, leaves, depth: int) -> None:
        """One forward pass of the region's function, one gradient per value."""
        self.used.add("differentiate")
        sources, late = [], []
        for gradient in region.gradients:
            self._grads[gradient.recorder] = self.names.fresh("grads")
            if gradient.of_model:
                sources.append(self._variables[gradient.recorder])
                continue
            # A source the region computes itself is named: its probe's gradient.
            computed = [n for n in gradient.sources if n not in region.watched]
            late += [n for n in computed if n not in late]
            names = [string_literal(n) if n in computed else n for n in gradient.sources]
            sources.append(sequence("[", names, "]").doc)
        args = [self.scope, function, sequence("[", sources, "]").doc]
        if region.watched:
            args.append(sequence("(", list(region.watched), ")").doc)
        if late:
            args.append(
                Concat(("watched=", sequence("(", [string_literal(n) for n in late], ")").doc))
            )
        grads = [self._grads[g.recorder] for g in region.gradients]
        targets = [f"[{', '.join(grads)}]", _leaves_target(leaves)]
        rendered = call("_differentiate_on_jax", args)
        if len(INDENT * (depth + 1) + targets[1] + ",") > LINE_LENGTH:
            # Too many leaves for one line of the target: unpacked on their own.
            targets[1] = self.names.fresh("leaves")
            self.lines += assignment(targets, rendered.doc, INDENT * depth)
            self.lines += assignment(list(leaves), targets[1], INDENT * depth)
            return
        self.lines += assignment(targets, rendered.doc, INDENT * depth)

    def _blank_line(self) -> None:
        """One empty line before a nested function, as ruff format writes it (none
        at the top of a block)."""
        if self.lines and not self.lines[-1].rstrip().endswith(":") and self.lines[-1]:
            self.lines.append("")

    # ------------------------------------------------------------ gradient(...)

    def take_gradient(self, take: TakeGradient, depth: int) -> None:
        statement = take.statement
        self.comment(depth, statement.span)
        targets = [t.id for t in statement.targets]
        grads = self._grads[take.recorder]
        if take.unscale_by:  # applied after an edit: None (not reached) stays None
            rendered = unscaled(self, grads, take).doc
        elif take.of_model:  # zeros where the value does not reach, as on TensorFlow
            self.used.add("zero_if_unconnected")
            variables = self._variables[take.recorder]
            rendered = call("_zero_if_unconnected", [grads, variables]).doc
        elif take.tuple_result:
            rendered = grads
        else:
            rendered = f"{grads}[0]"
        self.lines += assignment(targets, rendered, INDENT * depth)

    # ------------------------------------------------------------ minimize

    def apply(self, apply: ApplyGradients, depth: int) -> None:
        self.comment(depth, apply.statement.span, _minimize_text(apply.statement))
        variables, grads = self._variables[apply.recorder], self._grads[apply.recorder]
        optimizer = self.names.python(apply.optimizer)
        if len(apply.targets) > 1 and apply.clips:
            self._clip_parts(apply, grads, optimizer, depth)
        else:
            for clip in apply.clips:
                self.clip(clip, grads, optimizer, depth)
        self.used.add("apply")
        self.lines += layout(
            "", call("_apply_on_jax", [optimizer, grads, variables]).doc, INDENT * depth
        )

    def apply_edited(self, apply: ApplyEdited, depth: int) -> None:
        self.used.update(("for_apply", "apply"))
        grads, variables = apply_lines(self, apply, "_for_apply", variables_of(apply.model), depth)
        optimizer = self.names.python(apply.optimizer)
        rendered = call("_apply_on_jax", [optimizer, grads, variables])
        self.lines += layout("", rendered.doc, INDENT * depth)

    def _clip_parts(self, apply: ApplyGradients, grads: str, optimizer: str, depth: int) -> None:
        """Several targets, some clipped: the gradients split by target."""
        parts = {t: self.names.fresh(f"{t}_grads") for t in apply.targets}
        self.names.taken -= set(parts.values())
        self.used.add("split")
        rendered = call("_split_on_jax", [grads, *(variables_of(t) for t in apply.targets)])
        self.lines += layout(f"{', '.join(parts.values())} = ", rendered.doc, INDENT * depth)
        for clip in apply.clips:
            self.clip(clip, parts[clip.target.id], optimizer, depth)
        self.lines += layout(f"{grads} = ", " + ".join(parts.values()), INDENT * depth)


def _region_base(region: GradientRegion) -> str:
    """What the region's function is named after: the loss it computes."""
    loss = region.losses[0]
    return loss.loss.id if isinstance(loss.loss, ir.Name) else loss.name


def _sum(parts: list[str]) -> Chain | str:
    return Chain(parts[0], tuple(("+", part) for part in parts[1:])) if len(parts) > 1 else parts[0]


def _comma_pair(first, second) -> Concat:
    """`first, second` as one doc (a return of two values, unparenthesized)."""
    return Concat((first, ", ", second))


def _own_leaves(region: GradientRegion) -> tuple[str, ...]:
    """The region's leaves its function binds itself: a nested region's
    statements bind theirs in a function of their own, which returns them."""
    own = _function_binds(region.body)
    return tuple(name for name in region.leaves if name in own)


def _function_binds(items) -> set[str]:
    names: set[str] = set()
    for item in items:
        if isinstance(item, GradientRegion):
            names |= set(_own_leaves(item))
        elif isinstance(item, LOOP_BLOCKS):
            names |= _function_binds(item.items)
        else:
            names |= binds_of((item,))
    return names


def _return_pair(values: str, leaves: tuple[str, ...], indent: str) -> list[str]:
    """`return [values], (leaves)`; a tuple that does not fit is one name a line,
    as ruff format writes a collection."""
    tuple_text = f"({leaves[0]},)" if len(leaves) == 1 else f"({', '.join(leaves)})"
    line = f"{indent}return {values}, {tuple_text}"
    if len(line) <= LINE_LENGTH:
        return [line]
    inner = [f"{indent}{INDENT}{name}," for name in leaves]
    return [f"{indent}return {values}, (", *inner, f"{indent})"]


def _leaves_target(leaves: tuple[str, ...]) -> str:
    if not leaves:
        return "_"
    if len(leaves) == 1:
        return f"({leaves[0]},)"
    return f"({', '.join(leaves)})"


def compile_lines(model: ModelPlan) -> list[str]:
    """`model.optimizer` as every optimizer the step uses: fit() on JAX threads
    only model.optimizer.variables through the step's state."""
    own = [name for name, _ in model.optimizer_targets if name != _KERAS_OPTIMIZER]
    if not own:
        return []  # Keras's own optimizer, which fit() threads already
    optimizers = [f"self.{name}" for name in own]
    if any(name == _KERAS_OPTIMIZER for name, _ in model.optimizer_targets):
        optimizers.append("keras_optimizer=self.optimizer")
    lines = ["# fit() on JAX threads only model.optimizer's variables through the step:"]
    lines.append("# model.optimizer lists every optimizer's.")
    # Laid out as inside `if keras.backend.backend() == "jax":` in compile().
    rendered = call("_StepOptimizers", optimizers).doc
    lines += [line[len(INDENT) * 3 :] for line in layout("self.optimizer = ", rendered, INDENT * 3)]
    return lines


def mixin_methods(model: ModelPlan) -> list[tuple[str, ...]]:
    """`_symbolic_build`: fit(), evaluate() and predict() on JAX first build the
    model by calling it on a symbolic batch (its layers, compile()'s loss and
    metrics: every variable must exist before the first stateless step), which
    fails where the steps are not that call (no call() of its own, a batch of
    pairs). Here the spec's steps are traced instead: the test step first (it
    updates no weights), then the train step."""
    kinds = {step.kind for step in model.steps}
    steps = [f"self.{n}" for k, n in _TRACED if k in kinds]
    traced = sequence("(", steps, ")").doc
    build = call("_build_by_tracing", ["self", traced, "iterator", "data_batch"])
    lines = [
        f"{INDENT}def _symbolic_build(self, iterator=None, data_batch=None):",
        f"{INDENT * 2}# Keras's JAX trainer builds the model by calling it on a batch; the",
        f"{INDENT * 2}# steps are not that call: they are traced on it instead.",
        *layout("data_batch = ", build.doc, INDENT * 2),
        *_after_tracing(model),
    ]
    return [tuple(lines)] if steps else []


def _after_tracing(model: ModelPlan) -> list[str]:
    """A Functional model: Keras builds what the steps left (its call() works).
    A model of sub-models has no call(): what its steps use is built now, and
    what none uses (a compile(loss=...) no step reads) needs no variables, so
    only Keras's own optimizer is left to build, as Keras would build it."""
    if model.functional:
        return [f"{INDENT * 2}super()._symbolic_build(iterator=iterator, data_batch=data_batch)"]
    return [
        f"{INDENT * 2}# What no step uses (a compiled loss no step reads) needs no variables.",
        f"{INDENT * 2}if self.optimizer is not None and not self.optimizer.built:",
        f"{INDENT * 3}self.optimizer.build(self.trainable_variables)",
    ]


_TRACED = ((ir.StepKind.TEST, "test_step"), (ir.StepKind.TRAIN, "train_step"))
