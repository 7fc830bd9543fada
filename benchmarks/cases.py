"""The timed specs, backend-neutral: how to build and compile each model, its data.

Each ``Case`` builds a compiled model of a given class (the generated one or a hand-written
one) from ``benchmarks/models.py`` with the same initial weights and optimizer settings,
and gives the numpy arrays its step reads (the drivers batch them per backend). The
hand-written steps per backend: ``tests/references/`` on TensorFlow (every seed spec),
``benchmarks/handwritten/`` on JAX and torch (the GAN and the basic spec).

``cases()`` are the five seed specs at benchmark size (``benchmarks/models.py``);
``later_cases()`` are the other shipped specs, built as the cross-backend tests build them
(``tests/support/backend_runs.py``: tiny sub-models, SGD, batches of 8 or fewer), so their
step times are mostly each backend's per-step overhead.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from benchmarks import models

REPO_ROOT = Path(__file__).resolve().parents[1]
MSE_MAE = {"loss": "mse", "metrics": ["mae"]}

# spec -> (module, class) of its hand-written step, per backend.
HANDWRITTEN = {
    "tensorflow": {
        "basic": ("tests.references.basic", "BasicReference"),
        "lowlevel": ("tests.references.lowlevel", "LowLevelReference"),
        "weighted": ("tests.references.weighted", "WeightedReference"),
        "evaluate": ("tests.references.evaluate", "EvaluateReference"),
        "gan": ("tests.references.gan", "GANReference"),
    },
    "tensorflow_later": {
        "adversarial": ("tests.references.adversarial", "AdversarialReference"),
        "masked_image_modeling": (
            "tests.references.masked_image_modeling",
            "MaskedAutoencoderReference",
        ),
        "metric_learning": ("tests.references.metric_learning", "EmbeddingModelReference"),
        "scan": ("tests.references.scan", "SCANReference"),
        "simclr": ("tests.references.simclr", "SimCLRReference"),
        "speech_transformer": ("tests.references.speech_transformer", "SpeechTransformerReference"),
        "vae": ("tests.references.vae", "VAEReference"),
        "wgan_gp": ("tests.references.wgan_gp", "WGANGPReference"),
        "zero_dce": ("tests.references.zero_dce", "ZeroDCEReference"),
    },
    "jax": {
        "basic": ("benchmarks.handwritten.jax_steps", "BasicJax"),
        "gan": ("benchmarks.handwritten.jax_steps", "GANJax"),
    },
    "torch": {
        "basic": ("benchmarks.handwritten.torch_steps", "BasicTorch"),
        "gan": ("benchmarks.handwritten.torch_steps", "GANTorch"),
    },
}


@dataclass(frozen=True)
class Case:
    """One spec: which step, how to build a compiled model of a class, its data: arrays
    cut into batches of ``batch_size``, or (``arrays`` None) a list of ready batches."""

    spec: str
    step: str  # "train" or "test"
    build: Callable[[type], keras.Model]  # a compiled model of the given class
    arrays: Callable[[], np.ndarray | tuple[np.ndarray, ...]] | None
    batch_size: int
    batches: Callable[[], list] | None = None
    class_name: str = ""  # the generated module's class ("" : GAN for gan, else CustomModel)


def adam() -> keras.optimizers.Optimizer:
    return keras.optimizers.Adam(learning_rate=1e-3)


def _functional_builder(with_optimizer: bool, **compile_kwargs) -> Callable:
    """Builds a Functional model of a class, compiled with a fresh optimizer if any."""

    def build(cls: type) -> keras.Model:
        model = models.functional(cls)
        optimizer = {"optimizer": adam()} if with_optimizer else {}
        model.compile(**optimizer, **compile_kwargs)
        return model

    return build


def _gan_builder(cls: type) -> keras.Model:
    return models.compile_gan(models.gan(cls, models.SMALL_GAN))


def _images() -> np.ndarray:
    return models.image_array(models.SMALL_GAN.batch_size)


def cases() -> list[Case]:
    """The five seed specs, in the README's order."""
    trained, evaluated = _functional_builder(True, **MSE_MAE), _functional_builder(False, **MSE_MAE)
    batch, gan_batch = models.BATCH_SIZE, models.SMALL_GAN.batch_size
    plain = lambda: models.regression_arrays(False)  # noqa: E731
    return [
        Case("basic", "train", trained, plain, batch),
        Case("lowlevel", "train", _functional_builder(True), plain, batch),
        Case("weighted", "train", trained, lambda: models.regression_arrays(True), batch),
        Case("evaluate", "test", evaluated, plain, batch),
        Case("gan", "train", _gan_builder, _images, gan_batch),
    ]


LATER_BATCHES = 4  # distinct batches cycled


def _later_case(spec: str) -> Case:
    """A shipped spec as the cross-backend tests train it (its full-size batches only)."""
    from tests.support import backend_runs

    run = backend_runs.RUNS[spec]

    def build(cls: type) -> keras.Model:
        model = run.build(cls)
        model.compile(**run.compile())
        return model

    size = run.sizes[0]
    batches = lambda: backend_runs.batches(run.batch, (size,) * LATER_BATCHES)  # noqa: E731
    return Case(spec, "train", build, None, size, batches, run.class_name)


def later_cases() -> list[Case]:
    """Every shipped spec that is not a seed spec, in alphabetical order."""
    return [_later_case(spec) for spec in sorted(HANDWRITTEN["tensorflow_later"])]


def generated_class(case: Case) -> type:
    """The class stepc generates for the case's spec, compiled for the backend Keras runs
    on (``stepc compile --backend``: the same step methods as the every-backend module)."""
    import stepc

    backend = keras.backend.backend()
    path = REPO_ROOT / "specs" / f"{case.spec}.step"
    text = stepc.compile_source(path.read_text(encoding="utf-8"), path.name, backend=backend)
    module = types.ModuleType(f"stepc_generated.{case.spec}_{backend}")
    sys.modules[module.__name__] = module
    exec(compile(text, f"<stepc {path} --backend {backend}>", "exec"), module.__dict__)
    return getattr(module, case.class_name or ("GAN" if case.spec == "gan" else "CustomModel"))


def handwritten(spec: str, backend: str | None = None) -> type | None:
    """The hand-written class of ``spec`` on ``backend`` (Keras's own by default), if any."""
    backend = backend or keras.backend.backend()
    table = {**HANDWRITTEN[backend], **HANDWRITTEN.get(f"{backend}_later", {})}
    entry = table.get(spec)
    if entry is None:
        return None
    return getattr(importlib.import_module(entry[0]), entry[1])
