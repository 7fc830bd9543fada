"""Stage 4: a `ModulePlan` rendered through the backend's Jinja templates.

Owns the template environment and the rendering call. The backend has already
spelled every line; the templates arrange them, so the output depends only on
the spec and stepc (no formatter runs at compile time, and none is needed:
tests check the output is already what the pinned ruff format produces).
"""

from __future__ import annotations

import functools

import jinja2
from stepc.emit.frameworks import ALL
from stepc.emit.keras import classes
from stepc.emit.pyexpr import string_literal
from stepc.lower.plan import ModulePlan
from stepc.resources import templates_dir


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=False,  # Python source, not HTML: every value arrives as safe Python
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pyrepr"] = string_literal
    return env


def emit(plan: ModulePlan, frameworks: tuple[str, ...] = ALL) -> str:
    """The module's text, with steps for each of `frameworks` (Keras backend names)."""
    model = classes.render_model(plan, frameworks)
    text = _environment().get_template("module.py.jinja").render(module=model)
    return text.rstrip("\n") + "\n"
