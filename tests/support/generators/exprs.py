"""Typed expressions for `tests.support.generators.specs`: the context of a step and `expr_of`.

Kinds: T a (batch, 4) float32 tensor, R a (batch,) tensor, S a scalar tensor,
N a Python number, G a model's gradients. `expr_of(ctx, kind, depth)` returns an
`Expr` of that kind built from the operation table (`stepc.tables.builtins.OPS`) with
the right arity, the step's values, its models and the model's declarations,
and from Python's expression forms (subscripts of several axes, steps, `None`
and `...`; comparisons and `& | ~` as masks; `@` and `%`). A mask's operands
are not in an `Expr`'s `deps`: no gradient flows through a comparison.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

ELEMENTWISE = ("square", "sqrt", "abs", "exp", "log", "log1p", "tanh", "sign", "sigmoid",
               "relu", "softplus", "negative", "stop_gradient")  # fmt: skip
REDUCTIONS = ("mean", "sum", "max", "min", "std", "var")
PER_SAMPLE = ("mean_squared_error", "mean_absolute_error", "binary_crossentropy",
              "categorical_crossentropy")  # fmt: skip
NUMBERS = ("0.5", "2.0", "1", "3", "1e-3", ".25", "0.1", "10")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
# Subscripts of a (batch, 4) tensor that keep its shape, and that give a (batch,) one.
SAME_SHAPE = ("[:, ::-1]", "[..., ::-1]", "[::1]", "[:, None][:, 0]", "[:, :, None][..., 0]",
              "[-shape(x)[0] :]")  # fmt: skip
ONE_COLUMN = ("[:, 0]", "[..., -1]", "[:, 1:3][:, 1]", "[:, ::2][:, 0]", "[:, None, 2][:, 0]")
MAX_DEPTH = 3
# Constructs to leave out while a known bug in them is being fixed (a comma-separated
# STEPC_FUZZ_AVOID): tuple-gradient, compiled-loss-expr.
AVOID = frozenset(filter(None, os.environ.get("STEPC_FUZZ_AVOID", "").split(",")))
COLLISIONS = ("grads", "variables", "tape", "tape_2", "scaled_loss", "value_for_gradient",
              "seed_generator", "sample_weight", "y_pred", "present",
              "kept", "metrics", "weights", "x_weight", "batch")  # fmt: skip


@dataclass
class Val:
    kind: str
    deps: set[str]
    epoch: int = 0  # how many minimizes came before it


@dataclass
class Expr:
    text: str
    deps: set[str] = field(default_factory=set)
    compound: bool = False  # needs parentheses as an operand


@dataclass
class Ctx:
    """A model's declarations and, inside a step, its values so far."""

    rng: object
    names: object
    models: list[tuple[str, bool]] = field(default_factory=list)  # (name, frozen)
    pairs: list[str] = field(default_factory=list)  # models with two outputs
    int_params: list[str] = field(default_factory=list)
    float_params: list[str] = field(default_factory=list)
    optimizers: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)
    keras_compile: bool = True
    kind: str = ""
    values: dict[str, Val] = field(default_factory=dict)
    data: list[str] = field(default_factory=list)  # x, y: tensors
    weight: str | None = None  # the sample_weight part
    depth: int = 0
    minimized: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    used_compiled: bool = False
    compiled_loss: bool = False
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    error_at: int | None = None
    epoch: int = 0
    called: set[str] = field(default_factory=set)  # models called by the statement so far
    ran: set[str] = field(default_factory=set)  # models called by earlier statements

    def add_param(self, name: str, type_: str) -> None:
        if type_ in ("Model", "FrozenModel"):
            self.models.append((name, type_ == "FrozenModel"))
        if type_ == "Model2":
            self.pairs.append(name)
        group = {"int": self.int_params, "float": self.float_params,
                 "Optimizer": self.optimizers, "Loss": self.losses}.get(type_)  # fmt: skip
        if group is not None:
            group.append(name)

    def for_step(self, kind: str) -> Ctx:
        step = copy.copy(self)
        step.kind, step.values, step.data, step.weight = kind, {}, [], None
        step.minimized, step.updated, step.targets = set(), set(), {}
        step.used_compiled = step.compiled_loss = False
        step.epoch, step.called, step.ran = 0, set(), set()
        return step

    def add_data(self, data: list[tuple[str, bool]]) -> None:
        for index, (name, _) in enumerate(data):
            if index < 2:
                self.data.append(name)
                self.values[name] = Val("T", {name})
            else:
                self.weight = name

    def data_tensors(self) -> list[str]:
        return self.data

    def labels(self) -> str:
        return self.data[1] if len(self.data) > 1 else self.data[0]

    def label_args(self, prediction: str) -> str:
        weight = f", {self.weight}" if self.weight and self.rng.random() < 0.5 else ""
        return f"{self.labels()}, {prediction}{weight}"

    def fresh_name(self) -> str:
        if self.rng.random() < 0.08:
            taken = [n for n in self._collisions() if n not in self.names.used]
            if taken:
                name = self.rng.choice(taken)
                self.names.used.add(name)
                return name
        return self.names.fresh("v")

    def _collisions(self) -> list[str]:
        """Names the generated code itself uses: a spec value so named must not clash."""
        models = [m for m, _ in self.models]
        values = [n for n in self.values if n not in self.data]
        return [*COLLISIONS, *(f"{m}_{s}" for m in models for s in ("weight", "grads")),
                *(f"{p}{v}" for v in values for p in ("scaled_", "value_for_")),
                *(f"{v}_before_repeat" for v in values)]  # fmt: skip

    def define(self, name: str, val: Val) -> None:
        earlier = [
            self.values[d].epoch for d in val.deps if d in self.values and d not in self.data
        ]
        val.epoch = min([self.epoch, *earlier])
        self.values[name] = val
        self.ran |= self.called

    def current(self) -> dict[str, Val]:
        """The values computed since the last minimize (and the data)."""
        return {n: v for n, v in self.values.items() if v.epoch == self.epoch or n in self.data}

    def fresh_value(self, kind: str, expr: Expr) -> str:
        name = self.fresh_name()
        self.define(name, Val(kind, expr.deps | {name}))
        return name

    def reassignable(self, kind: str) -> str | None:
        same = [n for n, v in self.values.items() if v.kind == kind and n not in self.data]
        same = [n for n in same if n not in self.minimized]
        return self.rng.choice(same) if same and self.rng.random() < 0.15 else None

    def trainable_models(self) -> list[str]:
        return [m for m, frozen in self.models if not frozen]

    def through_model(self, name: str) -> str:
        if self.models and self.rng.random() < 0.6:
            model = self.rng.choice(self.models)[0]
            self.called.add(model)
            return f"{model}({name})"
        return name

    def optimizer_for(self, models: list[str]) -> tuple[str | None, tuple[str, ...]]:
        """An optimizer and the targets it updates (the same set every time in a step)."""
        pool = ["optimizer", ""] if self.keras_compile else self.optimizers
        if not pool:
            return None, ()
        optimizer = self.rng.choice(pool)
        key = optimizer or "optimizer"
        if key not in self.targets:
            count = self.rng.randint(1, min(2, len(models)))
            self.targets[key] = tuple(sorted(set(self.rng.choice(models) for _ in range(count))))
        return optimizer, self.targets[key]


# ---------------------------------------------------------------- leaves


def number(ctx: Ctx) -> Expr:
    pool = list(NUMBERS) + ctx.int_params + ctx.float_params
    if ctx.data and ctx.rng.random() < 0.05:
        return Expr(f"shape({ctx.rng.choice(ctx.data)})[1]")  # static: 4
    return Expr(ctx.rng.choice(pool))


def _named(ctx: Ctx, kind: str) -> Expr | None:
    names = [n for n, v in ctx.values.items() if v.kind == kind]
    if not names:
        return None
    name = ctx.rng.choice(names)
    return Expr(name, set(ctx.values[name].deps) | {name})


def _model_call(ctx: Ctx, inner: Expr) -> Expr:
    name, frozen = ctx.rng.choice(ctx.models)
    ctx.called.add(name)
    if ctx.rng.random() < 0.15 or (frozen and ctx.rng.random() < 0.3):
        return Expr(f"{name}({inner.text}, training=False)", inner.deps | {name})
    if not frozen and ctx.rng.random() < 0.05:
        return Expr(f"{name}({inner.text}, training=True)", inner.deps | {name})
    return Expr(f"{name}({inner.text})", inner.deps | {name})


def _paren(expr: Expr) -> str:
    return f"({expr.text})" if expr.compound else expr.text


def _binary(ctx: Ctx, a: Expr, b: Expr, ops: str = "+-*") -> Expr:
    op = ctx.rng.choice(ops)
    return Expr(f"{_paren(a)} {op} {_paren(b)}", a.deps | b.deps, compound=True)


def _call(name: str, *args: Expr, extra: str = "") -> Expr:
    deps = set().union(*(a.deps for a in args)) if args else set()
    text = ", ".join([a.text for a in args] + ([extra] if extra else []))
    return Expr(f"{name}({text})", deps)


# ---------------------------------------------------------------- kinds


def expr_of(ctx: Ctx, kind: str, depth: int) -> Expr:
    """An expression of `kind`, at most MAX_DEPTH levels of operations deep."""
    if kind == "N":
        return number(ctx)
    if depth >= MAX_DEPTH or ctx.rng.random() < 0.25:
        leaf = _named(ctx, kind)
        if leaf is not None:
            return leaf
        if depth >= MAX_DEPTH:
            return _simplest(ctx, kind)
    return _BUILDERS[kind](ctx, depth + 1)


def _simplest(ctx: Ctx, kind: str) -> Expr:
    tensor = _named(ctx, "T")
    if kind == "S":
        return _call("mean", tensor)
    return _call("mean", tensor, extra="axis=1") if kind == "R" else tensor


def _tensor(ctx: Ctx, depth: int) -> Expr:
    rng, sub = ctx.rng, (lambda k="T": expr_of(ctx, k, depth))
    roll = rng.randint(0, 16)
    if roll <= 2 and ctx.models:
        return _model_call(ctx, sub())
    if roll <= 4:
        return _binary(ctx, sub(), sub(rng.choice("TSN")))
    if roll == 5:
        return _binary(ctx, sub("N"), sub(), "*+")
    if roll <= 7:
        return _call(rng.choice(ELEMENTWISE), sub())
    return _tensor_op(ctx, roll, sub)


def _tensor_op(ctx: Ctx, roll: int, sub) -> Expr:
    rng = ctx.rng
    if roll == 8:
        return _call(rng.choice(("maximum", "minimum")), sub(), sub(rng.choice("TN")))
    if roll == 9:
        return _call("clip", sub(), Expr("-1.0"), Expr("1.0"))
    if roll == 10:
        return _random_draw(ctx, sub())
    if roll == 11:
        return _reshaping(ctx, sub)
    if roll == 12:
        return _call(rng.choice(("zeros_like", "ones_like")), sub())
    if roll == 13:
        return _stack(ctx, [sub("R") for _ in range(4)])
    return _python_form(ctx, roll, sub)


def _python_form(ctx: Ctx, roll: int, sub) -> Expr:
    """A (batch, 4) tensor by a subscript, a mask, `@` or `%`."""
    if roll == 14:
        return _subscript(ctx, sub(), ctx.rng.choice(SAME_SHAPE))
    if roll == 15:
        return _masked(ctx, sub(), lambda: sub(ctx.rng.choice("TSN")))
    inner = sub()
    operation = "@ ones((4, 4))" if ctx.rng.random() < 0.5 else "% 2.0"
    return Expr(f"{_paren(inner)} {operation}", inner.deps, compound=True)


def _subscript(ctx: Ctx, value: Expr, index: str) -> Expr:
    data = ctx.data[0] if ctx.data else "x"
    return Expr(_paren(value) + index.replace("shape(x)", f"shape({data})"), value.deps)


def mask(ctx: Ctx, left: Expr, right: Expr) -> str:
    """A boolean mask of `left` (and `right`): comparisons joined by `& | ~`."""
    rng = ctx.rng
    text = f"{_paren(left)} {rng.choice(COMPARISONS)} {_paren(right)}"
    if rng.random() < 0.3:
        text = f"~({text})"
    if rng.random() < 0.4:
        text = f"({text}) {rng.choice('&|')} ({_paren(left)} {rng.choice(COMPARISONS)} 0.0)"
    return text


def _masked(ctx: Ctx, value: Expr, other) -> Expr:
    """`value` where a mask holds (else 0), as a cast or with `where`: the mask
    adds no dependency (no gradient flows through a comparison)."""
    condition = mask(ctx, other(), other())
    if ctx.rng.random() < 0.5:
        return Expr(f'cast({condition}, "float32") * {_paren(value)}', value.deps, compound=True)
    return Expr(f"where({condition}, {value.text}, zeros_like({value.text}))", value.deps)


def _stack(ctx: Ctx, rows: list[Expr]) -> Expr:
    """stack([r1, r2, r3, r4], axis=1): four (batch,) values as one (batch, 4)."""
    listed = Expr(f"[{', '.join(r.text for r in rows)}]", set().union(*(r.deps for r in rows)))
    return _call("stack", listed, extra="axis=1")


def _random_draw(ctx: Ctx, like: Expr) -> Expr:
    rng = ctx.rng
    shape = f"shape({like.text})"
    if rng.random() < 0.3:
        shape = f"(shape({rng.choice(ctx.data)})[0], 4)"
    if rng.random() < 0.5:
        return Expr(f"normal({shape}" + (", mean=0.0, stddev=0.5)" if rng.random() < 0.5 else ")"))
    return Expr(f"uniform({shape}" + (", minval=-1.0, maxval=1.0)" if rng.random() < 0.5 else ")"))


def _reshaping(ctx: Ctx, sub) -> Expr:
    roll = ctx.rng.randint(0, 5)
    if roll == 0:
        return _call("reshape", sub(), Expr("(-1, 4)"))
    if roll == 1:
        return _call("cast", sub(), Expr('"float32"'))
    if roll == 2:
        return _call("matmul", sub(), Expr("ones((4, 4))"))
    if roll == 3:
        return _binary(ctx, _call("reshape", sub("R"), Expr("(-1, 1)")), sub(), "*+")
    if roll == 4:
        mean = _call("mean", sub(), extra="axis=1, keepdims=True")
        return _binary(ctx, mean, sub(), "*-")
    return Expr(f"zeros((shape({ctx.rng.choice(ctx.data)})[0], 4))")


def _per_sample(ctx: Ctx, depth: int) -> Expr:
    rng, sub = ctx.rng, (lambda k="T": expr_of(ctx, k, depth))
    roll = rng.randint(0, 6)
    if roll == 5:
        return _subscript(ctx, sub(), rng.choice(ONE_COLUMN))
    if roll == 6:
        return _masked(ctx, sub("R"), lambda: sub(rng.choice("RSN")))
    if roll == 0:
        axis = rng.choice(("axis=1", "axis=-1"))
        return _call(rng.choice(REDUCTIONS), sub(), extra=axis)
    if roll == 1:
        return _call(rng.choice(PER_SAMPLE), Expr(ctx.labels()), sub())
    if roll == 2:
        return _binary(ctx, sub("R"), sub(rng.choice("RSN")))
    if roll == 3:
        return _call(rng.choice(ELEMENTWISE), sub("R"))
    return _call("mean", sub(), extra="axis=1")


def reduce_scalar(ctx: Ctx, tensor: Expr) -> Expr:
    """A scalar of the (batch, 4) `tensor`: a reduction, a squared error or a loss."""
    rng = ctx.rng
    roll = rng.randint(0, 3)
    if roll == 0:
        return _call(rng.choice(REDUCTIONS), tensor)
    if roll == 1 and ctx.losses:
        return _loss_call(ctx, rng.choice(ctx.losses), tensor)
    inside = "compiled-loss-expr" not in AVOID
    if roll == 2 and inside and rng.random() < 0.1 and can_use_compiled_loss(ctx):
        return compiled_loss(ctx, tensor)  # inside a larger expression
    error = Expr(f"{_paren(tensor)} - {ctx.labels()}", set(tensor.deps))
    return _call("mean", _call("square", error))


def can_use_compiled_loss(ctx: Ctx) -> bool:
    return ctx.keras_compile and not ctx.compiled_loss and len(ctx.data) > 1


def compiled_loss(ctx: Ctx, prediction: Expr) -> Expr:
    ctx.compiled_loss = ctx.used_compiled = True
    return _loss_call(ctx, "compiled_loss", prediction)


def _loss_call(ctx: Ctx, loss: str, prediction: Expr) -> Expr:
    return Expr(f"{loss}({ctx.label_args(prediction.text)})", set(prediction.deps))


def _scalar(ctx: Ctx, depth: int) -> Expr:
    rng, sub = ctx.rng, (lambda k="S": expr_of(ctx, k, depth))
    roll = rng.randint(0, 9)
    if roll <= 2:
        return reduce_scalar(ctx, sub("T"))
    if roll == 3:
        return _call(rng.choice(REDUCTIONS), sub("R"))
    if roll <= 5:
        return _binary(ctx, sub(), sub(rng.choice("SN")))
    if roll == 6:
        return _call(rng.choice(ELEMENTWISE[:12]), sub())
    if roll == 7:
        inner = sub()
        return Expr(f"-{_paren(inner)}", inner.deps, compound=True)
    if roll == 8 and ctx.ran:
        return Expr(f"regularization_loss({rng.choice(sorted(ctx.ran))})")
    if roll == 8:
        tensor = expr_of(ctx, "T", depth)
        part = rng.choice(("[0]", "[1:]", "[:2]", "[-1]", "[0, 0]", "[::2, 1:]", "[..., 0]"))
        return _call(rng.choice(REDUCTIONS), Expr(_paren(tensor) + part, tensor.deps))
    gradients = _named(ctx, "G")
    if gradients is not None:
        return _call("global_norm", gradients)
    inner = sub()
    return Expr(f"{_paren(inner)} ** 2", inner.deps, compound=True)


_BUILDERS = {"T": _tensor, "R": _per_sample, "S": _scalar}
