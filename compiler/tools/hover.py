"""The language index's hover: what a name under the cursor is, as Markdown.

Owns the words of each hover: a step value's kind as the checker inferred it
(`CheckedModel.values`, in `Type`'s words: tensor, scalar, ...) and the lines
that define it; a parameter's type and whose parameter it is; a declaration's
Keras class; an operation's `keras.ops` signature and what it does (the first
sentence of Keras's docstring, generated into `stepc.tables.keras_summaries`
and checked against the pinned Keras, so no Keras is imported here); a
metric, loss or optimizer class's Keras path and constructor parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepc.check.symbols import Kind, Symbol
from stepc.parse import ir
from stepc.tables.builtins import NOT_DIFFERENTIABLE, OPS, STEPC_OPS
from stepc.tables.keras_names import KERAS_CONSTRUCTORS
from stepc.tables.keras_summaries import SUMMARIES
from stepc.tables.ops_table import NOT_XLA, qualified_name
from stepc.tools.names import CLASS, LOCAL, LOOP, MODEL, OPERATION, SYMBOL, TYPE, Occurrence

if TYPE_CHECKING:
    from stepc.tools.index import SpecIndex

# What stepc's own operations do (they have no Keras docstring).
_STEPC_SUMMARIES = {
    "gradient": "The gradient of `y` with respect to `x` (a tensor, a tuple of them, or a model).",
    "regularization_loss": "The sum of the model's own losses (layer regularizers, `add_loss`).",
    "global_norm": "The norm of a list of gradients taken together.",
    "input_shape": "The input shape of a built sub-model (the batch axis is `None`).",
    "output_shape": "The output shape of a built sub-model (the batch axis is `None`).",
}
_TYPE_WORDS = {
    "Model": "a Keras model (a sub-model), trained by `minimize ... over` it",
    "FrozenModel": "a Keras model only ever called in inference mode, never trained",
    "Layer": "a Keras layer, called like a sub-model",
    "Callable": "a plain Python function",
    "Optimizer": "a Keras optimizer (or its name, in `compile`)",
    "Loss": "a `keras.losses.Loss`, averaging over the batch",
    "Metric": "a `keras.metrics.Metric` the caller builds",
    "int": "a whole number",
    "float": "a number",
    "bool": "a boolean",
}
_ROLE_MODULES = {"metric": "metrics", "loss": "losses", "optimizer": "optimizers"}


def hover(index: SpecIndex, found: Occurrence) -> str | None:
    target = found.target
    if target.kind in (LOCAL, LOOP):
        return _value(index, found)
    if target.kind == SYMBOL:
        symbol = index.models[target.model].symbols.get(target.name)
        return _symbol(index, target.model, symbol) if symbol else _keras_argument(index, found)
    if target.kind == OPERATION:
        return operation_hover(target.name)
    if target.kind == CLASS:
        return class_hover(target.role, target.name)
    if target.kind == TYPE:
        words = _TYPE_WORDS.get(target.name)
        return f"`{target.name}`: {words}" if words else None
    if target.kind == MODEL:
        checked = index.models[target.model]
        what = "a Functional model" if checked.functional else "a model holding sub-models"
        return f"model `{target.name}`: {what} (line {found.span.line})"
    return None


def _value(index: SpecIndex, found: Occurrence) -> str:
    """`generated`: tensor, a local value assigned on lines 13 and 20."""
    target = found.target
    definitions = [o for o in index.by_target[target] if o.defines]
    values = index.models[target.model].values
    kinds = [values[o.span].type.value for o in definitions if o.span in values]
    kind = " or ".join(dict.fromkeys(kinds)) or "value"
    lines = _lines([o.span for o in definitions])
    data = definitions and _is_data(index, definitions[0].span)
    if target.kind == LOOP:
        what = f"loop variable of the loop on line {target.scope.line}"
    elif data:
        what = f"data part of the step, line {definitions[0].span.line}"
    else:
        what = f"value of the step, assigned on {lines}" if lines else "value of the step"
    return f"`{target.name}`: {kind}\n\n{what[0].upper()}{what[1:]}."


def _is_data(index: SpecIndex, span: ir.Span) -> bool:
    for checked in index.models:
        model = checked.model
        parts = [*(model.shared.data if model.shared else ())]
        for step in model.steps:
            parts += [*step.data, *(step.written_data or ())]
        if any(part.name.span == span for part in parts):
            return True
    return False


def _lines(spans: list[ir.Span]) -> str:
    numbers = list(dict.fromkeys(span.line for span in spans))
    if not numbers:
        return ""
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    return "lines " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"


def _symbol(index: SpecIndex, model: int, symbol: Symbol) -> str:
    where = f" (line {symbol.span.line})" if symbol.span else ""
    if symbol.kind in (Kind.INIT_PARAM, Kind.COMPILE_PARAM):
        typed = f"{symbol.name}: {symbol.detail}" if symbol.detail else symbol.name
        words = _TYPE_WORDS.get(symbol.detail)
        text = f"`{typed}` — {symbol.kind.value}{where}"
        return text + (f"\n\n{words[0].upper()}{words[1:]}." if words else "")
    if symbol.kind in (Kind.METRIC, Kind.LOSS_OBJECT, Kind.OPTIMIZER) or (
        symbol.kind is Kind.KERAS_OPTIMIZER and symbol.detail not in ("", "Optimizer")
    ):
        role = {"metric": "metric", "loss": "loss"}.get(symbol.type.value, "optimizer")
        built = f"`keras.{_ROLE_MODULES[role]}.{symbol.detail}`"
        return f"`{symbol.name}` — {symbol.kind.value}: {built}{where}"
    if symbol.kind is Kind.STATE and symbol.state is not None:
        return f"`{symbol.name}` — {_state_words(symbol)}{where}"
    if symbol.kind is Kind.SELF:
        name = index.models[model].model.name.id
        return f"`self` — the model itself (`{name}`)"
    return f"`{symbol.name}` — {symbol.kind.value}{where}"


def _state_words(symbol: Symbol) -> str:
    dims = symbol.state.dims
    if not dims:
        return f"state: a scalar {symbol.state.dtype} the model keeps"
    shape = ", ".join(d.id if isinstance(d, ir.Name) else getattr(d, "text", "?") for d in dims)
    return f"state: a {symbol.state.dtype} tensor of shape [{shape}] the model keeps"


def _keras_argument(index: SpecIndex, found: Occurrence) -> str | None:
    """`loss: Loss` in compile(): Keras's own argument, reached through compiled_loss."""
    model = index.models[found.target.model].model
    for param in (*(model.init or ()), *(model.compile or ())):
        if param.name.span == found.span:
            return f"`{param.name.id}: {param.type_name.id}` — Keras's own compile() argument"
    return None


def operation_hover(name: str) -> str:
    """The signature with Keras's defaults, the function it calls and what it does."""
    op = OPS[name]
    summary = _STEPC_SUMMARIES.get(name, "")
    calls = "stepc's own operation"
    if name not in STEPC_OPS:
        calls = f"`{qualified_name(op)}`"
        summary = SUMMARIES.get(qualified_name(op), "")
    notes = ["no gradient"] if name in NOT_DIFFERENTIABLE else []
    notes += ["not under XLA"] if name in NOT_XLA else []
    notes += ["draws from the model's SeedGenerator"] if op.random else []
    tail = f" ({'; '.join(notes)})" if notes else ""
    text = f"```\n{op.full_signature()}\n```\n\n{calls}{tail}"
    return text + (f"\n\n{summary}" if summary else "")


def class_hover(role: str, name: str) -> str | None:
    qualified = f"{_ROLE_MODULES.get(role, role)}.{name}"
    params = KERAS_CONSTRUCTORS.get(qualified)
    if params is None:
        return None
    summary = SUMMARIES.get(f"keras.{qualified}", "")
    text = f"```\nkeras.{qualified}({', '.join(params)})\n```"
    return text + (f"\n\n{summary}" if summary else "")


__all__ = ["class_hover", "hover", "operation_hover"]
