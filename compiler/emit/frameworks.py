"""The frameworks a module can be emitted for, and what each one brings.

Owns the registry the class writer reads: per framework (Keras's backend name),
its step writer (a `stepc.emit.keras.steps.StepWriter` subclass), its
module-level helpers, its import line, and the lines the shared `compile()`
ends with on it. Adding a backend is adding an entry here and its module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stepc.emit import tensorflow
from stepc.lower.plan import ModelPlan


@dataclass(frozen=True)
class Framework:
    name: str  # keras.backend.backend()
    title: str  # in comments and docstrings: "TensorFlow"
    writer: type  # its StepWriter subclass
    helpers: dict[str, tuple[str, ...]]  # its own module-level helpers, by key
    import_line: str
    compile_lines: Callable[[ModelPlan], list[str]] = lambda model: []


def _registry() -> dict[str, Framework]:
    frameworks = [
        Framework(
            "tensorflow",
            "TensorFlow",
            tensorflow.TensorFlowStepWriter,
            tensorflow.HELPERS,
            tensorflow.IMPORT,
        )
    ]
    return {f.name: f for f in frameworks}


FRAMEWORKS = _registry()
ALL = tuple(FRAMEWORKS)  # every framework, in the order a module holds their steps
