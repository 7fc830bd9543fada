"""The lines of a generated class's methods: `Method`, `def` lines, layout, literals.

Owns the small layout helpers that the class writers (`stepc.emit.keras.classes`
for the constructor and configs, `stepc.emit.keras.compile` for compile())
share: a method's finished lines, a `def` line broken as ruff breaks it, a
laid-out statement at a depth, and a literal of the spec (a constructor
argument or a parameter's default) as Python writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepc.emit.pyexpr import (
    INDENT,
    Concat,
    call,
    flat,
    layout,
    python_number,
    sequence,
    string_literal,
)
from stepc.parse import ir


@dataclass(frozen=True)
class Method:
    """A method of a generated class, as finished lines."""

    lines: tuple[str, ...]  # complete, indented source lines


def def_line(name: str, params: list[str]) -> list[str]:
    """A `def` line, its parameters broken as ruff breaks a long signature."""
    return laid_out("def ", Concat((call(name, params).doc, ":")), depth=0)


def laid_out(prefix: str, doc, depth: int = 1, reserve: int = 0) -> list[str]:
    """`layout` for a line at `depth` inside a method, measured at its final
    indentation (one level deeper, under the class) and returned relative to
    the method, as the other lines of a class writer's method are; `reserve`:
    room for what follows it (a comma)."""
    lines = layout(prefix, doc, INDENT * (depth + 1), reserve)
    return [line[len(INDENT) :] for line in lines]


def entry(key: str, doc, depth: int) -> list[str]:
    """`"key": value,` of a dict literal broken over lines, as ruff lays it out."""
    lines = laid_out(f'"{key}": ', doc, depth, reserve=1)
    return [*lines[:-1], lines[-1] + ","]


def indent(lines: list[str]) -> list[str]:
    return [INDENT + line if line else line for line in lines]


def literal(expr: ir.Expr, names: dict[str, str] | None = None) -> str:
    """A constructor argument or a default: a literal, or (in `names`) the name of
    an int/float parameter, spelled as the method reads it (`lr`, `self.lr`)."""
    if isinstance(expr, ir.String):
        return string_literal(expr.value)
    if isinstance(expr, ir.Number):
        return python_number(expr)
    if isinstance(expr, ir.Negate):
        return "-" + literal(expr.operand)
    if isinstance(expr, ir.Name):
        return (names or {}).get(expr.id, expr.id)
    items = [literal(i, names) for i in expr.items]
    if isinstance(expr, ir.ListExpr):
        return flat(sequence("[", items, "]").doc)
    return flat(sequence("(", items, ")").doc)


def parameter(param) -> str:
    """A parameter of a generated signature: `alpha=0.1` for one with a default."""
    return param.name if param.default is None else f"{param.name}={literal(param.default)}"
