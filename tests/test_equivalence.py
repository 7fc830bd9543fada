"""Numeric equivalence of stepc-generated models with hand-written Keras 3 references.

Two kinds of tests:

* ``test_reference_matches_keras_default_*`` validate the references in
  ``tests/references/`` against Keras's own default ``train_step``/``test_step`` where the
  spec's algorithm is the default one, and ``test_reference_gan_is_reproducible`` checks
  the GAN reference trains and is deterministic under fixed seeds.
* ``test_generated_matches_reference_*`` compile ``specs/<name>.step`` with ``stepc`` and
  compare the generated model with the reference.

Each ``run_*`` function below trains one model class in one scenario and returns an
``Outcome``; all models start from the same copied weights, with fresh, identically
configured optimizers and fixed seeds (see ``equivalence.py``), and train on 50 samples in
batches of 16 (the last batch is partial). Two outcomes agree when every weight is within
``assert_allclose(rtol=1e-5, atol=1e-6)`` and every History value (per epoch) and
``evaluate`` result within ``rtol=1e-5``. Outcomes are cached per (class, scenario), so
each reference trains once per scenario however many tests compare against it.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

from tests.equivalence import (
    SEED,
    Outcome,
    assert_outcomes_close,
    binary_data,
    compile_and_fit,
    compile_and_fit_gan,
    fresh_functional,
    fresh_gan,
    gan_state,
    image_data,
    initial_gan_weights,
    load_spec,
    numpy_mse,
    regression_data,
    sample_weights,
)
from tests.references.basic import BasicReference
from tests.references.evaluate import EvaluateReference
from tests.references.gan import GANReference
from tests.references.lowlevel import LowLevelReference
from tests.references.weighted import WeightedReference

COMPILED_MSE = {"loss": "mse", "metrics": ["mae"]}
WEIGHTINGS = ("none", "sample_weight", "class_weight")
CLASS_WEIGHT = {0: 0.5, 1: 3.0}
TRUE_LOSS_RTOL = 1e-5


def adam() -> keras.optimizers.Optimizer:
    """The guide's optimizer, with a rate that moves tiny models visibly in 3 epochs."""
    return keras.optimizers.Adam(learning_rate=1e-2)


def sgd() -> keras.optimizers.Optimizer:
    """Plain SGD: unlike Adam, it shows any constant scaling of the gradient."""
    return keras.optimizers.SGD(learning_rate=0.05)


def loss_scaled_adam() -> keras.optimizers.Optimizer:
    """Adam behind a LossScaleOptimizer, as under mixed precision.

    In float32 the power-of-two scaling is exact, so it trains like plain Adam, but only if
    the step differentiates ``optimizer.scale_loss(loss)`` computed inside the tape: taken
    outside, the gradients are ``None``.
    """
    return keras.optimizers.LossScaleOptimizer(adam())


BASIC_OPTIMIZERS = {"adam": adam, "loss_scaled_adam": loss_scaled_adam}


# Scenarios: each trains one model class and returns what is compared.


@functools.cache
def run_basic(cls: type, optimizer: str) -> Outcome:
    """fit(x, y), 3 epochs, compile(optimizer, loss="mse", metrics=["mae"])."""
    x, y = regression_data()
    model = fresh_functional(cls)
    history = compile_and_fit(model, BASIC_OPTIMIZERS[optimizer], COMPILED_MSE, x, y)
    return Outcome(tuple(model.get_weights()), history)


@functools.cache
def run_lowlevel(cls: type, compiled_loss: bool) -> Outcome:
    """fit(x, y), 3 epochs, SGD; compile() gets loss="mse" and metrics=["mae"] only for a
    plain keras.Model baseline (``compiled_loss``), the optimizer only otherwise."""
    x, y = regression_data()
    model = fresh_functional(cls)
    history = compile_and_fit(model, sgd, COMPILED_MSE if compiled_loss else {}, x, y)
    return Outcome(tuple(model.get_weights()), history)


@functools.cache
def run_weighted(cls: type, weighting: str) -> Outcome:
    """fit(x, y[, sample_weight=sw | class_weight=cw]), 3 epochs, SGD.

    Compiled with ``metrics=["mae"]`` and ``weighted_metrics=["mae"]`` so that both the
    unweighted and the weighted metric paths are compared. The class-weight case uses
    0/1 labels, a sigmoid output and binary cross-entropy.
    """
    compile_kwargs = {"loss": "mse", "metrics": ["mae"], "weighted_metrics": ["mae"]}
    fit_kwargs: dict = {}
    output_activation = None
    if weighting == "class_weight":
        x, y = binary_data()
        output_activation = "sigmoid"
        compile_kwargs["loss"] = "binary_crossentropy"
        fit_kwargs["class_weight"] = CLASS_WEIGHT
    else:
        x, y = regression_data()
        if weighting == "sample_weight":
            fit_kwargs["sample_weight"] = sample_weights()
    model = fresh_functional(cls, output_activation)
    history = compile_and_fit(model, sgd, compile_kwargs, x, y, **fit_kwargs)
    return Outcome(tuple(model.get_weights()), history)


@functools.cache
def run_evaluate(cls: type) -> Outcome:
    """fit(x, y, validation_data=...), 3 epochs, Adam, then evaluate(x, y) (batch 16),
    with numpy's float64 MSE on both sets from the final weights."""
    x, y = regression_data()
    x_val, y_val = regression_data(seed=SEED + 7)
    model = fresh_functional(cls)
    history = compile_and_fit(model, adam, COMPILED_MSE, x, y, validation_data=(x_val, y_val))
    results = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    true_losses = {"loss": numpy_mse(model, x, y), "val_loss": numpy_mse(model, x_val, y_val)}
    return Outcome(tuple(model.get_weights()), history, results, true_losses)


@functools.cache
def run_gan(cls: type) -> Outcome:
    """Six steps (2 epochs of 8, 8, 4 images); weights are the discriminator's, the
    generator's, then the seed generator's state."""
    gan = fresh_gan(cls)
    history = compile_and_fit_gan(gan, image_data())
    return Outcome(tuple(gan_state(gan)), history)


# Checks on a single outcome.


def check_reports_true_loss(outcome: Outcome) -> None:
    """evaluate() and the last val_loss are positive and equal numpy's MSE (rtol=1e-5)."""
    assert sorted(outcome.results) == ["loss", "mae"]
    assert sorted(outcome.history) == ["loss", "mae", "val_loss", "val_mae"]
    for reported in (outcome.results["loss"], outcome.history["val_loss"][-1]):
        assert reported > 0.0, f"reported loss {reported}: is the loss tracker updated?"
    np.testing.assert_allclose(
        outcome.results["loss"], outcome.true_losses["loss"], rtol=TRUE_LOSS_RTOL
    )
    np.testing.assert_allclose(
        outcome.history["val_loss"][-1], outcome.true_losses["val_loss"], rtol=TRUE_LOSS_RTOL
    )


def check_gan_trained(outcome: Outcome) -> None:
    """History has finite d_loss/g_loss; both sub-models moved by more than 1e-3."""
    assert sorted(outcome.history) == ["d_loss", "g_loss"]
    for values in outcome.history.values():
        assert np.all(np.isfinite(values)), f"non-finite GAN losses {outcome.history}"
    initial_d, initial_g = initial_gan_weights()
    final_d = outcome.weights[: len(initial_d)]
    final_g = outcome.weights[len(initial_d) : len(initial_d) + len(initial_g)]
    for final, start in ((final_d, initial_d), (final_g, initial_g)):
        moved = max(np.max(np.abs(a - b)) for a, b in zip(final, start, strict=True))
        assert moved > 1e-3, f"a sub-model barely trained (max change {moved})"


# References against Keras's own steps.


@pytest.mark.parametrize("optimizer", sorted(BASIC_OPTIMIZERS))
def test_reference_matches_keras_default_basic(optimizer):
    """BasicReference vs plain keras.Model (default train_step), 3 epochs, with Adam and
    with Adam behind a LossScaleOptimizer.

    Every weight within rtol=1e-5/atol=1e-6; History loss and mae per epoch, rtol=1e-5.
    """
    expected = run_basic(keras.Model, optimizer)
    assert_outcomes_close(run_basic(BasicReference, optimizer), expected)


def test_reference_matches_keras_default_lowlevel():
    """LowLevelReference (compile(optimizer) only) vs plain keras.Model compiled with
    loss="mse", metrics=["mae"], SGD, 3 epochs.

    Every weight within rtol=1e-5/atol=1e-6; History loss and mae per epoch, rtol=1e-5.
    """
    outcome = run_lowlevel(LowLevelReference, compiled_loss=False)
    assert sorted(outcome.history) == ["loss", "mae"]
    assert_outcomes_close(outcome, run_lowlevel(keras.Model, compiled_loss=True))


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_reference_matches_keras_default_weighted(weighting):
    """WeightedReference vs plain keras.Model, SGD, 3 epochs, with no weights,
    sample_weight or class_weight.

    Every weight within rtol=1e-5/atol=1e-6; History loss, mae, weighted_mae per epoch,
    rtol=1e-5.
    """
    outcome = run_weighted(WeightedReference, weighting)
    assert sorted(outcome.history) == ["loss", "mae", "weighted_mae"]
    assert_outcomes_close(outcome, run_weighted(keras.Model, weighting))


def test_reference_matches_keras_default_evaluate():
    """EvaluateReference vs plain keras.Model: a 3-epoch Adam fit with validation data,
    then evaluate().

    Every weight within rtol=1e-5/atol=1e-6; History loss, mae, val_loss, val_mae per
    epoch and the evaluate() dict, rtol=1e-5; evaluate()'s loss and the last val_loss are
    > 0 and equal numpy's float64 MSE within rtol=1e-5.
    """
    outcome = run_evaluate(EvaluateReference)
    check_reports_true_loss(outcome)
    assert_outcomes_close(outcome, run_evaluate(keras.Model))


def test_reference_gan_is_reproducible():
    """Two independent GANReference runs from the same weights and seeds, 6 steps.

    Discriminator and generator weights and the seed generator's state within
    rtol=1e-5/atol=1e-6 (identical in practice); History d_loss/g_loss per epoch within
    rtol=1e-5 and finite; both sub-models moved by more than 1e-3 from their start.
    """
    outcome = run_gan(GANReference)
    check_gan_trained(outcome)
    assert_outcomes_close(run_gan.__wrapped__(GANReference), outcome)


# Generated models against the references.


@pytest.mark.parametrize("optimizer", sorted(BASIC_OPTIMIZERS))
def test_generated_matches_reference_basic(optimizer):
    """specs/basic.step's CustomModel vs BasicReference, 3 epochs, with Adam and with Adam
    behind a LossScaleOptimizer (catches a scale_loss taken outside the gradient tape).

    Every weight within rtol=1e-5/atol=1e-6; History loss and mae per epoch, rtol=1e-5.
    """
    generated = run_basic(load_spec("basic").CustomModel, optimizer)
    assert_outcomes_close(generated, run_basic(BasicReference, optimizer))


def test_generated_matches_reference_lowlevel():
    """specs/lowlevel.step's CustomModel vs LowLevelReference, both compiled with SGD only,
    3 epochs.

    Every weight within rtol=1e-5/atol=1e-6; History loss and mae per epoch, rtol=1e-5.
    """
    generated = run_lowlevel(load_spec("lowlevel").CustomModel, compiled_loss=False)
    assert_outcomes_close(generated, run_lowlevel(LowLevelReference, compiled_loss=False))


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_generated_matches_reference_weighted(weighting):
    """specs/weighted.step's CustomModel vs WeightedReference, SGD, 3 epochs, with no
    weights, sample_weight or class_weight.

    Every weight within rtol=1e-5/atol=1e-6; History loss, mae, weighted_mae per epoch,
    rtol=1e-5.
    """
    generated = run_weighted(load_spec("weighted").CustomModel, weighting)
    assert_outcomes_close(generated, run_weighted(WeightedReference, weighting))


def test_generated_matches_reference_evaluate():
    """specs/evaluate.step's CustomModel vs EvaluateReference: a 3-epoch Adam fit with
    validation data, then evaluate().

    Every weight within rtol=1e-5/atol=1e-6; History loss, mae, val_loss, val_mae per
    epoch and the evaluate() dict, rtol=1e-5; evaluate()'s loss and the last val_loss are
    > 0 and equal numpy's float64 MSE within rtol=1e-5.
    """
    generated = run_evaluate(load_spec("evaluate").CustomModel)
    check_reports_true_loss(generated)
    assert_outcomes_close(generated, run_evaluate(EvaluateReference))


def test_generated_matches_reference_gan():
    """specs/gan.step's GAN vs GANReference, 6 steps (2 epochs of 8, 8, 4 images).

    Discriminator and generator weights and the seed generator's state within
    rtol=1e-5/atol=1e-6; History d_loss/g_loss per epoch within rtol=1e-5; the generated
    GAN's losses are finite and both its sub-models moved by more than 1e-3.
    """
    generated = run_gan(load_spec("gan").GAN)
    check_gan_trained(generated)
    assert_outcomes_close(generated, run_gan(GANReference))
