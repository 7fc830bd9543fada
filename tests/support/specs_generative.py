"""Runs of the two generative published specs (``specs/ddim.step``,
``specs/stylegan.step``) for ``test_published_generative_specs.py`` and its distribution
subprocess, and the tiny stand-ins they need: a KID metric, a fade-in layer and the
sub-model builders.

Every run starts alike: sub-models built by the builders below and carrying
``models.initial_weights(builder)`` (DDIM's EMA network starts from the network's
weights, as a careful user copies them), the model constructed right after
``keras.utils.set_random_seed(SEED)`` (its SeedGenerator's seed is drawn there), fresh
optimizers of a fixed configuration, ``set_random_seed(SEED)`` again right before ``fit``
with ``shuffle=False``. So two runs differ only in the model class (generated or
reference) or in what a test changes (XLA, a dtype policy, a strategy, a callback).

Data (numpy, fixed seeds; every epoch ends on a partial batch): 20 training images of
``IMAGE_SHAPE`` in batches of 8 (three steps per epoch), DDIM's in ``[0, 1]`` and the
GAN's in ``[-1, 1]``; DDIM also gets 12 validation images (``validation_data`` and
``evaluate()``, batches of 8), whose test step samples as many images and measures them
with the KID stand-in.

``python tests/support/specs_generative.py mirrored`` runs each spec on one device and
under ``MirroredStrategy`` over two logical CPUs (every replica gets the single-device
batch: ``fit.replicate_batches``) and prints ``RESULT <json>``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # the distribution subprocess: the repository is importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import keras
import numpy as np
from keras import ops

from tests.support.fit import Run, loss_scaled, recorded_fit, replicate_batches, strategy_scope
from tests.support.models import SEED, fresh_model, initial_weights, load_spec
from tests.support.workers import mirrored_main

SPECS = ("ddim", "stylegan")
CLASS_NAMES = {"ddim": "DiffusionModel", "stylegan": "StyleGAN"}
IMAGE_SHAPE = (4, 4, 1)
LATENT_DIM = 4
N_TRAIN, N_VALIDATION = 20, 12
BATCH_SIZE = 8
EPOCHS = 2
RESULT_PREFIX = "RESULT "
# Constructor arguments besides the sub-models: DDIM's EMA moves visibly (0.9, not the
# published 0.999); the fade-in ends within the 6 steps of 2 epochs (alpha 1/4 ... 1).
DDIM_PARAMS = {"diffusion_steps": 3, "ema": 0.9, "min_signal_rate": 0.02, "max_signal_rate": 0.95}
STYLEGAN_PARAMS = {
    "latent_dim": LATENT_DIM,
    "fade_steps": 4,
    "gp_weight": 10.0,
    "drift_weight": 0.1,
}


# The stand-ins ---------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="stepc_tests")
class KernelInceptionDistance(keras.metrics.Metric):
    """A stand-in for keras.io's KID: the unbiased squared MMD between real and generated
    images under the polynomial kernel ``(x . y / d + 1) ** 3``, of the flattened images
    themselves (no Inception features), averaged over the batches given."""

    def __init__(self, name="kid", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.batches = self.add_variable(shape=(), initializer="zeros", name="batches")

    def update_state(self, real_images, generated_images, sample_weight=None):
        real = self._features(real_images)
        generated = self._features(generated_images)
        kid = (
            self._mean_off_diagonal(self._kernel(real, real))
            + self._mean_off_diagonal(self._kernel(generated, generated))
            - 2.0 * ops.mean(self._kernel(real, generated))
        )
        self.total.assign_add(kid)
        self.batches.assign_add(1.0)

    def result(self):
        return ops.divide_no_nan(self.total, self.batches)

    @staticmethod
    def _features(images):
        images = ops.cast(images, "float32")
        return ops.reshape(images, (ops.shape(images)[0], -1))

    @staticmethod
    def _kernel(a, b):
        dimensions = ops.cast(ops.shape(a)[1], "float32")
        return (ops.matmul(a, ops.transpose(b)) / dimensions + 1.0) ** 3.0

    @staticmethod
    def _mean_off_diagonal(kernel):
        """The mean of a square kernel matrix without its diagonal (the unbiased MMD)."""
        n = ops.cast(ops.shape(kernel)[0], "float32")
        return (ops.sum(kernel) - ops.trace(kernel)) / (n * (n - 1.0))


@keras.saving.register_keras_serializable(package="stepc_tests")
class FadeIn(keras.layers.Layer):
    """Progressive growing's blend ``old + alpha * (new - old)`` of a block's old and new
    paths; ``alpha`` is ``(batch, 1)``, one weight per example."""

    def call(self, inputs):
        old, new, alpha = inputs
        alpha = ops.reshape(ops.cast(alpha, old.dtype), (-1,) + (1,) * (len(old.shape) - 1))
        return old + alpha * (new - old)


# Models ----------------------------------------------------------------------------------


def _diffusion_network(name: str) -> keras.Model:
    """DDIM's noise predictor: ``[noisy images, noise variances (batch, 1, 1, 1)]`` to
    the predicted noise, the variance broadcast over the pixels as an extra channel (the
    example's sinusoidal embedding and U-Net left out)."""
    layers = keras.layers
    images = keras.Input(shape=IMAGE_SHAPE, name="noisy_images")
    variances = keras.Input(shape=(1, 1, 1), name="noise_variances")
    embedding = layers.UpSampling2D(size=IMAGE_SHAPE[:2])(variances)
    hidden = layers.Concatenate()([images, embedding])
    hidden = layers.Conv2D(4, 3, padding="same", activation="swish")(hidden)
    outputs = layers.Conv2D(IMAGE_SHAPE[-1], 1)(hidden)
    return keras.Model([images, variances], outputs, name=name)


def build_network() -> keras.Model:
    """DDIM's trained network."""
    return _diffusion_network("network")


def build_ema_network() -> keras.Model:
    """DDIM's EMA network, with the network's initial weights; trainable, as the
    example's clone is (the step never trains it)."""
    model = _diffusion_network("ema_network")
    model.set_weights(list(initial_weights(build_network)))
    return model


def build_generator() -> keras.Model:
    """A stand-in StyleGAN generator growing from 2x2 to 4x4: ``[latent, alpha]`` to
    images, the upsampled old block's RGB faded into the new block's by ``alpha``."""
    layers = keras.layers
    latent = keras.Input(shape=(LATENT_DIM,), name="latent")
    alpha = keras.Input(shape=(1,), name="alpha")
    hidden = layers.Dense(2 * 2 * 4)(latent)
    hidden = layers.LeakyReLU(negative_slope=0.2)(hidden)
    hidden = layers.UpSampling2D(2)(layers.Reshape((2, 2, 4))(hidden))
    old = layers.Dense(IMAGE_SHAPE[-1], name="to_rgb_old")(hidden)
    new = layers.Conv2D(4, 3, padding="same")(hidden)
    new = layers.Dense(IMAGE_SHAPE[-1], name="to_rgb_new")(layers.LeakyReLU(0.2)(new))
    return keras.Model([latent, alpha], FadeIn()([old, new, alpha]), name="generator")


def build_discriminator() -> keras.Model:
    """A stand-in StyleGAN discriminator: ``[images, alpha]`` to one score each, the new
    4x4 block faded in over the downsampled images' old path by ``alpha``."""
    layers = keras.layers
    images = keras.Input(shape=IMAGE_SHAPE, name="images")
    alpha = keras.Input(shape=(1,), name="alpha")
    old = layers.Dense(4, name="from_rgb_old")(layers.AveragePooling2D(2)(images))
    old = layers.LeakyReLU(0.2)(old)
    new = layers.LeakyReLU(0.2)(layers.Dense(4, name="from_rgb_new")(images))
    new = layers.LeakyReLU(0.2)(layers.Conv2D(4, 3, padding="same")(new))
    new = layers.AveragePooling2D(2)(new)
    hidden = layers.Flatten()(FadeIn()([old, new, alpha]))
    return keras.Model([images, alpha], layers.Dense(1)(hidden), name="discriminator")


SUB_MODELS: dict[str, tuple[tuple[str, Callable[[], keras.Model]], ...]] = {
    "ddim": (("network", build_network), ("ema_network", build_ema_network)),
    "stylegan": (("generator", build_generator), ("discriminator", build_discriminator)),
}
# The state each spec's step keeps besides sub-model weights: (attribute, dtype kind).
STATE = {"ddim": (), "stylegan": (("step", "int"), ("alpha", "float"))}


def spec_class(name: str, kind: str = "generated") -> type:
    """The class stepc generates for ``specs/<name>.step``, or its reference."""
    if kind == "reference":
        from tests.references.ddim import DiffusionModelReference
        from tests.references.stylegan import StyleGANReference

        return {"ddim": DiffusionModelReference, "stylegan": StyleGANReference}[name]
    return getattr(load_spec(name), CLASS_NAMES[name])


def build_model(name: str, kind: str = "generated", cls: type | None = None, **params):
    """A ``kind`` model of spec ``name`` (or of ``cls``) with the shared initial weights;
    ``params`` override the constructor arguments."""
    cls = cls or spec_class(name, kind)
    parts = {param: _fresh(builder) for param, builder in SUB_MODELS[name]}
    if name == "ddim":
        parts["kid"] = KernelInceptionDistance(name="kid")
        params = {**DDIM_PARAMS, **params}
    else:
        params = {**STYLEGAN_PARAMS, **params}
    keras.utils.set_random_seed(SEED)
    return cls(**parts, **params)


def _fresh(builder: Callable[[], keras.Model]) -> keras.Model:
    """``builder()`` with the weights every run starts from."""
    if builder is build_ema_network:
        return builder()
    return fresh_model(builder)


def initial_state(name: str) -> list[np.ndarray]:
    """The trained weights every run of ``name`` starts from (no state, no seed)."""
    return [w for _, builder in SUB_MODELS[name] for w in initial_weights(builder)]


def state(name: str, model: keras.Model) -> list[np.ndarray]:
    """Everything the step changes: the sub-models' weights in ``SUB_MODELS`` order, the
    spec's state variables (StyleGAN's step count and alpha), then the seed state."""
    weights = [w for param, _ in SUB_MODELS[name] for w in getattr(model, param).get_weights()]
    weights += [np.asarray(getattr(model, attribute).numpy()) for attribute, _ in STATE[name]]
    return weights + [np.asarray(model.seed_generator.state.numpy())]


# Data ------------------------------------------------------------------------------------


def images(name: str, split: str = "train") -> np.ndarray:
    """DDIM's images in ``[0, 1]`` (the range its KID compares), the GAN's in
    ``[-1, 1]``; ``split`` "train" (20) or "validation" (12, another seed)."""
    count, seed = (N_TRAIN, SEED) if split == "train" else (N_VALIDATION, SEED + 1)
    rng = np.random.default_rng(seed)
    low = 0.0 if name == "ddim" else -1.0
    return rng.uniform(low, 1.0, size=(count, *IMAGE_SHAPE)).astype("float32")


# Optimizers ------------------------------------------------------------------------------


def make_optimizers(name: str, kind: str = "default", loss_scale: bool | float = False):
    """``compile``'s optimizer arguments: DDIM's Keras optimizer (AdamW as the example;
    Keras's compile() wraps it for mixed precision), StyleGAN's two Adams (beta_1=0 as
    ProGAN); ``kind="sgd"``: SGD for every one (any constant scaling shows).
    ``loss_scale`` wraps StyleGAN's in a LossScaleOptimizer."""

    def make(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
        if kind == "sgd":
            optimizer = keras.optimizers.SGD(learning_rate=0.05)
        return loss_scaled(optimizer, loss_scale)

    if name == "ddim":
        return {"optimizer": make(keras.optimizers.AdamW(learning_rate=1e-2, weight_decay=1e-3))}
    return {
        "d_optimizer": make(keras.optimizers.Adam(1e-2, beta_1=0.0, beta_2=0.99)),
        "g_optimizer": make(keras.optimizers.Adam(1e-2, beta_1=0.0, beta_2=0.99)),
    }


def optimizers_of(name: str, model: keras.Model) -> list:
    """The optimizers a compiled model's step applies."""
    return [getattr(model, param) for param in make_optimizers(name)]


# Runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """How ``run`` makes a model: its class, constructor and compile() arguments."""

    kind: str = "generated"
    cls: type | None = None
    params: Mapping | None = None
    optimizer: str = "default"
    loss_scale: bool | float = False
    compile_kwargs: Mapping | None = None


def new_model(name: str, setup: Setup, strategy=None) -> keras.Model:
    """A compiled model of ``setup``, made in ``strategy``'s scope if given."""
    with strategy_scope(strategy):
        model = build_model(name, setup.kind, setup.cls, **(setup.params or {}))
        optimizers = make_optimizers(name, setup.optimizer, setup.loss_scale)
        model.compile(**optimizers, **(setup.compile_kwargs or {}))
    return model


def run(
    name: str,
    setup: Setup = Setup(),
    *,
    model: keras.Model | None = None,
    epochs: int = EPOCHS,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    strategy=None,
    replicas: int = 1,
    full_batches: bool = False,
) -> Run:
    """Train a model of spec ``name`` (``model``, or a new one of ``setup``) on its
    images; DDIM also with validation data and then ``evaluate()``. ``full_batches``
    drops each set's partial last batch (one batch shape: XLA compiles each step once).
    ``extra`` holds every batch's logs and the state after every epoch."""
    model = model or new_model(name, setup, strategy)
    train = replicate_batches(_batched(images(name), full_batches), BATCH_SIZE, replicas)
    kwargs = {"batch_size": BATCH_SIZE * replicas, "epochs": epochs, "callbacks": callbacks}
    held_out = None
    if name == "ddim":
        held_out = _batched(images(name, "validation"), full_batches)
        held_out = replicate_batches(held_out, BATCH_SIZE, replicas)
        kwargs.update(validation_data=(held_out,), validation_batch_size=BATCH_SIZE * replicas)
    history, extra = recorded_fit(model, functools.partial(state, name), train, **kwargs)
    results = {}
    if held_out is not None:
        results = model.evaluate(
            held_out, batch_size=BATCH_SIZE * replicas, verbose=0, return_dict=True
        )
    return Run(state(name, model), history, results, model, extra)


def _batched(data: np.ndarray, full_batches: bool) -> np.ndarray:
    """``data``, without its partial last batch if ``full_batches``."""
    return data[: len(data) // BATCH_SIZE * BATCH_SIZE] if full_batches else data


# The distribution subprocess -------------------------------------------------------------


def mirrored_results() -> dict:
    """Each spec's generated model with SGD, on one device and under MirroredStrategy
    (2 logical CPUs); a case that raises is reported as ``{"error": ...}``. (The
    references pass the same comparison: measured, and left out of the CI budget.)"""
    import tensorflow as tf

    from tests.support.distribution_worker import guarded

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    results = {}
    for name in SPECS:
        for kind in ("generated",):
            sgd = Setup(kind, optimizer="sgd")
            results[f"{name}/{kind}/single"] = guarded(lambda name=name, s=sgd: run(name, s))
            results[f"{name}/{kind}/mirrored"] = guarded(
                lambda name=name, s=sgd: run(name, s, strategy=strategy, replicas=2)
            )
    return results


def main(argv: list[str]) -> int:
    """``mirrored``: the results of ``mirrored_results``, as one JSON line."""
    return mirrored_main(argv, mirrored_results)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
