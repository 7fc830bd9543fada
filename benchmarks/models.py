"""Models, data and compile settings shared by the benchmarks on every backend.

* A Functional regression model for the ``basic``, ``lowlevel``, ``weighted`` and
  ``evaluate`` specs: ``FEATURES -> Dense(HIDDEN) -> BatchNorm -> tanh -> Dense(HIDDEN,
  relu) -> Dense(1)``, large enough that a step costs milliseconds rather than microseconds.
* The Keras guide's GAN architecture for 28x28x1 images, with every filter and unit count
  scaled by ``width`` (``width=1`` is the guide's own GAN).

Generated and hand-written models of a comparison start from the same weights (built once
from ``SEED``, copied in with ``set_weights``; each GAN gets its own sub-model instances),
get fresh, identically configured optimizers, and read the same data.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import keras
import numpy as np

SEED = 1337
FEATURES = 64
HIDDEN = 256
BATCH_SIZE = 128
BATCHES = 8  # distinct batches in the repeated dataset
IMAGE_SHAPE = (28, 28, 1)


@dataclass(frozen=True)
class GanShape:
    """The guide's GAN scaled by ``width``, with its latent size and batch size."""

    width: float
    latent_dim: int
    batch_size: int


GUIDE_GAN = GanShape(width=1.0, latent_dim=128, batch_size=64)
SMALL_GAN = GanShape(width=0.125, latent_dim=32, batch_size=16)


# Data -------------------------------------------------------------------------------------


def regression_arrays(with_weights: bool) -> tuple[np.ndarray, ...]:
    """``(x, y)`` or ``(x, y, sample_weight)``, float32, ``BATCHES * BATCH_SIZE`` samples."""
    rng = np.random.default_rng(SEED)
    count = BATCHES * BATCH_SIZE
    x = rng.normal(size=(count, FEATURES)).astype("float32")
    w = rng.normal(size=(FEATURES, 1)).astype("float32")
    y = (np.tanh(x @ w) + 0.1 * rng.normal(size=(count, 1))).astype("float32")
    if not with_weights:
        return x, y
    return x, y, rng.uniform(0.1, 2.0, size=(count,)).astype("float32")


def image_array(batch_size: int, batches: int = 4) -> np.ndarray:
    """Random "real" images in ``[0, 1)``, float32, ``batches * batch_size`` of them."""
    rng = np.random.default_rng(SEED)
    return rng.uniform(size=(batches * batch_size, *IMAGE_SHAPE)).astype("float32")


def repeated_dataset(arrays, batch_size: int):
    """A ``tf.data`` pipeline of batches of ``arrays`` forever (TensorFlow only). The
    batch dimension is ``None``, as in ``fit()``."""
    import tensorflow as tf  # here: the JAX and torch benchmarks never load TensorFlow

    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size).cache().repeat()


# Functional models -----------------------------------------------------------------------


def dense_graph():
    """Inputs and outputs of a fresh regression graph (see the module docstring)."""
    inputs = keras.Input(shape=(FEATURES,))
    hidden = keras.layers.Dense(HIDDEN, name="hidden")(inputs)
    hidden = keras.layers.BatchNormalization(name="norm")(hidden)
    hidden = keras.layers.Activation("tanh")(hidden)
    hidden = keras.layers.Dense(HIDDEN, activation="relu", name="hidden_2")(hidden)
    outputs = keras.layers.Dense(1, name="output")(hidden)
    return inputs, outputs


@functools.cache
def _dense_weights() -> tuple[np.ndarray, ...]:
    keras.utils.set_random_seed(SEED)
    return tuple(keras.Model(*dense_graph()).get_weights())


def functional(cls: type) -> keras.Model:
    """A ``cls`` model on a fresh ``dense_graph`` carrying the shared initial weights."""
    keras.utils.set_random_seed(SEED)
    model = cls(*dense_graph())
    model.set_weights(list(_dense_weights()))
    return model


# GAN ---------------------------------------------------------------------------------------


def _units(count: int, width: float) -> int:
    return max(1, round(count * width))


def guide_discriminator(width: float) -> keras.Model:
    """Conv2D(64,3,s2)/LeakyReLU/Conv2D(128,3,s2)/LeakyReLU/GlobalMaxPooling2D/Dense(1)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            layers.Conv2D(_units(64, width), 3, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(_units(128, width), 3, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.GlobalMaxPooling2D(),
            layers.Dense(1),
        ],
        name="discriminator",
    )


def guide_generator(width: float, latent_dim: int) -> keras.Model:
    """Dense(7*7*128)/LeakyReLU/Reshape/Conv2DTranspose(128,4,s2) x2/Conv2D(1,7,sigmoid)."""
    layers = keras.layers
    channels = _units(128, width)
    return keras.Sequential(
        [
            keras.Input(shape=(latent_dim,)),
            layers.Dense(7 * 7 * channels),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Reshape((7, 7, channels)),
            layers.Conv2DTranspose(channels, 4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2DTranspose(channels, 4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(1, 7, padding="same", activation="sigmoid"),
        ],
        name="generator",
    )


@functools.cache
def _gan_weights(shape: GanShape) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    keras.utils.set_random_seed(SEED)
    discriminator = guide_discriminator(shape.width)
    generator = guide_generator(shape.width, shape.latent_dim)
    return tuple(discriminator.get_weights()), tuple(generator.get_weights())


def gan(cls: type, shape: GanShape) -> keras.Model:
    """A ``cls`` GAN with new guide sub-models carrying the shared initial weights."""
    discriminator_weights, generator_weights = _gan_weights(shape)
    discriminator = guide_discriminator(shape.width)
    discriminator.set_weights(list(discriminator_weights))
    generator = guide_generator(shape.width, shape.latent_dim)
    generator.set_weights(list(generator_weights))
    keras.utils.set_random_seed(SEED)  # the GAN's seed generator draws its seed here
    return cls(discriminator=discriminator, generator=generator, latent_dim=shape.latent_dim)


def compile_gan(model: keras.Model, **kwargs) -> keras.Model:
    """The guide's settings: Adam(3e-4) for both, BCE on logits; ``kwargs`` to Keras."""
    model.compile(
        d_optimizer=keras.optimizers.Adam(learning_rate=3e-4),
        g_optimizer=keras.optimizers.Adam(learning_rate=3e-4),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
        **kwargs,
    )
    return model
