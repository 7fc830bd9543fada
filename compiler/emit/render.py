"""Stage 4: a `ModulePlan` rendered through the backend's Jinja templates.

Owns the template environment and the rendering call. The backend has already
spelled every line; the templates arrange them, so the output depends only on
the spec and stepc (no formatter runs at compile time, and none is needed:
tests check the output is already what the pinned ruff format produces).
"""

from __future__ import annotations

import contextlib
import functools

import jinja2
from stepc.cache import cache_dir
from stepc.emit.frameworks import ALL
from stepc.emit.keras import classes
from stepc.emit.pyexpr import string_literal
from stepc.lower.plan import ModulePlan
from stepc.resources import templates_dir


class _BestEffortBytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's compiled templates in stepc's cache directory: a file that cannot be
    written or read is only a template compiled again (a few ms), never an error."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError, EOFError, ValueError, TypeError):
            super().load_bytecode(bucket)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    directory = cache_dir()
    return _BestEffortBytecodeCache(str(directory), "jinja-%s") if directory else None


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        # Compiling the two templates was ~8 ms of every run; loading them ~0.3 ms.
        bytecode_cache=_bytecode_cache(),
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
