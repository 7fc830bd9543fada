"""Runs of the published specs that loop or edit gradients (``specs/image_captioning.step``,
``specs/textual_inversion.step``) for ``test_published_loop_specs.py`` and its
distribution subprocess: tiny sub-models, data the test makes, and one ``run(name,
setup)`` that trains the generated model or its reference.

Every run starts alike: sub-models built by the builders below carrying
``models.initial_weights(builder)``, the model constructed right after
``keras.utils.set_random_seed(SEED)`` (textual inversion's noise comes from its seed
generator), a fresh optimizer of a fixed configuration, ``set_random_seed(SEED)`` again
right before ``fit`` with ``shuffle=False``, 16 samples in two batches of 8 (one shape:
each step is traced once; the five unrolled captions make tracing most of a run's time),
2 epochs.

* Image captioning: scikit-learn's first 16 8x8 digits, each with ``NUM_CAPTIONS``
  captions of ``CAPTION_LEN`` tokens of a ``VOCAB``-token vocabulary (1 is the start
  token, 0 padding; 3 to ``CAPTION_LEN`` tokens real), then ``evaluate()`` on the next 16
  digits with their own captions. Adam, as published.
* Textual inversion: dict batches of Gaussian latents, prompts of ``PROMPT_LEN`` tokens
  that each hold the placeholder token once, and timesteps below ``TRAIN_TIMESTEPS``.
  SGD: a dense Adam step would also keep the masked rows still, but SGD shows any scale
  of the edited gradient. The spec has no test step (the example has none).

``python tests/support/specs_loops.py mirrored`` runs each generated model on one device
and under ``MirroredStrategy`` over two logical CPUs (every replica gets the single-device
batch: ``fit.replicate_batches``; the masked caption loss is a ratio of per-replica sums)
and prints ``RESULT <json>``.
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

from tests.references.image_captioning import ImageCaptioningReference
from tests.references.textual_inversion import TextualInversionReference
from tests.support.fit import Run, loss_scaled, recorded_fit, replicate_batches, strategy_scope
from tests.support.models import SEED, fresh_model, initial_weights, load_spec
from tests.support.workers import mirrored_main

SPECS = ("image_captioning", "textual_inversion")
CLASS_NAMES = {"image_captioning": "ImageCaptioningModel", "textual_inversion": "TextualInversion"}
REFERENCES = {
    "image_captioning": ImageCaptioningReference,
    "textual_inversion": TextualInversionReference,
}
N_SAMPLES = 16
BATCH_SIZE = 8
EPOCHS = 2
RESULT_PREFIX = "RESULT "

# Captioning: 6 CNN features per image, 8 units in the encoder and decoder.
NUM_CAPTIONS, CAPTION_LEN, VOCAB, CNN_FEATURES, UNITS = 5, 6, 12, 6, 8
# Textual inversion: a 10-token vocabulary whose last token is the one learned.
TI_VOCAB, EMBED_DIM, PROMPT_LEN, LATENT_DIM = 10, 4, 3, 8
PLACEHOLDER_ID, TRAIN_TIMESTEPS, TIME_DIM = TI_VOCAB - 1, 50, 4


def spec_class(name: str, kind: str = "generated") -> type:
    """The class stepc generates for ``specs/<name>.step``, or its reference."""
    if kind == "reference":
        return REFERENCES[name]
    return getattr(load_spec(name), CLASS_NAMES[name])


# Data ------------------------------------------------------------------------------------


@functools.cache
def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    return (load_digits().images / 16.0).astype("float32")[..., np.newaxis]


def captions(count: int, seed: int | np.random.Generator) -> np.ndarray:
    """``(count, NUM_CAPTIONS, CAPTION_LEN)`` int32 captions: the start token, random
    words, then padding (``seed``: a seed or a numpy generator)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, VOCAB, size=(count, NUM_CAPTIONS, CAPTION_LEN))
    tokens[..., 0] = 1
    lengths = rng.integers(3, CAPTION_LEN + 1, size=(count, NUM_CAPTIONS, 1))
    tokens[np.arange(CAPTION_LEN) >= lengths] = 0
    return tokens.astype("int32")


def captioning_data(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Digit images ``(16, 8, 8, 1)`` and their captions (``split``: train or val)."""
    start = 0 if split == "train" else N_SAMPLES
    images = _digits()[start : start + N_SAMPLES].copy()
    return images, captions(N_SAMPLES, SEED + start)


def inversion_data(count: int = N_SAMPLES, seed=SEED) -> dict[str, np.ndarray]:
    """Latents, prompts (each holding the placeholder once) and timesteps (``seed``: a
    seed or a numpy generator)."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, PLACEHOLDER_ID, size=(count, PROMPT_LEN))
    token_ids[np.arange(count), rng.integers(0, PROMPT_LEN, count)] = PLACEHOLDER_ID
    return {
        "latents": rng.standard_normal((count, LATENT_DIM)).astype("float32"),
        "token_ids": token_ids.astype("int32"),
        "timesteps": rng.integers(0, TRAIN_TIMESTEPS, size=count).astype("int32"),
    }


def captioning_batch(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One cross-backend batch: ``count`` random 8x8 images in [0, 1) and their captions."""
    images = rng.uniform(size=(count, 8, 8, 1)).astype("float32")
    return images, captions(count, rng)


def inversion_dataset(replicas: int = 1):
    """``inversion_data`` as a dataset of dict batches, each repeated ``replicas`` times."""
    import tensorflow as tf

    data = {k: replicate_batches(v, BATCH_SIZE, replicas) for k, v in inversion_data().items()}
    return tf.data.Dataset.from_tensor_slices(data).batch(BATCH_SIZE * replicas)


# Models ----------------------------------------------------------------------------------


def build_cnn() -> keras.Model:
    """The frozen CNN: 8x8 digits to ``CNN_FEATURES`` features."""
    layers = keras.layers
    cnn = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            layers.Conv2D(2, 3, strides=2, activation="relu"),
            layers.Flatten(),
            layers.Dense(CNN_FEATURES, activation="relu"),
        ],
        name="cnn",
    )
    cnn.trainable = False
    return cnn


def build_caption_encoder() -> keras.Model:
    """The encoder: CNN features to ``UNITS``."""
    return keras.Sequential(
        [keras.Input(shape=(CNN_FEATURES,)), keras.layers.Dense(UNITS, activation="relu")],
        name="encoder",
    )


def build_caption_decoder() -> keras.Model:
    """The decoder: ``[tokens, encoded image]`` to next-token probabilities, from token
    embeddings plus the encoded image through two Dense layers."""
    layers = keras.layers
    tokens = keras.Input(shape=(CAPTION_LEN - 1,), dtype="int32")
    encoded = keras.Input(shape=(UNITS,))
    embedded = layers.Embedding(VOCAB, UNITS)(tokens)
    context = layers.RepeatVector(CAPTION_LEN - 1)(encoded)
    hidden = layers.Dense(UNITS, activation="relu")(layers.Add()([embedded, context]))
    probs = layers.Dense(VOCAB, activation="softmax")(hidden)
    return keras.Model([tokens, encoded], probs, name="decoder")


def build_token_embedding() -> keras.layers.Layer:
    """The token embedding the step trains (built: its matrix exists before ``fit``)."""
    embedding = keras.layers.Embedding(TI_VOCAB, EMBED_DIM, name="token_embedding")
    embedding.build((None, PROMPT_LEN))
    return embedding


def build_text_encoder() -> keras.Model:
    """The frozen text encoder: embedded prompts to hidden states of the same shape."""
    encoder = keras.Sequential(
        [keras.Input(shape=(PROMPT_LEN, EMBED_DIM)), keras.layers.Dense(EMBED_DIM, "tanh")],
        name="text_encoder",
    )
    encoder.trainable = False
    return encoder


def build_noise_predictor() -> keras.Model:
    """The frozen noise predictor: ``[noisy latents, timestep embedding, hidden states]``
    to a noise estimate of the latents' shape."""
    layers = keras.layers
    latents = keras.Input(shape=(LATENT_DIM,))
    time = keras.Input(shape=(TIME_DIM,))
    hidden = keras.Input(shape=(PROMPT_LEN, EMBED_DIM))
    joined = layers.Concatenate()([latents, time, layers.Flatten()(hidden)])
    noise = layers.Dense(LATENT_DIM)(layers.Dense(16, activation="tanh")(joined))
    predictor = keras.Model([latents, time, hidden], noise, name="noise_predictor")
    predictor.trainable = False
    return predictor


SUB_MODELS: dict[str, tuple[tuple[str, Callable[[], keras.layers.Layer]], ...]] = {
    "image_captioning": (
        ("encoder", build_caption_encoder),
        ("decoder", build_caption_decoder),
        ("cnn_model", build_cnn),
    ),
    "textual_inversion": (
        ("token_embedding", build_token_embedding),
        ("text_encoder", build_text_encoder),
        ("noise_predictor", build_noise_predictor),
    ),
}
# The sub-models a step trains, first in SUB_MODELS: the compared state.
TRAINED = {"image_captioning": 2, "textual_inversion": 1}
NUMBERS = {
    "image_captioning": {"num_captions": NUM_CAPTIONS},
    "textual_inversion": {
        "placeholder_id": PLACEHOLDER_ID,
        "vocab_size": TI_VOCAB,
        "train_timesteps": TRAIN_TIMESTEPS,
        "time_dim": TIME_DIM,
    },
}


# The fit() feature tests (XLA, mixed precision, saving, BackupAndRestore, distribution)
# train captioning on 2 captions per image: tracing (and XLA's compile) grows with the
# unrolled loop, and a non-default num_captions shows the parameter reaching the step.
FEATURE_PARAMS = {"image_captioning": {"num_captions": 2}, "textual_inversion": {}}


def build_model(
    name: str, kind: str = "generated", cls: type | None = None, **params
) -> keras.Model:
    """A ``kind`` model of spec ``name`` (or of ``cls``) with the shared initial weights;
    ``params`` replace constructor numbers (captioning's ``num_captions``)."""
    parts = {param: fresh_model(builder) for param, builder in SUB_MODELS[name]}
    keras.utils.set_random_seed(SEED)
    return (cls or spec_class(name, kind))(**parts, **{**NUMBERS[name], **params})


def initial_state(name: str) -> list[np.ndarray]:
    """The trained weights every run of ``name`` starts from (no seed state)."""
    trained = SUB_MODELS[name][: TRAINED[name]]
    return [w for _, builder in trained for w in initial_weights(builder)]


def state(name: str, model: keras.Model) -> list[np.ndarray]:
    """Every variable the step changes: the trained sub-models' weights, then (textual
    inversion) the seed generator's state."""
    trained = SUB_MODELS[name][: TRAINED[name]]
    weights = [w for param, _ in trained for w in getattr(model, param).get_weights()]
    if name == "textual_inversion":
        weights.append(model.seed_generator.state.numpy())
    return weights


def make_optimizer(name: str, kind: str = "default", loss_scale: bool | float = False):
    """Captioning's Adam (or SGD for ``kind="sgd"``), textual inversion's SGD."""
    if name == "image_captioning" and kind != "sgd":
        optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    else:
        optimizer = keras.optimizers.SGD(learning_rate=0.5)
    return loss_scaled(optimizer, loss_scale)


# Runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """How ``run`` makes a model: its kind or class, optimizer and compile() arguments."""

    kind: str = "generated"
    cls: type | None = None
    optimizer: str = "default"
    loss_scale: bool | float = False
    jit_compile: bool | str = "auto"
    params: Mapping | None = None


def new_model(name: str, setup: Setup, strategy=None) -> keras.Model:
    """A compiled model of ``setup``, made in ``strategy``'s scope if given."""
    with strategy_scope(strategy):
        model = build_model(name, setup.kind, setup.cls, **(setup.params or {}))
        optimizer = make_optimizer(name, setup.optimizer, setup.loss_scale)
        model.compile(optimizer=optimizer, jit_compile=setup.jit_compile)
    return model


def fit_inputs(name: str, replicas: int = 1) -> tuple[tuple, dict]:
    """``fit``'s data and batching arguments, each batch repeated ``replicas`` times."""
    if name == "textual_inversion":
        return (inversion_dataset(replicas),), {}
    images, tokens = captioning_data()
    data = tuple(replicate_batches(part, BATCH_SIZE, replicas) for part in (images, tokens))
    return data, {"batch_size": BATCH_SIZE * replicas}


def held_out(name: str, replicas: int = 1) -> tuple[np.ndarray, ...] | None:
    """``validation_data`` and ``evaluate()``'s data (captioning only)."""
    if name != "image_captioning":
        return None
    return tuple(replicate_batches(p, BATCH_SIZE, replicas) for p in captioning_data("val"))


def run(
    name: str,
    setup: Setup = Setup(),
    *,
    model: keras.Model | None = None,
    epochs: int = EPOCHS,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    strategy=None,
    replicas: int = 1,
) -> Run:
    """Train a model of spec ``name`` (``model``, or a new one of ``setup``) on its data,
    with validation data and then ``evaluate()`` where the spec has a test step."""
    model = model or new_model(name, setup, strategy)
    data, kwargs = fit_inputs(name, replicas)
    validation = held_out(name, replicas)
    if validation is not None:
        kwargs.update(validation_data=validation, validation_batch_size=BATCH_SIZE * replicas)
    history, extra = recorded_fit(
        model, functools.partial(state, name), *data, epochs=epochs, callbacks=callbacks, **kwargs
    )
    results = {}
    if validation is not None:
        results = model.evaluate(
            *validation, batch_size=BATCH_SIZE * replicas, verbose=0, return_dict=True
        )
    return Run(state(name, model), history, results, model, extra)


# The distribution subprocess -------------------------------------------------------------


def mirrored_results() -> dict:
    """Each spec's generated model with SGD and ``FEATURE_PARAMS``, on one device and
    under MirroredStrategy (2 logical CPUs); a case that raises is reported as
    ``{"error": ...}``. (The references agree with themselves the same way; they are left
    out for the time the tests may take.)"""
    import tensorflow as tf

    from tests.support.distribution_worker import guarded

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {}
    for name in SPECS:
        sgd = Setup(optimizer="sgd", params=FEATURE_PARAMS[name])
        results[f"{name}/single"] = guarded(lambda name=name, s=sgd: run(name, s))
        results[f"{name}/mirrored"] = guarded(
            lambda name=name, s=sgd: run(name, s, strategy=strategy, replicas=2)
        )
    return results


def main(argv: list[str]) -> int:
    """``mirrored``: the results of ``mirrored_results``, as one JSON line."""
    return mirrored_main(argv, mirrored_results)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
