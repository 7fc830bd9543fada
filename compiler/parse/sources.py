"""Reading spec files: every way a file can be unusable becomes one diagnostic.

Owns turning a path into spec text, or into a clear error for a missing,
unreadable or oversized file, a directory or anything else that is not a
regular file (a FIFO, a device, a socket), invalid UTF-8, NUL bytes, lone
surrogates, or brackets nested deeper than the compiler follows; and the one
normalization every entry point applies to spec text (`spec_text`).
"""

from __future__ import annotations

import os
import re
import stat

from stepc.diagnostics import Diagnostic, error
from stepc.parse.ir import Span

MAX_SPEC_BYTES = 2 * 1024 * 1024
MAX_NESTING = 64
_START = Span(1, 1, 1, 2)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Opening a FIFO for reading blocks until a writer comes; O_NONBLOCK returns at
# once, and the fstat after the open refuses it (no such flag on Windows).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_NOT_FILES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def spec_text(text: str) -> str:
    """Spec text as every stage reads it: no byte order mark, and each line break a `\n`.

    Python reads `\r\n` and a lone `\r` (old Mac files) as line breaks, and so does
    every editor, so stepc does too; the columns stay those the user sees.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.removeprefix("\ufeff")


def read_spec(path: str) -> tuple[str | None, list[Diagnostic]]:
    """The spec's text, or None and the reason it cannot be compiled."""
    try:
        refused = _not_a_file(os.stat(path).st_mode)
        if refused:
            return None, [refused]
        data = _read_bounded(path)
    except FileNotFoundError:
        return None, [error("no such file", _START)]
    except OSError as exc:
        return None, [error(f"cannot read the spec: {exc.strerror or exc}", _START)]
    if isinstance(data, Diagnostic):
        return None, [data]
    # The checks of the text itself (content_problems) are left to
    # stepc.pipeline.analyze, which runs them for the API and the CLI alike.
    return _decode(data)


def _not_a_file(mode: int) -> Diagnostic | None:
    for test, what in _NOT_FILES:
        if test(mode):
            return error(f"this is {what}, not a spec file", _START)
    if not stat.S_ISREG(mode):
        return error("this is not a regular file", _START)
    return None


def _read_bounded(path: str) -> bytes | Diagnostic:
    """At most MAX_SPEC_BYTES + 1 bytes, whatever the file's reported size (a /proc
    file says 0); the file is checked again once open, in case it was replaced."""
    fd = os.open(path, _OPEN_FLAGS)
    with open(fd, "rb", closefd=True) as file:
        info = os.fstat(file.fileno())
        refused = _not_a_file(info.st_mode)
        if refused:
            return refused
        if info.st_size > MAX_SPEC_BYTES:
            return _too_large(f"{info.st_size:,}")
        data = file.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        return _too_large(f"over {MAX_SPEC_BYTES:,}")
    return data


def _too_large(size: str) -> Diagnostic:
    limit = MAX_SPEC_BYTES // (1024 * 1024)
    message = f"the spec is {size} bytes; stepc reads specs up to {limit} MiB"
    return error(message, _START, "split it into several spec files")


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
    return spec_text(text), []


def content_problems(text: str) -> list[Diagnostic]:
    """Checks on the text itself (as `spec_text` gives it), before the parser sees it."""
    if "\x00" in text:
        return [_position_error(text[: text.index("\x00")], "the spec contains a NUL byte")]
    surrogate = _SURROGATE.search(text)
    if surrogate:  # only a str built in Python has one: UTF-8 cannot encode it
        message = f"the spec contains a lone surrogate (U+{ord(surrogate.group()):04X})"
        hint = "it is not text: was the spec decoded with errors='surrogateescape'?"
        return [_position_error(text[: surrogate.start()], message, hint)]
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
