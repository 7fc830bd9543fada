"""The models generated from the later specs (WGAN-GP, VAE, adversarial training) under
what ``fit()`` offers, as ``test_fit_features.py`` does for the seed five.

Each test trains a generated model with one ``fit()`` feature and compares it with a run
known to be right: the same generated model without the feature (``steps_per_execution``,
XLA for the adversarial spec, callbacks, saving: the plain run), the float32 run (mixed
precision) or the hand-written reference in ``tests/references/`` under the same feature
(XLA for the specs that draw noise, mixed precision with default loss scaling). Runs start
as ``tests/support/specs_later.py`` describes (same weights, optimizers, seeds, ``shuffle=False``;
12 digits in batches of 8, so every epoch ends on a partial batch of 4), so any
difference comes from the feature.

Tolerances:

* ``compare.RTOL``/``ATOL`` = 1e-5/1e-6 for every weight, History value and
  ``evaluate()`` result when both runs do the same arithmetic (measured: bit for bit,
  except XLA against no XLA for the adversarial spec, 1.8e-7 apart); the seed generator's
  state, and a file against the model it was saved from, exactly;
* mixed precision against float32 (float16 rounding): the relative error of the weight
  updates ``|w16 - w32| / |w32 - w0|`` below ``MIXED_UPDATE_RTOL`` = 0.5% (measured at
  most 0.067%, VAE), History and ``evaluate()`` within ``MIXED_METRIC_RTOL`` = 5e-3
  (measured at most 1.07e-3, WGAN-GP's d_loss). A gradient left scaled by the loss scale
  (128) or of the unscaled loss (1/128 of it) would make the error ~100% or more.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest

from tests.support.compare import (
    assert_logs_close,
    assert_optimizers_equal,
    assert_runs_close,
    assert_weights_close,
    max_abs_diff,
)
from tests.support.fit import Run
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
from tests.support.models import IMAGE_SHAPE, SEED, digits_data, fresh_model
from tests.support.specs_later import (
    LATER_SPECS,
    PARAMETERS,
    SUB_MODELS,
    build_later,
    initial_state,
    later_class,
    later_state,
    make_optimizers,
    optimizers_of,
    run_later,
)

MIXED_UPDATE_RTOL = 5e-3
MIXED_METRIC_RTOL = 5e-3
MIXED_LOSS_SCALE = 128.0  # small enough that no float16 gradient overflows: no step skipped
XLA = {"jit_compile": True}
RANDOM_SPECS = ("wgan_gp", "vae")  # the specs whose step draws noise (a seed generator)
STEPS = {"wgan_gp": (12, 4), "vae": (4,), "adversarial": (4,)}  # per optimizer, 2 epochs


@functools.cache
def baseline(name: str, optimizer: str = "default") -> Run:
    """The generated model trained plainly: 2 epochs, float32, no XLA, no callbacks,
    ``make_optimizers``'s default optimizers (or all SGD). Shared by many tests: never
    train ``baseline(...).model`` further."""
    return run_later(name, optimizer=optimizer)


def assert_seed_state_equal(name: str, actual: Run, expected: Run) -> None:
    """The seed generator's state (last in ``later_state``), exactly, where there is one."""
    if name in RANDOM_SPECS:
        np.testing.assert_array_equal(actual.weights[-1], expected.weights[-1])


def sub_model_outputs(name: str, model: keras.Model) -> list[np.ndarray]:
    """Each sub-model's outputs in inference mode: critic, encoder and classifier on the
    validation digits; generator and decoder on fixed normal noise."""
    images, _ = digits_data("val")
    outputs = []
    for param, _ in SUB_MODELS[name]:
        sub_model = getattr(model, param)
        shape = tuple(sub_model.input_shape[1:])
        rng = np.random.default_rng(0)
        x = images if shape == IMAGE_SHAPE else rng.normal(size=(4, *shape)).astype("float32")
        outputs.extend(np.asarray(y) for y in keras.tree.flatten(sub_model(x, training=False)))
    return outputs


# 1. XLA -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LATER_SPECS)
def test_xla_matches_reference_under_xla(name):
    """compile(jit_compile=True), generated vs the hand-written reference also under XLA
    (default optimizers, 2 epochs): every weight within rtol=1e-5/atol=1e-6, History and
    (adversarial) evaluate() within rtol=1e-5; measured: equal, bit for bit.

    XLA draws other numbers from the same seeds (keras3-facts 15), so for WGAN-GP and the
    VAE a non-XLA run is no reference for the weights; of it only the non-random part is
    compared: the seed generator's state, equal (the same number of draws: 7 per WGAN-GP
    step, 1 per VAE step). Their weights differ from the non-XLA run's by more than 1e-3
    (measured 0.079 and 0.066), which shows that XLA compiled the step.
    """
    generated = run_later(name, compile_kwargs=XLA)
    reference = run_later(name, "reference", compile_kwargs=XLA)
    assert generated.model.jit_compile is True and reference.model.jit_compile is True
    assert_runs_close(generated, reference, "XLA generated vs reference")
    if name in RANDOM_SPECS:
        non_xla = baseline(name)
        assert_seed_state_equal(name, generated, non_xla)
        assert max_abs_diff(generated.weights[:-1], non_xla.weights[:-1]) > 1e-3


def test_xla_adversarial_matches_non_xla():
    """The adversarial step draws nothing: under XLA it must train as without, SGD, 2
    epochs. Every weight within rtol=1e-5/atol=1e-6 (measured: 1.8e-7 at most, a
    BatchNormalization moving variance), History and evaluate() within rtol=1e-5.

    SGD, not Adam: the bias of the Dense layer before BatchNormalization has a true
    gradient of 0 (the normalization removes it), so its gradient is float32 rounding
    noise, which Adam normalizes into full-size steps: with Adam that bias ends 1.0e-3
    apart between XLA and not (and bit for bit equal to the reference under XLA, above).
    """
    xla = run_later("adversarial", optimizer="sgd", compile_kwargs=XLA)
    assert xla.model.jit_compile is True
    assert_runs_close(xla, baseline("adversarial", "sgd"), "XLA vs not")


# 2. Mixed precision ----------------------------------------------------------------------


# (spec, sub-model outputs): "float16" = the builders' sub-models as built under
# mixed_float16, whose outputs the generated step casts to float32 where its own
# arithmetic uses them; "float32" = each output already cast to float32 by a float32 layer
# (Keras's mixed-precision advice), where the generated casts do nothing.
MIXED_CASES = [
    ("adversarial", "float16"),
    ("vae", "float16"),
    ("wgan_gp", "float16"),
    ("vae", "float32"),
    ("wgan_gp", "float32"),
]


def float32_outputs(model: keras.Model) -> keras.Model:
    """``model`` (the same layers and weights) with every output cast to float32."""
    inputs = keras.Input(shape=model.input_shape[1:])
    outputs = keras.tree.map_structure(
        lambda t: keras.layers.Activation("linear", dtype="float32")(t), model(inputs)
    )
    return keras.Model(inputs, outputs, name=model.name)


def mixed_run(
    name: str,
    kind: str = "generated",
    outputs: str = "float16",
    optimizer: str = "default",
    loss_scale: bool | float = False,
) -> Run:
    """``run_later`` under mixed_float16; ``outputs="float32"`` builds the model (as
    ``build_later`` does) on sub-models whose outputs are cast to float32."""
    with mixed_float16():
        if outputs == "float16":
            return run_later(name, kind, optimizer=optimizer, loss_scale=loss_scale)
        sub_models = {param: float32_outputs(fresh_model(b)) for param, b in SUB_MODELS[name]}
        keras.utils.set_random_seed(SEED)
        model = later_class(name, kind)(**sub_models, **PARAMETERS[name])
        model.compile(**make_optimizers(name, optimizer, loss_scale))
        return run_later(name, model=model)


@pytest.mark.parametrize(("name", "outputs"), MIXED_CASES)
def test_mixed_precision_matches_float32(name, outputs):
    """mixed_float16 vs float32, SGD (which shows any wrong gradient scale) for every
    optimizer, each in a LossScaleOptimizer of initial scale 128, small enough that no
    float16 gradient overflows: every step is applied (checked: ``iterations`` = 4, the
    WGAN-GP critic's 12) and the scale stays 128, so float32 is the reference.

    The relative error of the weight updates below 0.5% (measured: adversarial 0.0092%,
    VAE 0.067%, WGAN-GP 0.027%), History and evaluate() within rtol 5e-3 (measured at most
    4.5e-5, 2.6e-4, 1.0e-3; the same with float16 and float32 outputs), the seed
    state equal. Float32-output sub-models give the same
    float32 run (the cast is the identity there). Before stepc cast a model's float16
    output for the step's arithmetic, the float16-output VAE and WGAN-GP failed to trace
    ("Input 'y' of 'Mul' Op has type float32 that does not match type float16").
    """
    mixed = mixed_run(name, outputs=outputs, optimizer="sgd", loss_scale=MIXED_LOSS_SCALE)
    expected = baseline(name, "sgd")
    assert mixed.model.dtype_policy.name == "mixed_float16"
    for optimizer, steps in zip(optimizers_of(name, mixed.model), STEPS[name], strict=True):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert int(optimizer.iterations) == steps, "a step was skipped"
        assert float(optimizer.dynamic_scale) == MIXED_LOSS_SCALE
    start = initial_state(name)
    error = relative_update_error(
        mixed.weights[: len(start)], expected.weights[: len(start)], start
    )
    assert error < MIXED_UPDATE_RTOL, f"weight updates off by {error:.2%}"
    assert_logs_close(mixed.history, expected.history, rtol=MIXED_METRIC_RTOL)
    assert_logs_close(mixed.results, expected.results, rtol=MIXED_METRIC_RTOL)
    assert_seed_state_equal(name, mixed, expected)


@pytest.mark.parametrize(("name", "outputs"), MIXED_CASES)
def test_mixed_precision_default_loss_scaling_matches_reference(name, outputs):
    """mixed_float16 with the default (plain) optimizers handed to compile(): VAE and
    adversarial through Keras's compile(), which wraps them; WGAN-GP's generated compile()
    must wrap both itself (checked: LossScaleOptimizer around the very objects passed).
    With the default initial scale (2**15) the first float16 gradients overflow, so steps
    are skipped and the scale halves (measured: adversarial and VAE 3 of 4 steps applied,
    final scale 16384; WGAN-GP critic 10 of 12 at 8192, generator 4 of 4 at 32768).
    Compared with the reference in the same situation (the WGAN-GP reference gets its
    optimizers wrapped by the test; its compile() does not): every weight within
    rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5 (measured: equal), the
    same applied steps and final scales. With float16 outputs the references cast each
    sub-model output to float32 before their own arithmetic, where the generated step does.
    """
    generated = mixed_run(name, outputs=outputs)
    reference = mixed_run(name, "reference", outputs, loss_scale=name == "wgan_gp")
    if name == "wgan_gp":
        passed = make_optimizers(name)
        with mixed_float16():
            model = build_later(later_class(name), name)
            model.compile(**passed)
        for param, optimizer in passed.items():
            assert getattr(model, param).inner_optimizer is optimizer
    pairs = zip(
        optimizers_of(name, generated.model), optimizers_of(name, reference.model), strict=True
    )
    for got, want in pairs:
        assert isinstance(got, keras.optimizers.LossScaleOptimizer)
        assert int(got.iterations) == int(want.iterations) > 0
        assert float(got.dynamic_scale) == float(want.dynamic_scale)
    assert_runs_close(generated, reference, "mixed generated vs reference")


# 3. steps_per_execution ------------------------------------------------------------------


@pytest.mark.parametrize("name", LATER_SPECS)
def test_steps_per_execution_matches_one(name):
    """compile(steps_per_execution=2): each epoch's two steps (8 digits, then the partial
    batch of 4) in one execution, vs steps_per_execution=1. Every weight within
    rtol=1e-5/atol=1e-6, History and (adversarial: with validation, also run 2 steps per
    execution) evaluate() within rtol=1e-5, the seed state equal; measured: equal."""
    got = run_later(name, compile_kwargs={"steps_per_execution": 2})
    assert got.model.steps_per_execution == 2
    assert_runs_close(got, baseline(name), "steps_per_execution=2")
    assert_seed_state_equal(name, got, baseline(name))


# 4. Saving, loading, BackupAndRestore ----------------------------------------------------


@pytest.mark.parametrize("name", LATER_SPECS)
def test_save_and_load_predicts_and_keeps_training(name, tmp_path):
    """After one epoch, model.save(".keras") and keras.models.load_model (the generated
    classes are registered serializable; no custom_objects) give the generated class with
    the same sub-model outputs on the digits, weights, seed state and every optimizer
    variable (WGAN-GP: both optimizers), exactly. Both then train one more epoch: weights
    within rtol=1e-5/atol=1e-6, History and (adversarial) evaluate() within rtol=1e-5, the
    seed state equal (measured: equal), and 1 + 1 epochs end as the 2-epoch run."""
    original = run_later(name, epochs=1).model
    original.save(tmp_path / "m.keras")
    cls = later_class(name)  # a new class, registered under the saved name: loads as it
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded) is cls
    outputs = zip(sub_model_outputs(name, loaded), sub_model_outputs(name, original), strict=True)
    for got, want in outputs:
        np.testing.assert_array_equal(got, want)
    assert_weights_close(later_state(loaded), later_state(original), "loaded", rtol=0, atol=0)
    assert_optimizers_equal(optimizers_of(name, loaded), optimizers_of(name, original))
    resumed = run_later(name, model=loaded, epochs=1)
    continued = run_later(name, model=original, epochs=1)
    assert_runs_close(resumed, continued, "loaded vs original")
    assert_seed_state_equal(name, resumed, continued)
    assert_weights_close(continued.weights, baseline(name).weights, "1+1")


@pytest.mark.parametrize("name", LATER_SPECS)
def test_backup_and_restore_resumes_to_the_uninterrupted_run(name, tmp_path):
    """Interrupted after the first batch of epoch 2 (BackupAndRestore saved epoch 1),
    then resumed by BackupAndRestore in a fresh model: it redoes epoch 2 and ends with the
    uninterrupted run's weights (rtol=1e-5/atol=1e-6) and seed state (exactly: the noise
    continues where epoch 1 left it), epoch 2's History and (adversarial) evaluate()
    within rtol=1e-5; measured: equal."""
    backup = tmp_path / "backup"
    with pytest.raises(Interrupted):
        run_later(name, callbacks=[keras.callbacks.BackupAndRestore(backup), InterruptAt(1, 0)])
    assert (backup / "training_metadata.json").exists()
    resumed = run_later(name, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    expected = baseline(name)
    assert_seed_state_equal(name, resumed, expected)
    assert_weights_close(resumed.weights, expected.weights, "resumed")
    assert_logs_close(resumed.history, {k: v[1:] for k, v in expected.history.items()})
    assert_logs_close(resumed.results, expected.results)


# 5. Tracing -------------------------------------------------------------------------------


# Traces of the first fit (2 epochs): one per input signature, and every batch, the
# partial last one of 4 digits too, has the same one (tf.data leaves the batch dimension
# unknown: (None, 8, 8, 1) and, adversarial, (None,) labels); plus one more where the
# first trace creates variables (tf.function then traces again without creating them):
# Keras's compile() does not build the VAE's and the adversarial model's Adam, so its
# slots are created in the step; WGAN-GP's generated compile() builds both optimizers.
FIRST_FIT_TRACES = {"wgan_gp": {"train": 1}, "vae": {"train": 2}}
FIRST_FIT_TRACES["adversarial"] = {"train": 2, "test": 1}  # validation and evaluate()


@pytest.mark.parametrize("name", LATER_SPECS)
def test_train_step_traced_once_per_input_signature(name):
    """Trace counts (default optimizers): the first 2-epoch fit (with validation and
    evaluate() for the adversarial spec) traces ``FIRST_FIT_TRACES[name]`` times, not
    once per epoch or for the partial batch; a second fit and a fit in batches of 4 (no
    partial batch, the same signature) add none. The hand-written reference, counted the
    same way, traces as often, but WGAN-GP's twice (its compile() builds no optimizer)."""
    counts = {}
    for kind in ("generated", "reference"):
        cls, counter = counting(later_class(name, kind))
        model = build_later(cls, name)
        model.compile(**make_optimizers(name))
        run_later(name, model=model)
        counts[kind] = dict(counter)
        run_later(name, model=model, epochs=1)
        run_later(name, model=model, epochs=1, batch_size=4)
        assert dict(counter) == counts[kind], f"{kind}: retraced"
    assert counts["generated"] == FIRST_FIT_TRACES[name]
    expected_reference = {"train": 2} if name == "wgan_gp" else FIRST_FIT_TRACES[name]
    assert counts["reference"] == expected_reference


# 6. Callbacks -----------------------------------------------------------------------------


MONITORED = {"wgan_gp": "d_loss", "vae": "loss", "adversarial": "val_loss"}


@pytest.fixture(scope="module")
def callback_runs(tmp_path_factory):
    """Per spec, one run of up to 3 epochs with EarlyStopping, ModelCheckpoint and
    TensorBoard, cached: ``(Run, early_stopping, directory)``.

    EarlyStopping(min_delta=1e9, patience=1) on ``MONITORED[name]`` sees no improvement
    after the first epoch, so it stops after epoch 2. ModelCheckpoint writes
    ``epoch1.keras`` and ``epoch2.keras``; TensorBoard (with the tensorboard package
    installed) writes to ``tb/``.
    """
    cache = {}

    def get(name):
        if name not in cache:
            directory = tmp_path_factory.mktemp(f"callbacks_{name}")
            stopper, callbacks = stopping_checkpointing_logging(directory, MONITORED[name])
            cache[name] = (run_later(name, epochs=3, callbacks=callbacks), stopper, directory)
        return cache[name]

    return get


@pytest.mark.parametrize("name", LATER_SPECS)
def test_early_stopping_stops_and_matches_uninterrupted_run(name, callback_runs):
    """EarlyStopping stops after epoch 2 of 3 (stopped_epoch 1, two History entries);
    the model then equals the plain 2-epoch run after its second epoch (the Recorder's
    epoch_weights): weights within rtol=1e-5/atol=1e-6, seed state exactly, History and
    (adversarial) evaluate() within rtol=1e-5; measured: equal."""
    got, stopper, _ = callback_runs(name)
    expected = baseline(name)
    assert stopper.stopped_epoch == 1
    assert {len(values) for values in got.history.values()} == {2}
    assert_weights_close(got.weights, expected.extra["epoch_weights"][1], "weights")
    assert_seed_state_equal(name, got, expected)
    assert_logs_close(got.history, expected.history)
    assert_logs_close(got.results, expected.results)


@pytest.mark.parametrize("name", LATER_SPECS)
def test_model_checkpoint_loads_and_predicts_the_same(name, callback_runs):
    """ModelCheckpoint(".keras") files load with keras.models.load_model as the generated
    class. The last one (epoch 2) has the trained model's sub-model outputs on the digits,
    weights, seed state and optimizer variables (WGAN-GP: both optimizers), exactly, and
    (adversarial) evaluates the same (rtol 1e-6); the epoch-1 file holds the plain run's
    state after epoch 1 (rtol=1e-5/atol=1e-6, seed state exactly; measured: equal)."""
    got, _, directory = callback_runs(name)
    assert sorted(p.name for p in directory.glob("*.keras")) == ["epoch1.keras", "epoch2.keras"]
    cls = later_class(name)  # a new class, registered under the saved name: loads as it
    last = keras.models.load_model(directory / "epoch2.keras")
    first = keras.models.load_model(directory / "epoch1.keras")
    assert type(last) is cls and type(first) is cls
    outputs = zip(sub_model_outputs(name, last), sub_model_outputs(name, got.model), strict=True)
    for restored, original in outputs:
        np.testing.assert_array_equal(restored, original)
    assert_weights_close(later_state(last), got.weights, "epoch2.keras", rtol=0, atol=0)
    assert_optimizers_equal(optimizers_of(name, last), optimizers_of(name, got.model))
    if got.results:
        x_val, y_val = digits_data("val")
        results = last.evaluate(x_val, y_val, batch_size=8, verbose=0, return_dict=True)
        assert_logs_close(results, got.results, rtol=1e-6)
    after_epoch1 = baseline(name).extra["epoch_weights"][0]
    assert_weights_close(later_state(first), after_epoch1, "epoch1.keras")
    if name in RANDOM_SPECS:
        np.testing.assert_array_equal(later_state(first)[-1], after_epoch1[-1])


@pytest.mark.parametrize("name", LATER_SPECS)
def test_tensorboard_writes_the_history(name, callback_runs):
    """TensorBoard(log_dir=tmp) writes event files whose ``epoch_<metric>`` scalars
    (train/; validation/ for the adversarial spec's val_ metrics) equal the History,
    epoch by epoch, within rtol=1e-6. ``epoch_learning_rate`` only where the model has a
    ``model.optimizer`` (VAE, adversarial): WGAN-GP's step applies its own two."""
    assert HAS_TENSORBOARD, "keras.callbacks.TensorBoard needs tensorboard: pip install '.[test]'"
    got, _, directory = callback_runs(name)
    train = assert_tensorboard_logged_the_history(directory / "tb", got.history)
    assert ("epoch_learning_rate" in train) == (name != "wgan_gp"), sorted(train)


def nan_digits() -> np.ndarray:
    """The training digits with NaN pixels in digit 8: the second batch's losses are NaN."""
    images = digits_data()[0].copy()
    images[8] = np.nan
    return images


@pytest.mark.parametrize("name", ["vae", "adversarial"])
def test_terminate_on_nan_stops_at_the_nan_batch(name):
    """VAE and adversarial training report ``loss``, so Keras's TerminateOnNaN stops them
    at the first NaN batch: of 2 epochs of 2 batches, 2 run, the first with a finite
    loss, the second NaN; one History epoch; ``stop_training`` set."""
    got = run_later(name, x=nan_digits(), callbacks=[keras.callbacks.TerminateOnNaN()])
    losses = [logs["loss"] for logs in got.extra["batch_logs"]]
    assert len(losses) == 2, losses
    assert np.isfinite(losses[0]) and np.isnan(losses[1])
    assert len(got.history["loss"]) == 1
    assert got.model.stop_training


def test_readme_terminate_on_nan_workaround_stops_the_wgan_gp():
    """The WGAN-GP reports ``d_loss``, ``g_loss`` and ``gradient_penalty``, which Keras's
    TerminateOnNaN does not read (as for the GAN); the README's ``TerminateOnNaNLosses``
    stops it at the first NaN batch: 2 of the 4 batches run, the first finite, the
    second NaN; one History epoch; ``stop_training`` set."""
    namespace: dict = {}
    exec(readme_python_block("class TerminateOnNaNLosses"), namespace)
    got = run_later("wgan_gp", x=nan_digits(), callbacks=[namespace["TerminateOnNaNLosses"]()])
    losses = [logs["d_loss"] for logs in got.extra["batch_logs"]]
    assert len(losses) == 2, losses
    assert np.isfinite(losses[0]) and np.isnan(losses[1])
    assert len(got.history["d_loss"]) == 1
    assert got.model.stop_training
