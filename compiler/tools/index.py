"""The language index: what the language server asks of a spec, with no LSP types.

Owns `index_source(text, path) -> SpecIndex` (never raises: after a syntax error
it indexes what the parser recovered), and the queries on a cursor position
(1-based line and column; a cursor just after a name's last character is on
it): `definition`, `references`, `rename` (refused with `RenameRefused`),
`hover` (`stepc.tools.hover`) and `completions` (`stepc.tools.completion`); and
`code_actions`, the mechanical fixes the checker's diagnostics carry
(`Diagnostic.replacement`). Names resolve as the checker resolves them
(`stepc.tools.names`).

A value assigned several times has a definition at each assignment; going to the
definition from a use goes to the nearest assignment before it in the text (in a
loop, a use before the body assigns the name reads the earlier pass's or the
value from before the loop, which is that same rule), or to the first assignment
when none comes before it.
"""

from __future__ import annotations

import gc
import keyword
import re
from dataclasses import dataclass

from stepc.check.models import CheckedModel, check, check_attribute_name, check_identifier
from stepc.check.symbols import Kind
from stepc.diagnostics import Diagnostic
from stepc.parse import ir
from stepc.parse.parser import keywords, parse
from stepc.parse.sources import content_problems, spec_text
from stepc.tables.builtins import CONSTANTS, RESERVED_NAMES
from stepc.tools.completion import Completion, completions
from stepc.tools.hover import hover
from stepc.tools.names import LOCAL, LOOP, OPERATION, SYMBOL, Occurrence, Target, occurrences

__all__ = [
    "Completion",
    "Fix",
    "RenameRefused",
    "SpecIndex",
    "code_actions",
    "index_source",
]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What a rename may change: the spec's own names (not operations, classes, built-ins).
_RENAMEABLE = (SYMBOL, LOCAL, LOOP, "model")
_BUILT_IN = (Kind.SELF, Kind.CONSTANT, Kind.COMPILED_METRICS, Kind.KERAS_OPTIMIZER)


class RenameRefused(Exception):
    """A rename that would break the spec or that names nothing renameable."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Fix:
    """A mechanical fix of a diagnostic: replace `span` with `new_text`."""

    title: str
    span: ir.Span
    new_text: str


class SpecIndex:
    """The names of one spec text, and the checker's result for it."""

    def __init__(self, text: str, models: tuple[CheckedModel, ...]):
        self.text = text
        self.lines = text.split("\n")
        self.models = models
        self.occurrences: list[Occurrence] = occurrences(models)
        self.by_target: dict[Target, list[Occurrence]] = {}
        for found in self.occurrences:
            self.by_target.setdefault(found.target, []).append(found)

    def at(self, line: int, column: int) -> Occurrence | None:
        """The name under the cursor (a cursor right after its last character counts)."""
        for found in self.occurrences:
            span = found.span
            if span.line == line and span.column <= column <= span.end_column:
                return found
            if span.line > line:
                break
        return None

    def definition(self, line: int, column: int) -> ir.Span | None:
        found = self.at(line, column)
        if found is None:
            return None
        if found.target.kind == SYMBOL:
            symbol = self.models[found.target.model].symbols.get(found.target.name)
            if symbol is not None and symbol.span is not None:
                return symbol.span
        if found.defines:
            return found.span
        definitions = [o for o in self.by_target[found.target] if o.defines]
        use = (found.span.line, found.span.column)
        before = [o.span for o in definitions if o.seen_from <= use]
        return before[-1] if before else (definitions[0].span if definitions else None)

    def references(self, line: int, column: int, include_declaration: bool = True) -> list[ir.Span]:
        found = self.at(line, column)
        if found is None:
            return []
        every = self.by_target[found.target]
        return [o.span for o in every if include_declaration or not o.defines]

    def rename(self, line: int, column: int, new_name: str) -> list[ir.Span]:
        """The spans to replace with `new_name`; RenameRefused says why not."""
        found = self.at(line, column)
        if found is None:
            raise RenameRefused("there is no name here to rename")
        target = found.target
        if target.kind not in _RENAMEABLE or self._built_in(target):
            raise RenameRefused(f"`{target.name}` is {_what(target)}: it cannot be renamed")
        _check_new_name(new_name)
        if new_name != target.name:
            self._check_clash(target, new_name)
            self._check_accepted(target, found.span, new_name)
        return [o.span for o in self.by_target[target]]

    def _built_in(self, target: Target) -> bool:
        """A name Keras or stepc gives meaning: `self`, constants, `compiled_metrics`,
        Keras's own `optimizer` and the other arguments of Keras's `compile()`."""
        if target.kind != SYMBOL:
            return False
        symbol = self.models[target.model].symbols.get(target.name)
        return symbol is None or symbol.kind in _BUILT_IN

    def _check_clash(self, target: Target, new_name: str) -> None:
        """The new name must mean nothing else where the renamed one is seen."""
        if target.kind == "model":
            taken = {checked.model.name.id for checked in self.models}
        else:
            taken = set(self.models[target.model].symbols) | self._step_names(target)
        if new_name in taken:
            raise RenameRefused(f"`{new_name}` is already a name here")
        if target.kind != "model" and self._calls(target.model, new_name):
            raise RenameRefused(f"`{new_name}` would hide the operation `{new_name}` it calls")

    def _check_accepted(self, target: Target, span: ir.Span, new_name: str) -> None:
        """The checker's own rules for a name of that kind (reserved names, operations
        a declaration would hide, attributes Keras keeps on a model)."""
        name = ir.Name(new_name, span)
        refused: list[Diagnostic] = []
        if target.kind == SYMBOL:
            checked = self.models[target.model]
            if check_identifier(name, refused, value=not self._called(target)):
                check_attribute_name(name, refused, checked.functional)
        else:
            check_identifier(name, refused, value=target.kind != "model")
        if refused:
            raise RenameRefused(refused[0].message)

    def _calls(self, model: int, name: str) -> bool:
        """Whether the model's text calls the operation `name`."""
        span = self.models[model].model.span
        return any(
            o.target == Target(OPERATION, name) and span.line <= o.span.line <= span.end_line
            for o in self.occurrences
        )

    def _step_names(self, target: Target) -> set[str]:
        """The values a local could meet: every value and loop variable of its model."""
        return {
            t.name for t in self.by_target if t.model == target.model and t.kind in (LOCAL, LOOP)
        }

    def _called(self, target: Target) -> bool:
        """A model symbol may be called (a model, a loss); only numbers and step
        values may take an operation's name, as the checker says."""
        if target.kind != SYMBOL:
            return False
        symbol = self.models[target.model].symbols.get(target.name)
        return symbol is None or symbol.type.value not in ("number", "string", "bool")

    def hover(self, line: int, column: int) -> str | None:
        found = self.at(line, column)
        return hover(self, found) if found is not None else None

    def completions(self, line: int, column: int) -> list[Completion]:
        return completions(self, line, column)


def _what(target: Target) -> str:
    return {
        "operation": "an operation",
        "class": f"a Keras {target.role} class",
        "type": "a parameter type",
    }.get(target.kind, "built in")


def _check_new_name(new_name: str) -> None:
    if not _IDENTIFIER.fullmatch(new_name):
        raise RenameRefused(
            f"`{new_name}` is not a name: letters, digits and `_`, not first a digit"
        )
    if new_name in keywords() or keyword.iskeyword(new_name):
        raise RenameRefused(f"`{new_name}` is a keyword")
    if new_name in RESERVED_NAMES or new_name in CONSTANTS or new_name.startswith("_"):
        raise RenameRefused(f"`{new_name}` is a reserved name")


def index_source(text: str, path: str = "<spec>") -> SpecIndex:
    """The index of `text`; never raises (a spec that does not parse has no names)."""
    text = spec_text(text) if isinstance(text, str) else ""
    if content_problems(text):
        return SpecIndex(text, ())
    # As in stepc.pipeline.analyze: many small objects, no long-lived cycles, so the
    # cyclic collector would only re-scan them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return SpecIndex(text, _checked_models(text, path))
    finally:
        if collecting:
            gc.enable()


def _checked_models(text: str, path: str) -> tuple[CheckedModel, ...]:
    try:
        spec, _ = parse(text, path)
        return check(spec)[0].models if spec is not None else ()
    except RecursionError:  # an expression too deep for the compiler: no names
        return ()


def code_actions(text: str, diagnostics: list[Diagnostic]) -> list[Fix]:
    """A fix for each diagnostic carrying a mechanical one (a misspelt name's suggestion)."""
    return [
        Fix(f"Replace with `{d.replacement}`", d.span, d.replacement)
        for d in diagnostics
        if getattr(d, "replacement", None)
    ]
