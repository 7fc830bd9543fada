"""Numeric equivalence of stepc-generated models with hand-written Keras 3 references.

Three kinds of tests:

* ``test_reference_matches_keras_default_*`` validate the references in
  ``tests/references/`` against Keras's own default ``train_step``/``test_step`` where the
  spec's algorithm is the default one, and ``test_reference_gan_is_reproducible`` checks
  the GAN reference trains and is deterministic under fixed seeds.
* ``test_generated_matches_reference_*`` compile ``specs/<name>.step`` with ``stepc`` and
  compare the generated model with the reference.
* ``test_comparison_catches_broken_reference`` checks that the comparison fails for
  deliberately wrong variants of the WGAN-GP, VAE and adversarial references
  (``tests/references/broken.py``), and ``test_reference_wgan_gp_penalty_of_a_linear_critic``
  checks the WGAN-GP reference's penalty against its closed form.

Each ``run_*`` function below trains one model class in one scenario and returns an
``Outcome``; all models start from the same copied weights, with fresh, identically
configured optimizers and fixed seeds (see ``support/models.py``), and train on 50 samples in
batches of 16 (the last batch is partial); the GAN on 20 images in batches of 8; the
WGAN-GP, VAE and adversarial models on 12 of scikit-learn's 8x8 digits in batches of 8
(8 + 4). Two outcomes agree when every weight is within
``assert_allclose(rtol=1e-5, atol=1e-6)`` and every History value (per epoch) and
``evaluate`` result within ``rtol=1e-5``. Outcomes are cached per (class, scenario), so
each reference trains once per scenario however many tests compare against it.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.references import broken
from tests.references.adversarial import AdversarialReference
from tests.references.basic import BasicReference
from tests.references.evaluate import EvaluateReference
from tests.references.gan import GANReference
from tests.references.lowlevel import LowLevelReference
from tests.references.vae import VAEReference
from tests.references.weighted import WeightedReference
from tests.references.wgan_gp import WGANGPReference
from tests.support.compare import assert_outcomes_close
from tests.support.models import (
    CRITIC_STEPS,
    DIGITS_BATCH_SIZE,
    EPSILON,
    GP_WEIGHT,
    IMAGE_SHAPE,
    LATENT_DIM,
    SEED,
    Outcome,
    binary_data,
    build_classifier,
    build_critic,
    build_decoder,
    build_encoder,
    build_generator,
    compile_and_fit,
    compile_and_fit_gan,
    digits_data,
    fit_digits,
    fresh_functional,
    fresh_gan,
    fresh_model,
    gan_state,
    image_data,
    initial_gan_weights,
    initial_weights,
    load_spec,
    numpy_mse,
    regression_data,
    sample_weights,
)

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


@functools.cache
def run_wgan_gp(cls: type) -> Outcome:
    """WGAN-GP with critic_steps=3, gp_weight=10: 4 steps (2 epochs of 8 and 4 digits),
    so 12 critic and 4 generator updates; SGD for the critic (a scaled gradient shows),
    Adam for the generator. Weights: the critic's, the generator's (with its BatchNorm
    statistics), then the seed generator's state."""
    critic, generator = fresh_model(build_critic), fresh_model(build_generator)
    keras.utils.set_random_seed(SEED)  # The model's seed generator draws its seed here.
    gan = cls(
        critic=critic,
        generator=generator,
        latent_dim=LATENT_DIM,
        critic_steps=CRITIC_STEPS,
        gp_weight=GP_WEIGHT,
    )
    gan.compile(
        d_optimizer=keras.optimizers.SGD(learning_rate=0.01),
        g_optimizer=keras.optimizers.Adam(learning_rate=1e-2, beta_1=0.5, beta_2=0.9),
    )
    history = fit_digits(gan, digits_data()[0])
    seed_state = gan.seed_generator.state.numpy()
    return Outcome((*critic.get_weights(), *generator.get_weights(), seed_state), history)


@functools.cache
def run_vae(cls: type, optimizer: str) -> Outcome:
    """VAE, compile(optimizer=Adam, or Adam behind a LossScaleOptimizer): 4 steps (2
    epochs of 8 and 4 digits). Weights: the encoder's (with its BatchNorm statistics), the
    decoder's, then the seed generator's state."""
    encoder, decoder = fresh_model(build_encoder), fresh_model(build_decoder)
    keras.utils.set_random_seed(SEED)
    vae = cls(encoder=encoder, decoder=decoder)
    vae.compile(optimizer=BASIC_OPTIMIZERS[optimizer]())
    history = fit_digits(vae, digits_data()[0])
    seed_state = vae.seed_generator.state.numpy()
    return Outcome((*encoder.get_weights(), *decoder.get_weights(), seed_state), history)


@functools.cache
def run_adversarial(cls: type, optimizer: str) -> Outcome:
    """Adversarial training, epsilon=0.02, compile(optimizer=Adam, or Adam behind a
    LossScaleOptimizer): 4 steps (2 epochs of 8 and 4 digits) with validation on the next
    12 digits, then evaluate() on them (batches of 8 and 4). Weights: the classifier's,
    with its BatchNorm statistics. ``true_losses`` holds numpy's mean cross-entropy and
    accuracy of the final classifier on the validation digits, in float64."""
    x, y = digits_data()
    x_val, y_val = digits_data("val")
    classifier = fresh_model(build_classifier)
    keras.utils.set_random_seed(SEED)
    model = cls(classifier=classifier, epsilon=EPSILON)
    model.compile(optimizer=BASIC_OPTIMIZERS[optimizer]())
    history = fit_digits(model, x, y, validation_data=(x_val, y_val))
    results = model.evaluate(
        x_val, y_val, batch_size=DIGITS_BATCH_SIZE, verbose=0, return_dict=True
    )
    probabilities = np.asarray(classifier(x_val, training=False), dtype="float64")
    true_losses = {
        "loss": float(np.mean(-np.log(probabilities[np.arange(len(y_val)), y_val]))),
        "accuracy": float(np.mean(np.argmax(probabilities, axis=1) == y_val)),
    }
    return Outcome(tuple(classifier.get_weights()), history, results, true_losses)


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


def check_sub_models_moved(weights, builders) -> None:
    """Each sub-model (``weights`` holds theirs in ``builders`` order) moved by more than
    1e-3 from its initial weights."""
    start = 0
    for builder in builders:
        initial = initial_weights(builder)
        final = weights[start : start + len(initial)]
        start += len(initial)
        moved = max(np.max(np.abs(a - b)) for a, b in zip(final, initial, strict=True))
        assert moved > 1e-3, f"{builder.__name__}: the sub-model barely trained ({moved})"


def check_wgan_gp_trained(outcome: Outcome) -> None:
    """History has finite d_loss, g_loss and a non-negative gradient_penalty; critic and
    generator each moved by more than 1e-3."""
    assert sorted(outcome.history) == ["d_loss", "g_loss", "gradient_penalty"]
    for values in outcome.history.values():
        assert np.all(np.isfinite(values)), f"non-finite losses {outcome.history}"
    assert min(outcome.history["gradient_penalty"]) >= 0.0
    check_sub_models_moved(outcome.weights, (build_critic, build_generator))


def check_vae_losses(outcome: Outcome) -> None:
    """History has finite loss, reconstruction_loss and a positive kl_loss, and each
    epoch's loss equals reconstruction_loss + kl_loss within rtol=1e-5 (batch-size weighted
    means are linear); encoder and decoder each moved by more than 1e-3."""
    history = outcome.history
    assert sorted(history) == ["kl_loss", "loss", "reconstruction_loss"]
    for values in history.values():
        assert np.all(np.isfinite(values)), f"non-finite losses {history}"
    assert min(history["kl_loss"]) > 0.0, f"no KL term reported: {history}"
    total = np.add(history["reconstruction_loss"], history["kl_loss"])
    np.testing.assert_allclose(history["loss"], total, rtol=TRUE_LOSS_RTOL)
    check_sub_models_moved(outcome.weights, (build_encoder, build_decoder))


def check_adversarial_reports(outcome: Outcome) -> None:
    """evaluate() reports loss and accuracy equal to numpy's float64 cross-entropy and
    accuracy of the final classifier on the validation digits (rtol=1e-5), as does the
    last epoch's val_loss/val_accuracy; adversarial_accuracy is not 0 in every epoch (the
    comparison of it would say little); the classifier moved by more than 1e-3."""
    assert sorted(outcome.results) == ["accuracy", "loss"]
    assert sorted(outcome.history) == [
        "accuracy",
        "adversarial_accuracy",
        "loss",
        "val_accuracy",
        "val_loss",
    ]
    for name in ("loss", "accuracy"):
        want = outcome.true_losses[name]
        np.testing.assert_allclose(outcome.results[name], want, rtol=TRUE_LOSS_RTOL)
        np.testing.assert_allclose(outcome.history[f"val_{name}"][-1], want, rtol=TRUE_LOSS_RTOL)
    assert max(outcome.history["adversarial_accuracy"]) > 0.0
    check_sub_models_moved(outcome.weights, (build_classifier,))


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


@pytest.mark.parametrize("optimizer", sorted(BASIC_OPTIMIZERS))
def test_generated_matches_reference_vae(optimizer):
    """specs/vae.step's VAE vs VAEReference, 4 steps (2 epochs of 8 and 4 digits), with
    Adam and with Adam behind a LossScaleOptimizer.

    Encoder weights (BatchNorm statistics included), decoder weights and the seed
    generator's state within rtol=1e-5/atol=1e-6; History loss, reconstruction_loss and
    kl_loss per epoch within rtol=1e-5; check_vae_losses holds for both.
    """
    generated = run_vae(load_spec("vae").VAE, optimizer)
    reference = run_vae(VAEReference, optimizer)
    check_vae_losses(reference)
    check_vae_losses(generated)
    assert_outcomes_close(generated, reference)


@pytest.mark.parametrize("optimizer", sorted(BASIC_OPTIMIZERS))
def test_generated_matches_reference_adversarial(optimizer):
    """specs/adversarial.step's AdversarialClassifier vs AdversarialReference, 4 steps with
    validation data, then evaluate(), with Adam and with Adam behind a LossScaleOptimizer.

    Classifier weights (BatchNorm statistics included) within rtol=1e-5/atol=1e-6; History
    loss, accuracy, adversarial_accuracy, val_loss, val_accuracy per epoch and the
    evaluate() dict (loss, accuracy) within rtol=1e-5; check_adversarial_reports holds for
    both (evaluate() equals numpy's loss and accuracy within rtol=1e-5).
    """
    generated = run_adversarial(load_spec("adversarial").AdversarialClassifier, optimizer)
    reference = run_adversarial(AdversarialReference, optimizer)
    check_adversarial_reports(reference)
    check_adversarial_reports(generated)
    assert_outcomes_close(generated, reference)


def test_generated_matches_reference_wgan_gp():
    """specs/wgan_gp.step's WGANGP vs WGANGPReference, critic_steps=3, gp_weight=10,
    4 steps (12 critic and 4 generator updates).

    Critic weights, generator weights (BatchNorm statistics included) and the seed
    generator's state within rtol=1e-5/atol=1e-6; History d_loss, g_loss and
    gradient_penalty per epoch within rtol=1e-5; check_wgan_gp_trained holds for both.
    """
    generated = run_wgan_gp(load_spec("wgan_gp").WGANGP)
    reference = run_wgan_gp(WGANGPReference)
    check_wgan_gp_trained(reference)
    check_wgan_gp_trained(generated)
    assert_outcomes_close(generated, reference)


def test_reference_wgan_gp_penalty_of_a_linear_critic():
    """WGANGPReference's penalty, for a linear critic ``f(x) = w.x + b``.

    Its input gradient is ``w`` for every example, so the penalty is ``(||w|| - 1)^2``
    and its gradient with respect to ``w`` is ``2 (||w|| - 1) w / ||w||``. Called inside a
    tape, as in the step, ``_gradient_penalty`` gives both within rtol=1e-5 (atol=1e-7
    for the gradient) of numpy's float64 values: the nested tape is differentiated.
    """
    critic = keras.Sequential(
        [keras.Input(shape=IMAGE_SHAPE), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    keras.utils.set_random_seed(SEED)
    gan = WGANGPReference(
        critic=critic,
        generator=build_generator(),
        latent_dim=LATENT_DIM,
        critic_steps=CRITIC_STEPS,
        gp_weight=GP_WEIGHT,
    )
    real = digits_data()[0]
    fake = np.random.default_rng(SEED).uniform(size=real.shape).astype("float32")
    kernel = critic.layers[-1].kernel
    with tf.GradientTape() as tape:
        penalty = gan._gradient_penalty(tf.constant(real), tf.constant(fake))
    gradient = tape.gradient(penalty, kernel)
    w = np.asarray(kernel, dtype="float64")
    norm = np.linalg.norm(w)
    assert abs(norm - 1.0) > 0.1, "a kernel of norm 1 would make the check trivial"
    np.testing.assert_allclose(float(penalty), (norm - 1.0) ** 2, rtol=1e-5)
    expected = 2.0 * (norm - 1.0) * w / norm
    np.testing.assert_allclose(np.asarray(gradient), expected, rtol=1e-5, atol=1e-7)


def run_scenario(scenario: str, cls: type) -> Outcome:
    """The named spec's scenario with plain Adam where it is a choice (called with the
    arguments the generated-model tests use, so the cached reference runs are shared)."""
    if scenario == "wgan_gp":
        return run_wgan_gp(cls)
    if scenario == "vae":
        return run_vae(cls, "adam")
    return run_adversarial(cls, "adam")


REFERENCES = {
    "wgan_gp": WGANGPReference,
    "vae": VAEReference,
    "adversarial": AdversarialReference,
}
BROKEN_VARIANTS = [
    ("wgan_gp", broken.WGANGPWithoutPenalty, r"weights\["),
    ("wgan_gp", broken.WGANGPPenaltyNotDifferentiated, r"weights\["),
    ("wgan_gp", broken.WGANGPOneCriticStep, r"weights\["),
    ("vae", broken.VAEWithoutKL, r"weights\["),
    ("vae", broken.VAEStdFromLogVar, r"weights\["),
    ("adversarial", broken.AdversarialWrongSign, r"weights\["),
    ("adversarial", broken.AdversarialUnweightedTracker, r"History\['loss'\]"),
]


@pytest.mark.parametrize(
    ("scenario", "variant", "caught_by"),
    BROKEN_VARIANTS,
    ids=[variant.__name__ for _, variant, _ in BROKEN_VARIANTS],
)
def test_comparison_catches_broken_reference(scenario, variant, caught_by):
    """A deliberately wrong variant of a reference (``tests/references/broken.py``),
    trained in the reference's scenario (plain Adam for the VAE and adversarial), fails
    the comparison the generated model passes (rtol=1e-5/atol=1e-6 on weights, rtol=1e-5
    on History and evaluate()): on the weights, or for the unweighted loss tracker (same
    weights) on History's loss.

    Not among them: the adversarial step without ``stop_gradient``. It is numerically
    the same step, since ``sign`` has a zero gradient (measured: identical weights).
    """
    with pytest.raises(AssertionError, match=caught_by):
        assert_outcomes_close(
            run_scenario(scenario, variant), run_scenario(scenario, REFERENCES[scenario])
        )
