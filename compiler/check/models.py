"""Stage 2: semantic checks of a parsed spec, model by model.

Owns the model-level checks (bases, parameters, declarations, reserved and
duplicate names, metric and loss classes, unused declarations) and hands each
step to `stepc.check.steps`. Every error of a spec is collected; nothing stops
at the first. The result, when there are no errors, is a `CheckedSpec`: the IR
plus each model's symbol table, which the lowering reads.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field

from stepc.check.binding import repeated_keywords
from stepc.check.hints import misspelt
from stepc.check.loss_report import is_loss_tracker_update
from stepc.check.lowering import lowering_findings
from stepc.check.objects import (
    LOSSES,
    METRICS,
    OPTIMIZERS,
    REDUCTION,
    constructor_problems,
    ema_problem,
    metric_name,
    reduction_error,
)
from stepc.check.params import (
    ALL_TYPES,
    argument_problem,
    default_problems,
    is_keras_argument,
    number_parameters,
    order_problems,
    type_problems,
)
from stepc.check.shared import data_line_problems, merge_step_findings, shared_block_problems
from stepc.check.state import declaration_names, init_numbers, state_symbol
from stepc.check.steps import StepChecker, Usage
from stepc.check.symbols import Kind, Symbol, base_symbols
from stepc.check.values import Value
from stepc.diagnostics import Diagnostic, error, has_errors, warning
from stepc.parse import ir
from stepc.tables.builtins import (
    COMPILED_LOSS,
    CONSTANTS,
    KERAS_OPTIMIZER,
    LOSS_CLASSES,
    LOSS_TRACKER_NAME,
    METRIC_CLASSES,
    OPS,
    PARAM_TYPES,
    RESERVED_NAMES,
    STEPC_OPS,
    Type,
)
from stepc.tables.keras_names import FUNCTIONAL_ATTRIBUTES, SUBCLASS_ATTRIBUTES
from stepc.tables.keras_optimizers import OPTIMIZER_CONSTRUCTORS


@dataclass(frozen=True)
class CheckedModel:
    """A model that passed the checks, with its symbols and inferred values."""

    model: ir.Model
    functional: bool
    symbols: dict[str, Symbol]
    # What the checker inferred for each value of its steps, by the span of the
    # name defining it (an assignment's target, a data part, a loop variable):
    # a read-only record for the language tools (`stepc.tools.index`).
    values: dict[ir.Span, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckedSpec:
    """A spec whose models all passed the checks."""

    spec: ir.Spec
    models: tuple[CheckedModel, ...]


def check(spec: ir.Spec) -> tuple[CheckedSpec, list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    if not spec.models:
        diagnostics.append(
            error("the spec defines no model", ir.Span(1, 1, 1, 2), "start with `model Name:`")
        )
    seen: dict[str, ir.Span] = {}
    models = []
    clean: dict[int, tuple[ir.Step, ...]] = {}
    for index, model in enumerate(spec.models):
        _check_unique(model.name, seen, "model", diagnostics)
        checker = _ModelChecker(model, diagnostics)
        models.append(checker.run())
        if checker.declarations_clean:
            clean[index] = tuple(checker.clean_steps)
    checked = CheckedSpec(spec, tuple(models))
    # The pipeline lowers a spec without errors itself (a recovered statement
    # stands for a syntax error the parser reported).
    if has_errors(diagnostics) or spec.recovered:
        diagnostics += lowering_findings(checked, clean)
    return checked, diagnostics


def _check_unique(name: ir.Name, seen: dict[str, ir.Span], what: str, out: list) -> bool:
    if name.id in seen:
        line = seen[name.id].line
        out.append(error(f"{what} `{name.id}` is already defined on line {line}", name.span))
        return False
    seen[name.id] = name.span
    return True


def check_identifier(name: ir.Name, out: list[Diagnostic], value: bool = False) -> bool:
    """A user-chosen name must be a plain identifier the generated code can use.
    A `value` (an assignment's target, a data part, a number parameter) may take
    a Keras operation's name (`norm = ...`, `train(real)`): it cannot be called,
    so a call of it says what it hides."""
    if name.id in RESERVED_NAMES or name.id in CONSTANTS or name.id.startswith("_"):
        out.append(
            error(
                f"`{name.id}` is a reserved name",
                name.span,
                "Python keywords and builtins, True/False/None, names starting with `_` and "
                "the names the generated module uses (keras, ops, tf, self, data) are reserved; "
                "pick another name",
            )
        )
        return False
    hidden = name.id in STEPC_OPS if value else name.id in OPS
    if hidden or name.id == COMPILED_LOSS:
        out.append(
            error(f"`{name.id}` would hide the operation of that name", name.span, "rename it")
        )
        return False
    return True


def check_attribute_name(name: ir.Name, out: list[Diagnostic], functional: bool) -> bool:
    """A declaration becomes `self.<name>`: it must not replace Keras's own."""
    keras_names = FUNCTIONAL_ATTRIBUTES if functional else SUBCLASS_ATTRIBUTES
    if name.id.startswith("_") or name.id == "seed_generator":
        message = f"`{name.id}` is reserved: Keras and stepc keep such attributes on the model"
    elif name.id in keras_names:
        kind = "Functional model" if functional else "keras.Model"
        message = f"`{name.id}` is already an attribute of every {kind}"
    else:
        return True
    hint = f"the model would hold it as self.{name.id}; pick another name"
    out.append(error(message, name.span, f"{hint} (e.g. `{name.id.strip('_')}_value`)"))
    return False


class _ModelChecker:
    def __init__(self, model: ir.Model, diagnostics: list[Diagnostic]):
        self.model = model
        self.out = diagnostics
        self.first_diagnostic = len(diagnostics)  # where this model's own begin
        self.functional = self._check_base()
        self.symbols = base_symbols(self.functional, model.compile is not None)
        self.usage = Usage()
        self.values: dict[ir.Span, Value] = {}

    def run(self) -> CheckedModel:
        check_identifier(self.model.name, self.out)
        for span in self.model.repeated_decls:
            self.out.append(
                error("a model has at most one init(...), compile(...) and jit_compile", span)
            )
        self._check_jit_compile()
        self._declare_params(self.model.init or (), Kind.INIT_PARAM)
        self._declare_params(self.model.compile or (), Kind.COMPILE_PARAM)
        for decl in self.model.metrics:
            self._declare_object(decl, Kind.METRIC)
        for decl in self.model.losses:
            self._declare_object(decl, Kind.LOSS_OBJECT)
        for decl in self.model.optimizers:
            self._declare_optimizer(decl)
        for decl in self.model.states:
            self._declare(state_symbol(decl, init_numbers(self.model), self.out), decl.name)
            self.usage.names.update(declaration_names(decl))
        self._check_metric_names()
        self._declare_recovered()
        self._check_steps()
        self._warn_unused()
        return CheckedModel(self.model, self.functional, dict(self.symbols), self.values)

    def _declare_recovered(self) -> None:
        """A model item with a syntax error (already reported): the names it would have
        declared exist with an unknown type, and those it mentions are used."""
        for item in self.model.recovered:
            self.usage.names.update(item.mentions)
            for name in item.defines:
                self.symbols.setdefault(name, Symbol(name, Kind.INIT_PARAM, Type.UNKNOWN))

    def _check_jit_compile(self) -> None:
        value = self.model.jit_compile
        if value is not None and value.id not in ("True", "False"):
            self.out.append(
                error(
                    f"jit_compile is True or False, not `{value.id}`",
                    value.span,
                    "`jit_compile = True` makes compile() use XLA unless given jit_compile=False",
                )
            )

    def _check_base(self) -> bool:
        base = self.model.base
        if base is None:
            if self.model.init is None:
                self.out.append(
                    error(
                        f"model `{self.model.name.id}` has neither a base nor init(...)",
                        self.model.name.span,
                        "write `model Name(Functional):` for a model built as Name(inputs, "
                        "outputs), or give it `init(sub: Model, ...)` for one holding sub-models",
                    )
                )
            return False
        if base.id != "Functional":
            hint = "the only base is `Functional`"
            self.out.append(misspelt(f"unknown model base `{base.id}`", base, ["Functional"], hint))
        elif self.model.init is not None:
            self.out.append(
                error(
                    "a Functional model cannot declare init(...)",
                    self.model.init_span or base.span,
                    "it is constructed as Name(inputs, outputs); hold sub-models in a model "
                    "without a base instead",
                )
            )
        return True

    def _declare(self, symbol: Symbol, name: ir.Name) -> None:
        # A bad name is reported but still declared, so its uses do not cascade.
        # A number never is called, so it may take an operation's name (`beta: float`).
        value = symbol.type in (Type.NUMBER, Type.STRING, Type.BOOL)
        if check_identifier(name, self.out, value=value):
            check_attribute_name(name, self.out, self.functional)
        previous = self.symbols.get(name.id)
        if previous is not None and previous.span is None:
            return  # a built-in name: check_identifier or check_attribute_name said why
        if previous is not None:
            where = f" on line {previous.span.line}" if previous.span else ""
            self.out.append(error(f"`{name.id}` is already declared{where}", name.span))
            return
        self.symbols[name.id] = symbol

    def _declare_params(self, params: tuple[ir.Param, ...], kind: Kind) -> None:
        self.out.extend(order_problems(params))
        in_compile = kind is Kind.COMPILE_PARAM
        keras_seen: dict[str, ir.Span] = {}
        for param in params:
            problems = type_problems(param, in_compile) + default_problems(param, in_compile)
            self.out.extend(problems)
            if is_keras_argument(param, in_compile):
                if _check_unique(param.name, keras_seen, "compile() parameter", self.out):
                    self._declare_keras_argument(param)
                continue
            type_ = PARAM_TYPES.get(param.type_name.id, Type.UNKNOWN)
            type_ = Type.UNKNOWN if problems and param.type_name.id not in ALL_TYPES else type_
            symbol = Symbol(param.name.id, kind, type_, param.name.span, param.type_name.id)
            self._declare(symbol, param.name)

    def _declare_keras_argument(self, param: ir.Param) -> None:
        """Keras's own `optimizer` is `using optimizer` (and a minimize's default);
        its loss and metrics are reached only through compiled_loss/compiled_metrics."""
        if param.name.id == KERAS_OPTIMIZER:
            self.symbols[KERAS_OPTIMIZER] = Symbol(
                KERAS_OPTIMIZER, Kind.KERAS_OPTIMIZER, Type.OPTIMIZER, param.name.span, "Optimizer"
            )

    def _declare_optimizer(self, decl: ir.ObjectDecl) -> None:
        """`optimizer NAME = Class(...)`: built in compile() from its numbers."""
        if decl.class_name.id not in OPTIMIZER_CONSTRUCTORS:
            hint = "the optimizer classes are " + ", ".join(OPTIMIZER_CONSTRUCTORS)
            message = f"unknown optimizer class `{decl.class_name.id}`"
            self.out.append(misspelt(message, decl.class_name, OPTIMIZER_CONSTRUCTORS, hint))
        if self.model.compile is None:
            self.out.append(
                error(
                    f"optimizer `{decl.name.id}` is built in the model's compile(), which "
                    "this model does not declare",
                    decl.span,
                    "declare the model's compile(...) (it may take no parameters: `compile()`)",
                )
            )
        keras_own = decl.name.id == KERAS_OPTIMIZER
        problem = ema_problem(decl, keras_own)
        self.out.extend([problem] if problem else [])
        self._check_constructor_args(decl, Kind.OPTIMIZER)
        kind = Kind.KERAS_OPTIMIZER if keras_own else Kind.OPTIMIZER
        symbol = Symbol(decl.name.id, kind, Type.OPTIMIZER, decl.name.span, decl.class_name.id)
        if not keras_own:
            self._declare(symbol, decl.name)
            return
        previous = self.symbols.get(KERAS_OPTIMIZER)
        if previous is not None and previous.span is not None:  # compile(optimizer: ...)
            where = f"line {previous.span.line}"
            self.out.append(error(f"`optimizer` is already declared on {where}", decl.name.span))
        self.symbols[KERAS_OPTIMIZER] = symbol

    def _declare_object(self, decl: ir.ObjectDecl, kind: Kind) -> None:
        classes = METRIC_CLASSES if kind is Kind.METRIC else LOSS_CLASSES
        what = "metric" if kind is Kind.METRIC else "loss"
        if decl.class_name.id not in classes:
            hint = f"the {what} classes include " + ", ".join(sorted(classes)[:6]) + ", ..."
            message = f"unknown {what} class `{decl.class_name.id}`"
            self.out.append(misspelt(message, decl.class_name, classes, hint))
        self._check_constructor_args(decl, kind)
        type_ = Type.METRIC if kind is Kind.METRIC else Type.LOSS
        self._declare(
            Symbol(decl.name.id, kind, type_, decl.name.span, decl.class_name.id), decl.name
        )

    def _check_constructor_args(self, decl: ir.ObjectDecl, kind: Kind) -> None:
        self.out.extend(repeated_keywords(decl.keywords))
        # Loss objects and optimizers may read the model's numbers (built where they are).
        numbers = number_parameters(self.model)
        reads_numbers = kind in (Kind.LOSS_OBJECT, Kind.OPTIMIZER)
        for value in (*decl.args, *(k.value for k in decl.keywords)):
            problem = argument_problem(value, numbers, reads_numbers)
            self.out.extend([problem] if problem else [])
            if isinstance(value, ir.Name) and value.id in numbers:
                self.usage.names.add(value.id)
        for kw in decl.keywords:
            if keyword.iskeyword(kw.name) or kw.name.startswith("_"):
                self.out.append(
                    error(
                        f"`{kw.name}` cannot be an argument name",
                        kw.span,
                        'use the keyword arguments of the Keras class, e.g. name="..."',
                    )
                )
            if kind is Kind.LOSS_OBJECT and kw.name == REDUCTION:
                self.out.append(reduction_error(kw.span))
        module = {Kind.METRIC: METRICS, Kind.LOSS_OBJECT: LOSSES}.get(kind, OPTIMIZERS)
        self.out.extend(constructor_problems(decl, module))

    def _check_metric_names(self) -> None:
        """Keras reports each metric under its `name`: two alike lose one."""
        seen: dict[str, ir.ObjectDecl] = {}
        for decl in self.model.metrics:
            name, span = metric_name(decl)
            if name is None:
                continue
            keras_tracker = name == LOSS_TRACKER_NAME and self._keras_loss_tracker()
            if keras_tracker:
                self.out.append(
                    error(
                        f'metric `{decl.name.id}` is named "loss", as Keras\'s loss tracker is',
                        span,
                        f"this model's step uses {keras_tracker}, whose tracker Keras reports "
                        'as `loss`: name the metric otherwise, e.g. `Mean(name="total_loss")`',
                    )
                )
            elif name in seen:
                message = (
                    f"metrics `{seen[name].name.id}` and `{decl.name.id}` are both named "
                    f'"{name}" in the logs'
                )
                hint = "Keras reports each metric under its name; give each its own `name=`"
                self.out.append(error(message, span, hint))
            seen.setdefault(name, decl)

    def _keras_loss_tracker(self) -> str | None:
        """What makes Keras's own `loss` tracker report: compiled_loss in a step,
        or Keras's default train step (a Functional model without `train`)."""
        for statement in (s for step in self.model.steps for s in step.body):
            for node in ir.walk(statement):
                if isinstance(node, ir.Call) and node.func.id == COMPILED_LOSS:
                    return "compiled_loss"
                if is_loss_tracker_update(node):
                    return "update loss(...)"
        kinds = {step.kind for step in self.model.steps}
        if self.functional and self.model.compile is None and ir.StepKind.TRAIN not in kinds:
            return "Keras's own train_step"
        return None

    def _check_steps(self) -> None:
        seen: dict[str, ir.Span] = {}
        self.declarations_clean = not has_errors(self.out[self.first_diagnostic :])
        self.clean_steps: list[ir.Step] = []
        per_step: list[list[Diagnostic]] = []  # merged: a shared statement's, once
        for step in self.model.steps:
            name = ir.Name(step.kind.value, step.span)
            if _check_unique(name, seen, "step", self.out):
                per_step.append(found := data_line_problems(self.model, step))
                checker = StepChecker(
                    step, self.symbols, self.functional, self.usage, found, self.values
                )
                checker.run()
                if not has_errors(found):
                    self.clean_steps.append(step)
        self.out += shared_block_problems(self.model) + merge_step_findings(self.model, per_step)
        if not self.model.steps:
            self.out.append(
                error(
                    f"model `{self.model.name.id}` has no step",
                    self.model.name.span,
                    "add a `train(x, y):` or `test(x, y):` block",
                )
            )

    def _warn_unused(self) -> None:
        for symbol in self.symbols.values():
            declared = symbol.kind in (
                Kind.INIT_PARAM,
                Kind.COMPILE_PARAM,
                Kind.METRIC,
                Kind.LOSS_OBJECT,
                Kind.OPTIMIZER,
            )
            if declared and symbol.name not in self.usage.names and symbol.span:
                self.out.append(
                    warning(
                        f"{symbol.kind.value} `{symbol.name}` is never used",
                        symbol.span,
                        "remove it, or use it in a step",
                    )
                )
