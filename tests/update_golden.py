"""Regenerate the golden modules: `python tests/update_golden.py`.

Compiles every spec in specs/ and writes tests/golden/<stem>.py. Review the
diff (`git diff tests/golden`) before committing it: it is the generated code
users will read.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = ROOT / "tests" / "golden"


def expected_modules() -> dict[str, str]:
    """Golden file name -> the module stepc generates now."""
    from stepc import compile_source

    return {
        f"{spec.stem}.py": compile_source(spec.read_text(encoding="utf-8"), spec.name)
        for spec in sorted(SPECS.glob("*.step"))
    }


def main() -> int:
    GOLDEN.mkdir(exist_ok=True)
    for name, text in expected_modules().items():
        path = GOLDEN / name
        changed = not path.exists() or path.read_text(encoding="utf-8") != text
        path.write_text(text, encoding="utf-8")
        print(f"{'updated' if changed else 'unchanged'} {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
