"""The frameworks a module can be emitted for, and what each one brings.

Owns the registry the class writer reads: per framework (Keras's backend name),
its step writer (a `stepc.emit.keras.steps.StepWriter` subclass), its
module-level helpers, its import line, and the lines the shared `compile()`
ends with on it. Adding a backend is adding an entry here and its module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stepc.emit import jax, tensorflow, torch
from stepc.lower.plan import ModelPlan


@dataclass(frozen=True)
class Framework:
    """A Keras backend the steps are written for, and how to write them."""

    name: str  # keras.backend.backend()
    title: str  # in class names: "_GANTensorFlowSteps"
    label: str  # in docstrings and comments: "TensorFlow", "JAX", "PyTorch"
    writer: type  # its StepWriter subclass
    helpers: dict[str, tuple[str, ...]]  # its own module-level helpers, by key
    import_line: str
    compile_lines: Callable[[ModelPlan], list[str]] = lambda model: []
    # Methods its step mixin holds besides the steps (torch: fit()'s symbolic build).
    mixin_methods: Callable[[ModelPlan], list[tuple[str, ...]]] = lambda model: []


def _registry() -> dict[str, Framework]:
    frameworks = [
        Framework(
            "tensorflow",
            "TensorFlow",
            "TensorFlow",
            tensorflow.TensorFlowStepWriter,
            tensorflow.HELPERS,
            tensorflow.IMPORT,
        ),
        Framework(
            "jax",
            "Jax",
            "JAX",
            jax.JaxStepWriter,
            jax.HELPERS,
            jax.IMPORT,
            jax.compile_lines,
            jax.mixin_methods,
        ),
        Framework(
            "torch",
            "Torch",
            "PyTorch",
            torch.TorchStepWriter,
            torch.HELPERS,
            torch.IMPORT,
            mixin_methods=torch.mixin_methods,
        ),
    ]
    return {f.name: f for f in frameworks}


FRAMEWORKS = _registry()
ALL = tuple(FRAMEWORKS)  # every framework, in the order a module holds their steps
