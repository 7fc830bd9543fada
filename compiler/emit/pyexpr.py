"""Python source for expressions: precedence, literals and line wrapping.

Owns turning an IR expression into Python text (given how each name and call
resolves, which the backend decides) and laying a statement out within the
line length the way the pinned formatter (ruff format) does for these forms:
flat if it fits, else the outermost brackets broken with their contents on one
indented line, else one item per line with a trailing comma.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stepc.parse import ir
from stepc.tables.operators import BINARY, INVERT

LINE_LENGTH = 88
INDENT = "    "

# Binding strength, loosest first, as in Python.
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "neg": 3, "**": 4}
ATOM = 5


def comment_lines(text: str, width: int) -> list[str]:
    """A `# ...` comment within `width` columns: broken at spaces, each further
    line starting `#     ` (a word longer than the width stays whole)."""
    lines, words = [], text.split(" ")
    current = words[0]
    for word in words[1:]:
        if len(current) + 1 + len(word) > width and current.strip("# "):
            lines.append(current.rstrip())
            current = "#    "
        current += " " + word
    return [*lines, current.rstrip()]


_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


# Printable ASCII but the quote and the backslash: text that needs no escape.
_PLAIN = re.compile(r"[ !#-\[\]-~]*\Z")


def string_literal(value: str) -> str:
    """A Python literal with every non-ASCII or control character escaped by its
    code point: spec text can never end the string, hide code, or change value
    (no surrogate pairs). Double-quoted unless single quotes need fewer escapes,
    as the pinned formatter chooses."""
    if _PLAIN.match(value):  # the common case, checked in one regex pass
        return '"' + value + '"'
    quote = "'" if value.count('"') > value.count("'") else '"'
    return quote + "".join(_escape(c, quote) for c in value) + quote


def _escape(char: str, quote: str) -> str:
    if char in "\"'":
        return "\\" + char if char == quote else char
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return char
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def python_number(number) -> str:
    """A spec number as Python reads it: `007` is 7 (Python rejects leading zeros)."""
    return str(int(number.text)) if number.is_int else number.text


# ---------------------------------------------------------------- documents


@dataclass(frozen=True)
class Group:
    """Bracketed items: `open item, item close`, broken as a unit."""

    open: str
    items: tuple[Doc, ...]
    close: str
    tuple_of_one: bool = False  # `(a,)` keeps its comma when flat
    # A subscript's brackets: ruff breaks them only when the line up to `[` fits,
    # else it breaks a bracket pair before them (`f(\n    a\n)[0]`).
    trailer: bool = False


@dataclass(frozen=True)
class Concat:
    """Documents laid out one after another."""

    parts: tuple[Doc, ...]


@dataclass(frozen=True)
class Text:
    """A string literal that may be split into implicitly joined parts."""

    value: str


@dataclass(frozen=True)
class Chain:
    """Operands joined by operators of one precedence: `a + b - c`. Broken,
    each operand starts a line with its operator, inside parentheses."""

    first: Doc
    rest: tuple[tuple[str, Doc], ...]


Doc = str | Group | Concat | Text | Chain


def flat(doc: Doc) -> str:
    if isinstance(doc, str):
        return doc
    if isinstance(doc, Text):
        return string_literal(doc.value)
    if isinstance(doc, Chain):
        return flat(doc.first) + "".join(f" {op} {flat(d)}" for op, d in doc.rest)
    if isinstance(doc, Concat):
        return "".join(flat(p) for p in doc.parts)
    body = ", ".join(flat(i) for i in doc.items)
    return f"{doc.open}{body}{',' if doc.tuple_of_one else ''}{doc.close}"


def layout(
    prefix: str, doc: Doc, indent: str, reserve: int = 0, width: int = LINE_LENGTH
) -> list[str]:
    """Lines for `prefix + doc` at `indent`, within `width` less `reserve`
    (room for a comma that follows). The width is Python's line length unless
    told (the spec formatter, `stepc.tools.fmt`, lays specs out at its own)."""
    text = indent + prefix + flat(doc)
    if len(text) + reserve <= width:
        return [text]
    if isinstance(doc, Text) and not prefix:
        return _split_text(doc.value, indent, width - reserve)
    if isinstance(doc, Chain):
        return _break_chain(prefix, doc, indent, reserve, width)
    head, group, tail = _last_group(doc)
    if group is None:
        return [text]
    head, group, tail = _passing_over_trailers(indent + prefix, doc, (head, group, tail), width)
    if prefix.endswith(" = ") and len(indent + prefix + head + group.open) > width:
        # `name = f(` alone is too long: ruff parenthesizes the right-hand side.
        inner = layout("", doc, indent + INDENT, width=width)
        return [indent + prefix + "(", *inner, indent + ")"]
    return _break_group(indent + prefix + head, group, tail, indent, width)


def assignment(targets: list[str], doc: Doc, indent: str) -> list[str]:
    """`a, b = value` laid out as ruff does: when the targets alone do not fit
    before `= (`, they are parenthesized one per line and the value follows `) = `."""
    names = ", ".join(targets)
    if len(targets) < 2 or len(indent + names + " = (") <= LINE_LENGTH:
        return layout(f"{names} = ", doc, indent)
    if len(indent + names + " = " + flat(doc)) <= LINE_LENGTH:
        return [indent + names + " = " + flat(doc)]
    lines = [indent + "(", *(indent + INDENT + target + "," for target in targets)]
    return lines + layout(") = ", doc, indent)


def _last_group(doc: Doc) -> tuple[str, Group | None, str]:
    """Split at the last bracket pair that can be broken (a right-hand split)."""
    if isinstance(doc, Group):
        return "", doc, ""
    if isinstance(doc, Chain):
        doc = Concat((doc.first, *(p for op, d in doc.rest for p in (f" {op} ", d))))
    if isinstance(doc, Concat):
        for index in range(len(doc.parts) - 1, -1, -1):
            head, group, tail = _last_group(doc.parts[index])
            if group is not None and group.items:
                before = "".join(flat(p) for p in doc.parts[:index])
                after = "".join(flat(p) for p in doc.parts[index + 1 :])
                return before + head, group, tail + after
    return flat(doc), None, ""


def _passing_over_trailers(start: str, doc: Doc, split: tuple, width: int) -> tuple:
    """The split ruff makes: the last bracket pair, unless it is a subscript whose
    `[` would end a line too long; then the pair before it (when there is one)."""
    head, group, tail = split
    while group is not None and group.trailer and len(start + head + group.open) > width:
        doc = _frozen_last_group(doc)
        head, group, tail = _last_group(doc)
    return (head, group, tail) if group is not None else split


def _frozen_last_group(doc: Doc) -> Doc:
    """`doc` with the group `_last_group` would split made plain text."""
    if isinstance(doc, Group):
        return flat(doc)
    if isinstance(doc, Chain):
        doc = Concat((doc.first, *(p for op, d in doc.rest for p in (f" {op} ", d))))
    if isinstance(doc, Concat):
        for index in range(len(doc.parts) - 1, -1, -1):
            if _last_group(doc.parts[index])[1] is not None:
                parts = list(doc.parts)
                parts[index] = _frozen_last_group(parts[index])
                return Concat(tuple(parts))
    return doc


def _break_group(
    head: str, group: Group, tail: str, indent: str, width: int = LINE_LENGTH
) -> list[str]:
    inner = indent + INDENT
    body = ", ".join(flat(i) for i in group.items)
    if group.tuple_of_one:
        body += ","
    closing = indent + group.close + tail
    if len(inner + body) <= width:
        return [head + group.open, inner + body, closing]
    if len(group.items) == 1 and not group.tuple_of_one:
        # One item gets no trailing comma: the formatter would keep it as "magic".
        return [head + group.open, *layout("", group.items[0], inner, width=width), closing]
    lines = [head + group.open]
    for item in group.items:
        item_lines = layout("", item, inner, reserve=1, width=width)
        item_lines[-1] += ","
        lines += item_lines
    return lines + [closing]


def _break_chain(prefix: str, chain: Chain, indent: str, reserve: int, width: int) -> list[str]:
    """One operand a line; a statement's chain gets parentheses to hold it,
    and stays on one line inside them if it fits there.

    Like the formatter, a statement whose chain has one operator and ends
    with a bracket (`a / f(b)`, `f(a) / g(b)`) breaks inside a call instead,
    if the rest then fits; one ending in a name or a number (`f(a) / t`) is
    parenthesized."""
    if prefix and len(chain.rest) == 1 and _may_omit_parentheses(chain):
        for attempt in (_break_last_operand, _break_first_operand, _break_both_operands):
            lines = attempt(prefix, chain, indent, reserve, width)
            if lines is not None:
                return lines
    inner = indent + INDENT if prefix else indent
    if prefix and len(inner + flat(chain)) <= width:
        return [indent + prefix + "(", inner + flat(chain), indent + ")"]
    lines = [indent + prefix + "("] if prefix else []
    lines += layout("", chain.first, inner, width=width)
    for op, operand in chain.rest:
        lines += layout(f"{op} ", operand, inner, width=width)
    if prefix:
        lines.append(indent + ")")
    return lines


def _may_omit_parentheses(chain: Chain) -> bool:
    """The formatter splits a bracket of the line itself only when the line
    starts or ends with one (black's `can_omit_invisible_parens`)."""
    text = flat(chain)
    return text.startswith(("(", "[")) or text.endswith((")", "]"))


def _break_last_operand(prefix, chain: Chain, indent: str, reserve: int, width: int):
    op, operand = chain.rest[0]
    head, group, tail = _last_group(operand)
    if group is None:
        return None
    head = f"{indent}{prefix}{flat(chain.first)} {op} {head}"
    lines = _break_group(head, group, tail, indent, width)
    return lines if _fits(lines, reserve, width) else None


def _fits(lines: list[str], reserve: int, width: int) -> bool:
    return all(len(line) <= width for line in lines[:-1]) and (len(lines[-1]) + reserve <= width)


def _break_first_operand(prefix, chain: Chain, indent: str, reserve: int, width: int):
    head, group, tail = _last_group(chain.first)
    if group is None:
        return None
    op, operand = chain.rest[0]
    lines = _break_group(indent + prefix + head, group, tail, indent, width)
    lines[-1] += f" {op} {flat(operand)}"
    return lines if _fits(lines, reserve, width) else None


def _break_both_operands(prefix, chain: Chain, indent: str, reserve: int, width: int):
    """`f(` .. `) - g(` .. `)`: each operand breaks inside its own call, as the
    formatter fits one bracket after the other when neither operand fits flat."""
    head, group, tail = _last_group(chain.first)
    op, operand = chain.rest[0]
    last_head, last_group, last_tail = _last_group(operand)
    if group is None or last_group is None:
        return None
    lines = _break_group(indent + prefix + head, group, tail, indent, width)
    joint = f"{lines.pop()} {op} {last_head}"
    lines += _break_group(joint, last_group, last_tail, indent, width)
    return lines if _fits(lines, reserve, width) else None


def _split_text(value: str, indent: str, limit: int) -> list[str]:
    """A long message as implicitly joined literals, broken after spaces."""
    room = max(20, limit - len(indent) - 2)
    parts, current = [], ""
    for word in value.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and len(string_literal(candidate + " ")) - 2 > room:
            parts.append(current + " ")
            current = word
        else:
            current = candidate
    parts.append(current)
    return [indent + string_literal(part) for part in parts]


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Rendered:
    """An expression's document and how tightly it binds."""

    doc: Doc
    precedence: int


def atom(doc: Doc) -> Rendered:
    return Rendered(doc, ATOM)


def binary(op: str, left: Rendered, right: Rendered) -> Rendered:
    level = _PRECEDENCE[op]
    right_assoc = op == "**"
    left_doc = _wrap(left, level + (1 if right_assoc else 0))
    right_doc = _wrap(right, level + (0 if right_assoc else 1))
    if op == "**" and _is_simple(left) and _is_simple(right):
        return Rendered(Concat((left_doc, "**", right_doc)), level)
    if op == "**":
        return Rendered(Concat((left_doc, " ** ", right_doc)), level)
    if isinstance(left_doc, Chain) and left.precedence == level:
        return Rendered(Chain(left_doc.first, (*left_doc.rest, (op, right_doc))), level)
    return Rendered(Chain(left_doc, ((op, right_doc),)), level)


def operation(op: str, left: Rendered, right: Rendered) -> Rendered:
    """`left op right`: Python's operator, or the `keras.ops` function that
    spells it (`a == b` is `ops.equal(a, b)`: see stepc.tables.operators)."""
    target = BINARY[op].target
    return call(target, [left.doc, right.doc]) if target else binary(op, left, right)


def invert(operand: Rendered) -> Rendered:
    return call(INVERT.target, [operand.doc])


def negate(operand: Rendered) -> Rendered:
    return Rendered(Concat(("-", _wrap(operand, _PRECEDENCE["neg"]))), _PRECEDENCE["neg"])


def call(func: str, args: list[Doc]) -> Rendered:
    return atom(Concat((func, Group("(", tuple(args), ")"))))


def subscript(value: Rendered, index: str) -> Rendered:
    return atom(Concat((_wrap(value, ATOM), Group("[", (index,), "]", trailer=True))))


def index_text(index, render: Callable[[ir.Expr], Rendered]) -> str:
    """A subscript's index as ruff prints it: `:, :-1`, `..., 0`, `a + 1 :`."""
    items = index.items if isinstance(index, ir.Indices) else (index,)
    return ", ".join(_axis_text(item, render) for item in items)


# What ruff prints a slice bound beside a bare colon: a name or a number, negated or not.
_SIMPLE_BOUND = re.compile(r"-*(?:[A-Za-z_]\w*|[0-9.][\w.]*(?:[+-]\d+)?)")


def _axis_text(item, render) -> str:
    if isinstance(item, ir.EllipsisIndex):
        return "..."
    if not isinstance(item, ir.Slice):
        return flat(render(item).doc)
    bounds = [item.start, item.stop] + ([item.step] if item.step is not None else [])
    return slice_text([flat(render(b).doc) if b is not None else "" for b in bounds])


def slice_text(parts: list[str]) -> str:
    """A slice from its bounds' text (`""`: left out), spaced as ruff spaces it."""
    if all(not p or _SIMPLE_BOUND.fullmatch(p) for p in parts):
        return ":".join(parts)
    # Complex bounds: the colon spaced like a binary operator, but not toward a
    # missing bound (`x[a + 1 :]`, `x[:: n + 1]`).
    text = parts[0]
    for before, part in zip(parts, parts[1:], strict=False):
        text += (" " if before else "") + ":" + (" " if part else "") + part
    return text


def sequence(open_: str, items: list[Doc], close: str) -> Rendered:
    return atom(Group(open_, tuple(items), close, tuple_of_one=open_ == "(" and len(items) == 1))


def _wrap(rendered: Rendered, minimum: int) -> Doc:
    if rendered.precedence >= minimum:
        return rendered.doc
    return Group("(", (rendered.doc,), ")")


def _is_simple(rendered: Rendered) -> bool:
    """ruff hugs `**` when both operands are names, numbers or attribute chains."""
    text = flat(rendered.doc)
    return rendered.precedence == ATOM and text.replace(".", "").replace("_", "").isalnum()
