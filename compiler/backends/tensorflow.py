"""The TensorFlow backend: a `ModulePlan` becomes the render model of a module
whose models train with `tf.GradientTape`, as Keras's own TensorFlow trainer does.

Owns every TensorFlow- and Keras-specific spelling: how each name and call of a
spec is written in Python, the tape, the gradient and apply lines, unpacking,
the trace-time batch checks, constructors, compile(), the serialization hooks.
The templates receive finished lines and only arrange them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stepc import ir
from stepc.backends.names import Names
from stepc.backends.tf_helpers import HELPERS
from stepc.backends.tf_steps import StepWriter, variables_of
from stepc.builtins import KERAS_OBJECT_TYPES, MODEL_TYPES
from stepc.plan import Declaration, ModelPlan, ModulePlan
from stepc.pyexpr import (
    INDENT,
    Concat,
    Text,
    call,
    flat,
    layout,
    python_number,
    sequence,
    string_literal,
)

# The key under which a generated model keeps its seed generator's state among its
# own variables (Keras's own keys there are "0", "1", ...).
SEED_STATE_KEY = "seed_generator_state"


@dataclass(frozen=True)
class Method:
    lines: tuple[str, ...]  # complete, indented source lines


@dataclass(frozen=True)
class ClassModel:
    name: str
    package: str
    docstring: str
    methods: tuple[Method, ...]


@dataclass(frozen=True)
class ModuleModel:
    spec_name: str
    spec_digest: str
    imports: tuple[str, ...]
    helpers: tuple[tuple[str, ...], ...]
    classes: tuple[ClassModel, ...]


def render_model(plan: ModulePlan) -> ModuleModel:
    used: set[str] = set()
    classes = tuple(_ClassWriter(plan, model, used).run() for model in plan.models)
    helpers = tuple(HELPERS[name] for name in HELPERS if name in used)
    return ModuleModel(
        plan.spec_name, plan.spec_digest, _imports(helpers, classes), helpers, classes
    )


def _imports(helpers, classes) -> tuple[str, ...]:
    """Only what the module uses, so it is lint-clean as generated."""
    code = "\n".join(
        [*(line for h in helpers for line in h)]
        + [line for c in classes for m in c.methods for line in m.lines]
    )
    imports = ["import keras"]
    if re.search(r"\btf\.", code):
        imports.append("import tensorflow as tf")
    if re.search(r"\bops\.", code):
        imports.append("from keras import ops")
    return tuple(imports)


class _ClassWriter:
    def __init__(self, plan: ModulePlan, model: ModelPlan, used: set[str]):
        self.plan = plan
        self.model = model
        self.used = used

    def run(self) -> ClassModel:
        init = self._init()
        methods = [init] if len(init.lines) > 2 else []
        if self.model.compile is not None:
            methods.append(self._compile())
        elif self.model.jit_compile is not None:
            methods.append(self._keras_compile_with_jit())
        if self.model.own_metrics_only:
            methods.append(self._metrics_property())
        for step in self.model.steps:
            names = Names(self.model)
            writer = StepWriter(self.plan.spec_name, self.model, step, names, self.used)
            methods.append(Method(tuple(writer.run())))
        methods += [self._refused_step(kind, span) for kind, span in self.model.missing_steps]
        if not self.model.functional:
            methods += [self._get_config(), self._from_config()]
        if self.model.compile is not None:
            methods += [self._get_compile_config(), self._compile_from_config()]
        if self.model.uses_random:
            methods += [self._save_own_variables(), self._load_own_variables()]
        line = self.model.span.line
        docstring = f"Generated from {self.plan.spec_name}:{line}; see the spec for the algorithm."
        return ClassModel(self.model.name, self.plan.package, docstring, tuple(methods))

    def _init(self) -> Method:
        params = [p.name for p in self.model.init]
        if self.model.functional:
            lines = [
                "def __init__(self, *args, **kwargs):",
                "    super().__init__(*args, **kwargs)",
            ]
        else:
            lines = _def_line("__init__", ["self", *params, "**kwargs"])
            lines.append("    super().__init__(**kwargs)")
            lines += [f"    self.{name} = {name}" for name in params]
        for decl in self.model.metrics:
            lines += self._construct(decl, "metrics")
        for decl in self.model.losses:
            lines += self._construct(decl, "losses")
        if self.model.uses_random:
            lines.append(
                "    # The step's random draws: reproducible under keras.utils.set_random_seed."
            )
            lines.append("    self.seed_generator = keras.random.SeedGenerator()")
        if not self.model.functional:
            lines += [
                "    # Its sub-models are built, and it has no call() of its own.",
                "    self.built = True",
            ]
        return Method(tuple(_indent(lines)))

    def _construct(self, decl: Declaration, module: str) -> list[str]:
        args = [_literal(a) for a in decl.args]
        args += [f"{k.name}={_literal(k.value)}" for k in decl.keywords]
        rendered = call(f"keras.{module}.{decl.class_name}", args)
        comment = f"    # {self.plan.spec_name}:{decl.span.line}"
        return [comment, *_laid_out(f"self.{decl.name} = ", rendered.doc)]

    def _refused_step(self, kind: ir.StepKind, span: ir.Span) -> Method:
        """evaluate() or predict() on a model with no call() and no such step: say
        what to add (Keras's own step would fail on the missing call())."""
        where = f"{self.plan.spec_name}:{span.line}"
        if kind is ir.StepKind.TEST:
            method, caller, written = "test_step", "evaluate", "no test(...) block"
            why = (
                "stepc derives one only from a train step that updates trackers of its "
                "own (and no compiled loss or metrics); add a `test(...)` block to the spec"
            )
        else:
            method, caller, written = "predict_step", "predict", "no predict(...) block"
            why = "add a `predict(...)` block to the spec, or call its sub-models"
        message = Text(f"{where}: {self.model.name} has no {method} for {caller}(); {why}")
        lines = [
            f"def {method}(self, data):",
            f"    # {where}  {written}",
            *_laid_out("raise ", call("ValueError", [message]).doc),
        ]
        return Method(tuple(_indent(lines)))

    def _compile_where(self) -> str:
        """`spec:line` of the compile(...) declaration, for the messages of compile()."""
        return f"{self.plan.spec_name}:{(self.model.compile_span or self.model.span).line}"

    def _jit_default(self) -> list[str]:
        """The spec's `jit_compile = ...`, as compile()'s default."""
        value = self.model.jit_compile
        if value is None:
            return []
        return [
            f"    # {self.plan.spec_name}:{value.span.line}  jit_compile = {value.id}"
            + (": XLA, unless compile(jit_compile=False)" if value.id == "True" else ""),
            f'    kwargs.setdefault("jit_compile", {value.id})',
        ]

    def _keras_compile_with_jit(self) -> Method:
        lines = [
            "def compile(self, *args, **kwargs):",
            *self._jit_default(),
            "    super().compile(*args, **kwargs)",
        ]
        return Method(tuple(_indent(lines)))

    def _compile(self) -> Method:
        params = self.model.compile or ()
        names = [p.name for p in params]
        lines = _def_line("compile", ["self", *names, "**kwargs"])
        lines += [
            "    # jit_compile, steps_per_execution, run_eagerly... reach Keras's compile().",
            "    # The step uses only its own optimizers: model.optimizer stays None unless",
            "    # given (not an unused RMSprop that callbacks would read or build).",
            '    kwargs.setdefault("optimizer", None)',
            *self._jit_default(),
            "    super().compile(**kwargs)",
        ]
        for param in params:
            lines += self._compile_param(param.name, param.type_name)
        lines += self._build_optimizers()
        return Method(tuple(_indent(lines)))

    def _build_optimizers(self) -> list[str]:
        """Build each optimizer on the variables it updates, as Keras's own compile
        path does for model.optimizer: its slots then exist before the first step
        (in the distribution strategy's scope) and its saved state can load."""
        lines = ["    # Build each optimizer on the variables it updates (its state then loads)."]
        for optimizer, targets in self.model.optimizer_targets:
            variables = " + ".join(variables_of(t) for t in targets)
            lines.append(f"    if {variables}:")
            lines += _laid_out("", call(f"self.{optimizer}.build", [variables]).doc, 2)
        return lines if self.model.optimizer_targets else []

    def _compile_param(self, name: str, type_name: str) -> list[str]:
        if type_name == "Optimizer":
            return self._compile_optimizer(name)
        if type_name != "Loss":
            return [f"    self.{name} = {name}"]
        where = self._compile_where()
        message = Text(
            f"{where}: {name} must be a keras.losses.Loss object that averages over the "
            "batch (e.g. keras.losses.BinaryCrossentropy()); stepc scales its value for "
            "distribution and needs a scalar"
        )
        self.used.add("loss_object")
        return [
            f"    {name} = _loss_object({name})  # a name too, as Keras's compile() takes it",
            f"    if not isinstance({name}, keras.losses.Loss) or {name}.reduction not in (",
            '        "sum_over_batch_size",',
            '        "mean",',
            "    ):",
            *_laid_out("raise ", call("TypeError", [message]).doc, 2),
            f"    self.{name} = {name}",
        ]

    def _compile_optimizer(self, name: str) -> list[str]:
        """Accept an optimizer's name as Keras's compile() does, and refuse anything
        else than an optimizer naming the spec line. Refuse use_ema: fit() swaps the
        moving averages in (finalize_variable_values) only for model.optimizer, so a
        spec's own optimizer would end with the raw weights and silently train
        something else than asked; then wrap the optimizer for the dtype policy."""
        self.used.update(("ema", "policy"))
        where = self._compile_where()
        message = Text(
            f"{where}: {name} has use_ema=True, but fit() swaps the moving averages into "
            "the weights only for Keras's own model.optimizer, not for an optimizer of "
            f"the spec's compile(); give {name} without use_ema"
        )
        kind = Text(
            f"{where}: {name} must be a keras.optimizers.Optimizer, or the name of one "
            "as Keras's compile() takes it (e.g. 'adam')"
        )
        return [
            "    # A name or a config, as Keras's compile() takes them.",
            f"    if isinstance({name}, (str, dict)):",
            f"        {name} = keras.optimizers.get({name})",
            f"    if not isinstance({name}, keras.optimizers.Optimizer):",
            *_laid_out("raise ", call("TypeError", [kind]).doc, 2),
            f"    if _uses_ema({name}):",
            *_laid_out("raise ", call("ValueError", [message]).doc, 2),
            f"    self.{name} = _for_dtype_policy(self, {name})",
        ]

    def _metrics_property(self) -> Method:
        trackers = sequence("[", [f"self.{d.name}" for d in self.model.metrics], "]")
        prefix = "trackers = " if self.model.lists_compiled_metrics else "return "
        lines = [
            "@property",
            "def metrics(self):",
            "    # The steps never use the compiled loss: Keras's loss tracker is not listed",
            "    # (its 0.0 would replace a returned `loss`); Keras resets these every epoch.",
            *_laid_out(prefix, trackers.doc),
        ]
        if self.model.lists_compiled_metrics:
            lines += [
                "    if self._compile_metrics is not None:  # compile(metrics=...)",
                "        trackers.append(self._compile_metrics)",
                "    return trackers",
            ]
        return Method(tuple(_indent(lines)))

    def _get_config(self) -> Method:
        lines = [
            "def get_config(self):",
            '    config = {"name": self.name, "trainable": self.trainable}',
        ]
        for param in self.model.init:
            value = f"self.{param.name}"
            if param.type_name in MODEL_TYPES:
                value = call("keras.saving.serialize_keras_object", [value]).doc
            lines += _laid_out(f'config["{param.name}"] = ', value)
        lines.append("    return config")
        return Method(tuple(_indent(lines)))

    def _from_config(self) -> Method:
        models = [p.name for p in self.model.init if p.type_name in MODEL_TYPES]
        lines = ["@classmethod", "def from_config(cls, config):", "    config = dict(config)"]
        for name in models:
            value = call("keras.saving.deserialize_keras_object", [f'config["{name}"]'])
            lines += _laid_out(f'config["{name}"] = ', value.doc)
        lines.append("    return cls(**config)")
        return Method(tuple(_indent(lines)))

    def _get_compile_config(self) -> Method:
        lines = ["def get_compile_config(self):", "    return {"]
        for param in self.model.compile or ():
            value = f"self.{param.name}"
            if param.type_name in KERAS_OBJECT_TYPES:
                value = f"keras.saving.serialize_keras_object({value})"
            lines.append(f'        "{param.name}": {value},')
        lines.append("    }")
        return Method(tuple(_indent(lines)))

    def _compile_from_config(self) -> Method:
        lines = [
            "def compile_from_config(self, config):",
            "    self.compile(",
            "        **{",
            "            name: keras.saving.deserialize_keras_object(value)",
            "            for name, value in config.items()",
            "        }",
            "    )",
        ]
        return Method(tuple(_indent(lines)))

    def _save_own_variables(self) -> Method:
        lines = [
            "def save_own_variables(self, store):",
            "    # Keras saves no SeedGenerator's state; with it, a restored model (load_model,",
            "    # load_weights, BackupAndRestore) draws the noise the original would draw next.",
            "    super().save_own_variables(store)",
            f'    store["{SEED_STATE_KEY}"] = self.seed_generator.state',
        ]
        return Method(tuple(_indent(lines)))

    def _load_own_variables(self) -> Method:
        lines = [
            "def load_own_variables(self, store):",
            "    # A file saved without the seed state (by an older stepc) leaves the fresh",
            "    # state; Keras's own variables load as they always did.",
            f'    if "{SEED_STATE_KEY}" not in store.keys():',
            "        super().load_own_variables(store)",
            "        return",
            f'    own = {{k: store[k] for k in store.keys() if k != "{SEED_STATE_KEY}"}}',
            "    super().load_own_variables(own)",
            f'    self.seed_generator.state.assign(store["{SEED_STATE_KEY}"])',
        ]
        return Method(tuple(_indent(lines)))


def _def_line(name: str, params: list[str]) -> list[str]:
    """A `def` line, its parameters broken as ruff breaks a long signature."""
    return _laid_out("def ", Concat((call(name, params).doc, ":")), depth=0)


def _laid_out(prefix: str, doc, depth: int = 1) -> list[str]:
    """`layout` for a line at `depth` inside a method, measured at its final
    indentation (one level deeper, under the class) and returned relative to
    the method, as the other lines of a `_ClassWriter` method are."""
    return [line[len(INDENT) :] for line in layout(prefix, doc, INDENT * (depth + 1))]


def _indent(lines: list[str]) -> list[str]:
    return [INDENT + line if line else line for line in lines]


def _literal(expr: ir.Expr) -> str:
    """A constructor argument; the checker allows literals only."""
    if isinstance(expr, ir.String):
        return string_literal(expr.value)
    if isinstance(expr, ir.Number):
        return python_number(expr)
    if isinstance(expr, ir.Negate):
        return "-" + _literal(expr.operand)
    if isinstance(expr, ir.Name):
        return expr.id
    items = [_literal(i) for i in expr.items]
    if isinstance(expr, ir.ListExpr):
        return flat(sequence("[", items, "]").doc)
    return flat(sequence("(", items, ")").doc)
