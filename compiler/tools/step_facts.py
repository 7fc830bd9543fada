"""The facts of a step's picture, read off the lowered plan: `stepc graph` and `stepc explain`.

Owns the one walk over each `StepPlan` (stepc.lower.plan) that turns the compiler's
decisions into a `StepGraph`: nodes (data parts, forward passes and their mode,
losses, gradients, optimizers and the weights they update, metric and state
updates, values the lowering moved out of a recording, what the step reports),
the edges of what feeds what, and the recordings (and loops) as nested clusters
with the spec lines they hold. Every node carries its spec line and a sentence
saying what the compiler decided there; `graph_render` draws the nodes and
`explain` prints the sentences. Nothing is re-derived: a recording is where
the plan put its `GradientRegion`, a mode is the `training=` the lowering wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stepc.diagnostics import SpecError
from stepc.lower.plan import (
    BATCH_SIZE,
    COMPILED_METRICS,
    FULL_PRECISION,
    KERAS_LOSS_TRACKER,
    UNSCALE,
    ApplyEdited,
    ApplyGradients,
    Compute,
    ForEachBlock,
    GradientRegion,
    ModelPlan,
    ModulePlan,
    RepeatBlock,
    StepPlan,
    TakeGradient,
)
from stepc.parse import ir
from stepc.parse.sources import spec_text
from stepc.pipeline import lower_source
from stepc.tables.builtins import FROZEN_MODEL, MODEL_TYPES
from stepc.tools.step_records import (
    ASSIGN,
    DATA,
    FOR,
    GRADIENT,
    LOSS,
    METRIC,
    OPTIMIZER,
    PASS,
    RECORDING,
    REPEAT,
    REPORT,
    STATE,
    VALUE,
    WEIGHTS,
    Cluster,
    Edge,
    Node,
    StepGraph,
)
from stepc.tools.step_words import (
    PSEUDO_CALLS,
    calls,
    cut,
    line_span,
    lines_words,
    moved_reason,
    neighbouring_blocks,
    optimizer_label,
    passes_words,
    recording_span,
    scaling_words,
    state_words,
    stripped,
    unique,
)

# Operations that read only their argument's shape: no data flows through them.
SHAPE_ONLY = {"shape", "ones_like", "zeros_like", BATCH_SIZE}


def step_graphs(text: str, path: str = "<spec>") -> tuple[StepGraph, ...]:
    """One picture per (model, step) of the spec; raises SpecError if it does not compile."""
    plan, diagnostics = lower_source(text, path)
    if plan is None:
        raise SpecError(path, spec_text(text), diagnostics)
    return graphs_of_plan(plan, spec_text(text))


def graphs_of_plan(plan: ModulePlan, source: str) -> tuple[StepGraph, ...]:
    lines = source.split("\n")
    return tuple(
        _StepWalk(plan.spec_name, model, step, lines).run()
        for model in plan.models
        for step in model.steps
    )


def graphs_of_model(graphs, model_name: str) -> tuple[StepGraph, ...]:
    """The pictures of one model's steps."""
    return tuple(graph for graph in graphs if graph.model == model_name)


@dataclass
class _Open:
    """A cluster being walked: its nodes' forward passes and statement lines."""

    id: str
    lines: set[int] = field(default_factory=set)
    passes: list[Node] = field(default_factory=list)


class _StepWalk:
    """The walk over one step's plan items, in the order the step runs them."""

    def __init__(self, spec: str, model: ModelPlan, step: StepPlan, lines: list[str]):
        self.spec, self.model, self.step, self.lines = spec, model, step, lines
        params = (*model.init, *(model.compile or ()))
        self.models = {p.name for p in params if p.type_name in MODEL_TYPES} | {"self"}
        self.frozen = {p.name for p in params if p.type_name == FROZEN_MODEL}
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str], Edge] = {}
        self.clusters: list[Cluster] = []
        self.open: list[_Open] = []
        self.values: dict[str, frozenset[str]] = {}  # step value -> the nodes it comes from
        self.defined: dict[str, int] = {}  # step value -> the line that last assigned it
        self.differentiated: dict[str, frozenset[str]] = {}  # recorder -> its value's nodes
        self.losses: dict[str, str] = {}  # recorder -> loss node
        self.recordings: dict[str, _Open] = {}  # recorder -> its cluster
        self.metrics: dict[str, list[str]] = {}  # tracker -> its update nodes

    def run(self) -> StepGraph:
        self._data()
        self._items(self.step.items)
        self._report()
        return StepGraph(
            self.spec,
            self.model.name,
            self.step.kind.value,
            self.step.data.span.line,
            self.step.derived,
            tuple(self.nodes.values()),
            tuple(self.edges.values()),
            tuple(self.clusters),
        )

    # ---------------------------------------------------------------- building blocks

    def _text(self, span: ir.Span) -> str:
        """The spec text of `span`, on one line."""
        if span.line == span.end_line:
            return self.lines[span.line - 1][span.column - 1 : span.end_column - 1]
        first = self.lines[span.line - 1][span.column - 1 :]
        middle = self.lines[span.line : span.end_line - 1]
        last = self.lines[span.end_line - 1][: span.end_column - 1]
        return " ".join(part.strip() for part in (first, *middle, last))

    def _statement(self, span: ir.Span) -> str:
        """A statement's text, whole: from its start to the end of its last line."""
        first = self.lines[span.line - 1][span.column - 1 :]
        rest = self.lines[span.line : span.end_line]
        return " ".join(part.strip() for part in (first, *rest))

    def _add(self, kind: str, key: str, label: str, line: int, explanation: str, **extra) -> str:
        node_id = unique(f"{kind}_{key}", self.nodes)
        cluster = self.open[-1].id if self.open else ""
        node = Node(node_id, kind, label, line, explanation, cluster, **extra)
        self.nodes[node_id] = node
        for opened in self.open:
            opened.lines.add(line)
        return node_id

    def _link(self, sources, target: str, label: str = "") -> None:
        for source in sorted(sources, key=list(self.nodes).index):
            self.edges.setdefault((source, target), Edge(source, target, label))

    def _bind(self, targets, nodes: frozenset[str], line: int) -> None:
        for target in targets:
            self.values[target.id] = nodes
            self.defined[target.id] = line

    # ---------------------------------------------------------------- data

    def _data(self) -> None:
        data = self.step.data
        x, y, weight = data.roles
        roles = {x: "x", y: "y", weight: "sample_weight"}
        names = data.positional or tuple(name for name in data.roles if name is not None)
        checked = {s.part: s.expected for s in data.structures}
        for position, name in enumerate(names):
            role = f"part {position + 1}" if data.positional else roles[name]
            words = f"`{name}` is the batch's {role} (from `{data.written}`)"
            if name in checked:
                words += f"; checked when traced to be {checked[name]}"
            node = self._add(DATA, name, f"{name}\n({role})", data.span.line, words)
            self.values[name] = frozenset({node})

    # ---------------------------------------------------------------- expressions

    def _sources(self, expr, cast: bool = False) -> frozenset[str]:
        """The nodes `expr`'s value comes from; each model call in it becomes a pass."""
        if isinstance(expr, ir.Name):
            return self.values.get(expr.id, frozenset())
        if isinstance(expr, ir.Call) and expr.func.id in self.models:
            return frozenset({self._pass(expr, cast)})
        if isinstance(expr, ir.Call) and expr.func.id in SHAPE_ONLY:
            return frozenset()
        if isinstance(expr, ir.Call) and expr.func.id in PSEUDO_CALLS:
            return self._union(expr.args, expr.func.id == FULL_PRECISION)
        return self._union(ir.children(expr))

    def _union(self, exprs, cast: bool = False) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for expr in exprs:
            found |= self._sources(expr, cast)
        return found

    def _pass(self, call: ir.Call, cast: bool) -> str:
        """A forward pass through a model, in the mode the lowering wrote into the call."""
        mode = next(k for k in call.keywords if k.name == "training")
        inputs = self._union((*call.args, *(k.value for k in call.keywords if k is not mode)))
        training = isinstance(mode.value, ir.Name) and mode.value.id == "True"
        words = f"{'training' if training else 'inference'} mode"
        if not isinstance(mode.value, ir.Name) or mode.value.id not in ("True", "False"):
            training, words = None, f"the mode `{self._text(mode.value.span)}`"
        name = "the model itself" if call.func.id == "self" else call.func.id
        sentence = (
            f"{name} called in {words}{self._mode_reason(call, mode)}: `{self._text(call.span)}`"
        )
        if cast:
            sentence += "; its output cast to float32 under mixed precision (the spec's arithmetic)"
        label = f"{call.func.id}\n{words}"
        key = f"{call.span.line}_{call.span.column}"
        node = self._add(PASS, key, label, call.span.line, sentence, training=training)
        self._link(inputs, node)
        for opened in self.open:
            opened.passes.append(self.nodes[node])
        return node

    def _mode_reason(self, call: ir.Call, mode: ir.Keyword) -> str:
        if mode.span != call.span:  # the lowering's keyword spans the call; this is the spec's
            return " (as the spec says)"
        if call.func.id in self.frozen:
            return " (a FrozenModel always runs in inference mode)"
        if self.step.kind is not ir.StepKind.TRAIN:
            return f" (a {self.step.kind.value} step)"
        return ""

    # ---------------------------------------------------------------- items

    def _items(self, items) -> None:
        before, after = neighbouring_blocks(items)
        for index, item in enumerate(items):
            moved = moved_reason(item, before[index], after[index])
            if isinstance(item, Compute):
                self._compute(item, moved)
            elif isinstance(item, GradientRegion):
                self._region(item)
            elif isinstance(item, TakeGradient):
                self._take_gradient(item, moved)
            elif isinstance(item, ApplyGradients):
                self._apply(item)
            elif isinstance(item, ApplyEdited):
                self._apply_edited(item)
            else:
                self._loop(item)

    def _compute(self, item: Compute, moved: str) -> None:
        statement = item.statement
        if isinstance(statement, ir.Update):
            self._metric(item, moved)
        elif isinstance(statement, ir.AssignWeights):
            self._assign_weights(item, moved)
        else:
            self._assign(statement, moved)

    def _assign(self, statement: ir.Assign, moved: str) -> None:
        nodes = self._sources(statement.value)
        line = statement.span.line
        if moved:
            text = self._statement(statement.span)
            key = f"{line}_{statement.span.column}"
            label = cut(", ".join(t.id for t in statement.targets))
            node = self._add(VALUE, key, label, line, f"`{text}` {moved}", moved=moved)
            self._link(nodes, node)
            nodes = frozenset({node})
        for opened in self.open:
            opened.lines.add(line)
        self._bind(statement.targets, nodes, line)

    def _metric(self, item: Compute, moved: str) -> None:
        update = item.statement
        nodes = self._union((*update.args, *(k.value for k in update.keywords)))
        tracker = update.metric.id
        sentence = f"`{self._statement(update.span)}`: {self._metric_words(item)}"
        if moved:
            sentence += f"; {moved}"
        label = f"update {tracker}" + (f"\n({item.metric_class})" if item.metric_class else "")
        line = update.span.line
        node = self._add(METRIC, f"{line}_{update.span.column}", label, line, sentence, moved=moved)
        self._link(nodes, node)
        self.metrics.setdefault(tracker, []).append(node)

    def _metric_words(self, item: Compute) -> str:
        update = item.statement
        if item.role == KERAS_LOSS_TRACKER:
            words = "Keras's loss tracker (the logs' `loss`)"
        elif item.role == COMPILED_METRICS:
            words = "the metrics given to compile()"
        else:
            words = f"the metric {update.metric.id} ({item.metric_class or 'a Metric parameter'})"
        if any(k.name == "sample_weight" and k.span == update.span for k in update.keywords):
            words += ", weighted by the batch size (a per-batch scalar, as Keras's loss is)"
        if calls(update, UNSCALE):
            words += ", given the whole batch's value (unscaled from this replica's share)"
        return f"updates {words}"

    def _assign_weights(self, item: Compute, moved: str) -> None:
        statement = item.statement
        nodes = self._sources(statement.value)
        line, text = statement.span.line, self._statement(statement.span)
        key = f"{line}_{statement.span.column}"
        if item.state is not None:
            sentence = f"`{text}`: {state_words(item.state)}"
            label = f"state {statement.target.id}"
            node = self._add(STATE, key, label, line, sentence, moved=moved)
            self._bind((statement.target,), frozenset({node}), line)  # later reads see it
        else:
            reads = ", ".join(item.weights_of[1:]) or "no model"
            sentence = f"`{text}`: new weights for {statement.target.id}, reading {reads}'s"
            node = self._add(ASSIGN, key, f"assign {statement.target.id}", line, sentence)
            self._link([node], self._weights(statement.target.id, line), "new weights")
        self._link(nodes, node)

    # ---------------------------------------------------------------- recordings

    def _region(self, region: GradientRegion) -> None:
        key = f"{region.span.line}_{region.span.column}"
        opened = _Open(unique(f"{RECORDING}_{key}", {c.id for c in self.clusters}))
        parent = self.open[-1].id if self.open else ""
        self.open.append(opened)
        self._items(region.body)
        for loss, gradient in zip(region.losses, region.gradients, strict=True):
            opened.lines.add(loss.loss.span.line)
            nodes = self._sources(loss.loss)
            self.recordings[gradient.recorder] = opened
            if gradient.optimizer:
                self.losses[gradient.recorder] = self._loss(loss, nodes)
            else:
                self.differentiated[gradient.recorder] = nodes
        self.open.pop()
        for outer in self.open:
            outer.lines |= opened.lines
        self.clusters.append(self._recording_cluster(region, opened, parent))

    def _loss(self, loss, nodes: frozenset[str]) -> str:
        value = stripped(loss.loss)
        name = value.id if isinstance(value, ir.Name) else ""
        text = name or self._text(value.span)
        line = self.defined.get(name, loss.span.line)
        sentence = f"`{text}` is differentiated: {scaling_words(loss)}"
        node = self._add(LOSS, f"{line}_{loss.span.column}", f"loss\n{cut(text)}", line, sentence)
        self._link(nodes, node)
        if name:
            self.values[name] = frozenset({node})
        return node

    def _recording_cluster(self, region: GradientRegion, opened: _Open, parent: str) -> Cluster:
        lines = tuple(sorted(opened.lines))
        what = self._recording_purpose(region)
        span = line_span(lines)
        label = f"recording: {what}\n{span}"
        sentence = f"a recording for {what} begins: it holds {lines_words(lines)}"
        if region.nested:
            sentence += "; nested: its gradient is itself recorded by the outer recording"
        if region.simultaneous:
            sentence += "; every gradient is taken before any weight changes (one forward pass)"
        return Cluster(opened.id, RECORDING, label, lines, sentence, parent)

    def _recording_purpose(self, region: GradientRegion) -> str:
        minimized = [stripped(loss.loss) for loss in region.losses]
        if all(g.optimizer for g in region.gradients):
            names = ", ".join(self._text(value.span) for value in minimized)
            return f"minimize {cut(names)}"
        sources = ", ".join(region.gradients[0].sources)
        return f"gradient w.r.t. {sources}"

    def _take_gradient(self, item: TakeGradient, moved: str) -> None:
        statement = item.statement
        # As the spec names them (a gradient taken before a loop has a new name).
        targets = self._statement(statement.span).split("=")[0].strip()
        sources = ", ".join(item.sources)
        what = f"{sources}'s trainable variables" if item.of_model else sources
        line = statement.span.line
        sentence = f"`{self._statement(statement.span)}`: the gradient with respect to {what}"
        if item.unscale_by:
            sentence += f", divided by {item.unscale_by}'s loss scale under mixed precision"
        if moved:
            sentence += f"; {moved}"
        label = f"{targets} =\ngradient w.r.t. {sources}"
        key = f"{line}_{statement.span.column}"
        node = self._add(GRADIENT, key, label, line, sentence, moved=moved)
        self._link(self.differentiated.get(item.recorder, ()), node)
        if not item.of_model:
            self._link(
                self._union(ir.Name(s, statement.span) for s in item.sources), node, "w.r.t."
            )
        self._bind(statement.targets, frozenset({node}), line)

    # ---------------------------------------------------------------- updates

    def _apply(self, item: ApplyGradients) -> None:
        minimize = item.statement
        line = minimize.span.line
        targets = ", ".join(item.targets)
        sentence = f"`{self._statement(minimize.span)}`: {self._recording_words(item.recorder)}"
        for clip in item.clips:
            words = f"{clip.kind}={self._text(clip.threshold.span)}"
            sentence += f"; {clip.target.id}'s gradients clipped ({words})"
        label = optimizer_label(item.optimizer)
        node = self._add(OPTIMIZER, f"{line}_{minimize.span.column}", label, line, sentence)
        self._link([self.losses[item.recorder]], node, f"∂/∂ {targets}")
        for target in item.targets:
            self._link([node], self._weights(target, line), "updates")

    def _recording_words(self, recorder: str) -> str:
        opened = self.recordings[recorder]
        return "; ".join([recording_span(opened.lines), *passes_words(opened.passes)])

    def _apply_edited(self, item: ApplyEdited) -> None:
        statement = item.statement
        line = statement.span.line
        nodes = self._sources(item.gradients)
        sentence = (
            f"`{self._statement(statement.span)}`: the edited gradients update {item.model} "
            f"using {item.optimizer} (scaled back by its loss scale and divided among "
            "the replicas first)"
        )
        if item.maps:
            sentence += f"; the edit is applied to each tensor of {', '.join(item.maps)}"
        label = optimizer_label(item.optimizer)
        node = self._add(OPTIMIZER, f"{line}_{statement.span.column}", label, line, sentence)
        self._link(nodes, node, "edited gradients")
        self._link([node], self._weights(item.model, line), "updates")

    def _weights(self, model: str, line: int) -> str:
        """The node of a model's weights (one per model in a step)."""
        node_id = f"{WEIGHTS}_{model}"
        if node_id not in self.nodes:
            owner = dict(self.model.optimizer_targets)
            owners = [o for o, targets in owner.items() if model in targets]
            name = "the model's" if model == "self" else f"{model}'s"
            sentence = f"{name} trainable variables"
            if owners:
                sentence += f", owned by {' and '.join(optimizer_label(o) for o in owners)}"
            else:  # only an `assign` writes them
                sentence = f"{name} weights, which no optimizer owns: set by `assign`"
            label = "the model's weights" if model == "self" else f"{model} weights"
            self.nodes[node_id] = Node(node_id, WEIGHTS, label, line, sentence)
        return node_id

    # ---------------------------------------------------------------- loops

    def _loop(self, block: RepeatBlock | ForEachBlock) -> None:
        statement = block.statement
        kind = REPEAT if isinstance(block, RepeatBlock) else FOR
        header = self.lines[statement.span.line - 1].strip().rstrip(":")
        opened = _Open(unique(f"{kind}_{statement.span.line}", {c.id for c in self.clusters}))
        parent = self.open[-1].id if self.open else ""
        opened.lines.add(statement.span.line)
        self.open.append(opened)
        self._items(block.items)
        self.open.pop()
        for outer in self.open:
            outer.lines |= opened.lines
        lines = tuple(sorted(opened.lines))
        sentence = f"`{header}`: its statements run once per pass, {line_span(lines)}"
        self.clusters.append(Cluster(opened.id, kind, cut(header), lines, sentence, parent))

    # ---------------------------------------------------------------- report

    def _report(self) -> None:
        returns = self.step.returns
        if returns is None:
            return self._default_report()
        if returns.bare:
            value = returns.values[0]
            nodes = self._sources(value.value) if value.value is not None else frozenset()
            sentence = f"`{self._statement(returns.span)}`: predict() returns the value itself"
            return self._report_node([value.key], nodes, returns.span.line, sentence)
        nodes: frozenset[str] = frozenset()
        for value in returns.values:
            if value.metric is not None:
                nodes |= frozenset(self.metrics.get(value.metric, ()))
            elif value.compiled_metrics:
                nodes |= frozenset(self.metrics.get(COMPILED_METRICS, ()))
            elif value.value is not None:
                nodes |= self._sources(value.value)
        keys = [value.key for value in returns.values]
        sentence = f"`{self._statement(returns.span)}`: the step reports {', '.join(keys)}"
        return self._report_node(keys, nodes, returns.span.line, sentence)

    def _default_report(self) -> None:
        if self.step.kind is ir.StepKind.PREDICT:
            return
        reported = self.step.reported
        trackers = list(self.metrics) if reported is None else list(reported)
        if self.step.reported is not None:
            trackers += [t for t in self.metrics if t not in self.model_metrics()]
        nodes = frozenset(n for t in trackers for n in self.metrics.get(t, ()))
        what = "every metric of the model" if reported is None else "the metrics it updates"
        if self.step.skips_compiled_metrics:
            what += " (not compile()'s metrics, which it never updates)"
        sentence = f"with no return, the step reports {what}"
        keys = trackers or ["(no metric)"]
        self._report_node(keys, nodes, self.step.data.span.line, sentence)

    def model_metrics(self) -> set[str]:
        return {d.name for d in self.model.metrics} | set(self.model.metric_params)

    def _report_node(self, keys, nodes, line: int, sentence: str) -> None:
        label = "\n".join(["report", *map(cut, keys)])
        node = self._add(REPORT, "step", label, line, sentence)
        self._link(nodes, node)


# ---------------------------------------------------------------- helpers
