"""Diagnostics: what every stage reports about a spec, and how it is shown.

Owns the `Diagnostic` record, the `SpecError` exception that carries all of a
spec's diagnostics out of the pipeline, the *did you mean* suggestion, and the
two renderings: text (`path:line:col: error: message`, the source line, a
caret under the span, a hint) and JSON for editors and CI annotations.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from stepc.ir import Span


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    message: str
    span: Span
    hint: str | None = None


class SpecError(Exception):
    """A spec has errors; `diagnostics` holds all of them, warnings too."""

    def __init__(self, path: str, source: str, diagnostics: Iterable[Diagnostic]):
        self.path = path
        self.source = source
        self.diagnostics = tuple(diagnostics)
        super().__init__(render_text(path, source, self.diagnostics))


def error(message: str, span: Span, hint: str | None = None) -> Diagnostic:
    return Diagnostic(Severity.ERROR, message, span, hint)


def warning(message: str, span: Span, hint: str | None = None) -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, span, hint)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


# ---------------------------------------------------------------- rendering

_COLOURS = {"error": "\033[1;31m", "warning": "\033[1;33m", "hint": "\033[1;36m"}
_BOLD, _RESET = "\033[1m", "\033[0m"


def render_text(
    path: str, source: str, diagnostics: Iterable[Diagnostic], colour: bool = False
) -> str:
    """All diagnostics, sorted by position, as a compiler prints them."""
    lines = source.split("\n")  # as the parser counts lines (splitlines also splits on \x85...)
    ordered = sorted(diagnostics, key=lambda d: (d.span.line, d.span.column))
    return "\n".join(_render_one(path, lines, d, colour) for d in ordered)


def _render_one(path: str, lines: list[str], diag: Diagnostic, colour: bool) -> str:
    span, severity = diag.span, diag.severity.value
    label = f"{_COLOURS[severity]}{severity}{_RESET}" if colour else severity
    location = f"{path}:{span.line}:{span.column}"
    if colour:
        location = f"{_BOLD}{location}{_RESET}"
    out = [f"{location}: {label}: {diag.message}"]
    out += _excerpt(lines, span)
    if diag.hint:
        hint = f"{_COLOURS['hint']}hint{_RESET}" if colour else "hint"
        out.append(f"  {hint}: {diag.hint}")
    return "\n".join(out)


def _excerpt(lines: list[str], span: Span) -> list[str]:
    """The offending line and a caret run under the span (first line only)."""
    if not 1 <= span.line <= len(lines) or lines == [""]:
        return []  # no text to show (an unreadable file, say)
    text = _printable(lines[span.line - 1])
    gutter = f"{span.line:>4} | "
    end = span.end_column if span.end_line == span.line else len(text) + 1
    width = max(1, end - span.column)
    caret = " " * (len(gutter) - 2) + "| " + " " * (span.column - 1) + "^" * width
    return [gutter + text, caret]


def _printable(text: str) -> str:
    """The line with control characters shown safely, one column each."""
    return "".join(c if c.isprintable() or c == "\t" else "?" for c in text)


def render_json(path: str, diagnostics: Iterable[Diagnostic]) -> list[dict]:
    return [
        {
            "severity": d.severity.value,
            "path": path,
            "line": d.span.line,
            "column": d.span.column,
            "end_line": d.span.end_line,
            "end_column": d.span.end_column,
            "message": d.message,
            "hint": d.hint,
        }
        for d in sorted(diagnostics, key=lambda d: (d.span.line, d.span.column))
    ]


def dumps_json(records: list[dict]) -> str:
    return json.dumps(records, indent=2, ensure_ascii=False)
