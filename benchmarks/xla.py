"""XLA: the guide's GAN, hand-written and generated, with and without ``jit_compile``.

Four models in one process, each with its own sub-model instances carrying the same
initial weights (``models.GUIDE_GAN``: the guide's architecture, latent 128, batch 64, random
float32 images from numpy): the hand-written ``GANReference`` and the generated
``stepc.load("specs/gan.step").GAN``, each compiled with ``jit_compile=False`` and
``jit_compile=True`` (the generated ``compile`` forwards it to Keras); and, at its defaults
(no ``jit_compile`` given to ``compile``), the generated GAN of the same spec with the line
``jit_compile = True`` added, against the hand-written GAN at Keras's default (no XLA on a
CPU-only machine). Each runs its Keras
``train_function`` on its own iterator: the first call (trace, and XLA compilation) is timed
apart, then ``warmup`` more calls, then ``timed`` rounds in which every model runs one step,
in an order rotated every round. A step is timed until its logs are read back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras

from benchmarks import models
from benchmarks.stats import ratio_summary, summarize
from tests.references.gan import GANReference


@dataclass
class Config:
    """One of the four models and the state needed to step it."""

    label: str
    jit: bool | None  # None: compile() at its defaults
    model: keras.Model
    iterator: object
    first_call_s: float = 0.0


def _step(config: Config) -> float:
    start = time.perf_counter()
    logs = config.model.train_function(config.iterator)
    for value in logs.values():
        value.numpy()
    return time.perf_counter() - start


def _config(label: str, cls: type, jit: bool, warmup: int) -> Config:
    shape = models.GUIDE_GAN
    options = {} if jit is None else {"jit_compile": jit}
    model = models.compile_gan(models.gan(cls, shape), **options)
    model.make_train_function()
    dataset = models.repeated_dataset(models.image_array(shape.batch_size), shape.batch_size)
    config = Config(label, jit, model, iter(dataset))
    config.first_call_s = _step(config)
    for _ in range(max(warmup - 1, 0)):
        _step(config)
    return config


def _rounds(configs: list[Config], timed: int) -> dict[int, list[float]]:
    times: dict[int, list[float]] = {index: [] for index in range(len(configs))}
    for round_index in range(timed):
        shift = round_index % len(configs)
        for index in [*range(shift, len(configs)), *range(shift)]:
            times[index].append(_step(configs[index]))
    return times


def measure(generated_cls: type, jit_spec_cls: type, warmup: int, timed: int) -> dict:
    """Seconds per step of the five models and the ratios between them."""
    plan = [
        ("hand-written", GANReference, False),
        ("hand-written", GANReference, True),
        ("generated", generated_cls, False),
        ("generated", generated_cls, True),
        ("generated, spec with jit_compile = True, at its defaults", jit_spec_cls, None),
    ]
    configs = [_config(label, cls, jit, warmup) for label, cls, jit in plan]
    times = _rounds(configs, timed)
    rows = [
        {
            "model": config.label,
            "jit_compile": config.jit,
            "jit_compile_in_effect": bool(config.model.jit_compile),
            "first_call_s": config.first_call_s,
            "seconds": summarize(times[index]),
        }
        for index, config in enumerate(configs)
    ]
    return {
        "shape": vars(models.GUIDE_GAN),
        "warmup_calls": warmup,
        "models": rows,
        "ratios": {
            "generated / hand-written, no XLA": ratio_summary(times[2], times[0]),
            "generated / hand-written, XLA": ratio_summary(times[3], times[1]),
            "XLA speed-up, hand-written (no XLA / XLA)": ratio_summary(times[0], times[1]),
            "XLA speed-up, generated (no XLA / XLA)": ratio_summary(times[2], times[3]),
            "generated at its spec's defaults / hand-written at Keras's defaults": ratio_summary(
                times[4], times[0]
            ),
        },
    }
