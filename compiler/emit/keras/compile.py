"""The TensorFlow spelling of a model's own compile() and of its compile config.

Owns the generated `compile(self, ..., **kwargs)` of a spec's `compile(...)`:
Keras's own arguments (`optimizer`, `loss`, `metrics`, ...) forwarded to
Keras's compile(), which keeps them (`model.optimizer`, the compiled loss and
metrics); the spec's own parameters checked and held; the optimizers and loss
objects the model builds from compile()'s numbers; each optimizer built on
the variables it updates, so its saved state loads. Also `get_compile_config`
/ `compile_from_config`, which call compile() again with the same arguments.
"""

from __future__ import annotations

from stepc.check.params import SERIALIZED_TYPES
from stepc.emit.keras.lines import Method, def_line, entry, indent, laid_out, literal, parameter
from stepc.emit.keras.steps import variables_of
from stepc.emit.pyexpr import Chain, Concat, Text, call
from stepc.lower.plan import Declaration, ModelPlan, ModulePlan
from stepc.tables.builtins import KERAS_OPTIMIZER

_FORWARDED = "    # jit_compile, steps_per_execution, run_eagerly... reach Keras's compile()."


class CompileWriter:
    def __init__(self, plan: ModulePlan, model: ModelPlan, used: set[str]):
        self.plan = plan
        self.model = model
        self.used = used
        self.params = model.compile or ()

    def where(self) -> str:
        """`spec:line` of the compile(...) declaration, for the messages of compile()."""
        return f"{self.plan.spec_name}:{(self.model.compile_span or self.model.span).line}"

    def jit_default(self) -> list[str]:
        """The spec's `jit_compile = ...`, as compile()'s default."""
        value = self.model.jit_compile
        if value is None:
            return []
        comment = f"    # {self.plan.spec_name}:{value.span.line}  jit_compile = {value.id}"
        if value.id != "True":
            return [comment, f'    kwargs.setdefault("jit_compile", {value.id})']
        return [
            comment + ": XLA, unless compile(jit_compile=False)",
            "    # Not on torch: torch.compile takes minutes, and fails on a gradient penalty.",
            '    if keras.backend.backend() != "torch":',
            '        kwargs.setdefault("jit_compile", True)',
        ]

    # ---------------------------------------------------------------- compile()

    def compile(self) -> Method:
        lines = def_line("compile", ["self", *(parameter(p) for p in self.params), "**kwargs"])
        lines.append(_FORWARDED)
        lines += self._keras_arguments()
        lines += [*self.jit_default(), "    super().compile(**kwargs)"]
        for param in self.params:
            lines += [] if param.keras else self._own_parameter(param.name, param.type_name)
        for decl in self.model.optimizers:
            lines += [] if decl.name == KERAS_OPTIMIZER else self._own_optimizer(decl)
        for decl in (d for d in self.model.losses if d.in_compile):
            lines += self.construct(decl, "losses")
        lines += self._build_optimizers()
        return Method(tuple(indent(lines)))

    def _keras_arguments(self) -> list[str]:
        """Keras's own arguments, given to Keras's compile(); without an optimizer,
        model.optimizer stays None (not an unused RMSprop that callbacks would read)."""
        given = [p.name for p in self.params if p.keras]
        keras_own = next((d for d in self.model.optimizers if d.name == KERAS_OPTIMIZER), None)
        lines = []
        if given:
            lines += [
                "    # Keras's own compile() arguments keep Keras's meaning: model.optimizer,",
                "    # the compiled loss and the compiled metrics.",
                *laid_out("kwargs.update", call("", [f"{n}={n}" for n in given]).doc),
            ]
        if keras_own is not None:
            lines.append(
                f"    # {self.plan.spec_name}:{keras_own.span.line}  Keras's own model.optimizer"
            )
            lines += laid_out('kwargs["optimizer"] = ', self._constructor(keras_own, "optimizers"))
        elif KERAS_OPTIMIZER not in given:
            lines += [
                "    # The step uses only its own optimizers: model.optimizer stays None unless",
                "    # given (not an unused RMSprop that callbacks would read or build).",
                '    kwargs.setdefault("optimizer", None)',
            ]
        return lines

    def _constructor(self, decl: Declaration, module: str):
        """`keras.<module>.Class(...)` of literals and compile()'s (or init's) numbers."""
        names = {p.name: p.name for p in self.params}
        names.update({p.name: f"self.{p.name}" for p in self.model.init if p.name not in names})
        args = [literal(a, names) for a in decl.args]
        args += [f"{k.name}={literal(k.value, names)}" for k in decl.keywords]
        return call(f"keras.{module}.{decl.class_name}", args).doc

    def construct(self, decl: Declaration, module: str) -> list[str]:
        comment = f"    # {self.plan.spec_name}:{decl.span.line}"
        return [comment, *laid_out(f"self.{decl.name} = ", self._constructor(decl, module))]

    def _own_optimizer(self, decl: Declaration) -> list[str]:
        """An optimizer the model builds, wrapped for the dtype policy as Keras's
        compile() wraps model.optimizer."""
        self.used.add("policy")
        built = call("_for_dtype_policy", ["self", self._constructor(decl, "optimizers")])
        comment = f"    # {self.plan.spec_name}:{decl.span.line}"
        return [comment, *laid_out(f"self.{decl.name} = ", built.doc)]

    def _build_optimizers(self) -> list[str]:
        """Build each optimizer on the variables it updates, as Keras's own compile
        path does for model.optimizer: its slots then exist before the first step
        (in the distribution strategy's scope) and its saved state can load."""
        lines = ["    # Build each optimizer on the variables it updates (its state then loads)."]
        for optimizer, targets in self.model.optimizer_targets:
            parts = [variables_of(t) for t in targets]
            if len(parts) > 1:  # named once, so the test and the build read alike
                lines += laid_out(
                    "variables = ", Chain(parts[0], tuple(("+", p) for p in parts[1:]))
                )
                parts = ["variables"]
            lines += laid_out("if ", Concat((parts[0], ":")))
            lines += laid_out("", call(f"self.{optimizer}.build", [parts[0]]).doc, 2)
        return lines if self.model.optimizer_targets else []

    def _own_parameter(self, name: str, type_name: str) -> list[str]:
        if type_name == "Optimizer":
            return self._own_optimizer_parameter(name)
        if type_name == "Loss":
            return self._loss_parameter(name)
        if type_name == "Callable":
            return self._function_parameter(name)
        return [f"    self.{name} = {name}"]

    def _function_parameter(self, name: str) -> list[str]:
        """A plain Python function, which the step calls with the spec's arity."""
        message = Text(f"{self.where()}: {name} must be a function: the step calls it")
        return [
            f"    if not callable({name}):",
            *laid_out("raise ", call("TypeError", [message]).doc, 2),
            f"    self.{name} = {name}",
        ]

    def _loss_parameter(self, name: str) -> list[str]:
        message = Text(
            f"{self.where()}: {name} must be a keras.losses.Loss object that averages over the "
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
            *laid_out("raise ", call("TypeError", [message]).doc, 2),
            f"    self.{name} = {name}",
        ]

    def _own_optimizer_parameter(self, name: str) -> list[str]:
        """Accept an optimizer's name as Keras's compile() does, and refuse anything
        else than an optimizer naming the spec line. Refuse use_ema: fit() swaps the
        moving averages in (finalize_variable_values) only for model.optimizer, so a
        spec's own optimizer would end with the raw weights and silently train
        something else than asked; then wrap the optimizer for the dtype policy."""
        self.used.update(("ema", "policy"))
        where = self.where()
        message = Text(
            f"{where}: {name} has use_ema=True, but fit() swaps the moving averages into "
            "the weights only for Keras's own model.optimizer, not for an optimizer of "
            f"the spec's compile(); give {name} without use_ema, or declare it as "
            "Keras's own `optimizer: Optimizer`"
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
            *laid_out("raise ", call("TypeError", [kind]).doc, 2),
            f"    if _uses_ema({name}):",
            *laid_out("raise ", call("ValueError", [message]).doc, 2),
            f"    self.{name} = _for_dtype_policy(self, {name})",
        ]

    def wraps_keras_compile(self) -> bool:
        """Whether a spec without `compile(...)` still needs a compile() of its own:
        for its `jit_compile = ...` default, or to build Keras's optimizer on the
        variables it updates when that is not every trainable variable (else the
        first `apply` builds it on some, and load_model on all: its state would not
        load)."""
        return self.model.jit_compile is not None or self.model.builds_keras_optimizer

    def keras_compile(self) -> Method:
        """Keras's own compile() (no `compile(...)` in the spec), with the spec's
        `jit_compile = ...` as its default, building Keras's optimizer."""
        lines = [
            "def compile(self, *args, **kwargs):",
            *self.jit_default(),
            "    super().compile(*args, **kwargs)",
            *self._build_optimizers(),
        ]
        return Method(tuple(indent(lines)))

    def keras_compile_from_config(self) -> Method:
        """Keras's compile_from_config skips a model whose compile() is overridden;
        this one calls it with the arguments Keras recorded."""
        lines = [
            "def compile_from_config(self, config):",
            "    self.compile(**keras.saving.deserialize_keras_object(config))",
        ]
        return Method(tuple(indent(lines)))

    # ---------------------------------------------------------------- configs

    def get_compile_config(self) -> Method:
        lines = [
            "def get_compile_config(self):",
            "    # What Keras's compile() recorded: its own arguments, declared here or",
            "    # passed through **kwargs (metrics, jit_compile, ...); then this model's.",
            "    keras_config = dict(super().get_compile_config() or {})",
        ]
        built = next((d for d in self.model.optimizers if d.name == KERAS_OPTIMIZER), None)
        if built is not None:
            where = f"{self.plan.spec_name}:{built.span.line}"
            lines.append(f"    # {where}: compile() builds model.optimizer from its numbers.")
            lines.append('    del keras_config["optimizer"]')
        lines += ["    return {", "        **keras_config,"]
        for param in self.params:
            if param.keras:
                continue  # in Keras's record
            value = f"self.{param.name}"
            if param.type_name in SERIALIZED_TYPES:
                value = call("keras.saving.serialize_keras_object", [value]).doc
            lines += entry(param.name, value, 2)
        lines.append("    }")
        return Method(tuple(indent(lines)))

    def compile_from_config(self) -> Method:
        lines = [
            "def compile_from_config(self, config):",
            "    self.compile(",
            "        **{",
            "            name: keras.saving.deserialize_keras_object(value)",
            "            for name, value in config.items()",
            "        }",
            "    )",
        ]
        return Method(tuple(indent(lines)))
