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
from stepc.backends.tf_steps import StepWriter, variables_of
from stepc.plan import Declaration, ModelPlan, ModulePlan
from stepc.pyexpr import INDENT, Text, call, flat, layout, python_number, sequence, string_literal

HELPERS = {
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
    "policy": (
        "def _for_dtype_policy(model, optimizer):",
        '    """Wrap an optimizer for loss scaling under mixed_float16, as compile() does."""',
        '    if model.dtype_policy.name == "mixed_float16" and not isinstance(',
        "        optimizer, keras.optimizers.LossScaleOptimizer",
        "    ):",
        "        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)",
        "    return optimizer",
    ),
}


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
        if self.model.own_metrics_only:
            methods.append(self._metrics_property())
        for step in self.model.steps:
            names = Names(self.model)
            writer = StepWriter(self.plan.spec_name, self.model, step, names, self.used)
            methods.append(Method(tuple(writer.run())))
        if not self.model.functional:
            methods += [self._get_config(), self._from_config()]
        if self.model.compile is not None:
            methods += [self._get_compile_config(), self._compile_from_config()]
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
            lines = [f"def __init__(self, {', '.join([*params, '**kwargs'])}):"]
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

    def _compile(self) -> Method:
        params = self.model.compile or ()
        names = [p.name for p in params]
        lines = [f"def compile(self, {', '.join([*names, '**kwargs'])}):"]
        lines.append(
            "    # jit_compile, steps_per_execution, run_eagerly... reach Keras's compile()."
        )
        lines.append("    super().compile(**kwargs)")
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
            self.used.add("policy")
            return [f"    self.{name} = _for_dtype_policy(self, {name})"]
        if type_name != "Loss":
            return [f"    self.{name} = {name}"]
        where = f"{self.plan.spec_name}:{self.model.span.line}"
        message = Text(
            f"{where}: {name} must be a keras.losses.Loss object that averages over the "
            "batch (e.g. keras.losses.BinaryCrossentropy()); stepc scales its value for "
            "distribution and needs a scalar"
        )
        return [
            f"    if not isinstance({name}, keras.losses.Loss) or {name}.reduction not in (",
            '        "sum_over_batch_size",',
            '        "mean",',
            "    ):",
            *_laid_out("raise ", call("TypeError", [message]).doc, 2),
            f"    self.{name} = {name}",
        ]

    def _metrics_property(self) -> Method:
        trackers = ", ".join(f"self.{d.name}" for d in self.model.metrics)
        lines = [
            "@property",
            "def metrics(self):",
            "    # The step reports only this model's own trackers (no compiled loss or",
            "    # metrics); Keras resets the ones listed here at every epoch.",
            *_laid_out("return ", f"[{trackers}]"),
        ]
        return Method(tuple(_indent(lines)))

    def _get_config(self) -> Method:
        lines = [
            "def get_config(self):",
            '    config = {"name": self.name, "trainable": self.trainable}',
        ]
        for param in self.model.init:
            value = f"self.{param.name}"
            if param.type_name == "Model":
                value = call("keras.saving.serialize_keras_object", [value]).doc
            lines += _laid_out(f'config["{param.name}"] = ', value)
        lines.append("    return config")
        return Method(tuple(_indent(lines)))

    def _from_config(self) -> Method:
        models = [p.name for p in self.model.init if p.type_name == "Model"]
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
            if param.type_name in ("Optimizer", "Loss", "Model"):
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
