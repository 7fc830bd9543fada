"""The published specs that loop or edit gradients against hand-written Keras 3
references: ``specs/image_captioning.step`` (keras.io's "Image captioning": one optimizer
step per caption in a ``repeat num_captions as i`` loop) and
``specs/textual_inversion.step`` (keras.io's "Teach StableDiffusion new concepts via
Textual Inversion": the token embedding's gradient masked to one row, then applied).

Runs are made by ``tests/support/specs_loops.py``: the same initial weights, data, seeds
and optimizers for the generated model and its reference, 2 epochs of ``fit()`` and, for
captioning (which has a test step), validation data and ``evaluate()``. Compared: every
weight the step changes (encoder and decoder; the token embedding and the seed state)
within rtol=1e-5/atol=1e-6, every History value and ``evaluate()`` result within
rtol=1e-5 (``compare.RTOL``/``ATOL``). The references are checked against numpy on
their own, and a deliberately broken variant of each (``tests/references/broken_loops.py``)
must fail the comparison. Textual inversion changes the placeholder token's row only:
every other row stays bit-equal. Then the fit() features: XLA, mixed precision, save and
load, BackupAndRestore and MirroredStrategy over two logical CPUs (a subprocess), with
captioning on 2 captions per image (``specs_loops.FEATURE_PARAMS``: tracing grows with
the unrolled loop).
"""

from __future__ import annotations

import functools
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from tests.references import broken_loops as broken
from tests.support import specs_loops as loops
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
from tests.support.specs_loops import FEATURE_PARAMS, SPECS, Setup, run
from tests.support.workers import case_run, mirrored_subprocess_results

# Mixed precision: the sub-models compute in float16 on both sides, in the same order.
MIXED_RTOL, MIXED_ATOL = 1e-3, 1e-4


@functools.cache
def default_run(name: str, kind: str = "generated") -> Run:
    """The plain run of the generated model or the reference (shared: never train its
    model further)."""
    return run(name, Setup(kind))


def feature_setup(name: str, kind: str = "generated", **changes) -> Setup:
    """The setup of the fit() feature tests: ``FEATURE_PARAMS`` (captioning: 2 captions
    per image) and ``changes``."""
    return Setup(kind, params=FEATURE_PARAMS[name], **changes)


@functools.cache
def feature_run(name: str) -> Run:
    """The generated model trained plainly in ``feature_setup`` (shared, as
    ``default_run``)."""
    return run(name, feature_setup(name))


def check_trained(name: str, got: Run) -> None:
    """Finite reports and trained weights that moved by more than 1e-3 from the start: a
    run that did not train would make every comparison trivial."""
    for key, values in {**got.history, **got.results}.items():
        assert np.all(np.isfinite(values)), f"{key}: {values}"
    start = loops.initial_state(name)
    assert max_abs_diff(got.weights[: len(start)], start) > 1e-3


def changed_rows(got: Run) -> list[int]:
    """The rows of the token embedding that differ (at all) from the initial matrix."""
    (start,) = loops.initial_state("textual_inversion")
    return np.flatnonzero(np.any(got.weights[0] != start, axis=1)).tolist()


# 1. The references, against numpy --------------------------------------------------------


def test_reference_caption_loss_and_accuracy_equal_numpy():
    """ImageCaptioningReference's masked loss and accuracy of random (8, 5, 12)
    probabilities for captions with padding equal numpy's float64 cross-entropy averaged
    over the real tokens (rtol 1e-5), and the share of real tokens whose argmax is right."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 5, loops.VOCAB))
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    tokens = loops.captions(8, seed=1)[:, 0, 1:]
    mask = tokens != 0
    model = loops.build_model("image_captioning", "reference")
    weights = ops.cast(mask, "float32")
    probs32 = probs.astype("float32")
    loss = float(model._masked_loss(tokens, probs32, weights))
    acc = float(model._masked_accuracy(tokens, probs32, mask, weights))
    picked = np.take_along_axis(probs, tokens[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(loss, -np.log(picked)[mask].mean(), rtol=1e-5)
    np.testing.assert_allclose(acc, (probs.argmax(-1) == tokens)[mask].mean(), rtol=1e-6)


def test_reference_noising_and_timestep_embedding_equal_numpy():
    """TextualInversionReference's noised latents (scaled-linear schedule over 50 steps)
    and sinusoidal timestep embeddings equal numpy's float64 formulas, rtol 1e-5."""
    data = loops.inversion_data()
    latents, timesteps = data["latents"], data["timesteps"]
    noise = np.random.default_rng(1).standard_normal(latents.shape).astype("float32")
    model = loops.build_model("textual_inversion", "reference")
    betas = np.linspace(0.00085**0.5, 0.012**0.5, loops.TRAIN_TIMESTEPS) ** 2
    alpha_t = np.cumprod(1.0 - betas)[timesteps][:, None]
    expected = np.sqrt(alpha_t) * latents + np.sqrt(1.0 - alpha_t) * noise
    got = np.asarray(model._add_noise(latents, noise, timesteps))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    freqs = np.exp(-np.log(10000.0) * np.arange(2) / 2)
    angles = timesteps[:, None] * freqs[None, :]
    expected = np.concatenate([np.cos(angles), np.sin(angles)], axis=-1)
    got = np.asarray(model._timestep_embedding(timesteps))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# 2. Generated vs reference ---------------------------------------------------------------


@pytest.mark.parametrize("name", SPECS)
def test_generated_matches_reference(name):
    """The generated model vs its reference, 2 epochs (captioning: Adam, with validation
    data and evaluate(); textual inversion: SGD): every weight and the seed state within
    rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5; both trained."""
    generated, reference = default_run(name), default_run(name, "reference")
    check_trained(name, reference)
    check_trained(name, generated)
    assert_runs_close(generated, reference, "generated vs reference")


@pytest.mark.parametrize("kind", ["generated", "reference"])
def test_textual_inversion_learns_the_placeholder_row_only(kind):
    """After 2 epochs the token embedding's placeholder row (the last) has changed and
    every other row, the prompt tokens' included, is bit-equal to the initial one."""
    assert changed_rows(default_run("textual_inversion", kind)) == [loops.PLACEHOLDER_ID]


BROKEN_VARIANTS = [
    ("image_captioning", broken.ImageCaptioningOneStep),
    ("textual_inversion", broken.TextualInversionUnmasked),
]


@pytest.mark.parametrize(
    ("name", "variant"), BROKEN_VARIANTS, ids=[variant.__name__ for _, variant in BROKEN_VARIANTS]
)
def test_comparison_catches_broken_reference(name, variant):
    """A deliberately wrong variant of a reference, trained in the reference's default
    scenario, fails the comparison the generated model passes, on the weights."""
    with pytest.raises(AssertionError, match=r"weights\["):
        assert_runs_close(run(name, Setup(cls=variant)), default_run(name, "reference"), "variant")


# 3. fit() features -----------------------------------------------------------------------


def xla_baseline(name: str) -> Run:
    """What a run under XLA must equal: captioning's plain run without XLA (the step
    test_generated_matches_reference proves against the reference, here on 2 captions;
    one XLA compile of each step instead of two), textual inversion's reference under XLA
    (TensorFlow draws other noise from the same seed under XLA)."""
    if name == "image_captioning":
        return feature_run(name)
    return run(name, feature_setup(name, "reference", jit_compile=True))


@pytest.mark.parametrize("name", SPECS)
def test_xla_matches_its_baseline(name):
    """compile(jit_compile=True) vs ``xla_baseline``: every weight and the seed state
    within rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5."""
    generated = run(name, feature_setup(name, jit_compile=True))
    assert generated.model.jit_compile is True
    assert_runs_close(generated, xla_baseline(name), "XLA vs its baseline")


@pytest.mark.parametrize("name", SPECS)
def test_mixed_precision_matches_reference(name):
    """mixed_float16, Keras's compile() wrapping the optimizer in a LossScaleOptimizer on
    both sides: the same applied steps and loss scale, every weight within
    rtol=1e-3/atol=1e-4 (float16 sub-models), History and evaluate() within rtol=1e-3;
    textual inversion still changes the placeholder row only."""
    with mixed_float16():
        generated = run(name, feature_setup(name))
        reference = run(name, feature_setup(name, "reference"))
    assert generated.model.dtype_policy.name == "mixed_float16"
    got, want = generated.model.optimizer, reference.model.optimizer
    assert isinstance(got, keras.optimizers.LossScaleOptimizer)
    assert int(got.iterations) == int(want.iterations) > 0
    assert float(got.dynamic_scale) == float(want.dynamic_scale)
    assert_weights_close(generated.weights, reference.weights, rtol=MIXED_RTOL, atol=MIXED_ATOL)
    assert_logs_close(generated.history, reference.history, rtol=MIXED_RTOL)
    assert_logs_close(generated.results, reference.results, rtol=MIXED_RTOL)
    if name == "textual_inversion":
        assert changed_rows(generated) == [loops.PLACEHOLDER_ID]


def saved_and_loaded(name: str, directory: Path) -> tuple[keras.Model, keras.Model]:
    """A generated model trained one epoch, and its model.save(".keras") loaded by
    keras.models.load_model (no custom_objects)."""
    original = run(name, feature_setup(name), epochs=1).model
    original.save(directory / "model.keras")
    cls = loops.spec_class(name)  # a new class, registered under the saved name: loads as it
    loaded = keras.models.load_model(directory / "model.keras")
    assert type(loaded) is cls
    return original, loaded


@pytest.mark.parametrize("name", SPECS)
def test_loaded_model_keeps_training_identically(name, tmp_path):
    """After one epoch, the loaded model has the original's weights and seed state and
    its optimizer's variables, exactly; then each trains one more epoch: weights within
    rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5."""
    original, loaded = saved_and_loaded(name, tmp_path)
    states = (loops.state(name, m) for m in (loaded, original))
    assert_weights_close(*states, "loaded", rtol=0, atol=0)
    assert_optimizers_equal([loaded.optimizer], [original.optimizer])
    resumed = run(name, model=loaded, epochs=1)
    continued = run(name, model=original, epochs=1)
    assert_runs_close(resumed, continued, "loaded vs original")


@pytest.mark.parametrize("name", SPECS)
def test_backup_and_restore_resumes_to_the_uninterrupted_run(name, tmp_path):
    """Interrupted after the first batch of epoch 2 (BackupAndRestore saved epoch 1), then
    resumed by BackupAndRestore in a fresh model: it redoes epoch 2 and ends with the
    uninterrupted run's weights and seed state (rtol=1e-5/atol=1e-6), epoch 2's History
    and evaluate() (rtol=1e-5)."""
    backup = tmp_path / "backup"
    with pytest.raises(Interrupted):
        callbacks = [keras.callbacks.BackupAndRestore(backup), InterruptAt(1, 0)]
        run(name, feature_setup(name), callbacks=callbacks)
    resumed = run(name, feature_setup(name), callbacks=[keras.callbacks.BackupAndRestore(backup)])
    expected = feature_run(name)
    assert_weights_close(resumed.weights, expected.weights, "resumed")
    assert_logs_close(resumed.history, {k: v[1:] for k, v in expected.history.items()})
    assert_logs_close(resumed.results, expected.results)


@pytest.fixture(scope="module")
def mirrored_results() -> dict:
    """The cases of ``support/specs_loops.py mirrored``, run in a subprocess (logical
    devices must be configured before TensorFlow starts)."""
    return mirrored_subprocess_results("specs_loops")


@pytest.mark.parametrize("name", SPECS)
def test_mirrored_matches_single_device(name, mirrored_results):
    """The generated model under MirroredStrategy over 2 logical CPUs, each replica given
    the single-device batch (the masked caption loss is a ratio of per-replica sums; the
    noise is the same on every replica), SGD (a loss scaled for distribution twice or
    not at all would be off by 2): every weight and the seed state within
    rtol=1e-5/atol=1e-6, History, evaluate() and every batch's logs within rtol=1e-5 of
    its single-device run."""
    single = case_run(mirrored_results, f"{name}/single")
    mirrored = case_run(mirrored_results, f"{name}/mirrored")
    assert_runs_close(mirrored, single, "mirrored vs single")
    batches = zip(mirrored.extra["batch_logs"], single.extra["batch_logs"], strict=True)
    for got, want in batches:
        assert_logs_close(got, want, atol=ATOL)
