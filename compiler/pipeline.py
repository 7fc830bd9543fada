"""The pipeline: parse, check, lower, emit (or only diagnose); and loading a compiled spec.

Owns running the stages in order, stopping after the first stage that reports
errors (warnings never stop it; a syntax error stops after the checker, which
still reports what it finds in the statements that parsed), the safety net
that every module returned is valid Python, and `load` (a file) and
`load_source` (text), which import a compiled spec as a module so Keras finds
its registered classes.
"""

from __future__ import annotations

import contextlib
import gc
import linecache
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import ModuleType

from stepc.check.models import check
from stepc.diagnostics import Diagnostic, SpecError, error, has_errors
from stepc.emit.frameworks import ALL
from stepc.emit.render import emit
from stepc.lower.module import lower
from stepc.lower.plan import ModulePlan
from stepc.parse import ir
from stepc.parse.ir import Span
from stepc.parse.parser import parse
from stepc.parse.sources import content_problems, read_spec, spec_text


def analyze(
    source: str, path: str, frameworks: tuple[str, ...] = ALL
) -> tuple[str | None, list[Diagnostic]]:
    """Compile `source`; return the module text (None on errors) and all diagnostics.

    The module holds the steps of each of `frameworks` (Keras backend names).

    Positions are those of `spec_text(source)`: a byte order mark dropped and every
    line break (`\r\n`, a lone `\r`) read as `\n`, which is how an editor shows it.
    """
    if not isinstance(source, str):
        raise TypeError(f"a spec is text (str), not {type(source).__name__}")
    return _run_stages(source, lambda text: _stages(text, path, frameworks))


def _run_stages(source: str, stages):
    """`stages(text)` of the spec's text as an editor shows it, or its content problems."""
    source = spec_text(source)
    problems = content_problems(source)
    if problems:
        return None, problems
    with collector_paused():
        try:
            return stages(source)
        except RecursionError:
            return None, [_too_deep(source)]


@contextlib.contextmanager
def collector_paused():
    """The cyclic garbage collector off, as it was after: a compile builds many small
    objects and no long-lived cycles, which it would only re-scan (about 15% of a
    large spec's time)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def diagnose(source: str, path: str) -> list[Diagnostic]:
    """Every diagnostic of `analyze(source, path)`, without writing the module.

    Emitting reports nothing about the spec (only the defence that the module is
    valid Python, a bug of stepc's), and it is half of a compile's time: the
    language server runs this on every change.
    """
    return lower_source(source, path)[1]


def _too_deep(source: str) -> Diagnostic:
    """An expression too long for the compiler's recursion: point at the longest line."""
    lines = source.split("\n")
    number = max(range(len(lines)), key=lambda i: len(lines[i])) + 1
    return error(
        "this expression is too long or too deeply nested for stepc",
        Span(number, 1, number, 2),
        "split it: name parts of it on lines of their own",
    )


def lower_source(source: str, path: str) -> tuple[ModulePlan | None, list[Diagnostic]]:
    """The lowered plan of `source` (None on errors) and all diagnostics, as `analyze`
    finds them: what the tools that show the compiler's decisions (`stepc graph`) read."""
    return _run_stages(source, lambda text: _plan(text, path))


def _plan(source: str, path: str) -> tuple[ModulePlan | None, list[Diagnostic]]:
    spec, diagnostics = parse(source, path)
    if spec is None:
        return None, diagnostics
    checked, found = check(spec)
    diagnostics += _outside(spec.recovered, found)
    if has_errors(diagnostics):  # a syntax error always stops here
        return None, sorted(diagnostics, key=by_position)
    plan, found = lower(checked, source)
    diagnostics += found
    if has_errors(diagnostics):
        return None, diagnostics
    return plan, diagnostics


def _stages(source: str, path: str, frameworks) -> tuple[str | None, list[Diagnostic]]:
    plan, diagnostics = _plan(source, path)
    if plan is None:
        return None, diagnostics
    module = emit(plan, frameworks)
    broken = _not_python(module, path)
    if broken is not None:
        return None, [*diagnostics, broken]
    return module, diagnostics


def _outside(recovered: tuple[ir.Recovered, ...], found: list[Diagnostic]) -> list[Diagnostic]:
    """The checker's diagnostics, less those on a line the parser replaced after a
    syntax error: they are about the parser's stand-in, not the user's text."""
    if not recovered:
        return found
    lines = {n for r in recovered for n in range(r.span.line, r.span.end_line + 1)}
    return [d for d in found if d.span.line not in lines]


def by_position(diagnostic: Diagnostic) -> tuple[int, int]:
    return diagnostic.span.line, diagnostic.span.column


def _not_python(module: str, path: str) -> Diagnostic | None:
    """A defence in depth: a module Python cannot compile is a bug of stepc, and is
    reported as one instead of being written (the user could not import it anyway)."""
    try:
        compile(module, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        return error(
            f"internal error: the generated module is not valid Python{where}: "
            f"{getattr(exc, 'msg', None) or exc}",
            Span(1, 1, 1, 2),
            "this is a bug in stepc; please report it with the spec",
        )
    return None


def compile_source(text: str, filename: str = "<spec>", backend: str | None = None) -> str:
    """The generated module's text; raises SpecError listing every diagnostic.

    `backend`: the steps of that Keras backend only (default: every backend's)."""
    return _compiled(text, filename, (backend,) if backend else ALL)[0]


def _compiled(text: str, filename: str, frameworks=ALL) -> tuple[str, list[Diagnostic]]:
    """The module's text and the spec's warnings; raises SpecError on errors."""
    module, diagnostics = analyze(text, filename, frameworks)
    if module is None:
        # The diagnostics' positions are those of the normalized text.
        raise SpecError(filename, spec_text(text), diagnostics)
    return module, diagnostics


@dataclass(frozen=True)
class LoadedSpec:
    """What a module compiled by `load` or `load_source` came from, kept on the module
    as `__stepc_spec__`: the tools (a notebook's step picture) read the spec again."""

    name: str  # the file name its diagnostics show
    text: str  # the spec's text, as every stage reads it (`spec_text`)
    warnings: tuple[Diagnostic, ...] = ()  # what a compile prints, though it succeeded


def load(path: str | Path, module_name: str | None = None) -> ModuleType:
    """Compile the spec at `path` and import the result as a module."""
    path = Path(path)
    source, problems = read_spec(str(path))  # decoded as the CLI decodes it
    if source is None:
        raise SpecError(path.name, "", problems)
    name = module_name or f"stepc_generated.{path.stem}"
    return _import(source, path.name, name, f"<stepc {path}>")


def load_source(text: str, name: str = "<cell>", module_name: str | None = None) -> ModuleType:
    """Compile spec `text` and import the result as a module, as `load` does for a file.

    `name` is the file name its diagnostics show (SpecError's text is the terminal
    rendering with that name); the module is `stepc_generated.<name, as an identifier>`."""
    stem = re.sub(r"\W", "_", PurePath(name).stem, flags=re.ASCII) or "spec"
    return _import(text, name, module_name or f"stepc_generated.{stem}", f"<stepc {name}>")


def _import(source: str, filename: str, module_name: str, code_name: str) -> ModuleType:
    """Compile `source`, run it as the module `module_name` (in ``sys.modules``, so
    Keras finds its registered classes when it loads a saved model) and return it."""
    text, warnings = _compiled(source, filename)
    module = ModuleType(module_name)
    module.__file__ = _register_source(code_name, text)
    module.__stepc_spec__ = LoadedSpec(filename, spec_text(source), tuple(warnings))
    sys.modules[module_name] = module
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module


def _register_source(filename: str, text: str) -> str:
    """`filename` (a name no file has: ``<stepc PATH>``), with the generated text in
    ``linecache``: tracebacks and ``inspect.getsource`` then show the generated lines
    (and their spec line comments), never the lines of a stale ``.py`` file beside the spec."""
    # mtime None: linecache.checkcache() keeps the entry (there is no file to compare).
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    return filename


__all__ = [
    "LoadedSpec",
    "analyze",
    "by_position",
    "collector_paused",
    "compile_source",
    "diagnose",
    "load",
    "load_source",
    "lower_source",
]
