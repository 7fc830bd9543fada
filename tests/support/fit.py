"""The seed specs' ``fit()`` runs for ``test_fit_features.py`` and the distribution worker.

Every run here starts like the runs of ``models.py``: the same initial weights
(``fresh_functional`` / ``fresh_gan``), a fresh optimizer of a fixed configuration,
``keras.utils.set_random_seed(SEED)`` right before ``fit`` and ``shuffle=False``, so two
runs differ only in what the test changes (the model class, a ``compile``/``fit`` option,
a callback, a distribution strategy, a dtype policy). A run is summarized as a ``Run``:
the final weights (for a GAN: discriminator, generator, then the seed generator's state),
the History, and ``evaluate()`` results where the spec has a test step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from tests.references.basic import BasicReference
from tests.references.evaluate import EvaluateReference
from tests.references.gan import GANReference
from tests.references.lowlevel import LowLevelReference
from tests.references.weighted import WeightedReference
from tests.support.models import (
    BATCH_SIZE,
    EPOCHS,
    GAN_BATCH_SIZE,
    GAN_EPOCHS,
    HIDDEN_UNITS,
    IMAGE_SHAPE,
    LATENT_DIM,
    N_FEATURES,
    SEED,
    fresh_functional,
    fresh_gan,
    gan_state,
    image_data,
    initial_dense_weights,
    load_spec,
    regression_data,
    sample_weights,
)

FUNCTIONAL_SPECS = ("basic", "lowlevel", "weighted", "evaluate")
ALL_SPECS = (*FUNCTIONAL_SPECS, "gan")

REFERENCES: dict[str, type] = {
    "basic": BasicReference,
    "lowlevel": LowLevelReference,
    "weighted": WeightedReference,
    "evaluate": EvaluateReference,
    "gan": GANReference,
}

# What each functional spec is compiled with, besides the optimizer (the spec's comment).
COMPILE_KWARGS: dict[str, dict[str, Any]] = {
    "basic": {"loss": "mse", "metrics": ["mae"]},
    "lowlevel": {},
    "weighted": {"loss": "mse", "metrics": ["mae"], "weighted_metrics": ["mae"]},
    "evaluate": {"loss": "mse", "metrics": ["mae"]},
}

CLASS_WEIGHT = {0: 0.5, 1: 3.0}


def generated_class(name: str) -> type:
    """The class stepc generates for ``specs/<name>.step``."""
    module = load_spec(name)
    return module.GAN if name == "gan" else module.CustomModel


def model_class(name: str, kind: str) -> type:
    """``kind`` is "generated", "reference" or "keras" (plain ``keras.Model``)."""
    if kind == "generated":
        return generated_class(name)
    if kind == "reference":
        return REFERENCES[name]
    if kind == "keras":
        return keras.Model
    raise ValueError(kind)


# Optimizers ------------------------------------------------------------------------------


def make_optimizer(name: str, **options) -> keras.optimizers.Optimizer:
    """ "sgd" (shows any constant scaling of the gradient), "adam" or "momentum"."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=0.05, **options)
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, **options)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=1e-2, **options)
    raise ValueError(name)


def loss_scaled(
    optimizer: keras.optimizers.Optimizer, loss_scale: bool | float
) -> keras.optimizers.Optimizer:
    """``optimizer`` in a ``LossScaleOptimizer`` (``loss_scale`` True: its default initial
    scale; a number: that scale), or as it is for ``loss_scale=False``."""
    if not loss_scale:
        return optimizer
    scale = {} if loss_scale is True else {"initial_scale": loss_scale}
    return keras.optimizers.LossScaleOptimizer(optimizer, **scale)


def strategy_scope(strategy):
    """``strategy.scope()``, or a scope that does nothing for ``strategy=None``."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


# Data ------------------------------------------------------------------------------------


def validation_data() -> tuple[np.ndarray, np.ndarray]:
    """A second regression set from another seed."""
    return regression_data(seed=SEED + 7)


def fit_data(name: str, n_samples: int | None = None, weighting: str = "sample_weight"):
    """``(x, y, fit_kwargs)`` for a functional spec; weighted gets ``weighting``
    ("sample_weight", "class_weight" on 0/1 labels, or "none")."""
    x, y = regression_data()
    kwargs: dict[str, Any] = {}
    if name == "weighted" and weighting == "sample_weight":
        kwargs["sample_weight"] = sample_weights()[:n_samples]
    if name == "weighted" and weighting == "class_weight":
        y = (y > 0.0).astype("float32")
        kwargs["class_weight"] = CLASS_WEIGHT
    return x[:n_samples], y[:n_samples], kwargs


# Models ----------------------------------------------------------------------------------


def sync_dense_graph(output_activation: str | None = None):
    """``models.dense_graph`` with a synchronized BatchNormalization.

    Under a distribution strategy a plain BatchNormalization normalizes each replica's
    share of the batch with that share's statistics, which no single-device run
    reproduces; the synchronized one all-reduces them, so the computation is the
    single-device one. Same layers and weight shapes as ``dense_graph``.
    """
    inputs = keras.Input(shape=(N_FEATURES,))
    hidden = keras.layers.Dense(HIDDEN_UNITS, name="hidden")(inputs)
    hidden = keras.layers.BatchNormalization(name="norm", synchronized=True)(hidden)
    hidden = keras.layers.Activation("tanh")(hidden)
    outputs = keras.layers.Dense(1, activation=output_activation, name="output")(hidden)
    return inputs, outputs


def build_functional(
    cls: type, output_activation: str | None = None, synchronized: bool = False
) -> keras.Model:
    """A Functional-style ``cls`` model carrying the shared initial weights."""
    if not synchronized:
        return fresh_functional(cls, output_activation)
    keras.utils.set_random_seed(SEED)
    model = cls(*sync_dense_graph(output_activation))
    model.set_weights(list(initial_dense_weights(output_activation)))
    return model


def dense_gan(cls: type) -> keras.Model:
    """A ``cls`` GAN on Dense-only sub-models (``models``' have convolutions),
    with fixed initial weights: same interface, a fraction of the XLA compile time."""
    layers = keras.layers

    def parts():
        discriminator = keras.Sequential(
            [
                keras.Input(shape=IMAGE_SHAPE),
                layers.Flatten(),
                layers.Dense(8),
                layers.BatchNormalization(),
                layers.LeakyReLU(negative_slope=0.2),
                layers.Dense(1),
            ],
            name="discriminator",
        )
        generator = keras.Sequential(
            [
                keras.Input(shape=(LATENT_DIM,)),
                layers.Dense(8),
                layers.BatchNormalization(),
                layers.LeakyReLU(negative_slope=0.2),
                layers.Dense(int(np.prod(IMAGE_SHAPE)), activation="sigmoid"),
                layers.Reshape(IMAGE_SHAPE),
            ],
            name="generator",
        )
        return discriminator, generator

    keras.utils.set_random_seed(SEED)
    discriminator, generator = parts()
    keras.utils.set_random_seed(SEED)  # The GAN's seed generator draws its seed here.
    return cls(discriminator=discriminator, generator=generator, latent_dim=LATENT_DIM)


def replicate_batches(images: np.ndarray, batch_size: int, replicas: int) -> np.ndarray:
    """Each batch of ``batch_size`` images repeated ``replicas`` times, batch after batch.

    Fed in global batches of ``replicas * batch_size``, every replica then sees exactly
    the single-device batch. Under a strategy a ``SeedGenerator`` gives every replica the
    same noise (keras3-facts 15), so each replica computes the single-device step: the
    all-reduced gradients, the reported losses and the seed state must equal the
    single-device run's if losses are scaled for distribution exactly once.
    """
    blocks = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    return np.concatenate([block for block in blocks for _ in range(replicas)])


def output_activation(name: str, weighting: str) -> str | None:
    """Class weights go with 0/1 labels: a sigmoid output and cross-entropy."""
    return "sigmoid" if name == "weighted" and weighting == "class_weight" else None


# Runs ------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one trained model is compared on (and the model, for further checks)."""

    weights: list[np.ndarray]
    history: dict[str, list[float]]
    results: dict[str, float] = field(default_factory=dict)
    model: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        """Plain lists and floats: weights, History, results and batch logs."""
        return {
            "weights": [np.asarray(w).tolist() for w in self.weights],
            "history": {k: [float(v) for v in vs] for k, vs in self.history.items()},
            "results": {k: float(v) for k, v in self.results.items()},
            "batch_logs": self.extra.get("batch_logs", []),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Run:
        """The inverse of ``to_json`` (float32 arrays, except the int seed state)."""
        weights = [np.asarray(w) for w in data["weights"]]
        weights = [w.astype("float32") if w.dtype.kind == "f" else w for w in weights]
        extra = {"batch_logs": data["batch_logs"]}
        return cls(weights, dict(data["history"]), dict(data["results"]), None, extra)


class Recorder(keras.callbacks.Callback):
    """Records every training batch's logs and the weights at the end of every epoch."""

    def __init__(self, state: Callable[[keras.Model], list[np.ndarray]]):
        super().__init__()
        self.state = state
        self.batch_logs: list[dict[str, float]] = []
        self.epoch_weights: list[list[np.ndarray]] = []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_logs.append({k: float(v) for k, v in (logs or {}).items()})

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_weights.append(self.state(self.model))


def recorded_fit(
    model: keras.Model,
    state: Callable[[keras.Model], list[np.ndarray]],
    *data,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    **fit_args,
) -> tuple[dict[str, list[float]], dict[str, list]]:
    """``model.fit(*data, **fit_args)`` right after ``set_random_seed(SEED)``, unshuffled and
    silent, with a ``Recorder`` after ``callbacks``: the History and a ``Run``'s ``extra``
    (every batch's logs, ``state`` after every epoch). Every run of every spec fits so."""
    recorder = Recorder(state)
    keras.utils.set_random_seed(SEED)
    history = model.fit(
        *data, shuffle=False, verbose=0, callbacks=[*callbacks, recorder], **fit_args
    )
    extra = {"batch_logs": recorder.batch_logs, "epoch_weights": recorder.epoch_weights}
    return history.history, extra


def _functional_state(model: keras.Model) -> list[np.ndarray]:
    return list(model.get_weights())


def run_functional(
    name: str,
    kind: str = "generated",
    *,
    optimizer: str | Callable[[], keras.optimizers.Optimizer] = "sgd",
    optimizer_options: Mapping | None = None,
    compile_kwargs: Mapping | None = None,
    fit_kwargs: Mapping | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    epochs: int = EPOCHS,
    n_samples: int | None = None,
    weighting: str = "sample_weight",
    validation: bool | None = None,
    evaluate: bool | None = None,
    synchronized: bool = False,
    strategy=None,
    model: keras.Model | None = None,
    x: np.ndarray | None = None,
) -> Run:
    """Train a functional spec's model (``kind``: generated, reference or keras).

    ``fit(x, y[, sample_weight | class_weight])`` in batches of 16, ``shuffle=False``;
    the evaluate spec (or ``validation=True``) also gets ``validation_data``; afterwards,
    if ``evaluate`` (by default: where stepc generates the test step, i.e. evaluate.step
    and lowlevel.step's derived one), ``evaluate()`` on the validation set (batch 16)
    gives ``results``.
    With ``strategy``, the model and its optimizer are created and compiled in its scope.
    ``extra`` holds every batch's logs and the weights after every epoch. ``x`` replaces
    the features (same shape).
    """
    x_default, y, data_kwargs = fit_data(name, n_samples, weighting)
    x = x_default if x is None else x
    if validation is None:
        validation = name == "evaluate"
    if evaluate is None:  # Where stepc generates the test_step (lowlevel derives one).
        evaluate = name == "evaluate" or (name == "lowlevel" and kind == "generated")
    if model is None:
        with strategy_scope(strategy):
            cls = model_class(name, kind)
            activation = output_activation(name, weighting)
            model = build_functional(cls, activation, synchronized)
            if callable(optimizer):
                opt = optimizer()
            else:
                opt = make_optimizer(optimizer, **(optimizer_options or {}))
            kwargs = dict(COMPILE_KWARGS[name])
            if activation is not None:
                kwargs["loss"] = "binary_crossentropy"
            kwargs.update(compile_kwargs or {})
            model.compile(optimizer=opt, **kwargs)
    fit_args = {"batch_size": BATCH_SIZE, "epochs": epochs, **data_kwargs, **(fit_kwargs or {})}
    if validation:
        fit_args["validation_data"] = validation_data()
    history, extra = recorded_fit(model, _functional_state, x, y, callbacks=callbacks, **fit_args)
    results = {}
    if evaluate:
        x_val, y_val = validation_data()
        results = model.evaluate(x_val, y_val, batch_size=BATCH_SIZE, verbose=0, return_dict=True)
    return Run(list(model.get_weights()), history, results, model, extra)


def compile_gan(
    gan: keras.Model,
    *,
    d_optimizer: keras.optimizers.Optimizer | None = None,
    g_optimizer: keras.optimizers.Optimizer | None = None,
    optimizer_options: Mapping | None = None,
    **compile_kwargs,
) -> None:
    """Compile like ``models.compile_and_fit_gan``: SGD for D, Adam for G."""
    options = dict(optimizer_options or {})
    gan.compile(
        d_optimizer=d_optimizer or make_optimizer("sgd", **options),
        g_optimizer=g_optimizer or make_optimizer("adam", **options),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
        **compile_kwargs,
    )


def run_gan(
    kind: str = "generated",
    *,
    optimizers: tuple[str, str] = ("sgd", "adam"),
    optimizer_options: Mapping | None = None,
    loss_scale: bool | float = False,
    compile_kwargs: Mapping | None = None,
    fit_kwargs: Mapping | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    epochs: int = GAN_EPOCHS,
    images: np.ndarray | None = None,
    batch_size: int = GAN_BATCH_SIZE,
    strategy=None,
    gan: keras.Model | None = None,
    dense: bool = False,
) -> Run:
    """Train the GAN (generated or reference) on ``image_data()`` (``shuffle=False``).

    ``optimizers`` names D's and G's (SGD and Adam, like ``compile_and_fit_gan``).
    ``loss_scale`` hands ``LossScaleOptimizer``-wrapped optimizers to ``compile`` (True:
    the default initial scale; a number: that initial scale). ``dense`` uses
    ``dense_gan``'s sub-models. ``extra`` holds every batch's logs and the state after
    every epoch.
    """
    images = image_data() if images is None else images
    if gan is None:
        with strategy_scope(strategy):
            cls = model_class("gan", kind)
            gan = dense_gan(cls) if dense else fresh_gan(cls)
            d_opt, g_opt = (
                loss_scaled(make_optimizer(o, **(optimizer_options or {})), loss_scale)
                for o in optimizers
            )
            compile_gan(gan, d_optimizer=d_opt, g_optimizer=g_opt, **(compile_kwargs or {}))
    history, extra = recorded_fit(
        gan,
        gan_state,
        images,
        batch_size=batch_size,
        epochs=epochs,
        callbacks=callbacks,
        **(fit_kwargs or {}),
    )
    return Run(gan_state(gan), history, {}, gan, extra)


def run(name: str, kind: str = "generated", **kwargs) -> Run:
    """``run_gan`` for "gan", else ``run_functional``."""
    if name == "gan":
        return run_gan(kind, **kwargs)
    return run_functional(name, kind, **kwargs)
