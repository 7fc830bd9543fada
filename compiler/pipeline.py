"""The pipeline: parse, check, lower, emit; and loading a compiled spec.

Owns running the stages in order, stopping after the first stage that reports
errors (warnings never stop it), and `load`, which imports a compiled spec as
a module so Keras finds its registered classes.
"""

from __future__ import annotations

import gc
import linecache
import sys
from pathlib import Path
from types import ModuleType

from stepc.check import check
from stepc.diagnostics import Diagnostic, SpecError, error, has_errors
from stepc.emit import emit
from stepc.ir import Span
from stepc.lower import lower
from stepc.parse import parse
from stepc.sources import content_problems


def analyze(source: str, path: str) -> tuple[str | None, list[Diagnostic]]:
    """Compile `source`; return the module text (None on errors) and all diagnostics."""
    problems = content_problems(source)
    if problems:
        return None, problems
    # A compile builds many small objects and no long-lived cycles: the cyclic
    # collector would only re-scan them (about 15% of a large spec's time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _stages(source, path)
    except RecursionError:
        return None, [_too_deep(source)]
    finally:
        if collecting:
            gc.enable()


def _too_deep(source: str) -> Diagnostic:
    """An expression too long for the compiler's recursion: point at the longest line."""
    lines = source.split("\n")
    number = max(range(len(lines)), key=lambda i: len(lines[i])) + 1
    return error(
        "this expression is too long or too deeply nested for stepc",
        Span(number, 1, number, 2),
        "split it: name parts of it on lines of their own",
    )


def _stages(source: str, path: str) -> tuple[str | None, list[Diagnostic]]:
    spec, diagnostics = parse(source, path)
    if spec is None:
        return None, diagnostics
    checked, found = check(spec)
    diagnostics += found
    if has_errors(diagnostics):
        return None, diagnostics
    plan, found = lower(checked, source)
    diagnostics += found
    if has_errors(diagnostics):
        return None, diagnostics
    return emit(plan), diagnostics


def compile_source(text: str, filename: str = "<spec>") -> str:
    """The generated module's text; raises SpecError listing every diagnostic."""
    module, diagnostics = analyze(text, filename)
    if module is None:
        raise SpecError(filename, text, diagnostics)
    return module


def load(path: str | Path, module_name: str | None = None) -> ModuleType:
    """Compile the spec at `path` and import the result as a module."""
    path = Path(path)
    source = path.read_text(encoding="utf-8")
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


__all__ = ["analyze", "compile_source", "load"]
