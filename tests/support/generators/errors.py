"""Near-miss specs: a well-formed generated spec plus one deliberate error.

Each `Mistake` writes one or more statement lines into the first train step
of a generated spec (`tests.support.generators.specs.generate(rng, error=mistake)`); the
offending line ends with the comment `# near-miss`, so a test can find it.
Every mistake is one the documentation says the checker reports (an
undefined name, a wrong argument count, a non-scalar loss, a gradient that is
not a whole assignment, ...): the spec must be refused, with its errors on
lines of the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MARK = "  # near-miss"


@dataclass(frozen=True)
class Mistake:
    kind: str
    write: Callable  # (ctx) -> list of lines; the offending one carries MARK
    marker: str = MARK
    level: str = "step"  # "model": a line among the model's declarations


def _x(ctx) -> str:
    return ctx.rng.choice(ctx.data)


def _model(ctx) -> str:
    return ctx.rng.choice(ctx.models)[0]


def _trainable(ctx) -> str:
    models = ctx.trainable_models()
    return ctx.rng.choice(models) if models else "self"


def _opt(ctx) -> str:
    return " using " + ctx.optimizers[0] if ctx.optimizers and not ctx.keras_compile else ""


def _one(text: str) -> Callable:
    """A mistake of one line, `text` formatted with x, m (a model), v (a fresh name)."""

    def write(ctx) -> list[str]:
        return [text.format(x=_x(ctx), m=_model(ctx), v=ctx.fresh_name(), t=_trainable(ctx)) + MARK]

    return write


def _with_loss(text: str, scalar: bool = True) -> Callable:
    """A loss line, then a wrong `minimize` line formatted with l (the loss)."""

    def write(ctx) -> list[str]:
        loss, x, target = ctx.fresh_name(), _x(ctx), _trainable(ctx)
        value = f"mean({target}({x}))" if scalar else f"{target}({x})"
        wrong = text.format(l=loss, t=target, x=x, o=_opt(ctx))
        return [f"{loss} = {value}", wrong + MARK]

    return write


def _return_first(ctx) -> list[str]:
    """A return with a statement after it."""
    x = _x(ctx)
    return [f"return {ctx.fresh_name()}=mean({x}){MARK}", f"{ctx.fresh_name()} = mean({x})"]


def _repeat(count: str) -> Callable:
    def write(ctx) -> list[str]:
        x = _x(ctx)
        return [f"repeat {count.format(x=x)}:{MARK}", f"    {ctx.fresh_name()} = mean({x})"]

    return write


MISTAKES: tuple[Mistake, ...] = (
    Mistake("undefined-name", _one("{v} = mean(undefined_thing) + mean({x})")),
    Mistake("unknown-operation", _one("{v} = softmax_of({x})")),
    Mistake("too-few-arguments", _one("{v} = clip({x}, 1.0)")),
    Mistake("too-many-arguments", _one("{v} = square({x}, {x})")),
    Mistake("unknown-keyword", _one("{v} = mean({x}, axes=1)")),
    Mistake("reserved-name", _one("print = mean({x})")),
    Mistake("shadows-a-model", _one("{m} = {x}")),
    Mistake("call-a-value", _one("{v} = {x}({x})")),
    Mistake("model-arithmetic", _one("{v} = {m} + 1.0")),
    Mistake("string-arithmetic", _one('{v} = "text" * {x}')),
    Mistake("syntax-error", _one("{v} = ({x} +")),
    Mistake("gradient-not-whole", _one("{v} = 2.0 * gradient(mean({x}), {x})")),
    Mistake("gradient-of-tensor", _one("{v} = gradient({m}({x}), {x})")),
    Mistake("gradient-wrt-number", _one("{v} = gradient(mean({x}), 1.0)")),
    Mistake("assign-to-data", _one("assign {x} = 0.5 * {m}")),
    Mistake("assign-batch-tensor", _one("assign {t} = {t} + {x}")),
    Mistake("update-not-metric", _one("update {x}({x})")),
    Mistake("return-not-last", _return_first),
    Mistake("minimize-tensor", _with_loss("minimize {l} over {t}{o}", scalar=False)),
    Mistake("minimize-data", _with_loss("minimize {l} over {x}{o}")),
    Mistake("unknown-optimizer", _with_loss("minimize {l} over {t} using no_such_optimizer")),
    Mistake("unknown-clip", _with_loss("minimize {l} over {t} (clip_everything=1.0){o}")),
    Mistake("negative-clip", _with_loss("minimize {l} over {t} (clip_norm=-1.0){o}")),
    Mistake("independent-loss", _with_loss("minimize mean({x}) over {t}{o}")),
    Mistake("repeat-zero", _repeat("0")),
    Mistake("repeat-float", _repeat("1.5")),
    Mistake("repeat-tensor", _repeat("mean({x})")),
)


def _declaration(text: str) -> Callable:
    def write(ctx) -> list[str]:
        model = ctx.models[0][0] if ctx.models else "self"
        return [text.format(v=ctx.fresh_name(), m=model) + MARK]

    return write


MODEL_MISTAKES: tuple[Mistake, ...] = tuple(
    Mistake(kind, _declaration(text), level="model")
    for kind, text in (
        ("unknown-metric-class", "metric {v} = NoSuchMetric()"),
        ("loss-class-as-metric", "metric {v} = Huber()"),
        ("metric-class-as-loss", "loss {v} = Mean()"),
        ("unknown-param-type", "init({v}: Tensor)"),
        ("jit-not-bool", "jit_compile = Maybe"),
        ("metric-arg-not-literal", "metric {v} = Mean(name={m})"),
        ("duplicate-declaration", "metric {m} = Mean()"),
        ("second-compile", "compile({v}: Optimizer)\n    compile({v}_2: Optimizer)"),
    )
)


def pick(rng) -> Mistake:
    if rng.random() < 0.25:
        return rng.choice(MODEL_MISTAKES)
    return rng.choice(MISTAKES)
