"""The two published specs that keep state, against hand-written Keras 3 references:
``specs/adamatch.step`` (AdaMatch: a step counter warming up the target loss weight) and
``specs/nnclr.step`` (NNCLR: a queue of projections, rolled every step, giving each view's
nearest-neighbour positive), each from a keras.io example (the references' docstrings say
which and how they are written).

Runs are made by ``tests/support/specs_state.py``: the same initial weights (NNCLR: the same
initial queue), data, seeds and optimizers for the generated model and its reference,
2 epochs of ``fit()`` (3 batches of 8, 8, 4) with validation data, then ``evaluate()``.
Compared: every weight the step changes (the sub-models', BatchNormalization statistics
included) and every state variable (AdaMatch's int32 counter, exactly, and its seed
state; NNCLR's queue) within rtol=1e-5/atol=1e-6, every History value and ``evaluate()``
result within rtol=1e-5 (``compare.RTOL``/``ATOL``). The references' pieces are checked
against numpy, and deliberately broken variants (``tests/references/broken_state.py``)
must fail the comparison. Then the fit() features, the state included: XLA, mixed
precision, save and load, BackupAndRestore and MirroredStrategy over two logical CPUs (a
subprocess).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.references import broken_state as broken
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
from tests.support.specs_state import (
    QUEUE_SIZE,
    SPECS,
    TOTAL_STEPS,
    WIDTH,
    Setup,
    build_model,
    initial_queue,
    initial_state,
    optimizers_of,
    run,
    spec_class,
    state,
    state_variables,
)
from tests.support.workers import case_run, mirrored_subprocess_results

XLA = {"jit_compile": True}
# Constructor arguments other than the defaults: each must reach the step when given.
NON_DEFAULT = {
    "adamatch": Setup(params={"tau": 0.5, "mu": 2.0, "total_steps": 4}),
    "nnclr": Setup(params={"temperature": 0.5}),
}


def reference_of(setup: Setup) -> Setup:
    """The same setup for the hand-written reference."""
    return dataclasses.replace(setup, kind="reference", cls=None)


@functools.cache
def _default_run(name: str, kind: str) -> Run:
    return run(name, Setup(kind))


def cached_run(name: str, setup: Setup) -> Run:
    """``run(name, setup)``, shared between tests for a default setup (generated or
    reference): never train its model further."""
    if setup in (Setup(), Setup("reference")):
        return _default_run(name, setup.kind)
    return run(name, setup)


def check_trained(name: str, got: Run) -> None:
    """Finite reports, weights that moved by more than 1e-3 from the start, and state
    that moved: AdaMatch counted its 6 steps exactly, NNCLR's queue holds none of its
    initial rows (two full batches rolled it over)."""
    for key, values in {**got.history, **got.results}.items():
        assert np.all(np.isfinite(values)), f"{key}: {values}"
    start = initial_state(name)
    assert max_abs_diff(got.weights[: len(start)], start) > 1e-3
    if name == "adamatch":
        counter = got.weights[len(start)]
        assert counter.dtype == np.int32 and int(counter) == TOTAL_STEPS
    else:
        queue = got.weights[len(start)]
        assert np.abs(queue[:, None, :] - initial_queue()[None, :, :]).sum(-1).min() > 1e-3


# 1. The references, against numpy --------------------------------------------------------


def numpy_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def numpy_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The mean cross-entropy of integer labels with logits, float64."""
    log_p = np.log(numpy_softmax(logits))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def test_reference_adamatch_pseudo_labels_equal_numpy():
    """AdaMatchReference's pseudo-labels of random (8, 10) logits equal numpy's float64
    alignment (target probabilities times the ratio of the source's to the target's
    per-class mean probability, rows summing to 1; rtol 1e-5), and its mask numpy's
    relative threshold (largest aligned probability >= 0.9 times the mean largest source
    probability), which keeps some rows and drops others here."""
    rng = np.random.default_rng(0)
    source, target = (2.0 * rng.normal(size=(8, 10)).astype("float32") for _ in range(2))
    labels, mask = build_model("adamatch", "reference").pseudo_labels(source, target)
    p_source, p_target = numpy_softmax(source.astype("float64")), numpy_softmax(target)
    aligned = p_target * p_source.mean(axis=0) / p_target.mean(axis=0)
    aligned /= aligned.sum(axis=1, keepdims=True)
    expected_mask = aligned.max(axis=1) >= 0.9 * p_source.max(axis=1).mean()
    np.testing.assert_allclose(np.asarray(labels), aligned, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(mask), expected_mask)
    assert 0 < expected_mask.sum() < 8


@pytest.mark.parametrize("step", [0, 1, 3, 4, 9])
def test_reference_adamatch_warmup_equals_numpy(step):
    """The target loss weight at counter value ``step`` (total_steps 4, mu 2) is
    ``2 * (0.5 - cos(min(pi * step / 4, pi)) / 2)`` (rtol 1e-6, atol 1e-7): 0 at the start,
    2 from step 4 on."""
    model = build_model("adamatch", "reference", total_steps=4, mu=2.0)
    model.step.assign(step)
    expected = 2.0 * (0.5 - math.cos(min(math.pi * step / 4, math.pi)) / 2.0)
    np.testing.assert_allclose(float(model.target_weight()), expected, rtol=1e-6, atol=1e-7)


def test_reference_nnclr_loss_equals_numpy():
    """NNCLRReference's loss of random unit (8, 4) projections and its initial queue
    equals numpy's float64: each projection's positive is the queue row of largest dot
    product, and the loss is the mean of the two directions' cross-entropies of
    ``nn_1 @ p_2^T / 0.5`` and ``nn_2 @ p_1^T / 0.5`` with the diagonal as labels
    (rtol 1e-5)."""
    rng = np.random.default_rng(1)
    p1, p2 = (rng.normal(size=(8, WIDTH)) for _ in range(2))
    p1, p2 = (p / np.linalg.norm(p, axis=1, keepdims=True) for p in (p1, p2))
    model = build_model("nnclr", "reference", temperature=0.5)
    loss = float(model.contrastive_loss(p1.astype("float32"), p2.astype("float32")))
    queue = initial_queue().astype("float64")
    nn_1, nn_2 = (queue[np.argmax(p @ queue.T, axis=1)] for p in (p1, p2))
    diagonal = np.arange(8)
    expected = (
        numpy_cross_entropy(nn_1 @ p2.T / 0.5, diagonal)
        + numpy_cross_entropy(nn_2 @ p1.T / 0.5, diagonal)
    ) / 2.0
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


# 2. Generated vs reference ---------------------------------------------------------------


def test_generated_state_is_a_saved_non_trainable_weight():
    """Each generated model's state variables have the declared shape and dtype (int32
    counter starting at 0; a float32 (16, 4) queue whose initial value, before the test
    sets it, is unit rows drawn from the model's seed generator), are among the model's
    non-trainable weights and in none of its trainable variables or optimizer variables
    after compile()."""
    adamatch = build_model("adamatch")
    assert adamatch.step.dtype == "int32" and tuple(adamatch.step.shape) == ()
    assert int(adamatch.step) == 0
    keras.utils.set_random_seed(0)
    nnclr = spec_class("nnclr")(**{**_nnclr_parts(), "width": WIDTH, "queue_size": QUEUE_SIZE})
    queue = np.asarray(nnclr.feature_queue)
    assert queue.dtype == np.float32 and queue.shape == (QUEUE_SIZE, WIDTH)
    np.testing.assert_allclose(np.linalg.norm(queue, axis=1), 1.0, rtol=1e-5)
    assert np.std(queue) > 0.1  # drawn, not a constant
    for name, model in (("adamatch", adamatch), ("nnclr", nnclr)):
        model.compile(**{"optimizer" if name == "adamatch" else "contrastive_optimizer": "sgd"})
        variables = state_variables(name, model)[:1]
        paths = {v.path for v in model.non_trainable_weights}
        assert all(v.path in paths for v in variables)
        trained = {v.path for v in model.trainable_variables}
        optimized = {v.path for o in optimizers_of(name, model) for v in o.variables}
        assert not any(v.path in trained | optimized for v in variables)


def _nnclr_parts() -> dict:
    from tests.support.specs_state import SUB_MODELS

    return {param: builder() for param, builder in SUB_MODELS["nnclr"]}


CASES = [(name, Setup()) for name in SPECS] + list(NON_DEFAULT.items())


@pytest.mark.parametrize(
    ("name", "setup"),
    CASES,
    ids=lambda v: v if isinstance(v, str) else ("non_default" if v.params else "default"),
)
def test_generated_matches_reference(name, setup):
    """The generated model vs its reference, 2 epochs with Adam, validation data and
    evaluate(): every weight and state variable within rtol=1e-5/atol=1e-6 (AdaMatch's
    counter equal), History and evaluate() within rtol=1e-5; both trained and their state
    moved (check_trained). With the defaults and with non-default AdaMatch tau, mu and
    total_steps (the warm-up then saturates) and NNCLR temperature."""
    generated = cached_run(name, setup)
    reference = cached_run(name, reference_of(setup))
    check_trained(name, reference)
    if setup == Setup():
        check_trained(name, generated)
    assert_runs_close(generated, reference, "generated vs reference")


BROKEN_VARIANTS = [
    ("adamatch", broken.AdaMatchCounterNeverMoves),
    ("adamatch", broken.AdaMatchAbsoluteThreshold),
    ("nnclr", broken.NNCLRQueueNeverRolled),
]


@pytest.mark.parametrize(
    ("name", "variant"), BROKEN_VARIANTS, ids=[variant.__name__ for _, variant in BROKEN_VARIANTS]
)
def test_comparison_catches_broken_reference(name, variant):
    """A deliberately wrong variant of a reference, trained in the reference's default
    scenario, fails the comparison the generated model passes, on the weights."""
    with pytest.raises(AssertionError, match=r"weights\["):
        assert_runs_close(
            run(name, Setup(cls=variant)),
            cached_run(name, Setup("reference")),
            "variant vs reference",
        )


# 3. fit() features -----------------------------------------------------------------------


# AdaMatch only: its counter and warm-up are the state XLA must carry; a state queue
# under XLA is in tests/test_state_runtime.py (each XLA run here costs a minute of CI).
@pytest.mark.parametrize("name", ["adamatch"])
def test_xla_matches_reference_under_xla(name):
    """compile(jit_compile=True): generated vs reference, both under XLA, as in
    test_generated_matches_reference (state included)."""
    generated = run(name, Setup(compile_kwargs=XLA))
    reference = run(name, Setup("reference", compile_kwargs=XLA))
    assert generated.model.jit_compile is True and reference.model.jit_compile is True
    assert_runs_close(generated, reference, "XLA generated vs reference")


@pytest.mark.parametrize("name", SPECS)
def test_mixed_precision_matches_reference(name):
    """mixed_float16, the default optimizer handed to compile() (Keras wraps AdaMatch's
    in a LossScaleOptimizer; NNCLR's generated compile() wraps its own, the reference
    gets it wrapped by the test): the same applied steps and loss scales, the state still
    float32 / int32, every weight and state variable within rtol=1e-5/atol=1e-6, History
    and evaluate() within rtol=1e-5 of the reference in the same situation."""
    with mixed_float16():
        generated = run(name)
        reference = run(name, Setup("reference", loss_scale=name == "nnclr"))
    assert generated.model.dtype_policy.name == "mixed_float16"
    pairs = zip(
        optimizers_of(name, generated.model), optimizers_of(name, reference.model), strict=True
    )
    for got, want in pairs:
        assert isinstance(got, keras.optimizers.LossScaleOptimizer)
        assert int(got.iterations) == int(want.iterations) > 0
        assert float(got.dynamic_scale) == float(want.dynamic_scale)
    assert [v.dtype for v in state_variables(name, generated.model)][:1] == [
        "int32" if name == "adamatch" else "float32"
    ]
    assert_runs_close(generated, reference, "mixed generated vs reference")


def saved_and_loaded(name: str, directory: Path) -> tuple[keras.Model, keras.Model]:
    """A generated model trained one epoch, and its model.save(".keras") loaded by
    keras.models.load_model (no custom_objects)."""
    original = run(name, epochs=1).model
    original.save(directory / "model.keras")
    cls = spec_class(name)  # a new class, registered under the saved name: loads as it
    loaded = keras.models.load_model(directory / "model.keras")
    assert type(loaded) is cls
    return original, loaded


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``saved_and_loaded(name, ...)`` made once per spec for the two tests below (the
    first only reads the models; the second trains them further)."""
    made = {}

    def get(name: str) -> tuple[keras.Model, keras.Model]:
        if name not in made:
            made[name] = saved_and_loaded(name, tmp_path_factory.mktemp(name))
        return made[name]

    return get


@pytest.mark.parametrize("name", SPECS)
def test_save_and_load_restores_weights_state_and_optimizers(name, saved, tmp_path):
    """After one epoch, the loaded model has the original's trained weights, its state
    (AdaMatch's counter at 3, NNCLR's rolled queue) and its optimizer's variables, exactly
    (the seed state is the next test's); save_weights/load_weights into a fresh model
    restores the same weights and state."""
    original, loaded = saved(name)
    kept = len(initial_state(name)) + 1  # the weights and the first state variable
    assert_weights_close(state(name, loaded)[:kept], state(name, original)[:kept], rtol=0, atol=0)
    assert_optimizers_equal(optimizers_of(name, loaded), optimizers_of(name, original))
    if name == "adamatch":
        assert int(loaded.step) == 3
    original.save_weights(tmp_path / "model.weights.h5")
    fresh = build_model(name)
    fresh.load_weights(tmp_path / "model.weights.h5")
    assert_weights_close(state(name, fresh)[:kept], state(name, original)[:kept], rtol=0, atol=0)


@pytest.mark.parametrize("name", SPECS)
def test_loaded_model_keeps_training_identically(name, saved):
    """The loaded model and the original each train one more epoch: the same weights and
    state before (the seed state too), then weights and state within
    rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5."""
    original, loaded = saved(name)
    assert_weights_close(state(name, loaded), state(name, original), "loaded", rtol=0, atol=0)
    resumed = run(name, model=loaded, epochs=1)
    continued = run(name, model=original, epochs=1)
    assert_runs_close(resumed, continued, "loaded vs original")


@pytest.mark.parametrize("name", SPECS)
def test_backup_and_restore_resumes_to_the_uninterrupted_run(name, tmp_path):
    """Interrupted after the first batch of epoch 2 (BackupAndRestore saved epoch 1, the
    state included), then resumed by BackupAndRestore in a fresh model: it redoes epoch 2
    and ends with the uninterrupted run's weights and state (rtol=1e-5/atol=1e-6; the
    counter equal), epoch 2's History and evaluate() (rtol=1e-5)."""
    backup = tmp_path / "backup"
    with pytest.raises(Interrupted):
        run(name, callbacks=[keras.callbacks.BackupAndRestore(backup), InterruptAt(1, 0)])
    resumed = run(name, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    expected = cached_run(name, Setup())
    assert_weights_close(resumed.weights, expected.weights, "resumed")
    assert_logs_close(resumed.history, {k: v[1:] for k, v in expected.history.items()})
    assert_logs_close(resumed.results, expected.results)


@pytest.fixture(scope="module")
def mirrored_results() -> dict:
    """The cases of ``support/specs_state.py mirrored``, run in a subprocess (logical
    devices must be configured before TensorFlow starts)."""
    return mirrored_subprocess_results("specs_state")


def assert_mirrored_close(mirrored: Run, expected: Run) -> None:
    """Weights, state, History, evaluate() and every batch's logs as assert_runs_close."""
    assert_runs_close(mirrored, expected, "mirrored")
    batches = zip(mirrored.extra["batch_logs"], expected.extra["batch_logs"], strict=True)
    for got, want in batches:
        assert_logs_close(got, want, atol=ATOL)


@pytest.mark.parametrize("kind", ["reference", "generated"])
def test_mirrored_adamatch_matches_single_device(kind, mirrored_results):
    """AdaMatch under MirroredStrategy over 2 logical CPUs, each replica given the
    single-device batch, SGD: every weight, the counter (incremented once per step, not
    once per replica) and the seed state, History, evaluate() and every batch's logs as
    the single-device run's (rtol=1e-5/atol=1e-6). The reference passes too: the
    comparison is a fair one."""
    single = case_run(mirrored_results, f"adamatch/{kind}/single")
    assert_mirrored_close(case_run(mirrored_results, f"adamatch/{kind}/mirrored"), single)
    assert int(single.weights[len(initial_state("adamatch"))]) == TOTAL_STEPS


def test_mirrored_nnclr_rolls_the_queue_with_the_whole_batch(mirrored_results):
    """NNCLR under MirroredStrategy, each replica given the single-device batch, SGD: the
    generated model matches the reference, which rolls the queue with every replica's
    projections gathered in replica order, on every weight and the queue, History,
    evaluate() and every batch's logs (rtol=1e-5/atol=1e-6); and the queue is not the
    single-device one (twice the rows entered per step), so a per-replica roll would
    show."""
    generated = case_run(mirrored_results, "nnclr/generated/mirrored")
    reference = case_run(mirrored_results, "nnclr/reference/mirrored")
    assert_mirrored_close(generated, reference)
    single = case_run(mirrored_results, "nnclr/generated/single")
    assert max_abs_diff(generated.weights[-1:], single.weights[-1:]) > 1e-3
