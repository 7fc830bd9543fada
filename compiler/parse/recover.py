"""Syntax-error recovery: rewriting the bad statement so the rest of the spec parses.

Owns the text side of `stepc.parse.parser`'s recovery. After a syntax error has been
reported, the statement holding it is replaced, on its first line, by a stand-in
the grammar accepts wherever a statement or a model item may stand:

* a block header (`repeat foo bar:`, `train(x y):`, `model M(Functional)`) by a
  neutral header of the same kind, so its body is still parsed and checked;
* any other statement by a placeholder: a NUL byte (no spec text contains one:
  `stepc.parse.sources.content_problems` refuses it), then what the line was and the
  names it would have defined and mentioned. The parser turns it into an
  `ir.Recovered`, which tells the checker those names exist (with an unknown
  type) and are used, so no consequence of the syntax error is reported.

Lines and columns never move: the statement's other lines become blank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stepc.parse import ir
from stepc.parse.sources import code_positions
from stepc.tables.builtins import PARAM_TYPES

PLACEHOLDER = "\x00"
_WORD = re.compile(r"\d[\w.]*|[A-Za-z_]\w*")  # a number is one word: `1e5` names no `e5`
_KEYWORDS = frozenset(
    ("model", "init", "compile", "metric", "loss", "optimizer", "jit_compile")
    + ("train", "test", "predict")
    + ("minimize", "over", "using", "update", "return", "repeat", "assign", "apply")
    + ("for", "in", "as")
)
_STEP_KINDS = ("train", "test", "predict", "shared")  # block headers at step level
_ITEM_KEYWORDS = ("init", "compile", "metric", "loss", "optimizer", "jit_compile")
_STATEMENT_KEYWORDS = ("minimize", "update", "return", "repeat", "assign", "apply")
_IDENTIFIER_START = re.compile(r"[A-Za-z_]")


@dataclass(frozen=True)
class Statement:
    """The physical lines (1-based, inclusive) of one logical line of the spec."""

    first: int
    last: int
    closed: bool = True  # False: a bracket opened in it is never closed


def logical_lines(lines: list[str]) -> list[Statement]:
    """Every logical line: brackets and a trailing backslash continue a line."""
    found: list[Statement] = []
    depth, first = 0, None
    for number, text in enumerate(lines, start=1):
        code = _code(text)
        if first is None:
            if not code.strip():
                continue
            first = number
        depth = max(0, depth + _bracket_change(code))
        if depth == 0 and not code.rstrip().endswith("\\"):
            found.append(Statement(first, number))
            first = None
    if first is not None:
        found.append(Statement(first, len(lines), closed=False))
    return found


def statement_at(lines: list[str], line: int) -> Statement:
    """The logical line holding physical line `line` (or just that line); one whose
    bracket is never closed is taken to end at `line`, not at the end of the file."""
    for statement in logical_lines(lines):
        if statement.first <= line <= statement.last:
            return statement if statement.closed else Statement(statement.first, line)
    return Statement(line, line)


def statement_before(lines: list[str], line: int) -> Statement | None:
    """The last logical line that starts before physical line `line`."""
    before = [s for s in logical_lines(lines) if s.first < line]
    return before[-1] if before else None


def header_without_body(lines: list[str], line: int, at_line_start: bool) -> Statement | None:
    """The block header (a line ending with `:`) whose body is missing, if the error at
    `line` is that: the first token of a line not indented below the header before it,
    or the end of a block or of the file (`line` is then the header's own line)."""
    header = statement_before(lines, line) if at_line_start else statement_at(lines, line)
    if header is None or not _code(lines[header.last - 1]).rstrip().endswith(":"):
        return None
    if at_line_start and _level(lines[line - 1]) > _level(lines[header.first - 1]):
        return None  # the body is there: the error is inside it
    return header


def closes_later(lines: list[str], line: int, column: int) -> bool:
    """Whether the bracket at (line, column) is matched somewhere after it."""
    depth = 0
    for number in range(line, len(lines) + 1):
        text = lines[number - 1]
        for index, char in code_positions(text):
            if number == line and index < column - 1:
                continue
            depth += 1 if char in "([" else -1 if char in ")]" else 0
            if depth == 0:
                return True
    return False


def replace(lines: list[str], statement: Statement, indent: str | None = None, block=True):
    """Replace `statement` by its stand-in (a neutral header if `block` allows and it
    is a header; `indent`: the stand-in's, if not the statement's). The Recovered
    record, or None when that changes nothing (recovery can make no progress)."""
    first = lines[statement.first - 1]
    if indent is None:
        indent = first[: len(first) - len(first.lstrip(" \t\f"))]
    code = " ".join(_code(lines[n - 1]) for n in range(statement.first, statement.last + 1))
    stand_in, record = _stand_in(lines, statement, code, block)
    if indent + stand_in == first or first.lstrip(" \t\f").startswith(PLACEHOLDER):
        return None
    lines[statement.first - 1] = indent + stand_in
    for number in range(statement.first + 1, statement.last + 1):
        lines[number - 1] = ""
    return record


def _stand_in(lines, statement: Statement, code: str, block: bool) -> tuple[str, ir.Recovered]:
    names = _names(code)
    span = ir.Span(statement.first, 1, statement.last, len(lines[statement.last - 1]) + 1)
    header = _neutral_header(lines, statement, code, names) if block else None
    if header is not None:
        return header, ir.Recovered("header", (), names, span)
    if _level(lines[statement.first - 1]) == 0:
        # Not a model: left out, so that lines indented below it stay in the model
        # above (it is most often the rest of the line before, such as a string's).
        return "", ir.Recovered("", (), names, span)
    item = _enclosing_level(lines, statement) == 0
    kind, names = _keyword(names, code, _ITEM_KEYWORDS if item else _STATEMENT_KEYWORDS)
    defines = _defines(code, kind, names)
    payload = f"{kind};{' '.join(defines)};{' '.join(names)}"
    return PLACEHOLDER + payload, ir.Recovered(kind, defines, names, span)


def _neutral_header(lines, statement: Statement, code: str, names) -> str | None:
    """A header of the same kind for a bad block header, or None if it is none."""
    if not _opens_block(lines, statement, code):
        return None
    level = _level(lines[statement.first - 1])
    if level == 0:
        return _model_header(names)
    if _enclosing_level(lines, statement) == 0:
        return _step_header(names)
    return _loop_header(*_keyword(names, code, ("repeat", "for")))


def _loop_header(kind: str, names: tuple[str, ...]) -> str:
    """A neutral loop header binding the loop variables the bad one names, so that
    its body's reads of them are not reported (an empty tuple: its error is the
    stand-in's, on the replaced line, which is not reported)."""
    if kind == "for":
        targets = names[: names.index("in")] if "in" in names else names[:1]
        targets = tuple(n for n in targets if n not in _KEYWORDS)
        return f"for {', '.join(targets)} in ():" if targets else "repeat 1:"
    count = names[0] if kind and names and names[0] not in _KEYWORDS else "1"
    after = names[names.index("as") + 1 :] if "as" in names else ()
    if after and after[0] not in _KEYWORDS:
        return f"repeat {count} as {after[0]}:"
    return f"repeat {count}:"  # its count is still checked, and so used


def _close_matches(word: str, choices, **limits) -> list[str]:
    import difflib  # here, not at the top: only a statement with a syntax error is rewritten

    return difflib.get_close_matches(word, choices, **limits)


def _model_header(names: tuple[str, ...]) -> str | None:
    kind, names = _keyword(names, "", ("model",))
    if not kind and not (names and _close_matches(names[0], ["model"], cutoff=0.6)):
        return None
    words = [n for n in (names if kind else names[1:])]
    if len(words) == 1 and words[0].endswith("Functional") and words[0] != "Functional":
        words = [words[0].removesuffix("Functional"), "Functional"]  # a `(` left out
    base = f"({words[1]})" if len(words) > 1 else ""
    return f"model {words[0] if words else '_'}{base}:"


def _step_header(names: tuple[str, ...]) -> str:
    kind, names = _keyword(names, "", _STEP_KINDS)
    if not kind:
        close = _close_matches(names[0], _STEP_KINDS, n=1) if names else []
        kind, names = (close[0] if close else "train"), names[1:]
    data = [n for n in names if n not in _KEYWORDS][:3] or ["x"]
    return f"{kind}({', '.join(data)}):"


def _keyword(names: tuple[str, ...], code: str, keywords) -> tuple[str, tuple[str, ...]]:
    """The keyword the statement starts with ("" if none) and the names after it. A
    keyword glued to the next name (`initdisc:`, `trainx, y`) is split from it; a
    name followed by `=` is assigned to, not a keyword (`loss = ...` in a step)."""
    if not names or re.match(rf"\s*{names[0]}\s*=", code):
        return "", names
    first = names[0]
    for keyword in sorted(keywords, key=len, reverse=True):
        if first == keyword:
            return keyword, names[1:]
        if first.startswith(keyword) and _IDENTIFIER_START.match(first[len(keyword) :]):
            return keyword, (first[len(keyword) :], *names[1:])
    return "", names


def _defines(code: str, kind: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The names the statement would have defined: before its `=` (an assignment, a
    metric or loss), or the parameters of an init or compile (the names that are not
    types). With no `=`, it is most likely missing: the names before it are taken."""
    if kind in ("init", "compile"):
        return tuple(n for n in names if n not in PARAM_TYPES)
    if kind not in ("", "metric", "loss", "optimizer"):
        return ()
    depth = 0
    for index, char in enumerate(code):
        depth += 1 if char in "([" else -1 if char in ")]" else 0
        if char == "=" and depth == 0 and not _in_comparison(code, index):
            return tuple(n for n in _names(code[:index]) if n in names)
    if kind:  # `metric t Mean()`: the name after the keyword
        return names[:1]
    targets = re.match(r"\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)", code)
    return _names(targets[1]) if targets else ()


def _in_comparison(code: str, index: int) -> bool:
    """The `=` at `index` is part of `==`, `!=`, `<=` or `>=`, not an assignment."""
    return code[index - 1 : index] in ("=", "!", "<", ">") or code[index + 1 : index + 2] == "="


def _opens_block(lines: list[str], statement: Statement, code: str) -> bool:
    """A header: it ends with `:`, or the next code line is indented deeper."""
    if code.rstrip().endswith(":"):
        return True
    level = _level(lines[statement.first - 1])
    for text in lines[statement.last :]:
        if _code(text).strip():
            return _level(text) > level
    return False


def _enclosing_level(lines: list[str], statement: Statement) -> int:
    """The indentation of the block header this statement is inside."""
    level = _level(lines[statement.first - 1])
    for text in reversed(lines[: statement.first - 1]):
        if _code(text).strip() and _level(text) < level:
            return _level(text)
    return 0


def _code(text: str) -> str:
    """A line's code: its strings and comment left out."""
    if '"' not in text and "'" not in text and "#" not in text:
        return text  # most lines: no need to walk the characters
    return "".join(char for _, char in code_positions(text))


def _names(code: str) -> tuple[str, ...]:
    """The identifiers of `code`, each once, in order."""
    words = (w for w in _WORD.findall(code) if not w[0].isdigit())
    return tuple(dict.fromkeys(words))


def _bracket_change(code: str) -> int:
    return code.count("(") + code.count("[") - code.count(")") - code.count("]")


def _level(text: str) -> int:
    from stepc.parse.parser import indent_width

    return indent_width(text[: len(text) - len(text.lstrip(" \t\f"))])
