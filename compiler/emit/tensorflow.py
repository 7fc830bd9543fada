"""The TensorFlow spelling of a step: `tf.GradientTape`, as Keras's TensorFlow trainer.

Owns only what TensorFlow writes differently from the shared Keras layer
(`stepc.emit.keras.steps`): a gradient region is a `with tf.GradientTape()`
block, gradients come from the tape, losses move between a replica's share and
the global batch under a `tf.distribute` strategy (`@scale` / `@unscale`), and
clipping sums the replicas' gradients first. Its helpers are `HELPERS`.
"""

from __future__ import annotations

from stepc.emit.keras.gradient_edits import apply_lines
from stepc.emit.keras.steps import StepWriter, _minimize_text, variables_of
from stepc.emit.pyexpr import INDENT, Chain, assignment, call, layout, sequence
from stepc.lower.plan import (
    GATHER,
    REPLICA_MEAN,
    SCALE,
    UNSCALE,
    ApplyEdited,
    ApplyGradients,
    GradientRegion,
    TakeGradient,
)
from stepc.parse import ir

IMPORT = "import tensorflow as tf"
# Each distribution pseudo-call: the helper it needs (a HELPERS key) and its name.
_DISTRIBUTION_HELPERS = {
    SCALE: ("scale", "_scale_for_distribution"),
    UNSCALE: ("unscale", "_unscale_for_distribution"),
    GATHER: ("all_gather", "_all_gather"),
    REPLICA_MEAN: ("replica_mean", "_replica_mean"),
}


class TensorFlowStepWriter(StepWriter):
    """A step as Keras's TensorFlow trainer writes one: a tape per recording."""

    FRAMEWORK = "tensorflow"
    CLIP_HELPER = "_clipped"
    REPLICA_CALLS = ()  # spelled: a replica holds its share of the batch

    def pseudo_call(self, name: str, args: list):
        if name in _DISTRIBUTION_HELPERS:
            key, helper = _DISTRIBUTION_HELPERS[name]
            self.used.add(key)
            return call(helper, args)
        return super().pseudo_call(name, args)

    def watch(self, recorder: str, name: str, depth: int) -> None:
        self.emit(depth, f"{recorder}.watch({name})")

    def region(self, region: GradientRegion, depth: int) -> None:
        what = "the value differentiated" if region.watched else "the loss"
        self.comment(depth, region.span, f"the recorded computation of {what}")
        tapes = ", ".join(f"tf.GradientTape() as {name}" for name in region.recorders)
        self.emit(depth, f"with {tapes}:")
        for name in region.watched:  # a tensor, not a variable: recorded only if watched
            self.emit(depth + 1, f"{region.recorders[0]}.watch({name})")
        for item in region.body:
            self._item(item, depth + 1)
        for loss in region.losses:
            self._loss_line(loss, depth + 1)

    def _loss_line(self, loss, depth: int) -> None:
        """The value differentiated, on a line of its own unless it is one already."""
        if loss.optimizer:
            self.emit(depth, "# Scaled for a LossScaleOptimizer (mixed precision); else as is.")
        if loss.optimizer or not (isinstance(loss.loss, ir.Name) and loss.loss.id == loss.name):
            self.lines += layout(f"{loss.name} = ", self.scaled_loss(loss).doc, INDENT * depth)
        if loss.check_scalar:
            self._check_scalar(loss, depth)

    def take_gradient(self, take: TakeGradient, depth: int) -> None:
        statement = take.statement
        self.comment(depth, statement.span)
        targets = [t.id for t in statement.targets]
        if take.unscale_by:  # applied after an edit: None (not reached) stays None
            self.used.add("true_gradients")
            variables = variables_of(take.sources[0])
            gradient = call(f"{take.recorder}.gradient", [take.value_name, variables])
            optimizer = self.names.python(take.unscale_by)
            rendered = call("_true_gradients", [gradient.doc, optimizer])
        elif take.of_model:
            self.used.update(("sum_replicas", "zero_if_unconnected"))
            variables = variables_of(take.sources[0])
            gradient = call(f"{take.recorder}.gradient", [take.value_name, variables])
            zeros = call("_zero_if_unconnected", [gradient.doc, variables])
            rendered = call("_sum_over_replicas", [zeros.doc])
        else:
            sources = ", ".join(take.sources)
            sources = f"[{sources}]" if take.tuple_result else sources
            rendered = call(f"{take.recorder}.gradient", [take.value_name, sources])
        self.lines += assignment(targets, rendered.doc, INDENT * depth)

    def apply(self, apply: ApplyGradients, depth: int) -> None:
        self.comment(depth, apply.statement.span, _minimize_text(apply.statement))
        variables, grads = self.names.fresh("variables"), self.names.fresh("grads")
        self.names.taken -= {variables, grads}  # reused by the next apply
        parts = [variables_of(t) for t in apply.targets]
        sources = Chain(parts[0], tuple(("+", part) for part in parts[1:]))
        self.lines += layout(f"{variables} = ", sources, INDENT * depth)
        self.emit(depth, f"if not {variables}:  # checked once, when the step is traced")
        targets = ", ".join(apply.targets)
        message = (
            f"{self.spec_name}:{apply.statement.span.line}: {targets} has no trainable "
            "variables to minimize over (frozen, or not built yet)"
        )
        self._raise(message, depth + 1)
        optimizer = self.names.python(apply.optimizer)
        if len(apply.targets) > 1 and apply.clips:
            self._apply_clipped_parts(apply, variables, grads, depth)
        else:
            taken = call(f"{apply.recorder}.gradient", [apply.loss_name, variables])
            self.lines += layout(f"{grads} = ", taken.doc, INDENT * depth)
            for clip in apply.clips:
                self.clip(clip, grads, optimizer, depth)
        self.emit(depth, f"{optimizer}.apply({grads}, {variables})")

    def apply_edited(self, apply: ApplyEdited, depth: int) -> None:
        self.used.add("for_apply_replicas")
        grads, variables = apply_lines(
            self, apply, "_for_apply_across_replicas", variables_of(apply.model), depth
        )
        self.emit(depth, f"{self.names.python(apply.optimizer)}.apply({grads}, {variables})")

    def _apply_clipped_parts(self, apply: ApplyGradients, variables, grads, depth) -> None:
        """Several targets, some clipped: one list of gradients per target."""
        parts = {t: self.names.fresh(f"{t}_grads") for t in apply.targets}
        self.names.taken -= set(parts.values())
        sources = sequence("[", [variables_of(t) for t in apply.targets], "]")
        rendered = call(f"{apply.recorder}.gradient", [apply.loss_name, sources.doc])
        self.lines += layout(f"{', '.join(parts.values())} = ", rendered.doc, INDENT * depth)
        optimizer = self.names.python(apply.optimizer)
        for clip in apply.clips:
            self.clip(clip, parts[clip.target.id], optimizer, depth)
        self.lines += layout(f"{grads} = ", " + ".join(parts.values()), INDENT * depth)


HELPERS = {
    "true_gradients": (
        "def _true_gradients(grads, optimizer):",
        '    """The whole batch\'s gradients of a loss the optimizer scaled: the replicas\'',
        "    shares summed and a LossScaleOptimizer's scale (a power of two: exact) divided",
        '    out. None (a variable the loss does not reach) stays None."""',
        "    present = [i for i, g in enumerate(grads) if g is not None]",
        "    kept = [grads[i] for i in present]",
        "    if tf.distribute.get_strategy().num_replicas_in_sync > 1 and kept:",
        '        kept = tf.distribute.get_replica_context().all_reduce("sum", kept)',
        '    scale = optimizer.scale_loss(ops.ones((), dtype="float32"))',
        "    grads = list(grads)",
        "    for i, g in zip(present, kept, strict=True):",
        "        grads[i] = g / ops.cast(scale, g.dtype)",
        "    return grads",
    ),
    "for_apply_replicas": (
        "def _for_apply_across_replicas(grads, variables, optimizer):",
        '    """Edited whole-batch gradients and their variables as optimizer.apply() takes',
        "    them: times a LossScaleOptimizer's scale, which apply() divides out (skipping a",
        "    step that is not finite), and divided among the replicas, whose shares apply()",
        '    sums; a None (a variable the loss does not reach) left out with its variable."""',
        '    scale = optimizer.scale_loss(ops.ones((), dtype="float32"))',
        "    scale = scale / tf.distribute.get_strategy().num_replicas_in_sync",
        "    pairs = [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]",
        "    return [g * ops.cast(scale, g.dtype) for g, _ in pairs], [v for _, v in pairs]",
    ),
    "scale": (
        "def _scale_for_distribution(loss):",
        '    """A global-batch loss as one replica\'s share, as Keras\'s losses return it."""',
        "    replicas = tf.distribute.get_strategy().num_replicas_in_sync",
        "    if replicas > 1:",
        "        loss = loss * ops.cast(1.0 / replicas, loss.dtype)",
        "    return loss",
    ),
    "unscale": (
        "def _unscale_for_distribution(loss):",
        '    """One replica\'s share of a loss (as Keras\'s losses return it), made global."""',
        "    replicas = tf.distribute.get_strategy().num_replicas_in_sync",
        "    if replicas > 1:",
        "        loss = loss * ops.cast(replicas, loss.dtype)",
        "    return loss",
    ),
    "sum_replicas": (
        "def _sum_over_replicas(grads):",
        '    """Gradients of one replica\'s share of a value, summed into the whole batch\'s."""',
        "    if tf.distribute.get_strategy().num_replicas_in_sync > 1:",
        '        grads = tf.distribute.get_replica_context().all_reduce("sum", grads)',
        "    return grads",
    ),
    "clip": (
        "def _clipped(grads, optimizer, clip_norm=None, clip_global_norm=None, clip_value=None):",
        '    """Clip gradients as one device would clip the whole batch\'s gradients."""',
        "    present = [i for i, g in enumerate(grads) if g is not None]  # None: not reached",
        "    kept = [grads[i] for i in present]",
        "    replicas = tf.distribute.get_strategy().num_replicas_in_sync",
        "    if replicas > 1:  # each replica holds its share: clip their sum",
        '        kept = tf.distribute.get_replica_context().all_reduce("sum", kept)',
        "    # Under mixed precision the gradients carry the loss scale; so does the threshold.",
        '    scale = optimizer.scale_loss(ops.ones((), dtype="float32"))',
        "    if clip_norm is not None:",
        "        kept = [tf.clip_by_norm(g, clip_norm * scale) for g in kept]",
        "    if clip_global_norm is not None:",
        "        kept, _ = tf.clip_by_global_norm(kept, clip_global_norm * scale)",
        "    if clip_value is not None:  # an overflow stays inf: the step is skipped",
        "        limit = clip_value * scale",
        "        kept = [ops.where(ops.isfinite(g), ops.clip(g, -limit, limit), g) for g in kept]",
        "    if replicas > 1:  # apply() sums the replicas' gradients again",
        "        kept = [g / replicas for g in kept]",
        "    grads = list(grads)",
        "    for i, g in zip(present, kept, strict=True):",
        "        grads[i] = g",
        "    return grads",
    ),
    "all_gather": (
        "def _all_gather(value):",
        '    """Every replica\'s share of a batch tensor, concatenated in replica order',
        '    (the whole batch, as one device sees it), for a state\'s new value."""',
        "    if tf.distribute.get_strategy().num_replicas_in_sync == 1:",
        "        return value",
        "    context = tf.distribute.get_replica_context()",
        "    if len(value.shape) == 0:  # a scalar whose rank was known only when traced",
        '        return context.all_reduce("mean", value)',
        "    return context.all_gather(value, axis=0)",
    ),
    "replica_mean": (
        "def _replica_mean(value):",
        '    """A scalar of one replica\'s share of the batch, averaged over the replicas',
        '    (the whole batch\'s, for equal shares), for a state\'s new value."""',
        "    if tf.distribute.get_strategy().num_replicas_in_sync > 1:",
        '        value = tf.distribute.get_replica_context().all_reduce("mean", value)',
        "    return value",
    ),
}
