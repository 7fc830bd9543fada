"""Symbols: what a name in a spec refers to.

Owns the `Symbol` record and the model-level symbol table that the checker
builds and the lowering reads, so both stages resolve names the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from stepc.parse import ir
from stepc.tables.builtins import CONSTANTS, KERAS_OPTIMIZER, Type


class Kind(Enum):
    SELF = "the model itself"
    DATA = "data parameter"
    LOCAL = "local value"
    INIT_PARAM = "constructor parameter"
    COMPILE_PARAM = "compile() parameter"
    METRIC = "metric"
    LOSS_OBJECT = "loss"
    OPTIMIZER = "optimizer"  # an `optimizer NAME = Class(...)` item, built in compile()
    KERAS_OPTIMIZER = "optimizer given to compile()"
    COMPILED_METRICS = "metrics given to compile()"
    CONSTANT = "constant"
    STATE = "state"  # `state NAME: DTYPE[...] = ...`: a variable the model keeps


@dataclass(frozen=True)
class StateShape:
    """What the checker knows of a state: its dtype and its dimensions, each an
    int literal or an `int` init parameter (so its rank is always known)."""

    dtype: str  # int, float or bool, as written
    dims: tuple[ir.Expr, ...]

    @property
    def rank(self) -> int:
        return len(self.dims)


@dataclass(frozen=True)
class Symbol:
    """A name a model declares: a parameter, metric, loss, optimizer or state."""

    name: str
    kind: Kind
    type: Type
    span: ir.Span | None = None
    detail: str = ""  # the metric or loss class, the parameter's type name, a state's dtype
    state: StateShape | None = None  # a state's dtype and dimensions

    @property
    def is_attribute(self) -> bool:
        """Held by the model object, so the generated code reads `self.<name>`."""
        return self.kind in (
            Kind.INIT_PARAM,
            Kind.COMPILE_PARAM,
            Kind.METRIC,
            Kind.LOSS_OBJECT,
            Kind.OPTIMIZER,
            Kind.KERAS_OPTIMIZER,
            Kind.STATE,
        )

    @property
    def is_own_metric(self) -> bool:
        """A `metric` item or a `Metric` parameter: its own result, by its name."""
        return self.type is Type.METRIC and self.kind is not Kind.COMPILED_METRICS


def base_symbols(functional: bool, has_custom_compile: bool) -> dict[str, Symbol]:
    """The names every model has before its own declarations."""
    table = {name: Symbol(name, Kind.CONSTANT, t) for name, t in CONSTANTS.items()}
    table["self"] = Symbol("self", Kind.SELF, Type.MODEL, detail="Functional" if functional else "")
    table["compiled_metrics"] = Symbol("compiled_metrics", Kind.COMPILED_METRICS, Type.METRIC)
    if not has_custom_compile:
        table[KERAS_OPTIMIZER] = Symbol(KERAS_OPTIMIZER, Kind.KERAS_OPTIMIZER, Type.OPTIMIZER)
    return table
