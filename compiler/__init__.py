"""stepc: compiles declarative `.step` training-step specs to Keras models.

The public API: `compile_source(text, filename)` returns the generated module's
text, `load(path)` compiles a spec and imports it, `SpecError` carries every
diagnostic of a spec that does not compile.
"""

from __future__ import annotations

from stepc.diagnostics import Diagnostic, Severity, SpecError
from stepc.pipeline import compile_source, load

__all__ = ["Diagnostic", "Severity", "SpecError", "compile_source", "load"]
__version__ = "0.1.0"
