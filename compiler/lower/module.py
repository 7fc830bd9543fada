"""Stage 3: decisions. A checked spec becomes a backend-neutral `ModulePlan`.

Owns the choices a careful Keras author makes by hand:
- tape placement from data dependencies: a `minimize` records only the
  statements its loss needs that go through a model it updates; the rest runs
  before the recording, and statements after a `minimize` see its new weights;
- data unpacking with `unpack_x_y_sample_weight` and trace-time checks of the
  batch structure;
- loss scaling: values from Keras loss objects are already divided by the
  number of replicas, hand-written reductions are not; the plan scales each
  differentiated loss exactly once and unscales each reported one;
- trackers: a `Mean` of a scalar loss is weighted by the batch size, as
  Keras's own loss tracker is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import PurePath

from stepc.check.loss_report import LOSS_TRACKER
from stepc.check.models import CheckedModel, CheckedSpec
from stepc.check.params import is_keras_argument
from stepc.diagnostics import Diagnostic
from stepc.lower.plan import (
    Declaration,
    ModelPlan,
    ModulePlan,
    Parameter,
    StepPlan,
)
from stepc.lower.state import initial_calls, state_variables
from stepc.lower.step import StepLowering
from stepc.parse import ir
from stepc.tables.builtins import COMPILED_LOSS, COMPILED_METRICS, KERAS_OPTIMIZER, MODEL_TYPES, OPS


def lower(checked: CheckedSpec, source: str) -> tuple[ModulePlan, list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    # The file name appears in comments and docstrings of the module: only
    # characters that cannot end either (or change a line) are kept.
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", PurePath(checked.spec.path).name) or "spec"
    stem = re.sub(r"\W", "_", PurePath(name).stem, flags=re.ASCII) or "spec"
    models = tuple(_lower_model(m, diagnostics) for m in checked.models)
    # A derived test step repeats its train step's statements and their findings.
    diagnostics = list(dict.fromkeys(diagnostics))
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return ModulePlan(name, digest, f"stepc.{stem}", models), diagnostics


def _lower_model(checked: CheckedModel, out: list[Diagnostic]) -> ModelPlan:
    model = checked.model
    steps = tuple(StepLowering(checked, step, out).run() for step in model.steps)
    calls, updates = _called_and_updated(model)
    derived = _derived_test_step(model, checked.functional, calls, updates)
    if derived is not None:
        plan = StepLowering(checked, derived, out, derived=True).run()
        steps += (dataclasses.replace(plan, derived=True),)
    own_metrics_only = COMPILED_LOSS not in calls and LOSS_TRACKER not in updates
    lists_compiled = _mentions_compiled_metrics(model, updates)
    sources = (*model.steps, *([derived] if derived is not None else []))
    steps = _skipping_compiled_metrics(steps, sources, lists_compiled or not own_metrics_only)
    metric_params = _metric_params(model)
    own_metrics = (*(d.name.id for d in model.metrics), *metric_params)
    steps = _reporting_updated_metrics(steps, sources, own_metrics)
    return ModelPlan(
        name=model.name.id,
        functional=checked.functional,
        span=model.span,
        init=_parameters(model.init),
        compile=_parameters(model.compile, in_compile=True) if model.compile is not None else None,
        metrics=tuple(_declaration(d) for d in model.metrics),
        losses=tuple(_declaration(d, _reads_compile_numbers(d, model)) for d in model.losses),
        optimizers=tuple(_declaration(d, in_compile=True) for d in model.optimizers),
        uses_random=any(name in OPS and OPS[name].random for name in calls | initial_calls(model)),
        seeded_layers=tuple(p.name.id for p in model.init or () if p.type_name.id == "Layer"),
        # No compiled loss or `update loss`: Keras's loss tracker (never updated) is not listed,
        # so a returned `loss` is what the logs show.
        own_metrics_only=own_metrics_only,
        lists_compiled_metrics=lists_compiled,
        compiled_metrics_once_built=any(step.skips_compiled_metrics for step in steps),
        optimizer_targets=_optimizer_targets(model),
        builds_keras_optimizer=_builds_keras_optimizer(model),
        jit_compile=model.jit_compile,
        compile_span=model.compile_span,
        steps=steps,
        missing_steps=() if checked.functional else _missing_steps(model, steps),
        metric_params=metric_params,
        states=state_variables(model),
    )


def _skipping_compiled_metrics(steps, sources, listed: bool) -> tuple[StepPlan, ...]:
    """Where the model's `metrics` list compile()'s metrics, each train or test step
    that never updates them leaves them out of its report: Keras cannot report a
    metric never updated ("has not yet been built"), and it would show 0."""
    if not listed:
        return steps
    return tuple(
        dataclasses.replace(plan, skips_compiled_metrics=not _updates_compiled_metrics(source))
        if plan.kind is not ir.StepKind.PREDICT
        else plan
        for plan, source in zip(steps, sources, strict=True)
    )


def _metric_params(model: ir.Model) -> tuple[str, ...]:
    """The `Metric` parameters: metrics of the model, as its trackers are."""
    params = (*(model.init or ()), *(model.compile or ()))
    return tuple(p.name.id for p in params if p.type_name.id == "Metric")


def _reporting_updated_metrics(steps, sources, own: tuple[str, ...]) -> tuple[StepPlan, ...]:
    """Each train or test step without `return` reports the model's own metrics it
    updates (its statements hold the shared block's; a derived test step, its
    train step's): a metric only the test step updates (a KID) is not in the
    training logs, nor is the train step's tracker in evaluate()'s. A step that
    updates them all reports every metric, as get_metrics_result() does."""
    found = []
    for plan, source in zip(steps, sources, strict=True):
        updated = {s.metric.id for s in ir.statements(source.body) if isinstance(s, ir.Update)}
        reported = tuple(name for name in own if name in updated)
        if plan.kind is not ir.StepKind.PREDICT and len(reported) < len(own):
            plan = dataclasses.replace(plan, reported=reported)
        found.append(plan)
    return tuple(found)


def _updates_compiled_metrics(step: ir.Step) -> bool:
    return any(
        isinstance(s, ir.Update) and s.metric.id == COMPILED_METRICS
        for s in ir.statements(step.body)
    )


def _called_and_updated(model: ir.Model) -> tuple[set[str], set[str]]:
    """What the model's steps call and which metrics they update (one walk)."""
    calls: set[str] = set()
    updates: set[str] = set()
    for step in model.steps:
        for statement in step.body:
            for node in ir.walk(statement):
                if isinstance(node, ir.Call):
                    calls.add(node.func.id)
                elif isinstance(node, ir.Update):
                    updates.add(node.metric.id)
    return calls, updates


def _mentions_compiled_metrics(model: ir.Model, updates: set[str]) -> bool:
    """A step updates or returns the metrics given to compile()."""
    returned = {
        item.name.id
        for step in model.steps
        for statement in step.body
        if isinstance(statement, ir.Return)
        for item in statement.items
    }
    return "compiled_metrics" in updates | returned


def _derived_test_step(model: ir.Model, functional: bool, calls, updates) -> ir.Step | None:
    """The train step that evaluate() repeats without its weight updates, if any.

    Keras's default test_step calls the model and reports the compiled loss and
    metrics. That fits a Functional model whose step uses them; one whose train
    step uses neither (the guide's lower-level example) would fail or report
    nothing, and a model of sub-models has no call() at all. Such a model's
    test step is its train step without the updates of weights (the same
    values and metrics, in inference mode), when what it reports is trackers
    (its own, Keras's loss tracker, the compiled metrics): a value a train step
    returns would report only the last batch in evaluate().
    """
    kinds = {step.kind for step in model.steps}
    train = next((s for s in model.steps if s.kind is ir.StepKind.TRAIN), None)
    if train is None or ir.StepKind.TEST in kinds:
        return None
    uses_compiled = COMPILED_LOSS in calls or "compiled_metrics" in updates
    if functional and uses_compiled:
        return None  # Keras's own test_step computes the same
    trackers = model.metrics or _metric_params(model) or uses_compiled or LOSS_TRACKER in updates
    return train if trackers else None


def _missing_steps(model: ir.Model, steps) -> tuple[tuple[ir.StepKind, ir.Span], ...]:
    """The steps a model of sub-models has neither written nor derived, with the
    line its error names: Keras's own steps call the model, which has no call()."""
    kinds = {step.kind for step in steps}
    train = next((s.span for s in model.steps if s.kind is ir.StepKind.TRAIN), model.span)
    wanted = ((ir.StepKind.TEST, train), (ir.StepKind.PREDICT, model.span))
    return tuple((kind, span) for kind, span in wanted if kind not in kinds)


def _parameters(params, in_compile: bool = False) -> tuple[Parameter, ...]:
    return tuple(
        Parameter(p.name.id, p.type_name.id, p.default, is_keras_argument(p, in_compile))
        for p in params or ()
    )


def _declaration(decl: ir.ObjectDecl, in_compile: bool = False) -> Declaration:
    args, keywords = decl.args, decl.keywords
    return Declaration(decl.name.id, decl.class_name.id, args, keywords, decl.span, in_compile)


def _reads_compile_numbers(decl: ir.ObjectDecl, model: ir.Model) -> bool:
    """A loss object built from a compile() number is built in compile()."""
    compile_names = {p.name.id for p in model.compile or ()}
    values = (*decl.args, *(k.value for k in decl.keywords))
    return any(isinstance(v, ir.Name) and v.id in compile_names for v in values)


def _builds_keras_optimizer(model: ir.Model) -> bool:
    """Whether compile() must build Keras's optimizer on the variables it updates:
    when they are not every trainable variable (the model itself, or each of its
    sub-models and layers), its first `apply` builds it on some and load_model on
    all, which then cannot load the saved state."""
    targets = dict(_optimizer_targets(model)).get(KERAS_OPTIMIZER)
    trainable = {p.name.id for p in model.init or () if p.type_name.id in MODEL_TYPES}
    return targets is not None and "self" not in targets and set(targets) != trainable


def _optimizer_targets(model: ir.Model) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Which models each optimizer updates, so a loaded model can rebuild its state."""
    found: dict[str, tuple[str, ...]] = {}
    for step in model.steps:
        for statement in ir.statements(step.body):
            if isinstance(statement, ir.Minimize):
                name = statement.optimizer.id if statement.optimizer else KERAS_OPTIMIZER
                found.setdefault(name, tuple(t.id for t in statement.targets))
            elif isinstance(statement, ir.ApplyEdited):
                name = statement.optimizer.id if statement.optimizer else KERAS_OPTIMIZER
                found.setdefault(name, (statement.model.id,))
    return tuple(found.items())
