"""Where stepc finds its grammar and templates, installed or from a checkout.

Owns the lookup only: a wheel carries `grammar/` and `templates/` inside the
`stepc` package (as `stepc/grammar`, `stepc/templates`); a source checkout or
an editable install reads them from the repository's top level.
"""

from __future__ import annotations

import functools
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"stepc is installed without its {name}/ directory")


@functools.cache
def grammar_text() -> str:
    return (_data_dir("grammar") / "step.lark").read_text(encoding="utf-8")


def templates_dir() -> Path:
    return _data_dir("templates")
