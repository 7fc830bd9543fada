"""The Keras 3 spelling of one step, shared by every framework: `StepWriter`.

Owns the lines of a step method that Keras 3 writes the same way on every
backend: unpacking and trace-time checks of the batch, each planned statement
with the spec line it came from, metric updates, `assign`, `repeat`, the
returned logs, and expressions (`self.` for model-held names, `ops.` and
`keras.random.` for operations). A framework module (`stepc.emit.tensorflow`,
`stepc.emit.jax`, `stepc.emit.torch`) subclasses it and spells only what
differs: the method's signature and frame (`signature`, `begin`, `finish`),
gradient regions, gradients taken and applied, watched tensors, and the
distribution pseudo-calls.
"""

from __future__ import annotations

from stepc.check.constructs import MAX_REPEAT
from stepc.emit.keras.data import positional_unpacking, structure_checks
from stepc.emit.keras.exprs import ExpressionWriter, keyword
from stepc.emit.keras.gradient_edits import mapped_lines
from stepc.emit.keras.loops import LoopWriter, checks_by_subscript
from stepc.emit.keras.state import StateWriting
from stepc.emit.names import Names
from stepc.emit.pyexpr import (
    INDENT,
    LINE_LENGTH,
    Concat,
    Rendered,
    Text,
    assignment,
    atom,
    call,
    comment_lines,
    flat,
    layout,
    python_number,
    sequence,
    string_literal,
)
from stepc.lower.plan import (
    BATCH_SIZE,
    COMPILED_LOSS_VALUE,
    COMPILED_METRICS,
    FULL_PRECISION,
    GATHER,
    KERAS_LOSS_TRACKER,
    REPLICA_MEAN,
    ApplyEdited,
    ApplyGradients,
    Compute,
    ForEachBlock,
    GradientRegion,
    ModelPlan,
    RepeatBlock,
    StepPlan,
    TakeGradient,
)
from stepc.parse import ir

_METHODS = {ir.StepKind.TRAIN: "train_step", ir.StepKind.TEST: "test_step"}
# The pseudo-calls every framework spells alike: the helper each needs (a HELPERS
# key) and its name. `@scale` / `@unscale` are the framework's (`pseudo_call`).
_PSEUDO_CALL_HELPERS = {
    FULL_PRECISION: ("full_precision", "_full_precision"),
    BATCH_SIZE: ("batch_size", "_batch_size"),
}
_ROLES = ("x", "y", "sample_weight")
# Noted in a writer's `used` when it writes a gradient region (in its framework's API).
REGION = "region"
_KERAS_LOSS_NOTE = "Keras's loss tracker: `loss` in the logs"


class StepWriter(LoopWriter, StateWriting, ExpressionWriter):
    """One step method; a framework's subclass spells its gradients and frame."""

    FRAMEWORK = ""  # keras.backend.backend() of the subclass
    # What replicas share in a state's new value: nothing to do where one step
    # sees the whole batch (JAX's DataParallel, PyTorch); TensorFlow spells them.
    REPLICA_CALLS = (GATHER, REPLICA_MEAN)
    # The framework's module helper that clips a list of gradients (its "clip" HELPERS entry).
    CLIP_HELPER = ""

    def __init__(self, spec_name: str, model: ModelPlan, step: StepPlan, names: Names, used):
        self.spec_name = spec_name
        self.model = model
        self.step = step
        self.names = names
        self.used: set[str] = used
        names.enter(step)
        self.training = step.kind is ir.StepKind.TRAIN
        self.lines: list[str] = []
        self.substitute: dict[str, str] = {}  # spec name -> Python, inside an assign
        self.index_checks_by_subscript = checks_by_subscript(step)
        self.checked_before: set[ir.Subscript] = set()

    def run(self) -> list[str]:
        self.lines.append(INDENT + self.signature())
        depth = 2
        if self.step.derived:
            self.emit(depth, "# evaluate(): the train step below without its weight updates,")
            self.emit(depth, "# in inference mode (the spec has no test step of its own).")
        depth = self.begin(depth)
        self._unpack(depth)
        for item in self.step.items:
            self._item(item, depth)
        self._returns(depth)
        return self.lines

    # ------------------------------------------------ what a framework spells

    def signature(self) -> str:
        """The method's `def` line."""
        return f"def {self.method_name}(self, data):"

    def begin(self, depth: int) -> int:
        """Lines before the batch is unpacked; the depth of the step's body."""
        return depth

    def finish(self, value, depth: int) -> None:
        """The step's last line: it returns `value` (its logs, or predict's outputs)."""
        self.lines += layout("return ", value, INDENT * depth)

    def region(self, region: GradientRegion, depth: int) -> None:
        raise NotImplementedError

    def apply(self, apply: ApplyGradients, depth: int) -> None:
        raise NotImplementedError

    def take_gradient(self, take: TakeGradient, depth: int) -> None:
        raise NotImplementedError

    def apply_edited(self, apply: ApplyEdited, depth: int) -> None:
        """`apply GRADS to MODEL`: the edited gradients as the weight update."""
        raise NotImplementedError

    def watch(self, recorder: str, name: str, depth: int) -> None:
        """`name`, just assigned, is a tensor a gradient is taken with respect to."""
        raise NotImplementedError

    def pseudo_call(self, name: str, args: list) -> Rendered:
        """A pseudo-call of the plan; `@scale`/`@unscale` are the framework's."""
        key, helper = _PSEUDO_CALL_HELPERS[name]
        self.used.add(key)
        return call(helper, args)

    @property
    def method_name(self) -> str:
        return _METHODS.get(self.step.kind, "predict_step")

    def scaled_loss(self, loss) -> Rendered:
        """The value a region differentiates: a minimize's loss scaled by its
        optimizer (a LossScaleOptimizer's scale; else as is)."""
        if not loss.optimizer:
            return self.expr(loss.loss)
        optimizer = self.names.python(loss.optimizer)
        return call(f"{optimizer}.scale_loss", [self.expr(loss.loss).doc])

    # ---------------------------------------------------------------- lines

    def emit(self, depth: int, text: str) -> None:
        self.lines.append(INDENT * depth + text)

    def checked_once(self, depth: int, condition: str) -> None:
        """`if condition:` of a check made when the step is traced, saying so at
        the end of the line, or above it where the line would be too long."""
        note = "# checked once, when the step is traced"
        if len(INDENT * depth + condition + "  " + note) <= LINE_LENGTH:
            self.emit(depth, f"{condition}  {note}")
        else:
            self.emit(depth, note)
            self.emit(depth, condition)

    def _raise(self, message: str, depth: int) -> None:
        """`raise ValueError(message)`: an error the traced step reports."""
        self.lines += layout("raise ", call("ValueError", [Text(message)]).doc, INDENT * depth)

    def comment(self, depth: int, span: ir.Span, what: str = "") -> None:
        text = f"# {self.spec_name}:{span.line}"
        width = LINE_LENGTH - len(INDENT * depth)
        for line in comment_lines(f"{text}  {what}" if what else text, width):
            self.emit(depth, line)

    # ---------------------------------------------------------------- data

    def _unpack(self, depth: int) -> None:
        data = self.step.data
        self.comment(depth, data.span, data.written)
        if data.positional:  # more than three parts: a tuple, by position
            self.lines += positional_unpacking(self.spec_name, data, self.used, depth)
        else:
            self._unpack_keras(depth)
        self.lines += structure_checks(self.spec_name, data, self.used, depth)

    def _unpack_keras(self, depth: int) -> None:
        """Keras's convention: x, y and sample_weight, each checked to be there
        when the data line needs it and absent when it has no place for it."""
        data = self.step.data
        targets = ", ".join(name or "_" for name in data.roles)
        self.emit(depth, f"{targets} = keras.utils.unpack_x_y_sample_weight(data)")
        for role in self._unexpected_roles():
            part = _ROLES.index(role)
            self.emit(depth, f"if keras.utils.unpack_x_y_sample_weight(data)[{part}] is not None:")
            self._raise(self._unexpected_message(role), depth + 1)
        present = ", ".join(n for n in data.roles if n and n not in data.required)
        for name in data.required:
            role = _ROLES[data.roles.index(name)]
            message = (
                f"{self.spec_name}:{data.span.line}: {data.written} expects every batch to "
                f"hold {_role(role, name)}, but this batch has only {present}: pass it to "
                f"{'fit' if self.training else 'evaluate'}() or remove it from the spec's data line"
            )
            self.emit(depth, f"if {name} is None:")
            self._raise(message, depth + 1)

    def _unexpected_roles(self) -> list[str]:
        """The parts the data line lacks, checked to be absent from the batch: fit()
        would otherwise drop one silently (predict() ignores one, as Keras's does)."""
        if self.step.kind is ir.StepKind.PREDICT:
            return []
        roles = zip(_ROLES, self.step.data.roles, strict=True)
        return [role for role, name in roles if name is None]

    def _unexpected_message(self, role: str) -> str:
        data = self.step.data
        method = _METHODS[self.step.kind]
        where = f"{self.model.name}.{method} ({self.spec_name}:{data.span.line}, `{data.written}`)"
        caller = "fit" if self.training else "evaluate"
        parts = _listing(f"`{n}`" for n in data.roles if n)
        if role == "y":
            return (
                f"{where}: {caller}() passed a `y`, but the step takes only {parts}; pass "
                f"`{data.roles[0]}` alone, or add `y` to the data line"
            )
        return (
            f"{where}: {caller}() passed a `sample_weight` (or a `class_weight`), but the "
            f"step takes only {parts}; add `sample_weight?` to the data line to weight "
            "the batch, or pass no weights"
        )

    # ---------------------------------------------------------------- items

    def _item(self, item, depth: int) -> None:
        if isinstance(item, Compute):
            self._compute(item, depth)
        elif isinstance(item, GradientRegion):
            self.used.add(REGION)
            self.region(item, depth)
        elif isinstance(item, ApplyGradients):
            self.apply(item, depth)
        elif isinstance(item, TakeGradient):
            self.take_gradient(item, depth)
        elif isinstance(item, ApplyEdited):
            self.apply_edited(item, depth)
        elif isinstance(item, RepeatBlock):
            self._repeat(item, depth)
        elif isinstance(item, ForEachBlock):
            self._for_each(item, depth)

    def _compute(self, item: Compute, depth: int) -> None:
        statement = item.statement
        keras_loss = item.role == KERAS_LOSS_TRACKER
        self.comment(depth, statement.span, _KERAS_LOSS_NOTE if keras_loss else "")
        self.index_checks(statement, depth)  # stepc.emit.keras.loops
        if item.state is not None:
            self.assign_state(item, depth)
        elif isinstance(statement, ir.AssignWeights):
            self._assign_weights(statement, item.weights_of, depth)
        elif isinstance(statement, ir.Assign):
            self._assign(item, depth)
            for recorder, name in item.watches:  # recorded from here on, as assigned
                self.watch(recorder, name, depth)
        else:
            self._update(item, depth)

    def _assign(self, item: Compute, depth: int) -> None:
        targets = [t.id for t in item.statement.targets]
        value = item.statement.value
        if item.maps:  # an edit of gradients: once per tensor
            mapped_lines(self, targets[0], value, item.maps, depth)
            return
        if item.role == COMPILED_LOSS_VALUE:
            rendered = self._compiled_loss(value)
        else:
            rendered = self.expr(value)
        self.lines += assignment(targets, rendered.doc, INDENT * depth)

    def _update(self, item: Compute, depth: int) -> None:
        statement = item.statement
        args = [self.expr(a).doc for a in statement.args]
        args += [keyword(k.name, self.expr(k.value).doc) for k in statement.keywords]
        if item.role == COMPILED_METRICS:
            self.emit(depth, "if self._compile_metrics is not None:  # compile(metrics=...)")
            rendered = call("self._compile_metrics.update_state", args)
            self.lines += layout("", rendered.doc, INDENT * (depth + 1))
            return
        tracker = f"self.{statement.metric.id}"
        if item.role == KERAS_LOSS_TRACKER:  # `loss` in the logs
            tracker = "self._loss_tracker"
        rendered = call(f"{tracker}.update_state", args)
        self.lines += layout("", rendered.doc, INDENT * depth)

    def _check_scalar(self, loss, depth: int) -> None:
        """The rank the compiler could not tell, checked on the static shape (no op)."""
        self.used.add("require_scalar")
        what = "minimize" if loss.optimizer else "gradient(...)"
        message = Text(
            f"{self.spec_name}:{loss.span.line}: {what} needs a scalar, but this value "
            "is not one (a tape would sum it); reduce it with mean(...) or sum(...)"
        )
        rendered = call("_require_scalar", [loss.name, message])
        self.lines += layout("", rendered.doc, INDENT * depth)

    def _repeat(self, block: RepeatBlock, depth: int) -> None:
        if not block.items:  # nothing left to run (a block that only updated weights)
            return
        count = flat(self.expr(block.count).doc)
        self.comment(depth, block.statement.span, self.repeat_text(block))
        if isinstance(block.count, ir.Name):
            # Unrolled when traced: the bounds of a literal count, checked then.
            bounds = f"1 <= {count} <= {MAX_REPEAT}"
            self.checked_once(depth, f"if not {bounds}:")
            message = (
                f"{self.spec_name}:{block.statement.span.line}: repeat {block.count.id} "
                f"needs 1 <= {block.count.id} <= {MAX_REPEAT} (the block is unrolled "
                "when the step is traced)"
            )
            self._raise(message, depth + 1)
        self.emit(depth, f"for {self.loop_variable(block)} in range({count}):")
        for item in block.items:
            self._item(item, depth + 1)

    def _assign_weights(self, statement: ir.AssignWeights, models, depth: int) -> None:
        weights = {m: self.names.fresh(f"{m}_weight") for m in models}
        self.names.taken -= set(weights.values())  # loop names, free after the loop
        lists = [f"{'self' if m == 'self' else 'self.' + m}.weights" for m in models]
        if len(models) > 1:
            sizes = " or ".join(f"len({lists[0]}) != len({w})" for w in lists[1:])
            self.emit(depth, f"if {sizes}:")
            message = (
                f"{self.spec_name}:{statement.span.line}: assign needs "
                f"{_listing(models)} to have the same weights, in the same order"
            )
            self._raise(message, depth + 1)
        # strict: the lengths are checked above; zip says so to the linter (B905).
        source = call("zip", [*lists, "strict=True"]).doc if len(lists) > 1 else lists[0]
        loop = f"for {', '.join(weights.values())} in "
        self.lines += layout(loop, Concat((source, ":")), INDENT * depth)
        self.substitute = weights
        value = self.expr(statement.value).doc
        self.substitute = {}
        rendered = call(f"{weights[statement.target.id]}.assign", [value])
        self.lines += layout("", rendered.doc, INDENT * (depth + 1))

    # ---------------------------------------------------------------- returns

    def _default_return(self):
        """Every metric's result; checked not to be empty where the model has no
        tracker that is always there (its own, or Keras's loss tracker)."""
        method = _METHODS.get(self.step.kind, "predict_step")
        where = f"{self.model.name}.{method} ({self.spec_name}:{self.step.data.span.line})"
        skipped = self._unreported_metrics()
        if skipped:  # metrics this step never updates: Keras cannot report them
            self.used.add("metrics_result")
            given = Concat(("skipped=", sequence("(", skipped, ")").doc))
            return call("_metrics_result", ["self", given, f"step={string_literal(where)}"]).doc
        if self.model.metrics or self.model.metric_params or not self.model.own_metrics_only:
            return "self.get_metrics_result()"
        self.used.add("reported")
        return f"_reported(self, {string_literal(where)})"

    def _unreported_metrics(self) -> list[str]:
        """The model's metrics this step leaves out of its default report:
        compile()'s and its own, where the step never updates them."""
        skipped = ["self._compile_metrics"] if self.step.skips_compiled_metrics else []
        if self.step.reported is not None:
            own = [d.name for d in self.model.metrics] + list(self.model.metric_params)
            skipped += [f"self.{name}" for name in own if name not in self.step.reported]
        return skipped

    def _returns(self, depth: int) -> None:
        plan = self.step.returns
        if plan is None:
            self.finish(self._default_return(), depth)
            return
        self.comment(depth, plan.span)
        if plan.bare:
            self.finish(self.expr(plan.values[0].value).doc, depth)
            return
        entries = []
        for value in plan.values:
            if value.entry is not None:  # one compiled metric, by the name it reports
                entries.append(self._compiled_metric_entry(value.entry, plan.span))
            elif value.compiled_metrics:  # each by its own name, as get_metrics_result()
                self.used.add("compiled_metrics")
                entries.append("**_compiled_metrics_result(self)")
            elif value.metric:  # keyed by the metric's name, as History averages by it
                entries.append(_entry(f"self.{value.metric}.name", f"self.{value.metric}.result()"))
            else:
                entries.append(_entry(string_literal(value.key), self.expr(value.value).doc))
        self.finish(sequence("{", entries, "}").doc, depth)

    def _compiled_metric_entry(self, name: str, span: ir.Span) -> Concat:
        """`compiled_metrics["mae"]`: looked up when the step is traced, since
        compile() names the metrics."""
        self.used.add("compiled_metric")
        where = string_literal(f"{self.spec_name}:{span.line}")
        found = call("_compiled_metric_result", ["self", string_literal(name), where])
        return _entry(string_literal(name), found.doc)

    def clip(self, clip, grads: str, optimizer: str, depth: int) -> None:
        """`grads = <CLIP_HELPER>(grads, optimizer, clip_norm=...)` under the clip's spec text."""
        self.used.add("clip")
        written = f"{clip.target.id} ({clip.kind}={_spec_text(clip.threshold)})"
        self.comment(depth, clip.span, written)
        threshold = keyword(clip.kind, self.expr(clip.threshold).doc)
        rendered = call(self.CLIP_HELPER, [grads, optimizer, threshold])
        self.lines += layout(f"{grads} = ", rendered.doc, INDENT * depth)

    # ---------------------------------------------------------------- expressions

    def expr(self, node) -> Rendered:
        if isinstance(node, ir.Call) and node.func.id in self.REPLICA_CALLS:
            return self.expr(node.args[0])
        if isinstance(node, ir.Name) and node.id in self.substitute:
            return atom(self.substitute[node.id])  # inside assign: a model's matching weight
        return super().expr(node)

    def name_text(self, name: str) -> str:
        return self.names.python(name)

    def call_of(self, name: str, args: list, keywords: dict) -> Rendered:
        if name.startswith("@"):
            return self.pseudo_call(name, args)
        return super().call_of(name, args, keywords)

    def _compiled_loss(self, node: ir.Call) -> Rendered:
        params = ("y", "y_pred", "sample_weight")
        given = dict(zip(params, node.args, strict=False))
        given.update({k.name: k.value for k in node.keywords})
        args = [f"x={self.step.data.roles[0]}"]
        args += [keyword(p, self.expr(given[p]).doc) for p in params if p in given]
        args.append(f"training={self.training}")
        return call("self.compute_loss", args)


def _entry(key: str, doc) -> Concat:
    return Concat((f"{key}: ", doc))


def _role(role: str, name: str) -> str:
    return f"`{name}`" if role == name else f"{role} (`{name}`)"


def variables_of(target: str) -> str:
    return "self.trainable_variables" if target == "self" else f"self.{target}.trainable_variables"


def _spec_text(expr: ir.Expr) -> str:
    """A count or threshold as the spec wrote it (a name or a number)."""
    return expr.id if isinstance(expr, ir.Name) else python_number(expr)


def _listing(names) -> str:
    names = list(names)
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


def _minimize_text(statement: ir.Minimize) -> str:
    targets = ", ".join(t.id for t in statement.targets)
    using = f" using {statement.optimizer.id}" if statement.optimizer else ""
    loss = "the loss" if not isinstance(statement.loss, ir.Name) else statement.loss.id
    return f"minimize {loss} over {targets}{using}"
