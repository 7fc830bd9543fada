"""Regenerate the golden modules: `python tests/update_golden.py`.

Compiles every spec in specs/ and writes tests/golden/<stem>.py; draws the step
pictures of a few specs as tests/golden/graphs/<stem>.dot; and rewrites the
README's generated blocks (between `<!-- stepc graph ARGS -->` or
`<!-- stepc explain ARGS -->` and `<!-- /stepc graph -->` or `<!-- /stepc explain -->`:
the Mermaid picture or the explanation of `ARGS`, a spec and an optional
`--step`). Review the diff (`git diff tests/golden README.md`) before committing
it: it is the generated code and the pictures users will read.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = ROOT / "tests" / "golden"
GRAPHS = GOLDEN / "graphs"
README = ROOT / "README.md"
# The specs whose step pictures are golden: two sub-models, a nested recording,
# state and moved values, an `apply`, a Functional model.
GRAPH_SPECS = ("gan", "wgan_gp", "adamatch", "textual_inversion", "basic")
_README_BLOCK = re.compile(
    r"(<!-- stepc (graph|explain) ([^>]*?) -->\n)(.*?)(<!-- /stepc \2 -->)", re.DOTALL
)


def expected_modules() -> dict[str, str]:
    """Golden file name -> the module stepc generates now."""
    from stepc import compile_source

    return {
        f"{spec.stem}.py": compile_source(spec.read_text(encoding="utf-8"), spec.name)
        for spec in sorted(SPECS.glob("*.step"))
    }


def expected_graphs() -> dict[str, str]:
    """Golden graph file name -> the DOT of that spec's step pictures now."""
    from stepc.tools.graph import step_graphs, to_dot

    return {
        f"{stem}.dot": to_dot(step_graphs(_spec_text(stem), f"{stem}.step")) for stem in GRAPH_SPECS
    }


def expected_readme() -> str:
    """README.md with every generated block as the tools produce it now."""
    return _README_BLOCK.sub(_readme_block, README.read_text(encoding="utf-8"))


def _readme_block(match: re.Match) -> str:
    from stepc.tools.explain import explain_graphs
    from stepc.tools.graph import step_graphs, to_mermaid

    opening, tool, args, _, closing = match.groups()
    spec, *rest = args.split()
    step = rest[1] if rest[:1] == ["--step"] else None
    path = ROOT / spec
    graphs = step_graphs(path.read_text(encoding="utf-8"), path.name)
    graphs = tuple(g for g in graphs if step is None or g.step == step)
    if tool == "graph":
        return f"{opening}```mermaid\n{to_mermaid(graphs)}```\n{closing}"
    return f"{opening}```text\n{explain_graphs(graphs)}```\n{closing}"


def _spec_text(stem: str) -> str:
    return (SPECS / f"{stem}.step").read_text(encoding="utf-8")


def _write(path: Path, text: str) -> None:
    changed = not path.exists() or path.read_text(encoding="utf-8") != text
    path.write_text(text, encoding="utf-8")
    print(f"{'updated' if changed else 'unchanged'} {path.relative_to(ROOT)}")


def main() -> int:
    GOLDEN.mkdir(exist_ok=True)
    for name, text in expected_modules().items():
        _write(GOLDEN / name, text)
    GRAPHS.mkdir(exist_ok=True)
    for name, text in expected_graphs().items():
        _write(GRAPHS / name, text)
    _write(README, expected_readme())
    return 0


if __name__ == "__main__":
    sys.exit(main())
