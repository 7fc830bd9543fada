"""The PyTorch spelling of a step: `torch.autograd.grad`, as Keras's torch trainer runs it.

Owns only what PyTorch writes differently from the shared Keras layer
(`stepc.emit.keras.steps`). The step runs eagerly and autograd records every
operation on a tensor that requires a gradient, so a gradient region is its
statements as they are; a tensor differentiated with respect to is marked
with `requires_grad_()`; gradients come from `torch.autograd.grad` (returned,
never accumulated in `.grad`: no `zero_grad()`), with `retain_graph` while
another gradient of the same forward pass is still to be taken and
`create_graph` in a region that is differentiated again (a gradient penalty);
a simultaneous update takes every gradient before any weight changes in place;
`optimizer.apply` runs under `torch.no_grad()`. Keras runs evaluate() and
predict() under `torch.no_grad()`, so a region there is recorded under
`torch.enable_grad()`. `@scale` / `@unscale` are the loss itself (Keras's torch
trainer does not rescale for distribution). Its helpers are `HELPERS`.
"""

from __future__ import annotations

from stepc.emit.keras.gradient_edits import apply_lines, unscaled
from stepc.emit.keras.steps import StepWriter, _minimize_text, variables_of
from stepc.emit.pyexpr import INDENT, Chain, Rendered, assignment, call, layout, sequence
from stepc.emit.pyexpr import subscript as subscript_doc
from stepc.lower.plan import (
    SCALE,
    UNSCALE,
    ApplyEdited,
    ApplyGradients,
    GradientRegion,
    LossForGradient,
    ModelPlan,
    TakeGradient,
)
from stepc.parse import ir

IMPORT = "import torch"
_NO_GRAD = "with torch.no_grad():  # an update in place, not a computation to record"


class TorchStepWriter(StepWriter):
    """A step as Keras's torch trainer runs one: eager, recorded by autograd."""

    FRAMEWORK = "torch"
    CLIP_HELPER = "_clipped_on_torch"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._regions: dict[str, GradientRegion] = {}  # recorder -> its region
        self._untaken: dict[int, int] = {}  # id(region) -> gradients still to take
        self._taken: dict[str, tuple[str, str]] = {}  # simultaneous: variables, grads

    def expr(self, node) -> Rendered:
        # No distribution scaling on torch: the loss itself, with its precedence
        # (pseudo_call gets the argument laid out already, without it).
        if isinstance(node, ir.Call) and node.func.id in (SCALE, UNSCALE):
            return self.expr(node.args[0])
        if isinstance(node, ir.Subscript) and _steps_backwards(node.index):
            self.used.add("subscript")
            return call("_subscript_on_torch", [self.expr(node.value).doc, self._index(node)])
        return super().expr(node)

    def _index(self, node: ir.Subscript):
        """The index as a value: `(slice(None, None, -1), 0)`, for the helper."""
        items = node.index.items if isinstance(node.index, ir.Indices) else (node.index,)
        return sequence("(", [self._index_item(item) for item in items], ")").doc

    def _index_item(self, item):
        if isinstance(item, ir.EllipsisIndex):
            return "Ellipsis"
        if not isinstance(item, ir.Slice):
            return self.expr(item).doc
        bounds = (item.start, item.stop, item.step)
        return call("slice", [self.expr(b).doc if b else "None" for b in bounds]).doc

    def watch(self, recorder: str, name: str, depth: int) -> None:
        self.emit(depth, f"{name}.requires_grad_()  # a gradient is taken with respect to it")

    # ------------------------------------------------------------ regions

    def region(self, region: GradientRegion, depth: int) -> None:
        what = "the value differentiated" if region.watched else "the loss"
        self.comment(depth, region.span, f"{what}, recorded by autograd")
        for recorder in region.recorders:
            self._regions[recorder] = region
        self._untaken[id(region)] = len(region.recorders)
        if not self.training and not region.nested:
            # evaluate() and predict() run under torch.no_grad(): record this part.
            self.emit(depth, "with torch.enable_grad():")
            depth += 1
        for name in region.watched:  # a tensor, not a variable: recorded once marked
            self.watch(region.recorders[0], name, depth)
        for item in region.body:
            self._item(item, depth)
        for loss in region.losses:
            self._loss_line(loss, depth)

    def _loss_line(self, loss: LossForGradient, depth: int) -> None:
        if loss.optimizer:
            self.emit(depth, "# Scaled for a LossScaleOptimizer (mixed precision); else as is.")
        elif isinstance(loss.loss, ir.Name) and loss.loss.id == loss.name:
            return  # the spec's own value, differentiated as it is
        self.lines += layout(f"{loss.name} = ", self.scaled_loss(loss).doc, INDENT * depth)
        if loss.check_scalar:
            self._check_scalar(loss, depth)

    def _gradients(self, recorder: str, value: str, sources) -> Rendered:
        """`_torch_gradients(value, sources, ...)`, keeping the graph while the
        region has another gradient to give and building one where the region is
        differentiated again."""
        region = self._regions[recorder]
        self._untaken[id(region)] -= 1
        options = []
        if region.nested:  # its gradient is differentiated again (a penalty)
            options.append("create_graph=True")
        elif self._untaken[id(region)] > 0:  # another gradient of this forward pass
            options.append("retain_graph=True")
        self.used.add("gradients")
        return call("_torch_gradients", [value, sources, *options])

    # ------------------------------------------------------------ gradient(...)

    def take_gradient(self, take: TakeGradient, depth: int) -> None:
        statement = take.statement
        self.comment(depth, statement.span)
        targets = [t.id for t in statement.targets]
        if take.unscale_by:  # applied after an edit: None (not reached) stays None
            variables = variables_of(take.sources[0])
            rendered = unscaled(
                self, self._gradients(take.recorder, take.value_name, variables), take
            )
        elif take.of_model:  # zeros where the value does not reach, as on TensorFlow
            self.used.add("zero_if_unconnected")
            variables = variables_of(take.sources[0])
            taken = self._gradients(take.recorder, take.value_name, variables)
            rendered = call("_zero_if_unconnected", [taken.doc, variables])
        else:
            sources = f"[{', '.join(take.sources)}]"
            rendered = self._gradients(take.recorder, take.value_name, sources)
            if not take.tuple_result:
                rendered = subscript_doc(rendered, "0")
        self.lines += assignment(targets, rendered.doc, INDENT * depth)

    # ------------------------------------------------------------ minimize

    def apply(self, apply: ApplyGradients, depth: int) -> None:
        self.comment(depth, apply.statement.span, _minimize_text(apply.statement))
        if self._regions[apply.recorder].simultaneous:
            self._take_simultaneous(self._regions[apply.recorder], depth)
            variables, grads = self._taken.pop(apply.recorder)
        else:
            variables, grads = self.names.fresh("variables"), self.names.fresh("grads")
            self.names.taken -= {variables, grads}  # reused by the next apply
            self._take_for_apply(apply, variables, grads, depth)
        optimizer = self.names.python(apply.optimizer)
        self.emit(depth, _NO_GRAD)
        self.emit(depth + 1, f"{optimizer}.apply({grads}, {variables})")

    def apply_edited(self, apply: ApplyEdited, depth: int) -> None:
        self.used.add("for_apply")
        grads, variables = apply_lines(self, apply, "_for_apply", variables_of(apply.model), depth)
        self.emit(depth, _NO_GRAD)
        optimizer = self.names.python(apply.optimizer)
        self.emit(depth + 1, f"{optimizer}.apply({grads}, {variables})")

    def _take_simultaneous(self, region: GradientRegion, depth: int) -> None:
        """At the region's first apply, every minimize's gradient: an update in
        place before another gradient is taken would change what it differentiates
        (autograd fails: "modified by an inplace operation")."""
        applies = [g for g in region.gradients if g.optimizer]
        if any(g.recorder in self._taken for g in applies):
            return
        self.emit(depth, "# Every gradient of this forward pass before any weight changes.")
        for gradient in applies:
            apply = _find_apply(self.step.items, gradient.recorder)
            base = apply.targets[0] if apply.targets[0] != "self" else "model"
            variables = self.names.fresh(f"{base}_variables")
            grads = self.names.fresh(f"{base}_grads")
            self._take_for_apply(apply, variables, grads, depth)
            self._taken[gradient.recorder] = (variables, grads)

    def _take_for_apply(self, apply: ApplyGradients, variables, grads, depth: int) -> None:
        parts = [variables_of(t) for t in apply.targets]
        sources = Chain(parts[0], tuple(("+", part) for part in parts[1:]))
        self.lines += layout(f"{variables} = ", sources, INDENT * depth)
        self.emit(depth, f"if not {variables}:  # autograd.grad needs at least one")
        targets = ", ".join(apply.targets)
        message = (
            f"{self.spec_name}:{apply.statement.span.line}: {targets} has no trainable "
            "variables to minimize over (frozen, or not built yet)"
        )
        self._raise(message, depth + 1)
        optimizer = self.names.python(apply.optimizer)
        if len(apply.targets) > 1 and apply.clips:
            self._clipped_parts(apply, variables, grads, depth)
            return
        taken = self._gradients(apply.recorder, apply.loss_name, variables)
        self.lines += layout(f"{grads} = ", taken.doc, INDENT * depth)
        for clip in apply.clips:
            self.clip(clip, grads, optimizer, depth)

    def _clipped_parts(self, apply: ApplyGradients, variables, grads, depth: int) -> None:
        """Several targets, some clipped: one list of gradients per target, from
        one backward pass."""
        parts = {t: self.names.fresh(f"{t}_grads") for t in apply.targets}
        self.names.taken -= set(parts.values())
        sources = sequence("[", [variables_of(t) for t in apply.targets], "]")
        rendered = self._gradients(apply.recorder, apply.loss_name, variables)
        self.used.add("gradients_by_part")
        rendered = call("_torch_gradients_by_part", [rendered.doc, sources.doc])
        self.lines += layout(f"{', '.join(parts.values())} = ", rendered.doc, INDENT * depth)
        optimizer = self.names.python(apply.optimizer)
        for clip in apply.clips:
            self.clip(clip, parts[clip.target.id], optimizer, depth)
        self.lines += layout(f"{grads} = ", " + ".join(parts.values()), INDENT * depth)


def _find_apply(items, recorder: str) -> ApplyGradients | None:
    """The ApplyGradients of `recorder` among plan items (in repeat blocks too)."""
    for item in items:
        if isinstance(item, ApplyGradients) and item.recorder == recorder:
            return item
        inner = getattr(item, "items", None) or getattr(item, "body", None) or ()
        found = _find_apply(inner, recorder)
        if found is not None:
            return found
    return None


def mixin_methods(model: ModelPlan) -> list[tuple[str, ...]]:
    """`_symbolic_build`: Keras's torch fit(), evaluate() and predict() first call
    the model on a symbolic batch to build its layers and compile()'s loss and
    metrics, which fails where the steps are not that call (no call() of its own,
    a batch of pairs, layers the steps call on other tensors). The eager steps
    build them as they first run, as on TensorFlow; only the optimizer is built."""
    return [
        (
            f"{INDENT}def _symbolic_build(self, iterator=None, data_batch=None):",
            f"{INDENT * 2}# Keras's torch trainer builds the model by calling it on a symbolic",
            f"{INDENT * 2}# batch; the steps are not that call: they build what they use eagerly.",
            f"{INDENT * 2}if self.optimizer is not None and not self.optimizer.built:",
            f"{INDENT * 3}self.optimizer.build(self.trainable_variables)",
            f"{INDENT * 2}self._post_build()  # torch: the variables as module parameters",
        )
    ]


def _steps_backwards(index) -> bool:
    """A slice whose step is not a positive number as written (`x[::-1]`, `x[::k]`):
    torch tensors cannot be sliced backwards, so it is gathered (the helper)."""
    items = index.items if isinstance(index, ir.Indices) else (index,)
    steps = [i.step for i in items if isinstance(i, ir.Slice) and i.step is not None]
    return any(not (isinstance(s, ir.Number) and float(s.text) > 0) for s in steps)


HELPERS = {
    "subscript": (
        "def _subscript_on_torch(x, index):",
        '    """x[index], where a slice may step backwards, which torch tensors cannot: that',
        "    axis is gathered by its positions instead (torch runs eagerly, so the axis's",
        '    length is known); every other item indexes as it does in x[index]."""',
        "    if any(item is Ellipsis for item in index):",
        "        at = next(k for k, item in enumerate(index) if item is Ellipsis)",
        "        named = sum(1 for item in index if item is not None and item is not Ellipsis)",
        "        index = index[:at] + (slice(None),) * (x.ndim - named) + index[at + 1 :]",
        "    axis = 0",
        "    for item in index:",
        "        if isinstance(item, slice) and item.step is not None and item.step < 0:",
        "            positions = list(range(*item.indices(x.shape[axis])))",
        "            x = torch.index_select(x, axis, torch.tensor(positions, device=x.device))",
        "        else:",
        "            x = x[(slice(None),) * axis + (item,)]",
        "        removed = isinstance(item, int) or (torch.is_tensor(item) and item.ndim == 0)",
        "        axis += 0 if removed else 1",
        "    return x",
    ),
    "gradients": (
        "def _torch_gradients(value, sources, retain_graph=None, create_graph=False):",
        '    """The gradient of `value` with respect to each source (a Keras variable or a',
        "    tensor); None for one it does not reach, which optimizer.apply skips, as",
        "    TensorFlow's tape gives. torch.autograd.grad returns the gradients instead of",
        "    accumulating them in `.grad`: no zero_grad() is needed. The graph is kept",
        '    (retain_graph) where it is built on (create_graph), as torch does by default."""',
        "    tensors = [s.value if isinstance(s, keras.Variable) else s for s in sources]",
        "    return list(",
        "        torch.autograd.grad(",
        "            value,",
        "            tensors,",
        "            retain_graph=retain_graph,",
        "            create_graph=create_graph,",
        "            allow_unused=True,",
        "        )",
        "    )",
    ),
    "gradients_by_part": (
        "def _torch_gradients_by_part(grads, parts):",
        '    """The gradients of several lists of variables, in one list each."""',
        "    grads = iter(grads)",
        "    return [[next(grads) for _ in part] for part in parts]",
    ),
    "clip": (
        "def _clipped_on_torch(",
        "    grads, optimizer, clip_norm=None, clip_global_norm=None, clip_value=None",
        "):",
        '    """Clip gradients as tf.clip_by_norm / tf.clip_by_global_norm / a clip to',
        '    [-value, value] do (None: not reached, left as it is)."""',
        "    present = [i for i, g in enumerate(grads) if g is not None]",
        "    kept = [grads[i] for i in present]",
        "    # Under mixed precision the gradients carry the loss scale; so does the threshold.",
        '    scale = optimizer.scale_loss(ops.ones((), dtype="float32"))',
        "    if clip_norm is not None:",
        "        limit = clip_norm * scale",
        "        for i, g in enumerate(kept):",
        "            kept[i] = g * limit / ops.maximum(ops.sqrt(ops.sum(ops.square(g))), limit)",
        "    if clip_global_norm is not None:  # an overflow makes every gradient NaN",
        "        limit = clip_global_norm * scale",
        "        norm = ops.sqrt(ops.sum(ops.stack([ops.sum(ops.square(g)) for g in kept])))",
        "        factor = limit * ops.minimum(1.0 / norm, 1.0 / limit) + (norm - norm)",
        "        kept = [g * factor for g in kept]",
        "    if clip_value is not None:  # an overflow stays inf: the step is skipped",
        "        limit = clip_value * scale",
        "        kept = [ops.where(ops.isfinite(g), ops.clip(g, -limit, limit), g) for g in kept]",
        "    grads = list(grads)",
        "    for i, g in zip(present, kept, strict=True):",
        "        grads[i] = g",
        "    return grads",
    ),
}
