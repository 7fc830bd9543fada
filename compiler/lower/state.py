"""Stage 3, state the model keeps: its variables and each update's value.

Owns the decisions about `state` items and `assign STATE = EXPR`: each state's
variable (dtype, shape, initial value); each update's value, unscaled, with the
check of its shape when the compiler cannot tell it; and what replicas must
share so they agree under a TensorFlow distribution strategy: a value with
the batch axis is gathered from every replica (`@all_gather`, in replica
order: the whole batch) and a batch-dependent scalar is their mean
(`@replica_mean`). A backend without per-replica batches spells both as the
value itself. The update is recorded by no tape (the gradient placement puts
it after any recording it reads from).
"""

from __future__ import annotations

from stepc.check.state import STATE_DTYPES
from stepc.check.symbols import Kind, Symbol
from stepc.lower.plan import (
    GATHER,
    REPLICA_MEAN,
    Compute,
    StateUpdate,
    StateVariable,
    pseudo_call,
)
from stepc.parse import ir
from stepc.tables.builtins import OPS, Type
from stepc.tables.ops_types import Result


def state_variables(model: ir.Model) -> tuple[StateVariable, ...]:
    """Each state's variable, in declaration order."""
    return tuple(
        StateVariable(d.name.id, STATE_DTYPES[d.dtype.id], d.dims, d.value, d.span)
        for d in model.states
    )


def initial_calls(model: ir.Model) -> set[str]:
    """The operations the states' initial values call (a random one needs a seed)."""
    return {
        node.func.id
        for decl in model.states
        for node in ir.walk(decl.value)
        if isinstance(node, ir.Call)
    }


def is_state_update(statement, symbols: dict[str, Symbol]) -> bool:
    if not isinstance(statement, ir.AssignWeights):
        return False
    symbol = symbols.get(statement.target.id)
    return symbol is not None and symbol.kind is Kind.STATE


class BatchValues:
    """Which names of a step hold values computed from its batch (the data, or
    a model's outputs), in statement order: what a replica holds only its share of."""

    def __init__(self, step: ir.Step, models: set[str], lowering):
        self.models = models | {"self"}
        self.names = {p.name.id for p in step.data}
        self.scalars: set[str] = set()  # values known to be scalars, as assigned
        for statement in ir.statements(step.body):
            if isinstance(statement, ir.Assign):
                self._assigned(statement, lowering)

    def _assigned(self, statement: ir.Assign, lowering) -> None:
        targets = {t.id for t in statement.targets}
        if self.reads_batch(statement.value):
            self.names |= targets
        self.scalars -= targets
        if len(targets) == 1 and _known_scalar(statement.value, lowering, self.scalars):
            self.scalars |= targets

    def reads_batch(self, expr: ir.Expr) -> bool:
        for node in ir.walk(expr):
            if isinstance(node, ir.Name) and node.id in self.names:
                return True
            if isinstance(node, ir.Call) and node.func.id in self.models:
                return True
        return False


def state_update(statement: ir.AssignWeights, value: ir.Expr, lowering) -> Compute:
    """`assign STATE = value`: the value with what replicas share marked."""
    symbol = lowering.symbols[statement.target.id]
    shared = _shared_across_replicas(value, lowering.batch_values, lowering)
    check = symbol.state.rank > 0
    check = check or not _known_scalar(value, lowering, lowering.batch_values.scalars)
    update = StateUpdate(symbol.name, shared, statement.span, check_shape=check)
    return Compute(statement, weights_of=(), state=update)


def _shared_across_replicas(expr, batch: BatchValues, lowering):
    """`expr` with each batch tensor gathered (so a reduction of it reduces the whole
    batch, exactly) and each batch-dependent scalar value averaged (a loss: the whole
    batch's mean, for equal shares)."""
    if not batch.reads_batch(expr):
        return expr
    if isinstance(expr, ir.Name):
        scalar = _known_scalar(expr, lowering, batch.scalars)
        return pseudo_call(REPLICA_MEAN if scalar else GATHER, expr)
    # An index stays: it says which rows, and is no batch value of its own.
    return ir.rebuilt(expr, lambda e: _shared_across_replicas(e, batch, lowering), keep=("index",))


def _whole_reduction(expr) -> bool:
    """`mean(t)`, `sum(t)`, ...: a reduction over every axis."""
    if isinstance(expr, ir.Call) and expr.func.id in OPS and len(expr.args) == 1:
        whole = OPS[expr.func.id].result is Result.REDUCE
        return whole and not any(k.name == "axis" for k in expr.keywords)
    return False


def _known_scalar(expr, lowering, scalars: set[str]) -> bool:
    """A scalar for certain: the loss facts say so, or it combines scalar states,
    numbers and scalar values with arithmetic and elementwise operations."""
    if lowering.facts.is_scalar(expr) or isinstance(expr, ir.Number) or _whole_reduction(expr):
        return True
    if isinstance(expr, ir.Name):
        if expr.id in scalars:
            return True
        symbol = lowering.symbols.get(expr.id)
        state = symbol is not None and symbol.kind is Kind.STATE and symbol.state.rank == 0
        return state or (symbol is not None and symbol.type in (Type.NUMBER, Type.BOOL))
    if isinstance(expr, ir.BinaryOp | ir.Negate):
        return all(_known_scalar(e, lowering, scalars) for e in ir.children(expr))
    elementwise = isinstance(expr, ir.Call) and expr.func.id in OPS
    elementwise = elementwise and OPS[expr.func.id].result is Result.SAME
    return elementwise and all(_known_scalar(e, lowering, scalars) for e in ir.children(expr))
