"""Runs of the published vision and speech specs (Speech Transformer, Zero-DCE, masked image
modelling) for ``test_published_vision_speech.py``: tiny sub-models, data the test makes,
and one ``run(name, kind, ...)`` that trains the generated model or its reference.

Every run starts like ``models.py``'s: sub-models carrying ``initial_weights(builder)``
(built once from SEED, copied in with ``set_weights``), the model constructed right after
``keras.utils.set_random_seed(SEED)``, fresh optimizers of a fixed configuration,
``set_random_seed(SEED)`` again right before ``fit`` and no shuffling, 20 samples in
batches of 8 (8 + 8 + 4: every epoch ends on a partial batch), 2 epochs, then
``evaluate()`` on 12 other samples. None of the three steps draws random numbers (the
masked autoencoder's mask is a fixed, seeded permutation), so XLA and distribution runs
compute the same numbers as the plain one.

``python -m tests.support.specs_vision_speech mirrored`` runs each spec on one device and
under ``MirroredStrategy`` over two logical CPUs and prints ``RESULT <json>``: logical
devices must be configured before TensorFlow starts, so the distribution test runs it in
a subprocess.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from tests.references.masked_image_modeling import (
    MaskedAutoencoderReference,
    PatchEncoder,
    Patches,
)
from tests.references.speech_transformer import SpeechTransformerReference
from tests.references.zero_dce import ZeroDCEReference
from tests.support.fit import Run, loss_scaled, recorded_fit, strategy_scope
from tests.support.models import SEED, SPECS_DIR, fresh_model

SPECS = ("speech_transformer", "zero_dce", "masked_image_modeling")
CLASS_NAMES = {
    "speech_transformer": "SpeechTransformer",
    "zero_dce": "ZeroDCE",
    "masked_image_modeling": "MaskedAutoencoder",
}
REFERENCES: dict[str, type] = {
    "speech_transformer": SpeechTransformerReference,
    "zero_dce": ZeroDCEReference,
    "masked_image_modeling": MaskedAutoencoderReference,
}

N_TRAIN = 20
N_VAL = 12
BATCH_SIZE = 8  # 20 = 8 + 8 + 4
EPOCHS = 2

# Speech: 6 frames of 4 features per utterance; 5 tokens of a 6-token vocabulary
# (0 is padding, 1 the start token), 3 to 5 of them real.
FRAMES, FEATURES, TARGET_LEN, VOCAB = 6, 4, 5, 6
# Zero-DCE: 16x16 RGB images, so the published pools (16 for the exposure, 4 for the
# spatial constancy) keep their sizes; 8 curve iterations of 3 channels each.
DCE_SHAPE = (16, 16, 3)
CURVE_CHANNELS = 24
# Masked image modelling: 8x8 RGB images, 4x4 patches (4 of them), 2 masked.
MAE_SHAPE = (8, 8, 3)
PATCH_SIZE, NUM_PATCHES, PATCH_AREA, NUM_MASK, PROJECTION = 4, 4, 48, 2, 8


# Data ------------------------------------------------------------------------------------


def speech_data(split: str = "train") -> dict[str, np.ndarray]:
    """``{"source": (n, FRAMES, FEATURES) float32, "target": (n, TARGET_LEN) int32}``:
    targets start with token 1, then tokens 2..5, then padding zeros."""
    n, seed = (N_TRAIN, SEED) if split == "train" else (N_VAL, SEED + 1)
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(n, FRAMES, FEATURES)).astype("float32")
    target = np.zeros((n, TARGET_LEN), "int32")
    for row, length in enumerate(rng.integers(3, TARGET_LEN + 1, size=n)):
        target[row, 0] = 1
        target[row, 1:length] = rng.integers(2, VOCAB, size=length - 1)
    return {"source": source, "target": target}


def image_data(shape: tuple[int, ...], split: str = "train", scale: float = 1.0) -> np.ndarray:
    """``n`` images of ``shape`` with values in ``[0, scale)``, float32."""
    n, seed = (N_TRAIN, SEED) if split == "train" else (N_VAL, SEED + 1)
    return (scale * np.random.default_rng(seed).uniform(size=(n, *shape))).astype("float32")


def fit_inputs(name: str, split: str = "train"):
    """What ``fit``/``evaluate`` get: a dataset of dict batches (speech, as published),
    low-light images in ``[0, 0.4)`` (Zero-DCE), 0..255 pixel values (masked autoencoder,
    rescaled by its augmentation layers)."""
    import tensorflow as tf

    if name == "speech_transformer":
        return tf.data.Dataset.from_tensor_slices(speech_data(split)).batch(BATCH_SIZE)
    if name == "zero_dce":
        return image_data(DCE_SHAPE, split, 0.4)
    return image_data(MAE_SHAPE, split, 255.0)


# Sub-models ------------------------------------------------------------------------------


def build_transformer() -> keras.Model:
    """A one-layer encoder-decoder: the frames' Dense features are the keys and values of
    one attention layer over the embedded decoder tokens; a Dense gives each position's
    ``VOCAB`` logits. Called on ``[source, dec_input]``."""
    layers = keras.layers
    source = keras.Input(shape=(FRAMES, FEATURES), name="source")
    tokens = keras.Input(shape=(TARGET_LEN - 1,), dtype="int32", name="dec_input")
    encoded = layers.Dense(8, activation="relu")(source)
    embedded = layers.Embedding(VOCAB, 8)(tokens)
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=4)(embedded, encoded)
    hidden = layers.LayerNormalization()(embedded + attended)
    logits = layers.Dense(VOCAB)(hidden)
    return keras.Model([source, tokens], logits, name="transformer")


def build_dce_net() -> keras.Model:
    """The DCE net cut to one convolution: 24 curve parameter maps in ``(-1, 1)``."""
    inputs = keras.Input(shape=(None, None, 3))
    outputs = keras.layers.Conv2D(CURVE_CHANNELS, 3, padding="same", activation="tanh")(inputs)
    return keras.Model(inputs, outputs, name="dce_net")


def build_patch_encoder() -> keras.Model:
    """Patches ``(NUM_PATCHES, PATCH_AREA)`` to the five outputs of ``PatchEncoder``."""
    patches = keras.Input(shape=(NUM_PATCHES, PATCH_AREA))
    outputs = PatchEncoder(projection_dim=PROJECTION, num_mask=NUM_MASK)(patches)
    return keras.Model(patches, list(outputs), name="patch_encoder")


def build_mae_encoder() -> keras.Model:
    """The unmasked embeddings through a Dense and a LayerNormalization."""
    inputs = keras.Input(shape=(NUM_PATCHES - NUM_MASK, PROJECTION))
    hidden = keras.layers.Dense(PROJECTION, activation="gelu")(inputs)
    outputs = keras.layers.LayerNormalization()(hidden)
    return keras.Model(inputs, outputs, name="mae_encoder")


def build_mae_decoder() -> keras.Model:
    """All patches' embeddings to a whole image in ``(0, 1)``."""
    layers = keras.layers
    inputs = keras.Input(shape=(NUM_PATCHES, PROJECTION))
    hidden = layers.Flatten()(inputs)
    pixels = layers.Dense(int(np.prod(MAE_SHAPE)), activation="sigmoid")(hidden)
    return keras.Model(inputs, layers.Reshape(MAE_SHAPE)(pixels), name="mae_decoder")


def constructor_arguments(name: str) -> dict:
    """The model's constructor arguments: fresh sub-models with the shared weights."""
    if name == "speech_transformer":
        return {"transformer": fresh_model(build_transformer), "num_classes": VOCAB}
    if name == "zero_dce":
        return {"dce_model": fresh_model(build_dce_net)}
    return {
        "train_augmentation_model": keras.layers.Rescaling(1.0 / 255.0),
        "test_augmentation_model": keras.layers.Rescaling(1.0 / 255.0),
        "patch_layer": Patches(PATCH_SIZE),
        "patch_encoder": fresh_model(build_patch_encoder),
        "encoder": fresh_model(build_mae_encoder),
        "decoder": fresh_model(build_mae_decoder),
    }


# State order: the sub-models whose weights a run is compared on.
SUB_MODELS = {
    "speech_transformer": ("transformer",),
    "zero_dce": ("dce_model",),
    "masked_image_modeling": ("patch_encoder", "encoder", "decoder"),
}


def spec_path(name: str) -> Path:
    """``specs/<name>.step``."""
    return SPECS_DIR / f"{name}.step"


def spec_class(name: str, kind: str = "generated") -> type:
    """The class stepc generates for the spec, or its reference."""
    if kind == "reference":
        return REFERENCES[name]
    import stepc

    return getattr(stepc.load(str(spec_path(name))), CLASS_NAMES[name])


def build(cls: type, name: str) -> keras.Model:
    """A ``cls`` model of spec ``name`` on fresh sub-models with the shared weights."""
    arguments = constructor_arguments(name)
    keras.utils.set_random_seed(SEED)
    return cls(**arguments)


def make_optimizer(kind: str = "adam") -> keras.optimizers.Optimizer:
    """Adam (the published choice) or SGD (which shows any constant gradient scale)."""
    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate=0.05)
    return keras.optimizers.Adam(learning_rate=1e-2)


def compile_model(model: keras.Model, name: str, optimizer: str = "adam", loss_scale=False, **kw):
    """Compile as the published example does (with a fresh optimizer of ``optimizer``'s
    kind; Zero-DCE builds its own Adam from ``learning_rate``)."""
    if name == "zero_dce":
        model.compile(learning_rate=1e-2, **kw)
        return
    opt = loss_scaled(make_optimizer(optimizer), loss_scale)
    if name == "speech_transformer":
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
        model.compile(optimizer=opt, loss=loss, **kw)
    else:
        model.compile(optimizer=opt, loss=keras.losses.MeanSquaredError(), metrics=["mae"], **kw)


def state(model: keras.Model) -> list[np.ndarray]:
    """The compared sub-models' weights, in ``SUB_MODELS`` order."""
    for names in SUB_MODELS.values():
        if all(hasattr(model, n) for n in names):
            return [w for n in names for w in getattr(model, n).get_weights()]
    raise TypeError(f"not a published vision/speech model: {type(model).__name__}")


def run(
    name: str,
    kind: str = "generated",
    *,
    cls: type | None = None,
    optimizer: str = "adam",
    loss_scale: bool | float = False,
    compile_kwargs: Mapping | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    epochs: int = EPOCHS,
    strategy=None,
    model: keras.Model | None = None,
) -> Run:
    """Train spec ``name``'s model (``kind``: generated or reference, or ``cls``), then
    evaluate it on the validation split. ``model`` continues an existing compiled model."""
    if model is None:
        with strategy_scope(strategy):
            model = build(cls or spec_class(name, kind), name)
            compile_model(model, name, optimizer, loss_scale, **(compile_kwargs or {}))
    fit_kwargs = {} if name == "speech_transformer" else {"batch_size": BATCH_SIZE}
    history, extra = recorded_fit(
        model, state, fit_inputs(name), epochs=epochs, callbacks=callbacks, **fit_kwargs
    )
    results = model.evaluate(fit_inputs(name, "val"), verbose=0, return_dict=True, **fit_kwargs)
    return Run(state(model), history, results, model, extra)


@functools.cache
def baseline(name: str, kind: str = "generated") -> Run:
    """The generated model (or the reference) trained plainly, with Adam (shared: never
    train ``.model`` further)."""
    return run(name, kind)


# MirroredStrategy, in a subprocess --------------------------------------------------------


def mirrored_results() -> dict:
    """Each spec single-device and under MirroredStrategy over 2 logical CPUs (SGD: Adam
    would hide a gradient scaled twice). Each replica gets half of every batch; the
    sub-models have no batch statistics, so both compute the same function."""
    import tensorflow as tf

    from tests.support.distribution_worker import configure_logical_cpus, guarded

    configure_logical_cpus(2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {}
    for name in SPECS:
        results[f"{name}/single"] = guarded(lambda name=name: run(name, optimizer="sgd"))
        results[f"{name}/mirrored"] = guarded(
            lambda name=name: run(name, optimizer="sgd", strategy=strategy)
        )
    return results


if __name__ == "__main__":
    if sys.argv[1:] != ["mirrored"]:
        raise SystemExit("usage: python -m tests.support.specs_vision_speech mirrored")
    sys.stdout.write("RESULT " + json.dumps(mirrored_results()) + "\n")
