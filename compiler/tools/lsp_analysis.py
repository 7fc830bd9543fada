"""The language server's diagnostics, re-analysing only the models that changed.

Owns `IncrementalDiagnostics`: for one open document, `diagnose(text, path)` gives
exactly the list `stepc.pipeline.diagnose(text, path)` gives (the same diagnostics,
in the same order), but parses, checks and lowers only the models whose text
changed since the last two versions. The text is cut into chunks, one per model,
at each line that starts with `model` at column 0; each chunk is analysed on its
own, at its own line numbers (the parser reads it after as many empty lines as
come before it), and cached by its text. A chunk met again at another line (a
line was inserted above it) is reused with its spans and the line numbers its
messages mention (`on line N`) moved by as many lines.

What the whole-file pipeline does across models, and how this matches it:
- content problems (a NUL byte, a lone surrogate, bracket nesting, counted over the
  whole text): checked on the whole text first, as the pipeline does;
- a syntax error: its recovery, an unclosed bracket or a line continuation can run
  across a model's end, and `MAX_SYNTAX_ERRORS` counts the file's: any chunk that
  does not parse cleanly, or a line before a model that ends in `\\`, sends the
  whole text to the pipeline;
- text before the first model that is not blank or comment lines: the pipeline;
- two models of one name (the checker's only check across models): the pipeline;
- the gate: with any parse or check error in any model the pipeline does not lower,
  and the checker instead adds the lowering's errors for the error-free models
  (`stepc.check.lowering`), then sorts everything by position; without errors the
  lowering's diagnostics (duplicates dropped) follow the checker's. Both are
  rebuilt here from each chunk's checker and lowering diagnostics;
- a RecursionError, or any exception, in a chunk: the pipeline (which reports the
  too-deep expression, or fails the same way);
- a diagnostic outside its chunk's lines: the pipeline (it could not be moved).
A chunk is moved only when every line its messages mention lies within it, and
its text has no word `line`/`lines` (a message quoting the user's text could
mention one that is not a line number); otherwise it is analysed again.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from stepc.check.models import check
from stepc.diagnostics import Diagnostic, Severity, has_errors
from stepc.lower.module import lower
from stepc.parse.ir import Span
from stepc.parse.parser import parse
from stepc.parse.sources import content_problems, spec_text
from stepc.pipeline import by_position, collector_paused, diagnose

_MODEL_START = re.compile(r"model\b")
_LINE_MENTION = re.compile(r"\bline (\d+)")
# A message mentioning lines some other way, or user text that could read as one.
_UNMOVABLE_TEXT = re.compile(r"\blines?\b")
_OTHER_MENTION = re.compile(r"\blines \d")


class _WholeFile(Exception):
    """A chunk whose analysis alone could differ from the whole file's."""


@dataclass(frozen=True)
class ChunkFindings:
    """What parsing, checking and lowering one model's chunk found."""

    first_line: int
    last_line: int
    model_name: str
    front: tuple[Diagnostic, ...]  # the parser's and checker's
    lowered: tuple[Diagnostic, ...] | None  # the lowering's; None when `front` has errors
    movable: bool  # may be reused at another line, every line mentioned moved with it

    def moved_to(self, first_line: int) -> ChunkFindings:
        by = first_line - self.first_line
        lowered = None if self.lowered is None else _moved(self.lowered, by)
        return dataclasses.replace(
            self,
            first_line=first_line,
            last_line=self.last_line + by,
            front=_moved(self.front, by),
            lowered=lowered,
        )


def _moved(diagnostics: tuple[Diagnostic, ...], by: int) -> tuple[Diagnostic, ...]:
    return tuple(_moved_one(d, by) for d in diagnostics)


def _moved_one(diagnostic: Diagnostic, by: int) -> Diagnostic:
    span = diagnostic.span
    return dataclasses.replace(
        diagnostic,
        span=Span(span.line + by, span.column, span.end_line + by, span.end_column),
        message=_moved_mentions(diagnostic.message, by),
        hint=None if diagnostic.hint is None else _moved_mentions(diagnostic.hint, by),
    )


def _moved_mentions(text: str, by: int) -> str:
    return _LINE_MENTION.sub(lambda found: f"line {int(found.group(1)) + by}", text)


class IncrementalDiagnostics:
    """`stepc.pipeline.diagnose` of successive versions of one document, with the
    findings of each model's chunk kept for the next two versions."""

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], ChunkFindings] = {}
        self._previous: dict[tuple[str, str], ChunkFindings] = {}

    def diagnose(self, text: str, path: str) -> list[Diagnostic]:
        """Exactly `stepc.pipeline.diagnose(text, path)`."""
        if not isinstance(text, str):
            return diagnose(text, path)  # its TypeError
        text = spec_text(text)
        problems = content_problems(text)
        if problems:
            return problems
        chunks = model_chunks(text)
        if chunks is None:
            return diagnose(text, path)
        with collector_paused():
            findings = self._findings_of(chunks, path)
        return diagnose(text, path) if findings is None else combined(findings)

    def _findings_of(self, chunks, path: str) -> list[ChunkFindings] | None:
        """Each chunk's findings; None when the whole file must be analysed. The
        cache keeps this text's chunks and the previous text's."""
        kept: dict[tuple[str, str], ChunkFindings] = {}
        findings: list[ChunkFindings] | None = []
        for first_line, chunk in chunks:
            key = (path, chunk)
            if findings is None:  # only keep what is known, for the next version
                known = self._known(key)
                kept.update({key: known} if known else {})
                continue
            try:
                found = self._chunk(key, first_line)
            except _WholeFile:
                findings = None
                continue
            kept[key] = found
            findings.append(found)
        self._previous, self._current = self._current, kept
        names = [f.model_name for f in findings or ()]
        return None if len(set(names)) < len(names) else findings

    def _known(self, key: tuple[str, str]) -> ChunkFindings | None:
        return self._current.get(key) or self._previous.get(key)

    def _chunk(self, key: tuple[str, str], first_line: int) -> ChunkFindings:
        known = self._known(key)
        if known is not None and known.first_line == first_line:
            return known
        if known is not None and known.movable:
            return known.moved_to(first_line)
        return analyse_chunk(key[1], first_line, key[0])


def model_chunks(text: str) -> list[tuple[int, str]] | None:
    """(first line, text) of each model's lines, up to the next model's; None when
    the text before the first model is more than blank and comment lines, when there
    is no model, or when a line continues (`\\`) into a model's header."""
    lines = text.split("\n")
    starts = [n for n, line in enumerate(lines) if _MODEL_START.match(line)]
    if not starts or not all(_blank_or_comment(line) for line in lines[: starts[0]]):
        return None
    if any(lines[n - 1].rstrip(" \t\f").endswith("\\") for n in starts if n > 0):
        return None
    ends = [*starts[1:], len(lines)]
    spans = zip(starts, ends, strict=True)
    return [(start + 1, "\n".join(lines[start:end])) for start, end in spans]


def _blank_or_comment(line: str) -> bool:
    code = line.lstrip(" \t\f")
    return not code or code.startswith("#")


def analyse_chunk(chunk: str, first_line: int, path: str) -> ChunkFindings:
    """Parse, check and (without errors) lower one model's chunk at its lines;
    raises _WholeFile when the whole file's analysis could differ."""
    source = "\n" * (first_line - 1) + chunk
    try:
        spec, front = parse(source, path)
        if spec is None or front or spec.recovered or len(spec.models) != 1:
            raise _WholeFile
        checked, found = check(spec)
        front += found
        lowered = None if has_errors(front) else tuple(lower(checked, source)[1])
    except _WholeFile:
        raise
    except Exception as exc:  # RecursionError, or a bug the pipeline reports its own way
        raise _WholeFile from exc
    last_line = first_line + chunk.count("\n")
    every = (*front, *(lowered or ()))
    if not all(first_line <= d.span.line <= last_line for d in every):
        raise _WholeFile
    movable = not _UNMOVABLE_TEXT.search(chunk) and all(
        _mentions_within(d, first_line, last_line) for d in every
    )
    name = spec.models[0].name.id
    return ChunkFindings(first_line, last_line, name, tuple(front), lowered, movable)


def _mentions_within(diagnostic: Diagnostic, first_line: int, last_line: int) -> bool:
    texts = (diagnostic.message, diagnostic.hint or "")
    if any(_OTHER_MENTION.search(text) for text in texts):
        return False
    mentioned = [int(m.group(1)) for text in texts for m in _LINE_MENTION.finditer(text)]
    return all(first_line <= line <= last_line for line in mentioned)


def combined(findings: list[ChunkFindings]) -> list[Diagnostic]:
    """The chunks' diagnostics as the pipeline gates and orders the whole file's."""
    front = [d for f in findings for d in f.front]
    if has_errors(front):
        # The checker's preview of the lowering: its errors for the error-free models.
        preview = [
            d
            for f in findings
            if f.lowered is not None
            for d in f.lowered
            if d.severity is Severity.ERROR
        ]
        return sorted(front + list(dict.fromkeys(preview)), key=by_position)
    lowered = [d for f in findings for d in f.lowered or ()]
    return front + list(dict.fromkeys(lowered))
