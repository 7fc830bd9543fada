"""Layout changes that must not change what a spec means (a metamorphic relation).

`relayout(rng, text)` rewrites a spec's layout the grammar says is free:
comments at the end of lines and on lines of their own, blank lines, trailing
whitespace, CRLF line ends, tabs or two spaces per indentation level (used
consistently), lines broken inside brackets or with a backslash, and no final
newline. The result must be accepted exactly when the original is, and compile
to the same module up to line numbers (`same_module`).
"""

from __future__ import annotations

import re

_SPEC_LINE = re.compile(r"(\.step:)\d+")


def _indent_unit(rng) -> str:
    return rng.choice(("    ", "    ", "\t", "  ", "     "))


def _reindent(line: str, unit: str) -> str:
    stripped = line.lstrip(" ")
    return unit * ((len(line) - len(stripped)) // 4) + stripped


def _break_inside_brackets(rng, line: str) -> str:
    """Break the line after a comma inside brackets (an implicit continuation)."""
    depth, places = 0, []
    for i, char in enumerate(line):
        depth += char in "([" and not _in_string(line, i)
        depth -= char in ")]" and not _in_string(line, i)
        if char == "," and depth > 0 and not _in_string(line, i):
            places.append(i)
    if not places:
        return line
    at = rng.choice(places) + 1
    return line[:at] + "\n" + " " * rng.randint(0, 12) + line[at:].lstrip(" ")


def _in_string(line: str, index: int) -> bool:
    return line[:index].count('"') % 2 == 1


def _backslash(rng, line: str) -> str:
    """Continue a statement on the next line after `=` with a backslash."""
    at = line.find(" = ")
    if at < 0 or _in_string(line, at):
        return line
    return line[: at + 2] + "\\\n" + " " * rng.randint(0, 8) + line[at + 3 :]


def _decorate(rng, line: str, unit: str) -> list[str]:
    roll = rng.random()
    if roll < 0.1:
        return [line + "  # " + rng.choice(("note", "x = 1", "minimize", '"', "\\"))]
    if roll < 0.15:
        return [" " * rng.randint(0, 9) + "# a comment line", line]
    if roll < 0.2:
        return [rng.choice(("", " ", "\t", "        ")), line]
    if roll < 0.25:
        return [line + rng.choice((" ", "\t", "  "))]
    if roll < 0.3:
        return [_break_inside_brackets(rng, line)]
    if roll < 0.33:
        return [_backslash(rng, line)]
    return [line]


def relayout(rng, text: str) -> str:
    unit = _indent_unit(rng)
    lines = [_reindent(line, unit) for line in text.splitlines()]
    out = [piece for line in lines for piece in _decorate(rng, line, unit)]
    newline = "\r\n" if rng.random() < 0.2 else "\n"
    result = newline.join(out)
    return result if rng.random() < 0.1 else result + newline


def normalized(module: str) -> str:
    """The module without comments, its spec hash and line numbers."""
    lines = [_SPEC_LINE.sub(r"\1N", line) for line in module.splitlines()]
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    # The formatter wraps a message differently when its line number has more digits.
    return " ".join(re.sub(r'"\s+"', "", text).split())


def same_module(a: str, b: str) -> bool:
    return normalized(a) == normalized(b)
