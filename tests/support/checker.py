"""The checker tests' spec templates and assertions, shared by every tests/test_checker*.py.

Specs are built from templates: a Functional model (`functional(...)`) and a model
holding sub-models (`submodels(...)`); a test passes the step's statements.
`at(text, line, needle)` gives the column of `needle` on `line`, so a test says
*what* a diagnostic points at rather than a bare number; `check` asserts an
error's message, start and hint.
"""

from __future__ import annotations

from stepc.diagnostics import Diagnostic, Severity
from stepc.pipeline import analyze

# Line 3 onwards is the step body.
FUNCTIONAL = "model M(Functional):\n    train(x, y):\n"
FUNCTIONAL_BODY = ("y_pred = self(x)", "loss = compiled_loss(y, y_pred)", "minimize loss over self")

# Line 6 onwards is the step body.
SUBMODELS = """\
model G:
    init(gen: Model, disc: Model)
    compile(g_opt: Optimizer, d_opt: Optimizer)
    metric tracker = Mean()
    train(x):
"""
SUBMODELS_BODY = (
    "loss = mean(disc(gen(x)))",
    "minimize loss over gen using g_opt",
    "update tracker(loss)",
)


def body(*lines: str) -> str:
    return "".join(f"        {line}\n" for line in lines)


def functional(*lines: str, header: str = FUNCTIONAL) -> str:
    """A Functional model; its train(x, y) body starts on line 3."""
    return header + body(*(lines or FUNCTIONAL_BODY))


def submodels(*lines: str) -> str:
    """A model of sub-models gen and disc; its train(x) body starts on line 6."""
    return SUBMODELS + body(*(lines or SUBMODELS_BODY))


def diagnose(text: str) -> list[Diagnostic]:
    _, diagnostics = analyze(text, "t.step")
    return diagnostics


def errors(text: str) -> list[Diagnostic]:
    return [d for d in diagnose(text) if d.severity is Severity.ERROR]


def the_error(text: str) -> Diagnostic:
    """The only error of `text` (warnings may come with it)."""
    found = errors(text)
    assert len(found) == 1, [(d.message, d.span) for d in found]
    return found[0]


def warnings(text: str) -> list[Diagnostic]:
    module, diagnostics = analyze(text, "t.step")
    assert module is not None, "warnings alone must not stop the compile"
    return [d for d in diagnostics if d.severity is Severity.WARNING]


def at(text: str, line: int, needle: str) -> tuple[int, int]:
    """(line, column) of the first `needle` on `line` of `text`."""
    column = text.split("\n")[line - 1].index(needle)
    return (line, column + 1)


def check(diag: Diagnostic, message: str, where: tuple[int, int], hint: str | None = None):
    """Assert an error's message, start and hint (exact, or None for no hint)."""
    assert diag.severity is Severity.ERROR
    assert diag.message == message
    assert (diag.span.line, diag.span.column) == where
    assert diag.hint == hint
