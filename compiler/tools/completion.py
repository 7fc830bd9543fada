"""The language index's completion: what may be written at the cursor.

Owns `Completion` and `completions(index, line, column)`. The context is read from
the text itself (the line is usually being typed, so it may not parse): the
enclosing block is the nearest line above that is indented less, and the words
before the cursor on its line say what comes next. At a statement's start in a
step: the statement keywords and the names in scope; at a model item's start:
the item keywords; after `update` the metrics, after `using` the optimizers,
after `over` / `to` the models; after `metric NAME =`, `loss NAME =`,
`optimizer NAME =` those Keras classes; after `name:` in `init(`/`compile(` the
parameter types, in a `state` the dtypes; anywhere else in an expression the
names in scope and the operations (detail: the signature).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stepc.check.params import ALL_TYPES
from stepc.check.symbols import Kind, Symbol
from stepc.check.values import article
from stepc.parse import ir
from stepc.tables.builtins import (
    CONSTANTS,
    LOSS_CLASSES,
    LOSS_TRACKER_NAME,
    METRIC_CLASSES,
    OPS,
    OPTIMIZER_CLASSES,
    Type,
)
from stepc.tables.keras_summaries import SUMMARIES
from stepc.tools.hover import class_hover, operation_hover
from stepc.tools.names import LOCAL, LOOP

if TYPE_CHECKING:
    from stepc.tools.index import SpecIndex


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # keyword, model, parameter, value, metric, loss, optimizer, state, operation, class
    detail: str = ""
    documentation: str = ""


STATEMENT_KEYWORDS = ("minimize", "update", "return", "assign", "apply", "repeat", "for")
ITEM_KEYWORDS = ("init", "compile", "metric", "loss", "optimizer", "state", "jit_compile")
STEP_KEYWORDS = ("train", "test", "predict", "shared")
STATE_DTYPES = ("int", "float", "bool")
_WORD_BEFORE = re.compile(r"[A-Za-z_]\w*$")
_HEADERS = re.compile(r"(model|train|test|predict|shared|repeat|for)\b")
_CLASS_ITEM = re.compile(r"^\s*(metric|loss|optimizer)\s+\w+\s*=\s*$")
_PARAM_TYPE = re.compile(r"^\s*(init|compile)\s*\(.*\b\w+\s*:\s*$")
_STATE_TYPE = re.compile(r"^\s*state\s+\w+\s*:\s*$")
_AFTER = {
    "update": "metric",
    "using": "optimizer",
    "over": "model",
    "to": "model",
}
_TYPE_KINDS = {
    Type.MODEL: "model",
    Type.METRIC: "metric",
    Type.LOSS: "loss",
    Type.OPTIMIZER: "optimizer",
}


@dataclass(frozen=True)
class _Context:
    """Where the cursor is: the text before it (less the word being typed), the
    model and step around it (IR indices, or None), whether at a block's item start."""

    before: str
    model: int | None
    step: ir.Step | ir.SharedBlock | None
    in_step: bool


def completions(index: SpecIndex, line: int, column: int) -> list[Completion]:
    context = _context(index, line, column)
    before = context.before
    if context.model is None and not before.strip():
        return [Completion("model", "keyword", "a model: `model Name:`")]
    found = _class_completions(before) or _type_completions(before)
    if found is not None:
        return found
    if not context.in_step:
        if before.strip():
            return _in_expression(index, context)
        return _keywords(ITEM_KEYWORDS + STEP_KEYWORDS, "model item")
    after = _keyword_before(before)
    if after is not None:
        return _symbols_of(index, context, after)
    names = _names_in_scope(index, context, line)
    if not before.strip():
        return _keywords(STATEMENT_KEYWORDS, "statement") + names
    return names + _operations() + _constants()


def _context(index: SpecIndex, line: int, column: int) -> _Context:
    text = index.lines[line - 1] if 0 < line <= len(index.lines) else ""
    prefix = text[: max(column - 1, 0)]
    before = prefix[: len(prefix) - len(_typed_word(prefix))]
    indent = len(prefix) - len(prefix.lstrip()) if prefix.strip() else len(prefix)
    headers = _enclosing_headers(index.lines, line, indent)
    model_line = next((n for n, word in headers if word == "model"), None)
    step_line = next((n for n, word in headers if word in STEP_KEYWORDS), None)
    model = _model_at(index, model_line)
    step = _step_at(index, model, step_line)
    return _Context(before, model, step, step_line is not None)


def _typed_word(prefix: str) -> str:
    found = _WORD_BEFORE.search(prefix)
    return found.group(0) if found else ""


def _enclosing_headers(lines: list[str], line: int, indent: int) -> list[tuple[int, str]]:
    """The block headers around `line`, innermost first: (line number, first word)."""
    found = []
    for number in range(min(line, len(lines) + 1) - 1, 0, -1):
        text = lines[number - 1]
        code = text.split("#", 1)[0]
        if not code.strip():
            continue
        level = len(code) - len(code.lstrip())
        if level < indent:
            indent = level
            header = _HEADERS.match(code.lstrip())
            if header:
                found.append((number, header.group(1)))
        if level == 0:
            break
    return found


def _model_at(index: SpecIndex, model_line: int | None) -> int | None:
    if model_line is None:
        return None
    for number, checked in enumerate(index.models):
        if checked.model.span.line == model_line:
            return number
    return None


def _step_at(index: SpecIndex, model: int | None, step_line: int | None):
    if model is None or step_line is None:
        return None
    checked = index.models[model].model
    blocks = [*checked.steps, *([checked.shared] if checked.shared else [])]
    return next((block for block in blocks if block.span.line == step_line), None)


def _keyword_before(before: str) -> str | None:
    """The kind of name wanted after `update`, `using`, `over a,`, `to`."""
    words = re.findall(r"[A-Za-z_]\w*|,", before)
    if not words:
        return None
    if words[-1] in _AFTER:
        return _AFTER[words[-1]]
    if words[-1] == "," and re.search(r"\bover\s+[\w\s,()=.]*,\s*$", before):
        return "model"
    return None


def _class_completions(before: str) -> list[Completion] | None:
    found = _CLASS_ITEM.match(before)
    if found is None:
        return None
    role = found.group(1)
    names = {"metric": METRIC_CLASSES, "loss": LOSS_CLASSES, "optimizer": OPTIMIZER_CLASSES}[role]
    module = {"metric": "metrics", "loss": "losses", "optimizer": "optimizers"}[role]
    return [
        Completion(
            name,
            "class",
            f"keras.{module}.{name}",
            class_hover(role, name) or SUMMARIES.get(f"keras.{module}.{name}", ""),
        )
        for name in sorted(names)
    ]


def _type_completions(before: str) -> list[Completion] | None:
    if _STATE_TYPE.match(before):
        return [Completion(name, "class", "state dtype") for name in STATE_DTYPES]
    if _PARAM_TYPE.match(before):
        return [Completion(name, "class", "parameter type") for name in ALL_TYPES]
    return None


def _keywords(words: tuple[str, ...], what: str) -> list[Completion]:
    return [Completion(word, "keyword", what) for word in words]


def _operations() -> list[Completion]:
    return list(_every_operation())


@functools.cache
def _every_operation() -> tuple[Completion, ...]:
    """The same for every spec: built once."""
    return tuple(
        Completion(name, "operation", op.signature(), operation_hover(name))
        for name, op in sorted(OPS.items())
    )


def _constants() -> list[Completion]:
    return [Completion(name, "value", "constant") for name in CONSTANTS]


def _in_expression(index: SpecIndex, context: _Context) -> list[Completion]:
    """An expression of a model item (a default, a constructor's argument): its names."""
    return _model_symbols(index, context.model) + _operations() + _constants()


def _model_symbols(index: SpecIndex, model: int | None) -> list[Completion]:
    if model is None:
        return []
    symbols = index.models[model].symbols.values()
    return [_symbol_completion(s) for s in symbols if s.kind is not Kind.CONSTANT]


def _symbol_completion(symbol: Symbol) -> Completion:
    kind = _TYPE_KINDS.get(symbol.type, "value")
    if symbol.kind is Kind.STATE:
        kind = "state"
    elif kind == "value" and symbol.kind in (Kind.INIT_PARAM, Kind.COMPILE_PARAM):
        kind = "parameter"
    detail = f"{symbol.detail} — {symbol.kind.value}" if symbol.detail else symbol.kind.value
    return Completion(symbol.name, kind, detail)


def _symbols_of(index: SpecIndex, context: _Context, kind: str) -> list[Completion]:
    """The model's names of one kind (`update` wants metrics, `using` optimizers)."""
    found = [c for c in _model_symbols(index, context.model) if c.kind == kind]
    if kind == "model" and found and not index.models[context.model].functional:
        found = [c for c in found if c.label != "self"]  # it has no forward pass
    if kind == "metric" and all(c.label != LOSS_TRACKER_NAME for c in found):
        found.append(Completion(LOSS_TRACKER_NAME, "metric", "Keras's loss tracker"))
    return found


def _names_in_scope(index: SpecIndex, context: _Context, line: int) -> list[Completion]:
    """The step's values defined before `line`, the loop variables around it, the model's."""
    step = context.step
    found: dict[str, Completion] = {}
    if step is not None:
        for occurrence in index.occurrences:
            target = occurrence.target
            if target.model != context.model or not occurrence.defines:
                continue
            if not _visible(occurrence, step, line):
                continue
            value = index.models[context.model].values.get(occurrence.span)
            what = article(value.type.value) if value else "a value"
            detail = f"{what} — loop variable" if target.kind == LOOP else f"{what} — step value"
            found.setdefault(target.name, Completion(target.name, "value", detail))
    symbols = [c for c in _model_symbols(index, context.model) if c.label not in found]
    return [*found.values(), *symbols]


def _visible(occurrence, step, line: int) -> bool:
    """A definition of `step` (or of the shared block it runs) seen from `line`."""
    target = occurrence.target
    if occurrence.span.line >= line:
        return False
    if target.kind == LOOP:
        return target.scope.line < line <= target.scope.end_line
    if target.kind != LOCAL:
        return False
    group = step.kind.value if isinstance(step, ir.Step) else "shared"
    return target.scope in (group, "shared" if group in ("train", "test") else group)
