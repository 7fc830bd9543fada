"""The pipeline: parse, check, lower, emit (or only diagnose); and loading a compiled spec.

Owns running the stages in order, stopping after the first stage that reports
errors (warnings never stop it; a syntax error stops after the checker, which
still reports what it finds in the statements that parsed), the safety net
that every module returned is valid Python, and `load`, which imports a
compiled spec as a module so Keras finds its registered classes.
"""

from __future__ import annotations

import gc
import linecache
import sys
from pathlib import Path
from types import ModuleType

from stepc.check.models import check
from stepc.diagnostics import Diagnostic, SpecError, error, has_errors
from stepc.emit.frameworks import ALL
from stepc.emit.render import emit
from stepc.lower.module import lower
from stepc.parse import ir
from stepc.parse.ir import Span
from stepc.parse.parser import parse
from stepc.parse.sources import content_problems, read_spec, spec_text


def analyze(
    source: str, path: str, frameworks: tuple[str, ...] | None = ALL
) -> tuple[str | None, list[Diagnostic]]:
    """Compile `source`; return the module text (None on errors) and all diagnostics.

    The module holds the steps of each of `frameworks` (Keras backend names);
    with `frameworks=None` no module is written (see `diagnose`).

    Positions are those of `spec_text(source)`: a byte order mark dropped and every
    line break (`\r\n`, a lone `\r`) read as `\n`, which is how an editor shows it.
    """
    if not isinstance(source, str):
        raise TypeError(f"a spec is text (str), not {type(source).__name__}")
    source = spec_text(source)
    problems = content_problems(source)
    if problems:
        return None, problems
    # A compile builds many small objects and no long-lived cycles: the cyclic
    # collector would only re-scan them (about 15% of a large spec's time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _stages(source, path, frameworks)
    except RecursionError:
        return None, [_too_deep(source)]
    finally:
        if collecting:
            gc.enable()


def diagnose(source: str, path: str) -> list[Diagnostic]:
    """Every diagnostic of `analyze(source, path)`, without writing the module.

    Emitting reports nothing about the spec (only the defence that the module is
    valid Python, a bug of stepc's), and it is half of a compile's time: the
    language server runs this on every change.
    """
    return analyze(source, path, None)[1]


def _too_deep(source: str) -> Diagnostic:
    """An expression too long for the compiler's recursion: point at the longest line."""
    lines = source.split("\n")
    number = max(range(len(lines)), key=lambda i: len(lines[i])) + 1
    return error(
        "this expression is too long or too deeply nested for stepc",
        Span(number, 1, number, 2),
        "split it: name parts of it on lines of their own",
    )


def _stages(source: str, path: str, frameworks) -> tuple[str | None, list[Diagnostic]]:
    spec, diagnostics = parse(source, path)
    if spec is None:
        return None, diagnostics
    checked, found = check(spec)
    diagnostics += _outside(spec.recovered, found)
    if has_errors(diagnostics):  # a syntax error always stops here
        return None, sorted(diagnostics, key=_position)
    plan, found = lower(checked, source)
    diagnostics += found
    if has_errors(diagnostics):
        return None, diagnostics
    if frameworks is None:
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


def _position(diagnostic: Diagnostic) -> tuple[int, int]:
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
    module, diagnostics = analyze(text, filename, (backend,) if backend else ALL)
    if module is None:
        # The diagnostics' positions are those of the normalized text.
        raise SpecError(filename, spec_text(text), diagnostics)
    return module


def load(path: str | Path, module_name: str | None = None) -> ModuleType:
    """Compile the spec at `path` and import the result as a module."""
    path = Path(path)
    source, problems = read_spec(str(path))  # decoded as the CLI decodes it
    if source is None:
        raise SpecError(path.name, "", problems)
    text = compile_source(source, path.name)
    name = module_name or f"stepc_generated.{path.stem}"
    module = ModuleType(name)
    module.__file__ = _register_source(path, text)
    sys.modules[name] = module
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module


def _register_source(path: Path, text: str) -> str:
    """A name for the generated text that no file has, with the text in ``linecache``:
    tracebacks and ``inspect.getsource`` then show the generated lines (and their spec
    line comments), never the lines of a stale ``.py`` file beside the spec."""
    filename = f"<stepc {path}>"
    # mtime None: linecache.checkcache() keeps the entry (there is no file to compare).
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    return filename


__all__ = ["analyze", "compile_source", "diagnose", "load"]
