"""Diagnostics: what every stage reports about a spec, and how it is shown.

Owns the `Diagnostic` record, the `SpecError` exception that carries all of a
spec's diagnostics out of the pipeline, the *did you mean* suggestion, and the
two renderings: text (`path:line:col: error: message`, the source line, a
caret under the span, a hint) and JSON for editors and CI annotations. An
`OutputProblem` (the output directory, the module's path, a stale module) has
a path and no line, and renders as `path: error: message` and a hint, or as a
JSON record marked `"concerns": "output"`. Text escapes a path's control
characters (`shown_path`); JSON keeps the real path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from stepc.parse.ir import Span


class Severity(Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning: where in the spec, what, and how to fix it."""

    severity: Severity
    message: str
    span: Span
    hint: str | None = None
    # A mechanical fix: the text that would replace `span` (a misspelt name's
    # suggestion), which an editor offers as a code action (`stepc.tools.index`).
    replacement: str | None = None


class SpecError(Exception):
    """A spec has errors; `diagnostics` holds all of them, warnings too."""

    def __init__(self, path: str, source: str, diagnostics: Iterable[Diagnostic]):
        self.path = path
        self.source = source
        self.diagnostics = tuple(diagnostics)
        super().__init__(render_text(path, source, self.diagnostics))


def error(
    message: str, span: Span, hint: str | None = None, replacement: str | None = None
) -> Diagnostic:
    return Diagnostic(Severity.ERROR, message, span, hint, replacement)


def warning(message: str, span: Span, hint: str | None = None) -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, span, hint)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


# A suggestion compares the name with every candidate, and a spec with
# thousands of undefined names asks for thousands of suggestions (difflib over
# all of them took 14 s for 2,000): the cost is bounded per suggestion. Above
# MAX_CANDIDATES names in scope there is none (as with CPython's NameError
# hints); below, cheap upper bounds of difflib's ratio (from the lengths, and
# from how many of the candidate's characters occur in the name, counted by
# bytes.translate) rank the candidates, and the exact ratio runs on at most
# _RATIOS of them, best bound first, stopping once no bound can reach the best
# ratio found. On small pools the answer is get_close_matches' own.
CUTOFF = 0.6
MAX_CANDIDATES = 750
MAX_NAME = 64
_RATIOS = 20


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    close = closest(name, set(candidates))
    return f"did you mean `{close}`?" if close else None


def closest(name: str, pool: set[str]) -> str | None:
    """difflib.get_close_matches(name, pool, n=1, cutoff=CUTOFF), with bounded work."""
    if not name or len(name) > MAX_NAME or len(pool) > MAX_CANDIDATES:
        return None
    import difflib  # here, not at the top: only a spec with an error asks for a name

    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(name)  # as get_close_matches does: the name is the second sequence
    best: tuple[float, str] | None = None
    for bound, candidate in _ranked(name, pool)[:_RATIOS]:
        if best is not None and bound < best[0]:
            break  # sorted by bound: nothing later can beat (or tie with) the best
        matcher.set_seq1(candidate)
        found = (matcher.ratio(), candidate)  # ties go to the larger string, as in difflib
        if found[0] >= CUTOFF and (best is None or found > best):
            best = found
    return best[1] if best else None


def _ranked(name: str, pool: set[str]) -> list[tuple[float, str]]:
    """(upper bound of the ratio, candidate) for those that can reach CUTOFF, best first."""
    size = len(name)
    # 2 * min(size, n) / (size + n) >= CUTOFF bounds the candidate's length n.
    shortest = math.ceil(size * CUTOFF / (2 - CUTOFF) - 1e-9)
    longest = math.floor(size * (2 - CUTOFF) / CUTOFF + 1e-9)
    letters = name.encode("ascii") if name.isascii() else None
    ranked = []
    for candidate in pool:
        length = len(candidate)
        if not shortest <= length <= longest:
            continue
        shared = size if size < length else length
        if letters is not None and candidate.isascii():
            # Every matched character of the candidate occurs in the name.
            occurring = length - len(candidate.encode("ascii").translate(None, letters))
            shared = occurring if occurring < shared else shared
        bound = 2.0 * shared / (size + length)
        if bound >= CUTOFF:
            ranked.append((bound, candidate))
    ranked.sort(reverse=True)
    return ranked


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
    span = diag.span
    location = f"{shown_path(path)}:{span.line}:{span.column}"
    out = [_headline(location, diag.severity, diag.message, colour)]
    out += _excerpt(lines, span)
    out += _hint_line(diag.hint, colour)
    return "\n".join(out)


def _headline(location: str, severity: Severity, message: str, colour: bool) -> str:
    """`location: severity: message`, the location bold and the severity coloured."""
    label = severity.value
    if colour:
        location = f"{_BOLD}{location}{_RESET}"
        label = f"{_COLOURS[label]}{label}{_RESET}"
    return f"{location}: {label}: {message}"


def _hint_line(hint: str | None, colour: bool) -> list[str]:
    if not hint:
        return []
    label = f"{_COLOURS['hint']}hint{_RESET}" if colour else "hint"
    return [f"  {label}: {hint}"]


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


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def shown_path(path: str) -> str:
    """A path as text shows it: control characters and undecodable bytes escaped.

    A terminal must never receive a file name's newline or escape sequence (it
    could forge a diagnostic or recolour the screen). A path that needs no escape
    is shown as it is; one that does is shown with `repr`-style escapes, its
    backslashes doubled so that the escapes are unambiguous.
    """
    path = str(path)
    if path.isprintable():
        return path
    return "".join(_escaped(c) for c in path)


def _escaped(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (os.fsdecode's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def render_json(path: str, diagnostics: Iterable[Diagnostic]) -> list[dict]:
    """One record per diagnostic; `replacement` only on those with a mechanical fix."""
    return [
        _record(path, d) for d in sorted(diagnostics, key=lambda d: (d.span.line, d.span.column))
    ]


def _record(path: str, d: Diagnostic) -> dict:
    record = {
        "severity": d.severity.value,
        "path": path,
        "line": d.span.line,
        "column": d.span.column,
        "end_line": d.span.end_line,
        "end_column": d.span.end_column,
        "message": d.message,
        "hint": d.hint,
    }
    if d.replacement is not None:
        record["replacement"] = d.replacement
    return record


def dumps_json(records: list[dict], ascii_only: bool = False) -> str:
    return json.dumps(records, indent=2, ensure_ascii=ascii_only)


# ---------------------------------------------------------------- the output side


@dataclass(frozen=True)
class OutputProblem:
    """A problem with where a module goes (not with a spec): a path, no line.

    `path` is what has the problem (the output directory or the module), `specs`
    the specs whose modules it stops, `diff` what `--check` found stale.
    """

    message: str
    path: str
    specs: tuple[str, ...]
    hint: str | None = None
    diff: str | None = None
    severity: Severity = Severity.ERROR


def render_output_text(problem: OutputProblem, colour: bool = False) -> str:
    """`path: error: message` and the hint; the diff is printed apart, on stdout."""
    headline = _headline(shown_path(problem.path), problem.severity, problem.message, colour)
    return "\n".join([headline, *_hint_line(problem.hint, colour)])


def render_output_json(problem: OutputProblem) -> dict:
    """The spec records' fields, with no position, marked as concerning the output."""
    record = {
        "severity": problem.severity.value,
        "path": problem.path,
        **dict.fromkeys(("line", "column", "end_line", "end_column")),
        "message": problem.message,
        "hint": problem.hint,
        "concerns": "output",
        "specs": list(problem.specs),
    }
    if problem.diff is not None:
        record["diff"] = problem.diff
    return record
