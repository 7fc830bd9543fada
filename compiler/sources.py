"""Reading spec files: every way a file can be unusable becomes one diagnostic.

Owns turning a path into spec text, or into a clear error for a missing,
unreadable or oversized file, a directory, invalid UTF-8, NUL bytes, or
brackets nested deeper than the compiler follows.
"""

from __future__ import annotations

from pathlib import Path

from stepc.diagnostics import Diagnostic, error
from stepc.ir import Span

MAX_SPEC_BYTES = 2 * 1024 * 1024
MAX_NESTING = 64
_START = Span(1, 1, 1, 2)


def read_spec(path: str) -> tuple[str | None, list[Diagnostic]]:
    """The spec's text, or None and the reason it cannot be compiled."""
    file = Path(path)
    try:
        if file.is_dir():
            return None, [error("this is a directory, not a spec file", _START)]
        size = file.stat().st_size
        if size > MAX_SPEC_BYTES:
            limit = MAX_SPEC_BYTES // (1024 * 1024)
            message = f"the spec is {size:,} bytes; stepc reads specs up to {limit} MiB"
            return None, [error(message, _START, "split it into several spec files")]
        data = file.read_bytes()
    except FileNotFoundError:
        return None, [error("no such file", _START)]
    except OSError as exc:
        return None, [error(f"cannot read the spec: {exc.strerror or exc}", _START)]
    # The checks of the text itself (content_problems) are left to
    # stepc.pipeline.analyze, which runs them for the API and the CLI alike.
    return _decode(data)


def decode_spec(data: bytes) -> tuple[str | None, list[Diagnostic]]:
    """Bytes to spec text, with the checks of the text itself."""
    text, problems = _decode(data)
    if text is not None:
        problems = content_problems(text)
    return (None, problems) if problems else (text, [])


def _decode(data: bytes) -> tuple[str | None, list[Diagnostic]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [_position_error(data[: exc.start], "the spec is not valid UTF-8")]
    return text.removeprefix("\ufeff"), []


def content_problems(text: str) -> list[Diagnostic]:
    """Checks on the text itself, before the parser sees it."""
    if "\x00" in text:
        return [_position_error(text[: text.index("\x00")], "the spec contains a NUL byte")]
    depth = 0
    for number, line in enumerate(text.split("\n"), start=1):
        for index, char in code_positions(line):
            depth += 1 if char in "([" else -1 if char in ")]" else 0
            if depth > MAX_NESTING:
                span = Span(number, index + 1, number, index + 2)
                message = f"brackets nested more than {MAX_NESTING} deep"
                return [error(message, span, "name intermediate values instead of nesting them")]
    return []


def code_positions(line: str):
    """(index, character) of one line's code: strings and the comment skipped."""
    quote = None
    escaped = False
    for index, char in enumerate(line):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char == "#":
            return
        else:
            yield index, char


def _position_error(before, message: str, hint: str | None = None) -> Diagnostic:
    """An error at the position just after `before` (bytes or text)."""
    if isinstance(before, bytes):
        before = before.decode("utf-8", errors="replace")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return error(message, Span(line, column, line, column + 1), hint)
