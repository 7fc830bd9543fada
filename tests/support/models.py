"""Tiny seeded models and data of ``test_equivalence.py`` (and the runs built on them):
Functional regressors, a GAN, the digits' critic, encoder, decoder and classifier, and
their compile-and-fit runs; ``compare.assert_outcomes_close`` compares two ``Outcome``s.

Models compared here start from the same
weights (built once, copied in with ``set_weights``; a GAN gets its own sub-model instances),
get fresh optimizers of the same configuration, and are constructed and fitted right after
``keras.utils.set_random_seed(SEED)``, so any difference comes from their steps.
Dataset sizes do not divide the batch size, so every epoch ends on a partial batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECS_DIR = REPO_ROOT / "specs"

SEED = 1337
N_SAMPLES = 50
BATCH_SIZE = 16  # 50 = 3 * 16 + 2: a partial last batch of 2 samples.
N_FEATURES = 6
HIDDEN_UNITS = 8
EPOCHS = 3

LATENT_DIM = 4
IMAGE_SHAPE = (8, 8, 1)
N_IMAGES = 20
GAN_BATCH_SIZE = 8  # 20 = 2 * 8 + 4: three steps per epoch, the last one partial.
GAN_EPOCHS = 2


def load_spec(name: str):
    """Compile ``specs/<name>.step`` with stepc and return the generated module."""
    import stepc

    return stepc.load(str(SPECS_DIR / f"{name}.step"))


# Data ------------------------------------------------------------------------------------


def regression_data(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Features and a noisy linear target, float32, ``(N_SAMPLES, N_FEATURES)``/``(N, 1)``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_SAMPLES, N_FEATURES))
    w = rng.normal(size=(N_FEATURES, 1))
    y = x @ w + 0.1 * rng.normal(size=(N_SAMPLES, 1))
    return x.astype("float32"), y.astype("float32")


def binary_data(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Features and an imbalanced 0/1 target of shape ``(N_SAMPLES, 1)``, float32."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_SAMPLES, N_FEATURES))
    w = rng.normal(size=(N_FEATURES, 1))
    y = (x @ w > 0.5).astype("float32")
    return x.astype("float32"), y


def sample_weights(seed: int = SEED) -> np.ndarray:
    """Per-sample weights in ``[0.1, 2)``, shape ``(N_SAMPLES,)``, float32."""
    rng = np.random.default_rng(seed + 1)
    return rng.uniform(0.1, 2.0, size=(N_SAMPLES,)).astype("float32")


def image_data(seed: int = SEED) -> np.ndarray:
    """``N_IMAGES`` "real" images in ``[0, 1)`` of shape ``IMAGE_SHAPE``, float32."""
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(N_IMAGES, *IMAGE_SHAPE)).astype("float32")


# Functional models -----------------------------------------------------------------------


def dense_graph(output_activation: str | None = None):
    """Inputs and outputs of a fresh ``N_FEATURES -> 8 -> BN -> tanh -> 1`` graph.

    BatchNormalization makes the ``training`` flag observable: batch statistics and
    moving-average updates when training, moving averages when not.
    """
    inputs = keras.Input(shape=(N_FEATURES,))
    hidden = keras.layers.Dense(HIDDEN_UNITS, name="hidden")(inputs)
    hidden = keras.layers.BatchNormalization(name="norm")(hidden)
    hidden = keras.layers.Activation("tanh")(hidden)
    outputs = keras.layers.Dense(1, activation=output_activation, name="output")(hidden)
    return inputs, outputs


@functools.cache
def initial_dense_weights(output_activation: str | None = None) -> tuple[np.ndarray, ...]:
    """The one set of initial ``dense_graph`` weights every compared model starts from."""
    keras.utils.set_random_seed(SEED)
    return tuple(keras.Model(*dense_graph(output_activation)).get_weights())


def fresh_functional(cls: type, output_activation: str | None = None) -> keras.Model:
    """A Functional-style ``cls`` model on a new ``dense_graph``, with the initial weights."""
    keras.utils.set_random_seed(SEED)
    model = cls(*dense_graph(output_activation))
    model.set_weights(list(initial_dense_weights(output_activation)))
    return model


def numpy_mse(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of a ``dense_graph`` model in inference mode, in float64."""
    hidden_kernel, hidden_bias = model.get_layer("hidden").get_weights()
    norm = model.get_layer("norm")
    gamma, beta, moving_mean, moving_variance = norm.get_weights()
    output_kernel, output_bias = model.get_layer("output").get_weights()
    hidden = x.astype("float64") @ hidden_kernel + hidden_bias
    hidden = gamma * (hidden - moving_mean) / np.sqrt(moving_variance + norm.epsilon) + beta
    hidden = np.tanh(hidden)
    y_pred = hidden @ output_kernel + output_bias
    return float(np.mean((y.astype("float64") - y_pred) ** 2))


def compile_and_fit(
    model: keras.Model,
    optimizer_factory: Callable[[], keras.optimizers.Optimizer],
    compile_kwargs: Mapping,
    *fit_args,
    **fit_kwargs,
) -> dict[str, list[float]]:
    """Compile with a fresh optimizer, fit with fixed batching from SEED, return History."""
    model.compile(optimizer=optimizer_factory(), **compile_kwargs)
    keras.utils.set_random_seed(SEED)
    fit_kwargs = {"batch_size": BATCH_SIZE, "epochs": EPOCHS, **fit_kwargs}
    history = model.fit(*fit_args, shuffle=False, verbose=0, **fit_kwargs)
    return history.history


# GAN -------------------------------------------------------------------------------------


def build_discriminator() -> keras.Model:
    """A tiny conv discriminator: ``IMAGE_SHAPE`` images to one logit.

    Like the generator, it has a BatchNormalization layer so that ``training`` matters.
    """
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            layers.Conv2D(4, 3, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(8, 3, strides=2, padding="same"),
            layers.BatchNormalization(),
            layers.LeakyReLU(negative_slope=0.2),
            layers.GlobalMaxPooling2D(),
            layers.Dense(1),
        ],
        name="discriminator",
    )


def build_generator() -> keras.Model:
    """A tiny generator: ``LATENT_DIM`` noise to ``IMAGE_SHAPE`` images in ``(0, 1)``."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(LATENT_DIM,)),
            layers.Dense(2 * 2 * 8),
            layers.BatchNormalization(),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Reshape((2, 2, 8)),
            layers.Conv2DTranspose(8, 4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2DTranspose(8, 4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
        ],
        name="generator",
    )


@functools.cache
def initial_gan_weights() -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The one set of initial discriminator and generator weights every GAN starts from."""
    keras.utils.set_random_seed(SEED)
    return tuple(build_discriminator().get_weights()), tuple(build_generator().get_weights())


def fresh_gan(cls: type) -> keras.Model:
    """A ``cls`` GAN with new sub-model instances carrying the initial weights."""
    discriminator_weights, generator_weights = initial_gan_weights()
    discriminator = build_discriminator()
    discriminator.set_weights(list(discriminator_weights))
    generator = build_generator()
    generator.set_weights(list(generator_weights))
    keras.utils.set_random_seed(SEED)  # The GAN's seed generator draws its seed here.
    return cls(discriminator=discriminator, generator=generator, latent_dim=LATENT_DIM)


def compile_and_fit_gan(gan: keras.Model, images: np.ndarray) -> dict[str, list[float]]:
    """Compile like the guide (SGD for D, Adam for G: a swap shows), fit, return History."""
    gan.compile(
        d_optimizer=keras.optimizers.SGD(learning_rate=0.05),
        g_optimizer=keras.optimizers.Adam(learning_rate=1e-2),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    keras.utils.set_random_seed(SEED)
    history = gan.fit(
        images, batch_size=GAN_BATCH_SIZE, epochs=GAN_EPOCHS, shuffle=False, verbose=0
    )
    return history.history


def gan_state(gan: keras.Model) -> list[np.ndarray]:
    """Discriminator weights, generator weights, then the seed generator's state."""
    seed_state = gan.seed_generator.state.numpy()
    return [*gan.discriminator.get_weights(), *gan.generator.get_weights(), seed_state]


# WGAN-GP, VAE, adversarial training: sub-models on scikit-learn's 8x8 digits ------------

DIGITS_TRAIN = 12  # Training samples: 12 = 8 + 4, a partial last batch.
DIGITS_VAL = 12  # The next 12 digits: validation and evaluate() data.
DIGITS_BATCH_SIZE = 8
DIGITS_EPOCHS = 2  # 2 epochs of 2 steps: 4 training steps.
CRITIC_STEPS = 3
GP_WEIGHT = 10.0
VAE_LATENT_DIM = 2
N_CLASSES = 10
EPSILON = 0.02  # At 0.1 no perturbed digit is classified right: adversarial_accuracy 0.


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., np.newaxis]
    return images, digits.target.astype("int32")


def digits_data(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Digit images ``(n, 8, 8, 1)`` in ``[0, 1]`` and int labels: the first
    ``DIGITS_TRAIN`` digits, or the ``DIGITS_VAL`` after them for ``split="val"``."""
    images, labels = _digits()
    start = 0 if split == "train" else DIGITS_TRAIN
    stop = start + (DIGITS_TRAIN if split == "train" else DIGITS_VAL)
    return images[start:stop].copy(), labels[start:stop].copy()


def build_critic() -> keras.Model:
    """A tiny conv critic: ``IMAGE_SHAPE`` images to one unbounded score.

    No BatchNormalization, as WGAN-GP requires: the penalty is on each example's own
    input gradient, which batch statistics would mix.
    """
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            layers.Conv2D(4, 3, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(8, 3, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Flatten(),
            layers.Dense(1),
        ],
        name="critic",
    )


def build_encoder() -> keras.Model:
    """A two-output encoder: images to ``(z_mean, z_log_var)``, each ``(VAE_LATENT_DIM,)``.

    BatchNormalization makes ``training`` observable.
    """
    layers = keras.layers
    inputs = keras.Input(shape=IMAGE_SHAPE)
    hidden = layers.Flatten()(inputs)
    hidden = layers.Dense(16)(hidden)
    hidden = layers.BatchNormalization()(hidden)
    hidden = layers.Activation("relu")(hidden)
    z_mean = layers.Dense(VAE_LATENT_DIM, name="z_mean")(hidden)
    z_log_var = layers.Dense(VAE_LATENT_DIM, name="z_log_var")(hidden)
    return keras.Model(inputs, [z_mean, z_log_var], name="encoder")


def build_decoder() -> keras.Model:
    """A decoder: ``(VAE_LATENT_DIM,)`` codes to ``IMAGE_SHAPE`` images in ``(0, 1)``."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(VAE_LATENT_DIM,)),
            layers.Dense(16, activation="relu"),
            layers.Dense(int(np.prod(IMAGE_SHAPE)), activation="sigmoid"),
            layers.Reshape(IMAGE_SHAPE),
        ],
        name="decoder",
    )


def build_classifier() -> keras.Model:
    """A classifier: ``IMAGE_SHAPE`` images to ``N_CLASSES`` probabilities.

    BatchNormalization makes ``training`` observable (and the number of calls in training
    mode: each one moves its statistics).
    """
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            layers.Flatten(),
            layers.Dense(16),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Dense(N_CLASSES, activation="softmax"),
        ],
        name="classifier",
    )


@functools.cache
def initial_weights(builder: Callable[[], keras.Model]) -> tuple[np.ndarray, ...]:
    """The one set of initial weights every ``builder()`` model compared here starts from."""
    keras.utils.set_random_seed(SEED)
    return tuple(builder().get_weights())


def fresh_model(builder: Callable[[], keras.Model]) -> keras.Model:
    """A new ``builder()`` model carrying ``initial_weights(builder)``."""
    model = builder()
    model.set_weights(list(initial_weights(builder)))
    return model


def fit_digits(model: keras.Model, *fit_args, **fit_kwargs) -> dict[str, list[float]]:
    """Fit a compiled model on digits with fixed batching from SEED; return History."""
    keras.utils.set_random_seed(SEED)
    history = model.fit(
        *fit_args,
        batch_size=DIGITS_BATCH_SIZE,
        epochs=DIGITS_EPOCHS,
        shuffle=False,
        verbose=0,
        **fit_kwargs,
    )
    return history.history


# Outcomes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one trained model is compared on (by ``compare.assert_outcomes_close``)."""

    weights: tuple[np.ndarray, ...]
    history: dict[str, list[float]]
    results: dict[str, float] = field(default_factory=dict)  # evaluate(..., return_dict=True)
    true_losses: dict[str, float] = field(default_factory=dict)  # numpy's MSE, for checks
