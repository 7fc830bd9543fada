"""Stage 2: what the checker knows of a value, and how values combine.

Owns `Value` (a small type, plus the models an expression calls and the
definitions it reads, which the gradient checks follow through the step's
`stepc.check.depends.DependencyGraph`), the marking of a value whose error was
reported, and the parts of a literal tuple an index names. `stepc.check.exprs`
and `stepc.check.operators` build values; the statement checks read them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from stepc.check.depends import ANY
from stepc.parse import ir
from stepc.tables.builtins import Type

# A message shows the last few names of a chain; keeping all of them would make
# checking a long chain of statements quadratic in time and memory.
CHAIN_NAMES = 6


@dataclass(frozen=True)
class Value:
    """What the checker knows of a value: its type and what it is computed from."""

    type: Type
    # The models its own expression calls and the definitions (`Local.key`) it
    # reads, outside what no gradient flows through; the rest is in the step's
    # `DependencyGraph` (a value does not carry its ancestors: see check_depends).
    models: frozenset[str] = frozenset()
    names: tuple[str, ...] = ()  # the locals it was computed from, for messages
    reads: frozenset[int] = frozenset()
    items: tuple[Value, ...] | None = None  # a literal tuple's elements, each its own
    integer: bool = False  # a whole number: what an index must be
    boolean: bool = False  # a comparison's or a logical operator's result (a mask)
    gradients_of: str = ""  # a GRADIENTS value: the model whose variables they follow


def reported(value: Value) -> Value:
    """A value whose checks found an error: it may depend on anything, so no
    "does not depend" error follows from it."""
    return replace(value, reads=value.reads | {ANY}, items=None)


def is_reported(value: Value) -> bool:
    return ANY in value.reads


def article(noun: str) -> str:
    """`noun` with its indefinite article: "an optimizer", "a model"."""
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def chain(names: tuple[str, ...], name: str) -> tuple[str, ...]:
    return (*names, name)[-CHAIN_NAMES:]


def merge(result: Type, values: list[Value], integer: bool = False) -> Value:
    """A value of type `result` computed from `values` (their models, reads, names)."""
    models = frozenset().union(*(v.models for v in values)) if values else frozenset()
    reads = frozenset().union(*(v.reads for v in values)) if values else frozenset()
    names: tuple[str, ...] = ()
    for value in values:
        names += tuple(n for n in value.names if n not in names)
    return Value(result, models, names[-CHAIN_NAMES:], reads, integer=integer)


def without_gradient(value: Value, **changes) -> Value:
    """`value` as data: no gradient flows back through it (its names stay, for
    messages; a value computed from a reported one stays reported)."""
    reads = value.reads & {ANY}
    return replace(value, models=frozenset(), reads=reads, items=None, **changes)


def literal_part(items: tuple[Value, ...], index) -> Value | None:
    """`t[1]`, `t[-1]`, `t[1:]` or `t[::2]` of a literal tuple `t`: the element(s)
    it names, or None when the index is not a literal within range."""
    if isinstance(index, ir.Slice):
        written = (index.start, index.stop, index.step)
        bounds = [literal_int(b) for b in written]
        if any(b is None and w is not None for b, w in zip(bounds, written, strict=True)):
            return None
        if bounds[2] == 0:
            return None  # reported: a slice step cannot be zero
        part = items[slice(*bounds)]
        return replace(merge(Type.SEQUENCE, list(part)), items=part)
    position = literal_int(index)
    if position is None or not -len(items) <= position < len(items):
        return None
    return items[position]


def literal_int(expr) -> int | None:
    if isinstance(expr, ir.Number) and expr.is_int:
        return int(expr.text)
    if isinstance(expr, ir.Negate):
        inner = literal_int(expr.operand)
        return -inner if inner is not None else None
    return None
