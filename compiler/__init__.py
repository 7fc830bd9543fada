"""stepc: compiles declarative `.step` training-step specs to Keras models.

The public API: `compile_source(text, filename)` returns the generated module's
text, `load(path)` compiles a spec file and imports it, `load_source(text, name)`
does the same for spec text, `SpecError` carries every diagnostic of a spec that
does not compile. `load_ipython_extension` is what `%load_ext stepc` calls (the
`%%stepc` cell magic); IPython is imported only then.
"""

from __future__ import annotations

from stepc.diagnostics import Diagnostic, Severity, SpecError
from stepc.pipeline import compile_source, load, load_source


def load_ipython_extension(ipython) -> None:
    """`%load_ext stepc`: the `%%stepc` cell magic and the step pictures of model classes."""
    from stepc.tools.notebook import register

    register(ipython)


__all__ = [
    "Diagnostic",
    "Severity",
    "SpecError",
    "compile_source",
    "load",
    "load_ipython_extension",
    "load_source",
]
__version__ = "0.1.0"
