"""The class writer: a `ModulePlan` becomes the render model of a module.

Owns what Keras 3 writes the same way on every backend: one registered class per
model with its constructor, `compile()`, `metrics`, configs and saving hooks,
and, per framework the module is written for, a mixin class holding that
framework's steps (written by its `StepWriter`, `stepc.emit.frameworks`). The
class takes the mixin of the backend Keras runs on when the module is imported
(`_for_backend`). Imports and helpers are collected as data: each writer names
the helpers it uses. The templates receive finished lines and only arrange them.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepc.check.params import SERIALIZED_TYPES
from stepc.emit.frameworks import ALL, FRAMEWORKS
from stepc.emit.keras.compile import CompileWriter
from stepc.emit.keras.helpers import HELPERS
from stepc.emit.keras.lines import Method, def_line, indent, laid_out, literal, parameter
from stepc.emit.keras.state import init_lines as state_init_lines
from stepc.emit.keras.steps import REGION
from stepc.emit.names import Names
from stepc.emit.pyexpr import INDENT, Text, call, layout, sequence
from stepc.lower.plan import Declaration, ModelPlan, ModulePlan
from stepc.parse import ir

# The key under which a generated model keeps its seed generator's state among its
# own variables (Keras's own keys there are "0", "1", ...).
SEED_STATE_KEY = "seed_generator_state"
# Then the state's index among the Layer parameters' (every seed key starts "seed_";
# Keras's own are "0", "1", ...).
LAYER_SEED_KEY = "seed_layer_state_"


@dataclass(frozen=True)
class StepsModel:
    """A model's steps on one framework: a mixin class of step methods."""

    name: str
    docstring: str
    methods: tuple[Method, ...]


@dataclass(frozen=True)
class ClassModel:
    """A model's class as the template writes it: its methods and step mixins."""

    name: str
    package: str
    docstring: str
    methods: tuple[Method, ...]
    steps: tuple[StepsModel, ...]  # one per framework
    steps_base: str  # the line choosing the mixin: `_GANSteps = _for_backend(...)`


@dataclass(frozen=True)
class ModuleModel:
    """The whole module as the template writes it."""

    spec_name: str
    spec_digest: str
    imports: tuple[str, ...]
    framework_imports: tuple[tuple[str, str], ...]  # (backend, import line): when several
    helpers: tuple[tuple[str, ...], ...]
    classes: tuple[ClassModel, ...]


def render_model(plan: ModulePlan, frameworks: tuple[str, ...] = ALL) -> ModuleModel:
    """The module's render model, with steps for each of `frameworks`."""
    used: dict[str, set[str]] = {name: set() for name in ("", *frameworks)}
    classes = tuple(_ClassWriter(plan, model, used, frameworks).run() for model in plan.models)
    return ModuleModel(
        plan.spec_name,
        plan.spec_digest,
        _imports(frameworks, used),
        _framework_imports(frameworks, used),
        _helpers(used, frameworks),
        classes,
    )


def _imports(frameworks: tuple[str, ...], used: dict[str, set[str]]) -> tuple[str, ...]:
    """Keras, and the framework's own import when the module holds one framework."""
    if len(frameworks) == 1 and _needs_import(frameworks[0], used):
        return ("import keras", FRAMEWORKS[frameworks[0]].import_line, "from keras import ops")
    return ("import keras", "from keras import ops")


def _framework_imports(frameworks, used: dict[str, set[str]]) -> tuple[tuple[str, str], ...]:
    """Several frameworks: each imported only when Keras runs on it."""
    if len(frameworks) == 1:
        return ()
    needed = [name for name in frameworks if _needs_import(name, used)]
    return tuple((name, FRAMEWORKS[name].import_line) for name in needed)


def _needs_import(framework: str, used: dict[str, set[str]]) -> bool:
    """A framework's module is imported when its steps differentiate (every
    framework spells a region in its own API) or use one of its helpers."""
    return bool(used[framework] & {REGION, *FRAMEWORKS[framework].helpers})


def _helpers(used: dict[str, set[str]], frameworks) -> tuple[tuple[str, ...], ...]:
    """The shared helpers any writer used, then each framework's own."""
    every = set().union(*used.values())
    helpers = [HELPERS[key] for key in HELPERS if key in every]
    for name in frameworks:
        own = FRAMEWORKS[name].helpers
        helpers += [own[key] for key in own if key in used[name]]
    return tuple(helpers)


class _ClassWriter:
    def __init__(self, plan: ModulePlan, model: ModelPlan, used: dict, frameworks):
        self.plan = plan
        self.model = model
        self.used = used[""]  # the class's own methods: shared helpers only
        self.step_used = used  # each framework's writers: shared and its own helpers
        self.frameworks = frameworks

    def run(self) -> ClassModel:
        init = self._init()
        methods = [init] if len(init.lines) > 2 else []
        compile_writer = CompileWriter(self.plan, self.model, self.used)
        if self.model.compile is not None:
            methods.append(self._with_framework_lines(compile_writer.compile()))
        elif compile_writer.wraps_keras_compile():
            methods.append(compile_writer.keras_compile())
        if self.model.own_metrics_only:
            methods.append(self._metrics_property())
        elif self.model.compiled_metrics_once_built:
            methods.append(self._built_metrics_property())
        methods += [self._refused_step(kind, span) for kind, span in self.model.missing_steps]
        if not self.model.functional:
            methods += [self._get_config(), self._from_config()]
        if self.model.compile is not None:
            methods += [compile_writer.get_compile_config(), compile_writer.compile_from_config()]
        elif compile_writer.wraps_keras_compile():
            methods.append(compile_writer.keras_compile_from_config())
        if self.model.uses_random or self.model.seeded_layers:
            methods += [self._save_own_variables(), self._load_own_variables()]
        line = self.model.span.line
        docstring = f"Generated from {self.plan.spec_name}:{line}; see the spec for the algorithm."
        steps = tuple(self._steps(name) for name in self.frameworks)
        return ClassModel(
            self.model.name, self.plan.package, docstring, tuple(methods), steps, self._base()
        )

    def _steps(self, framework: str) -> StepsModel:
        """The model's steps as `framework` writes them, in a mixin of their own."""
        writer_class = FRAMEWORKS[framework].writer
        methods = []
        for step in self.model.steps:
            names = Names(self.model)
            used = self.step_used[framework]
            writer = writer_class(self.plan.spec_name, self.model, step, names, used)
            methods.append(Method(tuple(writer.run())))
        methods += [Method(lines) for lines in FRAMEWORKS[framework].mixin_methods(self.model)]
        docstring = f"{self.model.name}'s steps on {FRAMEWORKS[framework].label}."
        return StepsModel(self._steps_name(framework), docstring, tuple(methods))

    def _steps_name(self, framework: str) -> str:
        return f"_{self.model.name}{FRAMEWORKS[framework].title}Steps"

    def _base(self) -> str:
        """`_GANSteps = _for_backend(tensorflow=..., ...)`: the mixin of Keras's backend."""
        self.used.add("for_backend")
        chosen = [f"{name}={self._steps_name(name)}" for name in self.frameworks]
        rendered = call("_for_backend", chosen)
        return "\n".join(layout(f"_{self.model.name}Steps = ", rendered.doc, ""))

    def _with_framework_lines(self, method: Method) -> Method:
        """compile() ending with what a framework adds (JAX: the optimizers fit() threads)."""
        lines = list(method.lines)
        for name in self.frameworks:
            extra = FRAMEWORKS[name].compile_lines(self.model)
            if extra and len(self.frameworks) > 1:
                lines.append(f'{INDENT * 2}if keras.backend.backend() == "{name}":')
                extra = [INDENT + line for line in extra]
            lines += [INDENT * 2 + line for line in extra]
        return Method(tuple(lines))

    def _init(self) -> Method:
        params = [p.name for p in self.model.init]
        signature = [parameter(p) for p in self.model.init]
        if self.model.functional:
            lines = [
                "def __init__(self, *args, **kwargs):",
                "    super().__init__(*args, **kwargs)",
            ]
        else:
            lines = def_line("__init__", ["self", *signature, "**kwargs"])
            lines.append("    super().__init__(**kwargs)")
            lines += [f"    self.{name} = {name}" for name in params]
        for decl in self.model.metrics:
            lines += self._construct(decl, "metrics")
        for decl in (d for d in self.model.losses if not d.in_compile):
            lines += self._construct(decl, "losses")
        if self.model.uses_random:
            lines.append(
                "    # The step's random draws: reproducible under keras.utils.set_random_seed."
            )
            lines.append("    self.seed_generator = keras.random.SeedGenerator()")
        python = Names(self.model).python
        for state in self.model.states:
            lines += state_init_lines(state, self.plan.spec_name, python, self.used)
        if not self.model.functional:
            lines += [
                "    # Its sub-models are built, and it has no call() of its own.",
                "    self.built = True",
            ]
        return Method(tuple(indent(lines)))

    def _construct(self, decl: Declaration, module: str) -> list[str]:
        args = [literal(a) for a in decl.args]  # an init parameter's name: its local
        args += [f"{k.name}={literal(k.value)}" for k in decl.keywords]
        rendered = call(f"keras.{module}.{decl.class_name}", args)
        comment = f"    # {self.plan.spec_name}:{decl.span.line}"
        return [comment, *laid_out(f"self.{decl.name} = ", rendered.doc)]

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
            f"def {method}(self, *args):  # (data); on JAX (state, data)",
            f"    # {where}  {written}",
            *laid_out("raise ", call("ValueError", [message]).doc),
        ]
        return Method(tuple(indent(lines)))

    def _metrics_property(self) -> Method:
        own = [d.name for d in self.model.metrics] + list(self.model.metric_params)
        trackers = sequence("[", [f"self.{name}" for name in own], "]")
        prefix = "trackers = " if self.model.lists_compiled_metrics else "return "
        lines = [
            "@property",
            "def metrics(self):",
            "    # The steps never use the compiled loss: Keras's loss tracker is not listed",
            "    # (its 0.0 would replace a returned `loss`); Keras resets these every epoch.",
            *laid_out(prefix, trackers.doc),
        ]
        if self.model.lists_compiled_metrics:
            given = "self._compile_metrics is not None"
            if self.model.compiled_metrics_once_built:  # a step never updates them
                given += " and self._compile_metrics.built"
            lines += [
                f"    if {given}:  # compile(metrics=...)",
                "        trackers.append(self._compile_metrics)",
                "    return trackers",
            ]
        return Method(tuple(indent(lines)))

    def _built_metrics_property(self) -> Method:
        """Keras's metrics, compile()'s once built: a step that never updates them
        leaves them unbuilt, and Keras cannot report an unbuilt metric."""
        lines = [
            "@property",
            "def metrics(self):",
            "    # compile()'s metrics once a step has updated them: fit() reports every",
            "    # metric listed here, and one never updated has no result.",
            "    return [m for m in super().metrics if m is not self._compile_metrics or m.built]",
        ]
        return Method(tuple(indent(lines)))

    def _get_config(self) -> Method:
        lines = [
            "def get_config(self):",
            '    config = {"name": self.name, "trainable": self.trainable}',
        ]
        for param in self.model.init:
            value = f"self.{param.name}"
            if param.type_name in SERIALIZED_TYPES:
                value = call("keras.saving.serialize_keras_object", [value]).doc
            lines += laid_out(f'config["{param.name}"] = ', value)
        lines.append("    return config")
        return Method(tuple(indent(lines)))

    def _from_config(self) -> Method:
        models = [p.name for p in self.model.init if p.type_name in SERIALIZED_TYPES]
        lines = ["@classmethod", "def from_config(cls, config):", "    config = dict(config)"]
        for name in models:
            value = call("keras.saving.deserialize_keras_object", [f'config["{name}"]'])
            lines += laid_out(f'config["{name}"] = ', value.doc)
        lines.append("    return cls(**config)")
        return Method(tuple(indent(lines)))

    def _save_own_variables(self) -> Method:
        lines = [
            "def save_own_variables(self, store):",
            "    # Keras saves no SeedGenerator's state; with it, a restored model (load_model,",
            "    # load_weights, BackupAndRestore) draws the noise the original would draw next.",
            "    super().save_own_variables(store)",
        ]
        if self.model.uses_random:
            lines.append(f'    store["{SEED_STATE_KEY}"] = self.seed_generator.state')
        if self.model.seeded_layers:
            lines += [
                *self._seeded_layers(),
                "    for i, state in enumerate(_seed_states(*layers)):",
                f'        store[f"{LAYER_SEED_KEY}{{i}}"] = state',
            ]
        return Method(tuple(indent(lines)))

    def _seeded_layers(self) -> list[str]:
        """`layers = (...)`: the Layer parameters (augmenters) whose seed states are saved."""
        self.used.add("seed_states")
        names = [f"self.{name}" for name in self.model.seeded_layers]
        return [
            "    # The Layer parameters' seed states too (an augmenter's noise).",
            *laid_out("layers = ", sequence("(", names, ")").doc),
        ]

    def _load_own_variables(self) -> Method:
        lines = [
            "def load_own_variables(self, store):",
            "    # A file saved without seed states (by an older stepc) leaves the fresh",
            "    # ones; Keras's own variables load as they always did.",
            '    own = {k: store[k] for k in store.keys() if not k.startswith("seed_")}',
            "    super().load_own_variables(own)",
        ]
        if self.model.uses_random:
            lines += [
                f'    if "{SEED_STATE_KEY}" in store.keys():',
                f'        self.seed_generator.state.assign(store["{SEED_STATE_KEY}"])',
            ]
        if self.model.seeded_layers:
            lines += [
                *self._seeded_layers(),
                "    for i, state in enumerate(_seed_states(*layers)):",
                f'        if f"{LAYER_SEED_KEY}{{i}}" in store.keys():',
                f'            state.assign(store[f"{LAYER_SEED_KEY}{{i}}"])',
            ]
        return Method(tuple(indent(lines)))
