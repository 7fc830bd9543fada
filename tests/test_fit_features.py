"""The generated models under everything ``fit()`` offers (issue #4).

Each test trains a model generated from one of the five seed specs with one ``fit()``
feature and compares it with a run that is known to be right: the same generated model
without the feature (XLA, ``steps_per_execution``, distribution: the single-device run;
mixed precision: the float32 run), the hand-written reference in ``tests/references/``
(or Keras's own default ``train_step`` for ``basic``) under the same feature, or a value
computed another way (``evaluate()`` for ``val_`` metrics, the History for TensorBoard's
event files). Runs start from the same weights, optimizers and seeds (see
``tests/support/fit.py``), so any difference comes from the feature.

Tolerances:

* ``compare.RTOL``/``ATOL`` = 1e-5/1e-6 (the project's tolerances, ``compare``'s defaults)
  for every weight, History value, per-batch log and ``evaluate()`` result when both runs
  do the same arithmetic (most agree bit for bit; XLA and 2 replicas differ by at most
  ~2.4e-7 in float32 rounding);
* mixed precision against float32 (float16 rounding of activations and gradients):
  the relative error of the weight updates ``|w16 - w32| / |w32 - w0|`` below
  ``MIXED_UPDATE_RTOL`` (2% for the functional specs, measured 0.04%; 10% for the GAN,
  measured 2.6%): a gradient left scaled or unscaled by the loss scale (128 here) or
  frozen would be off by ~100%; epoch losses and metrics within ``MIXED_METRIC_RTOL``.

Distribution (MirroredStrategy, MultiWorkerMirroredStrategy) is in ``test_distribution.py``.
Where a combination cannot work, a test pins what happens instead: the generated class
refusing it with a clear error (``use_ema`` on a spec's own optimizers), or Keras's own
behaviour and the documented workaround (``TerminateOnNaN`` on a model that reports no
``loss``).
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.support.compare import (
    assert_logs_close,
    assert_runs_close,
    assert_weights_close,
    max_abs_diff,
)
from tests.support.fit import (
    ALL_SPECS,
    CLASS_WEIGHT,
    COMPILE_KWARGS,
    FUNCTIONAL_SPECS,
    Run,
    build_functional,
    compile_gan,
    fit_data,
    generated_class,
    make_optimizer,
    run,
    run_functional,
    run_gan,
    validation_data,
)
from tests.support.fit_tools import (
    HAS_TENSORBOARD,
    InterruptAt,
    Interrupted,
    assert_tensorboard_logged_the_history,
    counting,
    mixed_float16,
    readme_python_block,
    relative_update_error,
    stopping_checkpointing_logging,
)
from tests.support.models import (
    BATCH_SIZE,
    EPOCHS,
    GAN_BATCH_SIZE,
    GAN_EPOCHS,
    N_IMAGES,
    N_SAMPLES,
    fresh_gan,
    gan_state,
    image_data,
    initial_dense_weights,
    initial_gan_weights,
    regression_data,
)

MIXED_UPDATE_RTOL = {"functional": 0.02, "gan": 0.10}
MIXED_METRIC_RTOL = {"functional": 2e-3, "gan": 5e-3}
MIXED_LOSS_SCALE = 2.0**7  # small enough that no float16 gradient overflows: no step skipped

STEPS_PER_EPOCH = -(-N_SAMPLES // BATCH_SIZE)  # 4: 16, 16, 16, 2
GAN_STEPS_PER_EPOCH = -(-N_IMAGES // GAN_BATCH_SIZE)  # 3: 8, 8, 4


# Cached runs ------------------------------------------------------------------------------


@functools.cache
def baseline(name: str, optimizer: str = "sgd") -> Run:
    """The generated model trained plainly (float32, no XLA, one device, no callbacks).

    Functional specs: ``EPOCHS`` epochs of SGD (or Adam); the evaluate spec with
    ``validation_data``. The GAN: ``GAN_EPOCHS`` epochs, SGD for D and Adam for G, whatever
    ``optimizer`` says. Shared by many tests: never train ``baseline(...).model`` further.
    """
    if name == "gan":
        return run_gan()
    return run_functional(name, optimizer=optimizer)


@functools.cache
def gan_sgd_baseline() -> Run:
    """The generated GAN in float32 with SGD for both D and G (for mixed precision)."""
    return run_gan(optimizers=("sgd", "sgd"))


def adam_run(name: str, **kwargs) -> Run:
    """``run`` with Adam for a functional spec (the GAN's G already has Adam)."""
    if name != "gan":
        kwargs.setdefault("optimizer", "adam")
    return run(name, **kwargs)


def initial_weights(name: str) -> list[np.ndarray]:
    """The weights every run of ``name`` starts from (GAN: D then G, no seed state)."""
    if name == "gan":
        discriminator, generator = initial_gan_weights()
        return [*discriminator, *generator]
    return list(initial_dense_weights())


# 1. XLA -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONAL_SPECS)
def test_xla_matches_non_xla(name):
    """compile(jit_compile=True) vs the same generated model without XLA, 3 epochs of SGD.

    Every weight within rtol=1e-5/atol=1e-6 (measured: at most 2.4e-7 apart), History
    (with val_ metrics for the evaluate spec) and, where stepc generates the test step
    (lowlevel, evaluate), evaluate() under XLA within rtol=1e-5.
    """
    xla = run(name, compile_kwargs={"jit_compile": True})
    assert xla.model.jit_compile is True
    assert_runs_close(xla, baseline(name))


def test_xla_gan_matches_reference_under_xla():
    """The GAN under XLA vs the hand-written reference also under XLA, 2 epochs (6 steps),
    on Dense-only sub-models (``dense_gan``: XLA compiles the convolutional ones 2-3x
    slower; the step is the same).

    XLA draws different numbers from the same seeds (keras3-facts 15), so a non-XLA run
    is no reference for the trained weights. Compared instead: generated vs reference
    both under XLA, every weight and the seed state within rtol=1e-5/atol=1e-6 and
    History within rtol=1e-5; and, of the non-XLA run, the non-random part: the seed
    generator's state, equal (the same number of draws, 3 per step). That the XLA run's
    weights differ from the non-XLA run's by more than 1e-3 shows that XLA compiled it.
    """
    generated = run_gan(dense=True, compile_kwargs={"jit_compile": True})
    reference = run_gan("reference", dense=True, compile_kwargs={"jit_compile": True})
    assert generated.model.jit_compile is True and reference.model.jit_compile is True
    assert_runs_close(generated, reference, "XLA generated vs reference")
    non_xla = run_gan(dense=True)
    np.testing.assert_array_equal(generated.weights[-1], non_xla.weights[-1])
    assert max_abs_diff(generated.weights[:-1], non_xla.weights[:-1]) > 1e-3


# 2. Mixed precision ----------------------------------------------------------------------


def loss_scaled_sgd() -> keras.optimizers.Optimizer:
    """SGD behind a LossScaleOptimizer with initial scale 128."""
    return keras.optimizers.LossScaleOptimizer(
        make_optimizer("sgd"), initial_scale=MIXED_LOSS_SCALE
    )


def optimizers_of(name: str, model: keras.Model) -> list:
    """The optimizers a spec's step applies."""
    return [model.d_optimizer, model.g_optimizer] if name == "gan" else [model.optimizer]


@pytest.mark.parametrize("name", ALL_SPECS)
def test_mixed_precision_matches_float32(name):
    """mixed_float16 vs float32, SGD (which shows any wrong gradient scale), loss scale 128.

    Each optimizer is a LossScaleOptimizer around SGD with initial scale 128, small
    enough that no float16 gradient overflows, so every step is applied (checked:
    ``iterations`` = number of steps, scale still 128) and float32 is the reference.
    Compared with the float32 run: the relative error of the weight updates below 2%
    (GAN: 10%); History and evaluate() within rtol 2e-3 (GAN 5e-3). A gradient of the
    unscaled loss (keras3-facts 10) would be 128x too small: error ~100%.
    """
    kind = "gan" if name == "gan" else "functional"
    if name == "gan":
        expected = gan_sgd_baseline()
        with mixed_float16():
            mixed = run_gan(optimizers=("sgd", "sgd"), loss_scale=MIXED_LOSS_SCALE)
        steps = GAN_EPOCHS * GAN_STEPS_PER_EPOCH
    else:
        expected = baseline(name)
        with mixed_float16():
            mixed = run(name, optimizer=loss_scaled_sgd)
        steps = EPOCHS * STEPS_PER_EPOCH
    assert mixed.model.dtype_policy.name == "mixed_float16"
    for optimizer in optimizers_of(name, mixed.model):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert int(optimizer.iterations) == steps, "a step was skipped"
        assert float(optimizer.dynamic_scale) == MIXED_LOSS_SCALE
    start = initial_weights(name)  # every weight but the GAN's seed state
    error = relative_update_error(
        mixed.weights[: len(start)], expected.weights[: len(start)], start
    )
    assert error < MIXED_UPDATE_RTOL[kind], f"weight updates off by {error:.1%}"
    assert_logs_close(mixed.history, expected.history, rtol=MIXED_METRIC_RTOL[kind])
    assert_logs_close(mixed.results, expected.results, rtol=MIXED_METRIC_RTOL[kind])


@pytest.mark.parametrize("name", ["basic", "lowlevel", "weighted", "gan"])
def test_mixed_precision_default_loss_scaling_matches_reference(name):
    """mixed_float16 with plain optimizers handed to compile(): they get wrapped.

    Functional specs: Keras's compile() wraps the optimizer; the GAN: the generated
    compile() must wrap both (checked: LossScaleOptimizer around the very objects
    passed). With the default initial scale (2**15) the first float16 gradients overflow
    and the LossScaleOptimizer skips those steps and halves its scale: compared with the
    hand-written reference in the same situation (the GAN reference gets its optimizers
    wrapped by the test, as it does not wrap them itself), every weight within
    rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5, and the same number of
    applied steps and final loss scale. (evaluate.step's training is Keras's default
    step; its test step under mixed precision is in the float32 comparison.)
    """
    with mixed_float16():
        if name == "gan":
            d_optimizer, g_optimizer = make_optimizer("sgd"), make_optimizer("adam")
            gan = fresh_gan(generated_class("gan"))
            compile_gan(gan, d_optimizer=d_optimizer, g_optimizer=g_optimizer)
            assert gan.d_optimizer.inner_optimizer is d_optimizer
            assert gan.g_optimizer.inner_optimizer is g_optimizer
            generated = run_gan(gan=gan)
            reference = run_gan("reference", loss_scale=True)
        else:
            generated = run(name)
            reference = run(name, "reference")
    pairs = zip(
        optimizers_of(name, generated.model), optimizers_of(name, reference.model), strict=True
    )
    for got, want in pairs:
        assert isinstance(got, keras.optimizers.LossScaleOptimizer)
        assert int(got.iterations) == int(want.iterations)
        assert float(got.dynamic_scale) == float(want.dynamic_scale)
        assert int(got.iterations) > 0
    assert_runs_close(generated, reference, "mixed generated vs reference")


def test_gan_compile_does_not_wrap_optimizers_in_float32():
    """Under float32 the generated GAN keeps the optimizers it is given (no wrapping)."""
    d_optimizer, g_optimizer = make_optimizer("sgd"), make_optimizer("adam")
    gan = fresh_gan(generated_class("gan"))
    compile_gan(gan, d_optimizer=d_optimizer, g_optimizer=g_optimizer)
    assert gan.d_optimizer is d_optimizer and gan.g_optimizer is g_optimizer


# 3. fit() options and callbacks -----------------------------------------------------------


@pytest.mark.parametrize("name", ALL_SPECS)
def test_steps_per_execution_matches_one(name):
    """compile(steps_per_execution=3) (GAN: 2, so the last execution of each epoch is
    short) vs steps_per_execution=1: every weight (GAN: and seed state) within
    rtol=1e-5/atol=1e-6, History and (lowlevel, evaluate) evaluate() within rtol=1e-5."""
    steps = 2 if name == "gan" else 3
    got = run(name, compile_kwargs={"steps_per_execution": steps})
    assert got.model.steps_per_execution == steps
    assert_runs_close(got, baseline(name), f"steps_per_execution={steps}")


@pytest.mark.parametrize("name", FUNCTIONAL_SPECS)
def test_validation_metrics_equal_evaluate(name):
    """fit(validation_data=...): the last epoch's val_ metrics equal evaluate() on the
    same data after fit (rtol=1e-6; same weights, same batches), and validating does not
    change training: weights and training History equal the run without validation data
    (rtol=1e-5/atol=1e-6; the evaluate spec's baseline always validates)."""
    got = baseline(name) if name == "evaluate" else run(name, validation=True, evaluate=True)
    last_val = {key[4:]: values[-1] for key, values in got.history.items() if key[:4] == "val_"}
    assert last_val, "no val_ metrics"
    assert_logs_close(last_val, got.results, rtol=1e-6)
    if name != "evaluate":
        expected = baseline(name)
        training = {k: v for k, v in got.history.items() if not k.startswith("val_")}
        assert_logs_close(training, expected.history)
        assert_weights_close(got.weights, expected.weights, "weights")


def test_class_weight_equals_per_sample_weights_and_reference():
    """weighted.step with fit(class_weight={0: 0.5, 1: 3.0}) on 0/1 labels vs the same
    model given the equivalent per-sample weights explicitly and vs the reference with
    the same class_weight: weights within rtol=1e-5/atol=1e-6, History (loss, mae,
    weighted_mae) within rtol=1e-5. (The plain generated-vs-reference comparison is in
    test_equivalence.py; here and under MirroredStrategy it is class_weight's path.)"""
    got = run("weighted", weighting="class_weight")
    _, y, _ = fit_data("weighted", weighting="class_weight")
    explicit = np.where(y[:, 0] > 0.5, CLASS_WEIGHT[1], CLASS_WEIGHT[0]).astype("float32")
    per_sample = run(
        "weighted",
        weighting="class_weight",
        fit_kwargs={"class_weight": None, "sample_weight": explicit},
    )
    reference = run("weighted", "reference", weighting="class_weight")
    assert_runs_close(got, per_sample, "class_weight vs sample_weight")
    assert_runs_close(got, reference, "generated vs reference")


# tf.summary needs the tensorboard package, which TensorFlow 2.21 does not depend on;
# stepc[test] pins it (pyproject.toml), so test_tensorboard_writes_the_history fails
# without it. The other callback tests run either way.

MONITORED = {"basic": "loss", "lowlevel": "loss", "weighted": "loss", "evaluate": "val_loss"}


@pytest.fixture(scope="module")
def callback_runs(tmp_path_factory):
    """Per spec, one Adam run of up to 4 epochs with EarlyStopping, ModelCheckpoint and
    TensorBoard, cached: ``(Run, early_stopping, directory)``.

    EarlyStopping(min_delta=1e9, patience=1) on the spec's loss (the evaluate spec: its
    val_loss; the GAN: d_loss) never sees an improvement after the first epoch, so it
    stops after epoch 2. ModelCheckpoint writes ``epoch1.keras`` and ``epoch2.keras``.
    TensorBoard (only with the tensorboard package installed) writes to ``tb/``.
    """
    cache = {}

    def get(name):
        if name not in cache:
            directory = tmp_path_factory.mktemp(f"callbacks_{name}")
            monitor = MONITORED.get(name, "d_loss")
            stopper, callbacks = stopping_checkpointing_logging(directory, monitor)
            cache[name] = (adam_run(name, epochs=4, callbacks=callbacks), stopper, directory)
        return cache[name]

    return get


@pytest.mark.parametrize("name", ALL_SPECS)
def test_early_stopping_stops_and_matches_uninterrupted_run(name, callback_runs):
    """EarlyStopping stops after epoch 2 of 4 (stopped_epoch 1, two History entries), and
    the model then equals the plain run after its second epoch: weights (GAN: and seed
    state) within rtol=1e-5/atol=1e-6, History per epoch within rtol=1e-5."""
    got, stopper, _ = callback_runs(name)
    expected = baseline(name, "adam")
    assert stopper.stopped_epoch == 1
    assert {len(values) for values in got.history.values()} == {2}
    assert_weights_close(got.weights, expected.extra["epoch_weights"][1], "weights")
    expected_history = {key: values[:2] for key, values in expected.history.items()}
    assert_logs_close(got.history, expected_history)


def gan_outputs(gan: keras.Model) -> list[np.ndarray]:
    """The generator's images for fixed noise and the discriminator's logits for them."""
    z = np.random.default_rng(0).normal(size=(4, gan.latent_dim)).astype("float32")
    images = gan.generator(z, training=False)
    return [np.asarray(images), np.asarray(gan.discriminator(images, training=False))]


@pytest.mark.parametrize("name", ALL_SPECS)
def test_model_checkpoint_loads_predicts_and_keeps_training(name, callback_runs):
    """ModelCheckpoint(".keras") files load with keras.models.load_model as the generated
    class. The last one predicts exactly what the trained model predicts (GAN: the
    generator's images and the discriminator's logits, both optimizers' variables, equal)
    and evaluates the same (rtol 1e-6). The epoch-1 file, trained one more epoch, ends
    where the uninterrupted run ends its epoch 2: weights within rtol=1e-5/atol=1e-6
    and that epoch's History within rtol=1e-5, so the optimizer state (Adam's moments;
    for the GAN both optimizers') was saved and restored; the GAN's seed generator state
    too (the generated save_own_variables): each file holds the state after its epoch.
    """
    got, _, directory = callback_runs(name)
    assert sorted(p.name for p in directory.glob("*.keras")) == ["epoch1.keras", "epoch2.keras"]
    cls = generated_class(name)
    last = keras.models.load_model(directory / "epoch2.keras")
    first = keras.models.load_model(directory / "epoch1.keras")
    assert type(last) is cls and type(first) is cls
    expected = baseline(name, "adam")
    if name == "gan":
        for restored, original in zip(gan_outputs(last), gan_outputs(got.model), strict=True):
            np.testing.assert_array_equal(restored, original)
        for optimizer in ("d_optimizer", "g_optimizer"):
            saved = getattr(got.model, optimizer).variables
            loaded = getattr(last, optimizer).variables
            assert len(saved) == len(loaded) > 0
            for a, b in zip(saved, loaded, strict=True):
                np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(last.seed_generator.state, got.weights[-1])
        np.testing.assert_array_equal(
            first.seed_generator.state, expected.extra["epoch_weights"][0][-1]
        )
        resumed = run_gan(gan=first, epochs=2, fit_kwargs={"initial_epoch": 1})
    else:
        x, _ = validation_data()
        np.testing.assert_array_equal(last.predict(x, verbose=0), got.model.predict(x, verbose=0))
        if got.results:
            x_val, y_val = validation_data()
            results = last.evaluate(
                x_val, y_val, batch_size=BATCH_SIZE, verbose=0, return_dict=True
            )
            assert_logs_close(results, got.results, rtol=1e-6)
        resumed = run_functional(name, model=first, epochs=2, fit_kwargs={"initial_epoch": 1})
    assert_weights_close(resumed.weights, expected.extra["epoch_weights"][1], "resumed")
    second_epoch = {key: values[1:2] for key, values in expected.history.items()}
    assert_logs_close(resumed.history, second_epoch)


@pytest.mark.parametrize("name", ALL_SPECS)
def test_tensorboard_writes_the_history(name, callback_runs):
    """TensorBoard(log_dir=tmp) writes event files whose ``epoch_<metric>`` scalars
    (train/ and, for val_ metrics, validation/) equal the History, epoch by epoch,
    within rtol=1e-6. For the GAN no ``epoch_learning_rate``: TensorBoard logs
    ``model.optimizer``'s, and the GAN keeps none (before, that of an unused RMSprop)."""
    assert HAS_TENSORBOARD, "keras.callbacks.TensorBoard needs tensorboard: pip install '.[test]'"
    got, _, directory = callback_runs(name)
    train = assert_tensorboard_logged_the_history(directory / "tb", got.history)
    assert ("epoch_learning_rate" in train) == (name != "gan"), sorted(train)


class BatchCounter(keras.callbacks.Callback):
    """Counts training batches and keeps their logs."""

    def __init__(self):
        super().__init__()
        self.logs: list[dict] = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append(dict(logs or {}))


@pytest.mark.parametrize("name", FUNCTIONAL_SPECS)
def test_terminate_on_nan_stops_at_the_nan_batch(name):
    """A NaN feature in sample 20 (the second batch of the first epoch) makes that batch's
    loss NaN; TerminateOnNaN stops training right there: 2 batches of the 12 run, the
    first with a finite loss, the second NaN, one History epoch, ``stop_training`` set."""
    x, _ = regression_data()
    x = x.copy()
    x[20, 0] = np.nan
    counter = BatchCounter()
    got = run(name, x=x, callbacks=[keras.callbacks.TerminateOnNaN(), counter], evaluate=False)
    losses = [logs["loss"] for logs in counter.logs]
    assert len(losses) == 2, losses
    assert np.isfinite(losses[0]) and np.isnan(losses[1])
    assert len(got.history["loss"]) == 1
    assert got.model.stop_training


def nan_images() -> np.ndarray:
    """``image_data()`` with NaN pixels in image 8: the second batch's d_loss is NaN."""
    images = image_data().copy()
    images[8] = np.nan
    return images


def test_terminate_on_nan_does_not_see_the_gans_losses():
    """Pinned Keras behaviour, documented in the README: TerminateOnNaN reads only
    ``logs["loss"]`` and the GAN's step reports ``d_loss`` and ``g_loss`` (a ``loss`` key
    added for it would change the GAN's History and progress bar), so NaN losses do not
    stop it: over 2 epochs all 6 batches run, the second with a NaN d_loss, and
    ``stop_training`` stays False. Should Keras come to watch other keys, this fails and
    the README's workaround (next test) can go."""
    counter = BatchCounter()
    got = run_gan(
        images=nan_images(), epochs=2, callbacks=[keras.callbacks.TerminateOnNaN(), counter]
    )
    assert "loss" not in counter.logs[0]
    assert np.isfinite(counter.logs[0]["d_loss"]) and np.isnan(counter.logs[1]["d_loss"])
    assert len(counter.logs) == 2 * GAN_STEPS_PER_EPOCH
    assert not got.model.stop_training


def test_readme_terminate_on_nan_workaround_stops_the_gan():
    """The README's workaround, run as written there: its ``TerminateOnNaNLosses``
    callback (watching d_loss and g_loss) stops the GAN right after the NaN batch, as
    TerminateOnNaN stops the functional specs: 2 of the 6 batches of 2 epochs run, the
    first finite, the second NaN; one History epoch; ``stop_training`` set."""
    namespace: dict = {}
    exec(readme_python_block("class TerminateOnNaNLosses"), namespace)
    counter = BatchCounter()
    got = run_gan(
        images=nan_images(), epochs=2, callbacks=[namespace["TerminateOnNaNLosses"](), counter]
    )
    losses = [logs["d_loss"] for logs in counter.logs]
    assert len(losses) == 2, losses
    assert np.isfinite(losses[0]) and np.isnan(losses[1])
    assert len(got.history["d_loss"]) == 1
    assert got.model.stop_training


LEARNING_RATE_CALLBACKS = {
    # Keras checks the optimizer first: ValueError, 'must have a "learning_rate" attribute'.
    "LearningRateScheduler": (
        lambda: keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate / 2),
        ValueError,
        "learning_rate",
    ),
    # Reads model.optimizer.learning_rate at the first epoch's end.
    "ReduceLROnPlateau": (
        lambda: keras.callbacks.ReduceLROnPlateau(monitor="d_loss", mode="min"),
        AttributeError,
        "'NoneType' object has no attribute 'learning_rate'",
    ),
}


@pytest.mark.parametrize("callback", sorted(LEARNING_RATE_CALLBACKS))
def test_learning_rate_callbacks_fail_on_the_gan(callback):
    """Pinned: Keras's learning-rate callbacks act on ``model.optimizer``, which a model
    with its own compile() leaves None (its step applies the spec's optimizers), so on
    the GAN they fail at their first epoch hook instead of, as before, quietly
    scheduling an unused default RMSprop (ReduceLROnPlateau even logged its rate). The
    README says to give the spec's optimizers a learning-rate schedule instead."""
    make, error, message = LEARNING_RATE_CALLBACKS[callback]
    gan = fresh_gan(generated_class("gan"))
    compile_gan(gan)
    assert gan.optimizer is None
    with pytest.raises(error, match=re.escape(message)):
        run_gan(gan=gan, epochs=1, callbacks=[make()])


# 4. BackupAndRestore and saved state ------------------------------------------------------


def interrupt_then_resume(name: str, backup_dir: Path) -> Run:
    """An Adam run interrupted after batch 1 of epoch index 1 (the second epoch), then a
    new model (as in a new process) resumed by BackupAndRestore from the same folder."""
    with pytest.raises(Interrupted):
        adam_run(name, callbacks=[keras.callbacks.BackupAndRestore(backup_dir), InterruptAt(1, 1)])
    assert (backup_dir / "training_metadata.json").exists()
    return adam_run(name, callbacks=[keras.callbacks.BackupAndRestore(backup_dir)])


@pytest.mark.parametrize("name", FUNCTIONAL_SPECS)
def test_backup_and_restore_resumes_to_the_uninterrupted_weights(name, tmp_path):
    """Interrupted in epoch 2, resumed in a fresh model: it redoes epochs 2 and 3 and
    ends with the uninterrupted run's weights (rtol=1e-5/atol=1e-6), History for those
    epochs and evaluate() (rtol=1e-5)."""
    resumed = interrupt_then_resume(name, tmp_path / "backup")
    expected = baseline(name, "adam")
    later_epochs = {key: values[1:] for key, values in expected.history.items()}
    assert_weights_close(resumed.weights, expected.weights, "resumed")
    assert_logs_close(resumed.history, later_epochs)
    assert_logs_close(resumed.results, expected.results)


def test_backup_and_restore_resumes_the_gan(tmp_path):
    """As for the functional specs: interrupted in epoch 2, resumed in a fresh GAN, it
    ends with the uninterrupted run's weights (rtol=1e-5/atol=1e-6), the same seed state
    (exactly) and History for the redone epochs (rtol=1e-5). It needs both optimizers'
    state (see ``test_backup_and_restore_restores_gan_optimizers_into_a_fresh_gan``) and
    the seed generator's (the generated save_own_variables): without it the resumed GAN
    drew the noise of epoch 1 again and its weights differed by ~1e-2."""
    resumed = interrupt_then_resume("gan", tmp_path / "backup")
    expected = baseline("gan")
    later_epochs = {key: values[1:] for key, values in expected.history.items()}
    np.testing.assert_array_equal(resumed.weights[-1], expected.weights[-1])
    assert_weights_close(resumed.weights, expected.weights, "resumed")
    assert_logs_close(resumed.history, later_epochs)


def test_backup_and_restore_restores_gan_optimizers_into_a_fresh_gan(tmp_path):
    """After one epoch with BackupAndRestore(delete_checkpoint=False), a fresh compiled
    GAN given the same callback's on_train_begin() holds both optimizers' saved
    variables (equal). BackupAndRestore builds only ``model.optimizer`` before loading:
    this needs the generated compile() to build d_optimizer and g_optimizer (before it
    did, Keras warned "Skipping variable loading for optimizer" and Adam's state was lost).
    And no such warning at all: ``model.optimizer`` is None (before, Keras's unused
    default RMSprop was built here and warned that the saved one had 2 variables, not 20).
    """
    backup = tmp_path / "backup"
    trained = run_gan(
        epochs=1, callbacks=[keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False)]
    )
    fresh = fresh_gan(generated_class("gan"))
    compile_gan(fresh)
    assert fresh.optimizer is None and trained.model.optimizer is None
    callback = keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False)
    callback.set_model(fresh)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callback.on_train_begin()
    assert not [str(w.message) for w in caught if "Skipping variable" in str(w.message)]
    for optimizer in ("d_optimizer", "g_optimizer"):
        saved = getattr(trained.model, optimizer).variables
        loaded = getattr(fresh, optimizer).variables
        assert len(loaded) == len(saved), f"{optimizer}: {len(loaded)} vs {len(saved)}"
        for a, b in zip(saved, loaded, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_gan_weights_file_keeps_seed_generator_state(tmp_path):
    """save_weights/load_weights round trip of a GAN whose seed generator has drawn once:
    the loaded GAN's seed state equals the saved one (keras.random.SeedGenerator is no
    KerasSaveable, so Keras alone saves it nowhere; the generated save_own_variables
    does), and it differs from a fresh GAN's, so the test can tell."""
    gan = fresh_gan(generated_class("gan"))
    keras.random.normal((1,), seed=gan.seed_generator)
    gan.save_weights(tmp_path / "gan.weights.h5")
    loaded = fresh_gan(generated_class("gan"))
    fresh_state = loaded.seed_generator.state.numpy()
    loaded.load_weights(tmp_path / "gan.weights.h5")
    np.testing.assert_array_equal(loaded.seed_generator.state.numpy(), gan.seed_generator.state)
    assert not np.array_equal(fresh_state, gan.seed_generator.state.numpy())


def test_gan_loads_files_saved_without_the_seed_state(tmp_path, monkeypatch):
    """Files written as before the generated class saved its seed state (Keras's own
    save_own_variables, patched back in while saving) and kept Keras's default RMSprop
    as model.optimizer still load, without error: a weights file into a fresh GAN and a
    .keras file with load_model. Every weight and both optimizers' variables load
    (equal), the seed state stays the loading GAN's fresh one (counter 0), and
    load_model compiles with the arguments given to Keras's compile() (the RMSprop)."""
    cls = generated_class("gan")
    gan = fresh_gan(cls)
    compile_gan(gan, optimizer="rmsprop")  # What the generated compile() did by default.
    run_gan(gan=gan, epochs=1)
    with monkeypatch.context() as patch:
        patch.setattr(cls, "save_own_variables", keras.Model.save_own_variables)
        gan.save_weights(tmp_path / "old.weights.h5")
        gan.save(tmp_path / "old.keras")
    fresh = fresh_gan(cls)
    fresh_state = fresh.seed_generator.state.numpy()
    fresh.load_weights(tmp_path / "old.weights.h5")
    loaded = keras.models.load_model(tmp_path / "old.keras")
    # Keras's own compile() arguments are kept (get_compile_config): an RMSprop again.
    assert type(loaded) is cls and isinstance(loaded.optimizer, keras.optimizers.RMSprop)
    np.testing.assert_array_equal(fresh.seed_generator.state.numpy(), fresh_state)
    assert int(loaded.seed_generator.state.numpy()[1]) == 0
    assert int(gan.seed_generator.state.numpy()[1]) > 0
    for restored in (fresh, loaded):
        assert_weights_close(
            gan_state(restored)[:-1], gan_state(gan)[:-1], "weights", rtol=0, atol=0
        )
    for optimizer in ("d_optimizer", "g_optimizer"):
        for a, b in zip(
            getattr(gan, optimizer).variables, getattr(loaded, optimizer).variables, strict=True
        ):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


# 5. Tracing -------------------------------------------------------------------------------


# Traces of the first 3-epoch fit: one per input signature (every batch, the partial last
# one included, has the signature (None, 6) -> tf.data leaves the batch dimension
# unknown), plus one when the first trace creates variables (tf.function then traces
# again without variable creation): compile()'s loss and metrics are built on first use
# (basic, weighted, evaluate). lowlevel's trackers exist from __init__ and SGD has no
# slots; the GAN's trackers exist from __init__ and its compile() builds both optimizers.
FIRST_FIT_TRACES = {"basic": 2, "lowlevel": 1, "weighted": 2, "evaluate": 2, "gan": 1}


@pytest.mark.parametrize("name", ALL_SPECS)
def test_train_step_traced_once_per_input_signature(name):
    """Trace counts over fits (SGD; GAN: SGD + Adam): the first 3-epoch fit traces
    ``FIRST_FIT_TRACES[name]`` times (no trace per epoch), a second fit adds none; for
    weighted.step a fit with sample_weight (a new signature) adds exactly one and a
    second such fit none; test_step (lowlevel's derived one, evaluate's own) is traced once
    for 3 epochs of validation plus evaluate(). basic.step's count equals Keras's default
    train_step's, counted the same way."""
    cls, counts = counting(generated_class(name))
    if name == "gan":
        gan = fresh_gan(cls)
        compile_gan(gan)
        run_gan(gan=gan, epochs=3)
        assert counts["train"] == FIRST_FIT_TRACES[name]
        run_gan(gan=gan, epochs=1)
        assert counts["train"] == FIRST_FIT_TRACES[name]
        return
    model = build_functional(cls)
    model.compile(optimizer=make_optimizer("sgd"), **COMPILE_KWARGS[name])
    has_test_step = name in ("lowlevel", "evaluate")
    run_functional(name, model=model, weighting="none", validation=has_test_step)
    assert counts["train"] == FIRST_FIT_TRACES[name]
    run_functional(name, model=model, weighting="none", epochs=1, evaluate=False)
    assert counts["train"] == FIRST_FIT_TRACES[name]
    if has_test_step:
        assert counts["test"] == 1
    if name == "weighted":
        for _ in range(2):
            run_functional(name, model=model, epochs=1, evaluate=False)
            assert counts["train"] == FIRST_FIT_TRACES[name] + 1
    if name == "basic":
        default, default_counts = counting(keras.Model)
        model = build_functional(default)
        model.compile(optimizer=make_optimizer("sgd"), **COMPILE_KWARGS[name])
        run_functional(name, model=model, evaluate=False)
        assert default_counts["train"] == counts["train"]


# 6. Optimizer options ---------------------------------------------------------------------


OPTIMIZER_OPTIONS = {
    "clipnorm": {"clipnorm": 0.1},
    "global_clipnorm": {"global_clipnorm": 0.1},
    "gradient_accumulation_steps": {"gradient_accumulation_steps": 2},
    "use_ema": {"use_ema": True, "ema_momentum": 0.5},
}


@pytest.mark.parametrize(
    ("name", "option"),
    [
        (name, option)
        for name in ("basic", "lowlevel", "weighted", "gan")
        for option in sorted(OPTIMIZER_OPTIONS)
        # The GAN's compile() refuses use_ema: test_gan_compile_refuses_use_ema.
        if not (name == "gan" and option == "use_ema")
    ],
)
def test_optimizer_option_passes_through(name, option):
    """One epoch with the optimizer option (SGD; GAN: on both SGD and Adam) vs the
    reference with the same option (basic: Keras's default train_step): weights (GAN:
    and seed state) within rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5.
    The option must matter: the weights differ by more than 1e-3 from the run without
    it; with use_ema (on Keras's own compile(optimizer=...)), the model ends with the
    optimizer's moving averages (fit() swaps them in). (evaluate.step has no train
    step: its training is Keras's default.)"""
    options = OPTIMIZER_OPTIONS[option]
    kind = "keras" if name == "basic" else "reference"
    got = run(name, optimizer_options=options, epochs=1)
    want = run(name, kind, optimizer_options=options, epochs=1)
    assert_runs_close(got, want, f"{option}: generated vs {kind}")
    without = baseline(name).extra["epoch_weights"][0]
    assert max_abs_diff(got.weights, without) > 1e-3, "the option changed nothing"
    if option == "use_ema":
        averages = got.model.optimizer._model_variables_moving_average
        for variable, average in zip(got.model.trainable_variables, averages, strict=True):
            np.testing.assert_allclose(variable.numpy(), average.numpy(), rtol=1e-6)


@pytest.mark.parametrize("which", ["d_optimizer", "g_optimizer"])
@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "loss_scaled"])
def test_gan_compile_refuses_use_ema(which, wrapped):
    """use_ema=True on one of the spec's own optimizers (also inside a
    LossScaleOptimizer) cannot work: fit() swaps the moving averages into the weights
    only for model.optimizer (finalize_variable_values), so the GAN would end with its
    raw weights, silently. The generated compile() raises a ValueError naming the spec
    line (gan.step:6, the compile() declaration) and the parameter. Keras's
    own ``optimizer`` (through compile()'s **kwargs) may still use it."""
    optimizers = {"d_optimizer": make_optimizer("sgd"), "g_optimizer": make_optimizer("adam")}
    averaging = make_optimizer("sgd", **OPTIMIZER_OPTIONS["use_ema"])
    if wrapped:
        averaging = keras.optimizers.LossScaleOptimizer(averaging)
    optimizers[which] = averaging
    gan = fresh_gan(generated_class("gan"))
    with pytest.raises(ValueError, match=rf"^gan\.step:6: {which} has use_ema=True, but fit"):
        compile_gan(gan, **optimizers)
    compile_gan(gan, optimizer=make_optimizer("sgd", use_ema=True))
    assert gan.optimizer.use_ema
