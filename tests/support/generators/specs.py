"""Well-formed `.step` specs built from the language's constructs, for property tests.

`generate(rng)` draws one spec from any object with `random.Random`'s `random`,
`randint` and `choice` (a `random.Random` in `scripts/fuzz.py`, hypothesis's
`st.randoms()` in `tests/test_properties.py`, which then shrinks it) and
returns a `Generated`: the text plus a harness description (each model's
kind, init and compile parameters and step data lines) from which a test
builds real Keras arguments.

Shapes are fixed so a trace failure is the compiler's fault, not the
generator's: every data part `x`, `y` and every model output is a
(batch, 4) float32 tensor, `sample_weight` is (batch,), models map
(batch, 4) -> (batch, 4) and all have the same weights (Dense(4)), so
`assign` works between any two. Values are typed as
T (batch, 4), R (batch,), S (a scalar tensor), N (a Python number) and
G (the gradients of a model); each value records which models and values it
depends on differentiably, so `minimize` and `gradient` only ever get a loss
that depends on what they differentiate with respect to.

`near_miss(rng)` is the same spec with one deliberate error (see
`tests.support.generators.errors`); the checker must refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.support.generators.exprs import (
    AVOID,
    Ctx,
    Expr,
    Val,
    can_use_compiled_loss,
    compiled_loss,
    expr_of,
    number,
    reduce_scalar,
)

SAFE_METRICS = ("MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError",
                "CosineSimilarity", "BinaryAccuracy", "Accuracy", "KLDivergence",
                "MeanAbsolutePercentageError", "CategoricalAccuracy")  # fmt: skip
SAFE_LOSSES = ("MeanSquaredError", "MeanAbsoluteError", "Huber", "LogCosh",
               "CosineSimilarity", "BinaryCrossentropy", "Poisson", "KLDivergence",
               "Hinge", "SquaredHinge", "MeanSquaredLogarithmicError",
               "CategoricalCrossentropy", "BinaryFocalCrossentropy")  # fmt: skip
# Names that are keywords elsewhere in the grammar but ordinary inside a step.
ODD_NAMES = ("loss", "metric", "init", "over", "using", "train", "test", "predict",
             "jit_compile", "model")  # fmt: skip
CLIP_KINDS = ("clip_norm", "clip_global_norm", "clip_value")
INT_VALUE, FLOAT_VALUE = 2, 0.5  # what the harness passes for int / float parameters


@dataclass
class ModelHarness:
    """What a test needs to build and fit one generated model."""

    name: str
    functional: bool
    init: list[tuple[str, str]] = field(default_factory=list)
    compile: list[tuple[str, str]] | None = None  # None: Keras's own compile()
    steps: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)
    uses_compiled: bool = False  # compiled_loss / compiled_metrics
    has_metrics: bool = False  # declares a tracker (then a Functional model derives test)
    jit: bool = False


@dataclass
class Generated:
    text: str
    models: list[ModelHarness]
    error: str | None = None  # the near-miss's error kind
    error_line: int | None = None  # where it was put


# ---------------------------------------------------------------- names


class Names:
    """Fresh names for a spec: never a duplicate, rarely one of ODD_NAMES."""

    def __init__(self, rng):
        self.rng, self.used, self.count = rng, set(), 0

    def fresh(self, prefix: str = "v") -> str:
        odd = [n for n in ODD_NAMES if n not in self.used]
        if prefix == "v" and odd and self.rng.random() < 0.05:
            name = self.rng.choice(odd)
        else:
            self.count += 1
            name = f"{prefix}{self.count}"
        self.used.add(name)
        return name


# ---------------------------------------------------------------- models


def _params(rng, names: Names, types: list[str]) -> list[tuple[str, str]]:
    return [(names.fresh(t[0].lower()), t) for t in types]


def _init_types(rng) -> list[str]:
    types = ["Model"] * rng.randint(1, 3)
    types += ["FrozenModel"] * (rng.random() < 0.3)
    types += ["Model2"] * (rng.random() < 0.2)  # a Model with two outputs
    types += ["int"] * (rng.random() < 0.5) + ["float"] * (rng.random() < 0.5)
    return types


def _compile_types(rng, trainables: int) -> list[str] | None:
    if rng.random() < 0.4:
        return None
    types = ["Optimizer"] * rng.randint(1, max(1, trainables))
    types += ["Loss"] * (rng.random() < 0.5) + ["float"] * (rng.random() < 0.3)
    types += ["int"] * (rng.random() < 0.2)
    return types


def _declarations(rng, names: Names, kind: str, pool) -> list[tuple[str, str]]:
    return [(names.fresh(kind[0]), rng.choice(pool)) for _ in range(rng.randint(0, 2))]


STRINGS = ("{}_log", 'q\\"uote{}', "tab\\t{}", "caf\u00e9 {}", "{}'s", "{} \\\\ b", "{}\\n")
LOSS_ARGS = {
    "Huber": "delta=2.0",
    "BinaryCrossentropy": "from_logits=True, label_smoothing=0.1",
    "CategoricalCrossentropy": "from_logits=True",
    "CosineSimilarity": "axis=-1",
}


def _metric_args(rng, name: str) -> str:
    roll = rng.random()
    if roll < 0.4:
        return f'name="{name}_log"'
    if roll < 0.6:
        return f'name="{rng.choice(STRINGS).format(name)}"'
    if roll < 0.7:
        return f"name='{name}', dtype=\"float32\""
    return ""


def _loss_args(rng, cls: str, name: str) -> str:
    args = LOSS_ARGS.get(cls, "") if rng.random() < 0.5 else ""
    if rng.random() < 0.2:  # Keras (TensorFlow's scope names) takes only plain names
        args += (", " if args else "") + f'name="{name}_loss"'
    return args


def _model_ctx(rng, names: Names, harness: ModelHarness) -> Ctx:
    ctx = Ctx(rng=rng, names=names)
    for name, type_ in harness.init + (harness.compile or []):
        ctx.add_param(name, type_)
    if harness.functional:
        ctx.models.append(("self", False))
    ctx.keras_compile = harness.compile is None
    return ctx


def model(rng, names: Names, error=None) -> tuple[list[str], ModelHarness]:
    """The lines of one model and its harness description."""
    functional = rng.random() < 0.4
    harness = ModelHarness(names.fresh("Model"), functional)
    if not functional:
        harness.init = _params(rng, names, _init_types(rng))
    trainables = sum(t == "Model" for _, t in harness.init) + functional
    types = _compile_types(rng, trainables)
    harness.compile = None if types is None else _params(rng, names, types)
    lines = [f"model {harness.name}" + ("(Functional):" if functional else ":")]
    lines += _header(rng, names, harness)
    ctx = _model_ctx(rng, names, harness)
    ctx.metrics = dict(_declarations(rng, names, "metric", ("Mean", "Sum", *SAFE_METRICS)))
    harness.has_metrics = bool(ctx.metrics)
    loss_decls = _declarations(rng, names, "loss", SAFE_LOSSES)
    ctx.losses += [n for n, _ in loss_decls]
    lines += [f"    metric {n} = {c}({_metric_args(rng, n)})" for n, c in ctx.metrics.items()]
    lines += [f"    loss {n} = {c}({_loss_args(rng, c, n)})" for n, c in loss_decls]
    if error is not None and error.level == "model":
        lines += ["    " + line for line in error.write(ctx)]
        error = None
    lines += _steps(rng, ctx, harness, error)
    return lines, harness


def _header(rng, names: Names, harness: ModelHarness) -> list[str]:
    lines = []
    if harness.init:
        lines.append(f"    init({_param_list(harness.init)})")
    if harness.compile is not None:
        lines.append(f"    compile({_param_list(harness.compile)})")
    if rng.random() < 0.05:
        harness.jit = True
        lines.append("    jit_compile = True")
    return lines


def _param_list(params: list[tuple[str, str]]) -> str:
    return ", ".join(f"{n}: {'Model' if t == 'Model2' else t}" for n, t in params)


def _steps(rng, ctx: Ctx, harness: ModelHarness, error) -> list[str]:
    kinds = [k for k in ("train", "test", "predict") if rng.random() < 0.6]
    if not kinds or (error is not None and "train" not in kinds):
        kinds.insert(0, "train")
    lines = []
    for kind in kinds:
        step_ctx = ctx.for_step(kind)
        data = _data_line(rng, step_ctx, kind)
        harness.steps[kind] = data
        lines.append(f"    {kind}({_data_text(data)}):")
        body = step_body(step_ctx, error if kind == "train" else None)
        lines += ["        " + line for line in body]
        harness.uses_compiled |= step_ctx.used_compiled
    return lines


def _data_line(rng, ctx: Ctx, kind: str) -> list[tuple[str, bool]]:
    count = 1 if kind == "predict" else rng.choice((1, 2, 2, 2, 3, 3))
    names = [ctx.names.fresh(p) for p in ("x", "y", "w")[:count]]
    data = [(n, i == 2 and rng.random() < 0.7) for i, n in enumerate(names)]
    ctx.add_data(data)
    return data


def _data_text(data: list[tuple[str, bool]]) -> str:
    return ", ".join(n + ("?" if optional else "") for n, optional in data)


# ---------------------------------------------------------------- statements


def step_body(ctx: Ctx, error=None) -> list[str]:
    """The statements of one step; `error` (a callable) adds one wrong statement."""
    lines: list[str] = []
    for _ in range(ctx.rng.randint(1, 4)):
        lines += assignment(ctx)
    if ctx.kind == "train":
        lines += _train_middle(ctx)
    else:  # no minimize here; gradients and repeat blocks are allowed
        lines += gradient(ctx) if ctx.rng.random() < 0.3 else []
        lines += repeat(ctx) if ctx.rng.random() < 0.2 else []
    if error is not None:
        places = [i for i in range(len(lines) + 1) if i == len(lines) or lines[i][0] != " "]
        at = ctx.rng.choice(places)
        lines[at:at] = error.write(ctx)
    lines += _reporting(ctx)
    return lines


def _train_middle(ctx: Ctx) -> list[str]:
    lines: list[str] = []
    for _ in range(ctx.rng.randint(1, 3)):
        roll = ctx.rng.random()
        if roll < 0.15 and ctx.depth < 2:
            lines += repeat(ctx)
        elif roll < 0.3:
            lines += gradient(ctx)
        elif roll < 0.4:
            lines += assign_weights(ctx)
        else:
            lines += assignment(ctx)
        lines += minimize(ctx)
    return lines


def assignment(ctx: Ctx) -> list[str]:
    """`v = expr` (sometimes a tuple unpacking, sometimes re-assigning a value)."""
    kind = ctx.rng.choice("TTTSSRN")
    if ctx.pairs and ctx.rng.random() < 0.15:
        return _unpack_pair(ctx)
    if ctx.rng.random() < 0.1:
        value, other = expr_of(ctx, "T", 0), expr_of(ctx, "T", 0)
        a, b = ctx.fresh_value("T", value), ctx.fresh_value("T", other)
        return [f"{a}, {b} = ({value.text}, {other.text})"]
    value = expr_of(ctx, kind, 0)
    name = ctx.reassignable(kind) or ctx.fresh_name()
    ctx.define(name, Val(kind, value.deps | {name}))
    return [f"{name} = {value.text}"]


def _unpack_pair(ctx: Ctx, x: str | None = None) -> list[str]:
    """`a, b = pair(x)`: the two outputs of a two-output model."""
    pair = ctx.rng.choice(ctx.pairs)
    inner = Expr(x) if x else expr_of(ctx, "T", 1)
    ctx.called.add(pair)
    a, b = (ctx.fresh_value("T", Expr("", inner.deps | {pair})) for _ in range(2))
    return [f"{a}, {b} = {pair}({inner.text})"]


def _pair_minimize(ctx: Ctx) -> list[str]:
    """Unpack a two-output model's outputs and minimize a loss of both over it."""
    optimizer, targets = ctx.optimizer_for(ctx.pairs)
    if optimizer is None or len(targets) != 1 or targets[0] not in ctx.pairs:
        return []
    lines = _unpack_pair(ctx, ctx.rng.choice(ctx.data))
    a, b = lines[0].split(" = ")[0].split(", ")
    loss = ctx.fresh_name()
    ctx.define(loss, Val("S", {loss, *targets}))
    ctx.minimized.add(loss)
    ctx.epoch += 1
    using = f" using {optimizer}" if optimizer else ""
    value = f"mean(square({a} - {ctx.labels()})) + 0.5 * mean(square({b}))"
    return lines + [f"{loss} = {value}", f"minimize {loss} over {targets[0]}{using}"]


def gradient(ctx: Ctx) -> list[str]:
    """`g = gradient(y, x)`, of a tuple `(a, b)`, or of a model (a list of gradients)."""
    rng = ctx.rng
    tensors = [n for n, v in ctx.values.items() if v.kind == "T"]
    if not tensors:
        return []
    if rng.random() < 0.25 and ctx.depth == 0 and ctx.trainable_models():
        return _model_gradient(ctx)
    chosen = [rng.choice(tensors)]
    other = rng.choice(tensors)
    if rng.random() < 0.3 and other != chosen[0] and "tuple-gradient" not in AVOID:
        chosen.append(other)
    y = _scalar_through(ctx, chosen)
    outs = [ctx.fresh_value("T", Expr("", set(chosen))) for _ in chosen]
    wrt = chosen[0] if len(chosen) == 1 else f"({', '.join(chosen)})"
    return [f"{', '.join(outs)} = gradient({y}, {wrt})"]


def _scalar_through(ctx: Ctx, names: list[str]) -> str:
    """A scalar that depends on every one of `names`."""
    terms = [reduce_scalar(ctx, Expr(ctx.through_model(n), {n})) for n in names]
    return " + ".join(t.text for t in terms)


def _model_gradient(ctx: Ctx) -> list[str]:
    target = ctx.rng.choice(ctx.trainable_models())
    x = ctx.rng.choice(ctx.data_tensors())
    name = ctx.fresh_name()
    ctx.define(name, Val("G", set()))
    return [f"{name} = gradient(mean(square({target}({x}))), {target})"]


def minimize(ctx: Ctx) -> list[str]:
    """`minimize loss over targets [using opt]`, the loss depending on every target."""
    rng = ctx.rng
    models = ctx.trainable_models()
    if ctx.kind != "train":
        return []
    if ctx.pairs and (not models or rng.random() < 0.3):
        return _pair_minimize(ctx)
    if not models:
        return []
    optimizer, targets = ctx.optimizer_for(models)
    if optimizer is None or set(targets) & set(ctx.pairs):
        return []
    x = rng.choice(ctx.data_tensors())
    if len(targets) == 1 and rng.random() < 0.3 and can_use_compiled_loss(ctx):
        terms = [compiled_loss(ctx, Expr(f"{targets[0]}({x})", set(targets))).text]
    else:
        terms = [reduce_scalar(ctx, Expr(f"{m}({x})", {m})).text for m in targets]
    loss = ctx.fresh_name()
    extra = _current_scalar(ctx) if rng.random() < 0.4 else None
    keep = rng.random() < 0.1 and "compiled-loss-expr" not in AVOID
    extra = None if terms[0].startswith("compiled_loss") and not keep else extra
    value = " + ".join(terms + ([f"0.1 * ({extra})"] if extra else []))
    ctx.define(loss, Val("S", set(targets) | {loss}))
    ctx.minimized.add(loss)
    ctx.epoch += 1
    over = ", ".join(_target_text(rng, t) for t in targets)
    using = f" using {optimizer}" if optimizer != "" else ""
    return [f"{loss} = {value}", f"minimize {loss} over {over}{using}"]


def _current_scalar(ctx: Ctx) -> str:
    """A scalar of values computed since the last minimize only (else the loss would
    be computed partly before and partly after it)."""
    values, ctx.values = ctx.values, ctx.current()
    text = expr_of(ctx, "S", 1).text
    ctx.values = {**values, **ctx.values}
    return text


def _target_text(rng, target: str) -> str:
    if rng.random() < 0.2:
        return f"{target} ({rng.choice(CLIP_KINDS)}={rng.choice(('1.0', '0.5', '2'))})"
    return target


def repeat(ctx: Ctx) -> list[str]:
    count = ctx.rng.choice(["1", "2", "3"] + ctx.int_params)
    ctx.depth += 1
    ctx.epoch += 1  # a loss in the block must not use values from before it
    body = assignment(ctx) + minimize(ctx)
    if ctx.rng.random() < 0.3:
        body += gradient(ctx)
    ctx.depth -= 1
    body = body or [f"{ctx.fresh_name()} = {number(ctx).text}"]
    return [f"repeat {count}:"] + ["    " + line for line in body]


def assign_weights(ctx: Ctx) -> list[str]:
    """`assign m = a * m + (1.0 - a) * other` between same-shaped models."""
    targets = [m for m, _ in ctx.models if m != "self"]
    if not targets:
        return []
    target = ctx.rng.choice(targets)
    source = ctx.rng.choice([m for m, _ in ctx.models])
    a = ctx.rng.choice(["0.9", "0.5"] + ctx.float_params)
    return [f"assign {target} = {a} * {target} + (1.0 - {a}) * {source}"]


def _reporting(ctx: Ctx) -> list[str]:
    if ctx.kind == "predict":
        return _predict_return(ctx)
    lines = [u for _ in range(ctx.rng.randint(0, 3)) for u in update(ctx)]
    if ctx.rng.random() < 0.5 or not (ctx.updated or ctx.used_compiled):
        lines += _return(ctx)
    return lines


def _predict_return(ctx: Ctx) -> list[str]:
    name = ctx.fresh_name()
    value = expr_of(ctx, "T", 0)
    ctx.define(name, Val("T", value.deps))
    return [f"{name} = {value.text}", f"return {name}"]


def update(ctx: Ctx) -> list[str]:
    """`update tracker(...)` of a declared metric, or of compiled_metrics."""
    rng = ctx.rng
    if ctx.keras_compile and ctx.labels() and rng.random() < 0.2:
        ctx.used_compiled = True
        return [f"update compiled_metrics({ctx.label_args(expr_of(ctx, 'T', 1).text)})"]
    if not ctx.metrics:
        return []
    name = rng.choice(sorted(ctx.metrics))
    ctx.updated.add(name)
    if ctx.metrics[name] in ("Mean", "Sum"):
        if ctx.weight and rng.random() < 0.3:
            return [f"update {name}({expr_of(ctx, 'R', 1).text}, {ctx.weight})"]
        return [f"update {name}({expr_of(ctx, rng.choice('SSTR'), 1).text})"]
    return [f"update {name}({ctx.label_args(expr_of(ctx, 'T', 1).text)})"]


def _return(ctx: Ctx) -> list[str]:
    items = sorted(ctx.updated)[: ctx.rng.randint(0, 2)]
    for _ in range(ctx.rng.randint(1 - bool(items), 2)):
        key = ctx.names.fresh("k")
        items.append(f"{key}={expr_of(ctx, 'S', 1).text}")
    return ["return " + ", ".join(items)]


# ---------------------------------------------------------------- specs


def generate(rng, error=None) -> Generated:
    """One well-formed spec (with `error`: one deliberate mistake in its first train step)."""
    names = Names(rng)
    lines: list[str] = []
    harnesses = []
    for index in range(1 + (rng.random() < 0.2)):
        model_lines, harness = model(rng, names, error if index == 0 else None)
        lines += model_lines
        harnesses.append(harness)
    spec = Generated("\n".join(lines) + "\n", harnesses)
    if error is not None:
        spec.error = error.kind
        spec.error_line = _error_line(lines, error)
    return spec


def _error_line(lines: list[str], error) -> int | None:
    text = "\n".join(lines)
    at = text.find(error.marker)
    return text.count("\n", 0, at) + 1 if at >= 0 else None
