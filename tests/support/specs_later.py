"""Runs of the specs added after the seed five (WGAN-GP, VAE, adversarial training) for
the ``fit()`` feature tests (``test_fit_features_later_specs.py`` and the distribution
worker).

Each run starts like ``test_equivalence.py``'s: sub-models built by ``models``'
builders and carrying ``initial_weights(builder)``, the model constructed right after
``keras.utils.set_random_seed(SEED)`` (its seed generator draws its seed there), fresh
optimizers of a fixed configuration, ``set_random_seed(SEED)`` again right before ``fit``
and ``shuffle=False``, on scikit-learn's digits in batches of ``DIGITS_BATCH_SIZE``.
A run is summarized as a ``fit.Run``: the sub-models' weights in
``SUB_MODELS`` order then (WGAN-GP, VAE) the seed generator's state, the History, every
batch's logs and, for the adversarial classifier, ``evaluate()`` on the validation digits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np

from tests.references.adversarial import AdversarialReference
from tests.references.vae import VAEReference
from tests.references.wgan_gp import WGANGPReference
from tests.support.fit import Run, loss_scaled, recorded_fit, strategy_scope
from tests.support.models import (
    CRITIC_STEPS,
    DIGITS_BATCH_SIZE,
    DIGITS_EPOCHS,
    EPSILON,
    GP_WEIGHT,
    LATENT_DIM,
    SEED,
    build_classifier,
    build_critic,
    build_decoder,
    build_encoder,
    build_generator,
    digits_data,
    fresh_model,
    initial_weights,
    load_spec,
)

LATER_SPECS = ("wgan_gp", "vae", "adversarial")

CLASS_NAMES = {"wgan_gp": "WGANGP", "vae": "VAE", "adversarial": "AdversarialClassifier"}
REFERENCES: dict[str, type] = {
    "wgan_gp": WGANGPReference,
    "vae": VAEReference,
    "adversarial": AdversarialReference,
}
# Each spec's sub-model parameters, with the builder of each, in state order.
SUB_MODELS: dict[str, tuple[tuple[str, Callable[[], keras.Model]], ...]] = {
    "wgan_gp": (("critic", build_critic), ("generator", build_generator)),
    "vae": (("encoder", build_encoder), ("decoder", build_decoder)),
    "adversarial": (("classifier", build_classifier),),
}
# Each spec's other init parameters.
PARAMETERS: dict[str, dict[str, Any]] = {
    "wgan_gp": {"latent_dim": LATENT_DIM, "critic_steps": CRITIC_STEPS, "gp_weight": GP_WEIGHT},
    "vae": {},
    "adversarial": {"epsilon": EPSILON},
}


def later_class(name: str, kind: str = "generated") -> type:
    """The class stepc generates for ``specs/<name>.step``, or its reference."""
    if kind == "reference":
        return REFERENCES[name]
    return getattr(load_spec(name), CLASS_NAMES[name])


def build_later(cls: type, name: str) -> keras.Model:
    """A ``cls`` model of spec ``name`` on fresh sub-models with the shared weights."""
    sub_models = {param: fresh_model(builder) for param, builder in SUB_MODELS[name]}
    keras.utils.set_random_seed(SEED)  # The model's seed generator draws its seed here.
    return cls(**sub_models, **PARAMETERS[name])


# Optimizers ------------------------------------------------------------------------------


def _optimizer(kind: str) -> keras.optimizers.Optimizer:
    if kind == "sgd":
        return keras.optimizers.SGD(learning_rate=0.01)
    if kind == "adam":
        return keras.optimizers.Adam(learning_rate=1e-2)
    if kind == "wgan_adam":
        return keras.optimizers.Adam(learning_rate=1e-2, beta_1=0.5, beta_2=0.9)
    raise ValueError(kind)


def optimizer_names(name: str) -> tuple[str, ...]:
    """The ``compile`` arguments that take an optimizer, in order."""
    return ("d_optimizer", "g_optimizer") if name == "wgan_gp" else ("optimizer",)


def make_optimizers(
    name: str, kind: str = "default", loss_scale: bool | float = False
) -> dict[str, keras.optimizers.Optimizer]:
    """Fresh optimizers for ``compile``: by default as in ``test_equivalence`` (WGAN-GP:
    SGD for the critic, Adam for the generator; the others Adam); ``kind="sgd"``: SGD for
    every one (it shows any constant scaling of a gradient). ``loss_scale`` wraps each in
    a ``LossScaleOptimizer`` (True: its default initial scale; a number: that scale)."""
    if kind == "default":
        kinds = ("sgd", "wgan_adam") if name == "wgan_gp" else ("adam",)
    else:
        kinds = (kind,) * len(optimizer_names(name))
    optimizers = [loss_scaled(_optimizer(k), loss_scale) for k in kinds]
    return dict(zip(optimizer_names(name), optimizers, strict=True))


def optimizers_of(name: str, model: keras.Model) -> list:
    """The optimizers a compiled model's step applies."""
    return [getattr(model, param) for param in optimizer_names(name)]


# Runs ------------------------------------------------------------------------------------


def later_state(model: keras.Model) -> list[np.ndarray]:
    """The sub-models' weights in ``SUB_MODELS`` order, then the seed state if any."""
    weights: list[np.ndarray] = []
    for sub_model in _sub_models(model):
        weights.extend(sub_model.get_weights())
    if hasattr(model, "seed_generator"):
        weights.append(model.seed_generator.state.numpy())
    return weights


def _sub_models(model: keras.Model) -> list[keras.Model]:
    for sub_models in SUB_MODELS.values():
        if all(hasattr(model, param) for param, _ in sub_models):
            return [getattr(model, param) for param, _ in sub_models]
    raise TypeError(f"not a later-spec model: {type(model).__name__}")


def initial_state(name: str) -> list[np.ndarray]:
    """The weights every run of ``name`` starts from (no seed state)."""
    return [w for _, builder in SUB_MODELS[name] for w in initial_weights(builder)]


def fit_arrays(name: str, x=None, y=None) -> tuple[tuple, dict]:
    """``fit``'s data: images alone (WGAN-GP, VAE), or images and labels with the
    validation digits (adversarial). ``x``/``y`` replace the training images/labels."""
    images, labels = digits_data()
    images = images if x is None else x
    if name != "adversarial":
        return (images,), {}
    labels = labels if y is None else y
    return (images, labels), {"validation_data": digits_data("val")}


def run_later(
    name: str,
    kind: str = "generated",
    *,
    optimizer: str = "default",
    loss_scale: bool | float = False,
    compile_kwargs: Mapping | None = None,
    fit_kwargs: Mapping | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    epochs: int = DIGITS_EPOCHS,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    batch_size: int = DIGITS_BATCH_SIZE,
    strategy=None,
    model: keras.Model | None = None,
) -> Run:
    """Train spec ``name``'s model (``kind``: generated or reference) on the digits.

    ``model`` continues training an existing compiled model instead of building one.
    ``x``/``y`` replace the training images/labels (``y`` for the adversarial spec).
    With ``strategy`` the model and its optimizers are made and compiled in its scope.
    ``extra`` holds every batch's logs and the state after every epoch.
    """
    if model is None:
        with strategy_scope(strategy):
            model = build_later(later_class(name, kind), name)
            model.compile(**make_optimizers(name, optimizer, loss_scale), **(compile_kwargs or {}))
    data, data_kwargs = fit_arrays(name, x, y)
    history, extra = recorded_fit(
        model,
        later_state,
        *data,
        batch_size=batch_size,
        epochs=epochs,
        callbacks=callbacks,
        **{**data_kwargs, **(fit_kwargs or {})},
    )
    results = {}
    if name == "adversarial":
        x_val, y_val = digits_data("val")
        results = model.evaluate(
            x_val, y_val, batch_size=DIGITS_BATCH_SIZE, verbose=0, return_dict=True
        )
    return Run(later_state(model), history, results, model, extra)
