"""docs/design.md names every module of the compiler, so the map stays true.

Each `compiler/**/*.py` (but `__init__.py`) must appear in the design document's
module table by its path under `compiler/` (`lower/plan.py`), or by its file
name for a top-level module (`cli.py`)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "compiler"


def test_every_compiler_module_is_in_the_design_document():
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    table = text[text.index("## Modules") :]
    modules = [
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py"
    ]
    missing = [m for m in modules if f"`{m}`" not in table]
    assert not missing, f"docs/design.md does not list {missing}"


def test_the_design_document_names_no_module_that_is_gone():
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    table = text[text.index("| module |") : text.index("Scripts:")]
    named = {
        part.strip("`")
        for row in table.splitlines()[2:]
        if row.startswith("|")
        for part in row.split("|")[1].replace(",", " ").split()
        if part.strip("`").endswith(".py")
    }
    gone = sorted(n for n in named if not (PACKAGE / n).exists())
    assert not gone, f"docs/design.md lists modules that do not exist: {gone}"
