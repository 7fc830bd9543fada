"""The two generative published specs against hand-written Keras 3 references:
``specs/ddim.step`` (denoising diffusion implicit models: an EMA network, a cosine noise
schedule and a test step that samples and updates a user-passed KID metric) and
``specs/stylegan.step`` (StyleGAN's fade-in step: a step count and alpha kept as model
state, the WGAN loss with gradient penalty and drift), each from a keras.io example (the
references' docstrings say which and what they simplify).

Runs are made by ``tests/support/specs_generative.py``: the same initial weights, data,
seeds and optimizers for the generated model and its reference, 2 epochs of ``fit()``
(three batches of 8, 8 and 4) and, for DDIM, validation data and ``evaluate()``.
Compared: every weight the step changes (both sub-models'), every state variable
(StyleGAN's step count exactly, its alpha) and the seed state within rtol=1e-5/atol=1e-6
(``compare.RTOL``/``ATOL``), and every History value and ``evaluate()`` result within
rtol=1e-5. The references are checked against numpy on their own, and deliberately broken
variants (``tests/references/broken_generative.py``) must fail the comparison. Then the
fit() features: XLA, mixed precision, save and load, BackupAndRestore (state included) and
MirroredStrategy over two logical CPUs (a subprocess).
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import pytest

from tests.references import broken_generative as broken
from tests.support.compare import (
    ATOL,
    assert_logs_close,
    assert_optimizers_equal,
    assert_runs_close,
    assert_weights_close,
    max_abs_diff,
)
from tests.support.fit import Run
from tests.support.fit_tools import InterruptAt, Interrupted, mixed_float16
from tests.support.specs_generative import (
    DDIM_PARAMS,
    SPECS,
    STYLEGAN_PARAMS,
    KernelInceptionDistance,
    Setup,
    build_model,
    initial_state,
    optimizers_of,
    run,
    spec_class,
    state,
)
from tests.support.workers import case_run, mirrored_subprocess_results

XLA = {"jit_compile": True}
STEPS_PER_EPOCH = 3  # 20 images in batches of 8


def reference_of(setup: Setup) -> Setup:
    """The same setup for the hand-written reference."""
    return dataclasses.replace(setup, kind="reference", cls=None)


@functools.cache
def _default_run(name: str, kind: str) -> Run:
    return run(name, Setup(kind))


def check_trained(name: str, got: Run) -> None:
    """Finite reports and weights that moved by more than 1e-3 from the start: a run that
    did not train would make every comparison trivial."""
    for key, values in {**got.history, **got.results}.items():
        assert np.all(np.isfinite(values)), f"{key}: {values}"
    start = initial_state(name)
    assert max_abs_diff(got.weights[: len(start)], start) > 1e-3


def fade_in_state(got: Run) -> list[tuple[int, float]]:
    """StyleGAN's (step, alpha) after each epoch: the two arrays before the seed state."""
    return [(int(w[-3]), float(w[-2])) for w in got.extra["epoch_weights"]]


# 1. The references, against numpy --------------------------------------------------------


def numpy_kid(real: np.ndarray, generated: np.ndarray) -> float:
    """float64 unbiased squared MMD under the kernel ``(x . y / d + 1) ** 3``."""
    x, y = (np.asarray(a, "float64").reshape(len(a), -1) for a in (real, generated))
    d = x.shape[1]

    def kernel(a, b):
        return (a @ b.T / d + 1.0) ** 3

    def off_diagonal_mean(k):
        return (k.sum() - np.trace(k)) / (len(k) * (len(k) - 1))

    return (
        off_diagonal_mean(kernel(x, x))
        + off_diagonal_mean(kernel(y, y))
        - 2.0 * kernel(x, y).mean()
    )


def test_kid_stand_in_equals_numpy_and_averages_batches():
    """The KID stand-in of two batches of (6, 4, 4, 1) uniform images equals the mean of
    numpy's float64 per-batch MMDs (rtol 1e-5, atol 1e-6: the MMD is a difference of
    kernel means of order 1, so float32 leaves ~1e-7 of it whatever its size, and this
    one is -0.019); reset_state() clears it to 0; it survives serialize/deserialize
    with its name."""
    rng = np.random.default_rng(0)
    batches = [rng.uniform(size=(2, 6, 4, 4, 1)).astype("float32") for _ in range(2)]
    kid = KernelInceptionDistance(name="kid")
    for real, generated in batches:
        kid.update_state(real, generated)
    expected = np.mean([numpy_kid(real, generated) for real, generated in batches])
    np.testing.assert_allclose(float(kid.result()), expected, rtol=1e-5, atol=1e-6)
    kid.reset_state()
    assert float(kid.result()) == 0.0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(kid))
    assert isinstance(restored, KernelInceptionDistance) and restored.name == "kid"


def test_reference_schedule_and_sampler_equal_numpy():
    """The DDIM reference's cosine schedule at times 0 and 1 gives the largest and
    smallest signal rates, with signal^2 + noise^2 = 1 (rtol 1e-5, float32); its reverse
    diffusion from fixed noise equals numpy's float64 DDIM loop over the same EMA network
    (its predictions taken from Keras, the arithmetic in numpy; rtol 1e-5, atol 1e-6)."""
    model = build_model("ddim", "reference")
    noise_rates, signal_rates = (
        np.asarray(r) for r in model.diffusion_schedule(np.array([0.0, 1.0]))
    )
    np.testing.assert_allclose(signal_rates, [0.95, 0.02], rtol=1e-5)
    np.testing.assert_allclose(signal_rates**2 + noise_rates**2, 1.0, rtol=1e-5)
    noise = np.random.default_rng(1).normal(size=(4, 4, 4, 1)).astype("float32")
    got = np.asarray(model.reverse_diffusion(keras.ops.convert_to_tensor(noise)))
    start, end = np.arccos(0.95), np.arccos(0.02)
    steps, images = DDIM_PARAMS["diffusion_steps"], noise.astype("float64")
    for step in range(steps):
        angle = start + (1.0 - step / steps) * (end - start)
        variances = np.full((4, 1, 1, 1), np.sin(angle) ** 2, "float32")
        pred_noise = np.asarray(model.ema_network([images.astype("float32"), variances]), "float64")
        pred_image = (images - np.sin(angle) * pred_noise) / np.cos(angle)
        next_angle = start + (1.0 - (step + 1) / steps) * (end - start)
        images = np.cos(next_angle) * pred_image + np.sin(next_angle) * pred_noise
    np.testing.assert_allclose(got, pred_image, rtol=1e-5, atol=1e-6)


def test_reference_fade_in_follows_the_step_count():
    """The StyleGAN reference's step count after each epoch is 3 and 6 (three steps per
    epoch) and its alpha min(step / 4, 1): 0.75, then 1.0, exactly."""
    assert STYLEGAN_PARAMS["fade_steps"] == 4
    reference = _default_run("stylegan", "reference")
    assert fade_in_state(reference) == [(3, 0.75), (6, 1.0)]
    assert reference.model.alpha.dtype == "float32" and reference.model.step.dtype == "int32"


# 2. Generated vs reference ---------------------------------------------------------------


@pytest.mark.parametrize("name", SPECS)
def test_generated_matches_reference(name):
    """The generated model vs its reference, 2 epochs (DDIM: Keras's AdamW, validation
    data, evaluate(); StyleGAN: two Adams): every weight, state variable and the seed
    state within rtol=1e-5/atol=1e-6 (the step count exactly), the state after each epoch
    too, History and evaluate() within rtol=1e-5; both trained (check_trained)."""
    generated = _default_run(name, "generated")
    reference = _default_run(name, "reference")
    check_trained(name, reference)
    check_trained(name, generated)
    assert_runs_close(generated, reference, "generated vs reference")
    for got, want in zip(
        generated.extra["epoch_weights"], reference.extra["epoch_weights"], strict=True
    ):
        assert_weights_close(got, want, "after an epoch")
    if name == "stylegan":
        assert fade_in_state(generated) == fade_in_state(reference)


def test_ddim_reports_kid_only_in_evaluation():
    """DDIM's training logs hold the two trackers only: the KID, which only the test step
    updates, is in validation (``val_kid``) and ``evaluate()``, not in training; the
    generated model lists the user's KID among its metrics (Keras resets it)."""
    generated = _default_run("ddim", "generated")
    assert sorted(generated.history) == ["i_loss", "n_loss", "val_i_loss", "val_kid", "val_n_loss"]
    assert all(sorted(logs) == ["i_loss", "n_loss"] for logs in generated.extra["batch_logs"])
    assert sorted(generated.results) == ["i_loss", "kid", "n_loss"]
    assert any(m is generated.model.kid for m in generated.model.metrics)


def test_stylegan_state_is_model_state_not_trained():
    """StyleGAN's step count and alpha are non-trainable weights of the generated model,
    in no optimizer's variables."""
    model = _default_run("stylegan", "generated").model
    non_trainable = {id(v) for v in model.non_trainable_weights}
    assert id(model.step) in non_trainable and id(model.alpha) in non_trainable
    optimizer_variables = {id(v) for o in optimizers_of("stylegan", model) for v in o.variables}
    assert not {id(model.step), id(model.alpha)} & optimizer_variables


BROKEN_VARIANTS = [
    ("ddim", broken.DiffusionModelEMASwapped, r"weights\["),
    ("ddim", broken.DiffusionModelSamplerOffByOne, r"evaluate\['kid'\]|History\['val_kid'\]"),
    ("stylegan", broken.StyleGANAlphaLags, r"weights\["),
]


@pytest.mark.parametrize(
    ("name", "variant", "match"),
    BROKEN_VARIANTS,
    ids=[variant.__name__ for _, variant, _ in BROKEN_VARIANTS],
)
def test_comparison_catches_broken_reference(name, variant, match):
    """A deliberately wrong variant of a reference, trained in the reference's default
    scenario, fails the comparison the generated model passes: on the weights, or (the
    sampler, which changes no weight) on the KID."""
    with pytest.raises(AssertionError, match=match):
        assert_runs_close(
            run(name, Setup(cls=variant)), _default_run(name, "reference"), "variant vs reference"
        )


# 3. fit() features -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SPECS)
def test_xla_matches_reference_under_xla(name):
    """compile(jit_compile=True): generated vs reference, both under XLA (whose random
    draws are not the ones without it), on full batches only (one shape, one XLA
    compilation per step), as in test_generated_matches_reference (rtol=1e-5/atol=1e-6
    on weights and state, rtol=1e-5 on History and evaluate())."""
    generated = run(name, Setup(compile_kwargs=XLA), full_batches=True)
    reference = run(name, Setup("reference", compile_kwargs=XLA), full_batches=True)
    assert generated.model.jit_compile is True and reference.model.jit_compile is True
    assert_runs_close(generated, reference, "XLA generated vs reference")


@pytest.mark.parametrize("name", SPECS)
def test_mixed_precision_matches_reference(name):
    """mixed_float16 with the default optimizers handed to compile() (Keras's compile()
    wraps DDIM's in a LossScaleOptimizer; StyleGAN's generated compile() must wrap both
    itself, the reference gets them wrapped by the test), vs the reference in the same
    situation: the same applied steps and loss scales, every weight and state within
    rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5."""
    with mixed_float16():
        generated = run(name)
        reference = run(name, Setup("reference", loss_scale=name == "stylegan"))
    assert generated.model.dtype_policy.name == "mixed_float16"
    pairs = zip(
        optimizers_of(name, generated.model), optimizers_of(name, reference.model), strict=True
    )
    for got, want in pairs:
        assert isinstance(got, keras.optimizers.LossScaleOptimizer)
        assert int(got.iterations) == int(want.iterations) > 0
        assert float(got.dynamic_scale) == float(want.dynamic_scale)
    assert_runs_close(generated, reference, "mixed generated vs reference")


@pytest.mark.parametrize("name", SPECS)
def test_save_and_load_restores_state_and_keeps_training(name, tmp_path):
    """After one epoch, model.save(".keras") loaded by keras.models.load_model (no
    custom_objects) has the original's weights, state (StyleGAN: step 3, alpha 0.75) and
    seed state, and every optimizer variable, exactly (DDIM: its KID metric is the
    user's class again); both then train one more epoch alike (weights and state within
    rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5)."""
    original = run(name, epochs=1).model
    original.save(tmp_path / "model.keras")
    cls = spec_class(name)  # a new class, registered under the saved name: loads as it
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded) is cls
    assert_weights_close(state(name, loaded), state(name, original), "loaded", rtol=0, atol=0)
    assert_optimizers_equal(optimizers_of(name, loaded), optimizers_of(name, original))
    if name == "ddim":
        assert isinstance(loaded.kid, KernelInceptionDistance) and loaded.kid.name == "kid"
    else:
        assert (int(loaded.step.numpy()), float(loaded.alpha.numpy())) == (3, 0.75)
    assert_runs_close(run(name, model=loaded, epochs=1), run(name, model=original, epochs=1))


@pytest.mark.parametrize("name", SPECS)
def test_backup_and_restore_resumes_to_the_uninterrupted_run(name, tmp_path):
    """Interrupted after the first batch of epoch 2 (BackupAndRestore saved epoch 1: the
    state too), then resumed by BackupAndRestore in a fresh model: it redoes epoch 2 and
    ends with the uninterrupted run's weights, state (StyleGAN: step 6, alpha 1) and seed
    state (rtol=1e-5/atol=1e-6), epoch 2's History and evaluate() (rtol=1e-5)."""
    backup = tmp_path / "backup"
    with pytest.raises(Interrupted):
        run(name, callbacks=[keras.callbacks.BackupAndRestore(backup), InterruptAt(1, 0)])
    resumed = run(name, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    expected = _default_run(name, "generated")
    assert_weights_close(resumed.weights, expected.weights, "resumed")
    assert_logs_close(resumed.history, {k: v[1:] for k, v in expected.history.items()})
    assert_logs_close(resumed.results, expected.results)
    if name == "stylegan":
        assert fade_in_state(resumed)[-1] == (2 * STEPS_PER_EPOCH, 1.0)


@pytest.fixture(scope="module")
def mirrored_results() -> dict:
    """The cases of ``support/specs_generative.py mirrored``, run in a subprocess (logical
    devices must be configured before TensorFlow starts)."""
    return mirrored_subprocess_results("specs_generative")


@pytest.mark.parametrize("name", SPECS)
def test_mirrored_matches_single_device(name, mirrored_results):
    """MirroredStrategy over 2 logical CPUs, each replica given the single-device batch
    (so the noise and the state update are the single-device ones), SGD for every
    optimizer (a loss scaled for distribution twice or not at all would be off by 2):
    every weight, state variable and seed state within rtol=1e-5/atol=1e-6, History,
    evaluate() and every batch's logs within rtol=1e-5 of the single-device run (the
    references pass it too: measured once, not rerun here, for the CI budget)."""
    single = case_run(mirrored_results, f"{name}/generated/single")
    mirrored = case_run(mirrored_results, f"{name}/generated/mirrored")
    assert_runs_close(mirrored, single, "mirrored vs single")
    batches = zip(mirrored.extra["batch_logs"], single.extra["batch_logs"], strict=True)
    for got, want in batches:
        assert_logs_close(got, want, atol=ATOL)
