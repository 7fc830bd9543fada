"""The three self-supervised published specs against hand-written Keras 3 references:
``specs/simclr.step`` (SimCLR with a linear probe), ``specs/metric_learning.step``
(metric learning with an einsum similarity) and ``specs/scan.step`` (SCAN clustering),
each from a keras.io example (the references' docstrings say which and how they are
written).

Runs are made by ``tests/support/specs_self_supervised.py``: the same initial weights, data,
seeds and optimizers for the generated model and its reference, 2 epochs of ``fit()``
and, where the spec has a test step, validation data and ``evaluate()``. Compared:
every weight the step changes (the sub-models', BatchNormalization statistics included,
and SimCLR's augmenters' seed states) within rtol=1e-5/atol=1e-6, and every History
value and ``evaluate()`` result within rtol=1e-5 (``compare.RTOL``/``ATOL``; the
project's tolerances). The references are checked against numpy on their own, and a
deliberately broken variant of each (``tests/references/broken_published.py``) must fail
the comparison. Then the fit() features: XLA, mixed precision, save and load,
BackupAndRestore and MirroredStrategy over two logical CPUs (a subprocess).

Expected failures (strict: each turns red when fixed): SimCLR's augmenters lose their
noise state when saved (Keras saves no layer's SeedGenerator state), so a loaded or
restored SimCLR draws other noise; metric learning cannot fit() under a strategy (Keras
first calls the Functional model on the whole batch ``x``, the pairs); and stepc takes
SCAN's entropy, a full ``sum`` of a batch mean, as a replica's share under distribution.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.references import broken_published as broken
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
from tests.support.specs_self_supervised import (
    SPECS,
    Setup,
    build_model,
    compile_model,
    initial_state,
    optimizers_of,
    run,
    scan_data,
    spec_class,
    state,
)
from tests.support.workers import case_run, mirrored_subprocess_results

XLA = {"jit_compile": True}
# Constructor and compile() arguments other than the defaults, per spec: each parameter
# with a default must reach the step when given.
NON_DEFAULT = {
    "simclr": Setup(params={"temperature": 0.5}),
    "metric_learning": Setup(compile_kwargs={"temperature": 0.5}),
    "scan": Setup(params={"entropy_weight": 2.0}),
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
    """Finite reports and weights that moved by more than 1e-3 from the start: a run that
    did not train would make every comparison trivial."""
    for key, values in {**got.history, **got.results}.items():
        assert np.all(np.isfinite(values)), f"{key}: {values}"
    start = initial_state(name)
    assert max_abs_diff(got.weights[: len(start)], start) > 1e-3


# 1. The references, against numpy --------------------------------------------------------


def numpy_log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_reference_contrastive_loss_equals_numpy():
    """SimCLRReference's NT-Xent of two random (8, 4) projections equals numpy's float64
    ``(mean CE of rows + mean CE of columns) / 2`` of the normalized similarities over the
    temperature 0.5 (rtol 1e-5), and its c_acc the share of rows and columns whose
    largest logit is the diagonal one."""
    rng = np.random.default_rng(0)
    p1, p2 = (rng.normal(size=(8, 4)).astype("float32") for _ in range(2))
    model = build_model("simclr", "reference", temperature=0.5)
    loss = float(model.contrastive_loss(p1, p2))
    u1, u2 = (p / np.linalg.norm(p.astype("float64"), axis=1, keepdims=True) for p in (p1, p2))
    logits = u1 @ u2.T / 0.5
    diagonal = np.arange(8)
    rows = -numpy_log_softmax(logits)[diagonal, diagonal].mean()
    columns = -numpy_log_softmax(logits.T)[diagonal, diagonal].mean()
    np.testing.assert_allclose(loss, (rows + columns) / 2.0, rtol=1e-5)
    hits = np.concatenate([logits.argmax(axis=1), logits.T.argmax(axis=1)]) == np.tile(diagonal, 2)
    np.testing.assert_allclose(float(model.contrastive_accuracy.result()), hits.mean(), rtol=1e-6)


def test_reference_scan_losses_equal_numpy():
    """SCANReference's total, consistency and entropy terms on the training anchors and
    their neighbours, the clustering model in inference mode, equal numpy's float64 SCAN
    losses of the same model's logits (rtol 1e-5): ``-mean(log(p_a . p_n))`` over anchors
    and neighbours, ``-sum(p log p)`` of the mean assignment, total = consistency - 2 *
    entropy."""
    anchors, neighbours = scan_data()
    model = build_model("scan", "reference", entropy_weight=2.0)
    total, consistency, entropy = model._scan_losses(anchors, neighbours, training=False)
    clustering = model.clustering_model

    def probabilities(x):
        logits = np.asarray(clustering(x, training=False), dtype="float64")
        return np.exp(numpy_log_softmax(logits))

    p_anchor = probabilities(anchors)
    p_neighbour = probabilities(neighbours.reshape(-1, anchors.shape[1])).reshape(12, 3, -1)
    expected_consistency = -np.mean(np.log(np.einsum("bc,bkc->bk", p_anchor, p_neighbour)))
    mean_p = p_anchor.mean(axis=0)
    expected_entropy = -np.sum(mean_p * np.log(mean_p))
    np.testing.assert_allclose(float(consistency), expected_consistency, rtol=1e-5)
    np.testing.assert_allclose(float(entropy), expected_entropy, rtol=1e-5)
    np.testing.assert_allclose(
        float(total), expected_consistency - 2.0 * expected_entropy, rtol=1e-5
    )


def test_reference_metric_learning_loss_equals_numpy():
    """One EmbeddingModelReference step with a learning rate of 0 (weights unchanged:
    checked) reports as ``loss`` numpy's float64 cross-entropy of ``anchors @ positives^T
    / 0.5`` (the embeddings are unit vectors) with the diagonal as labels, rtol 1e-5."""
    from tests.support.specs_self_supervised import anchor_positive_pairs

    pairs = anchor_positive_pairs()[:2]
    model = build_model("metric_learning", "reference")
    compile_model(
        "metric_learning", model, {"optimizer": keras.optimizers.SGD(0.0)}, temperature=0.5
    )
    before = [w.copy() for w in model.get_weights()]
    logs = model.fit(pairs, batch_size=2, shuffle=False, verbose=0).history
    assert_weights_close(model.get_weights(), before, "lr=0", rtol=0, atol=0)
    anchors, positives = (np.asarray(model(p), dtype="float64") for p in pairs)
    np.testing.assert_allclose(np.linalg.norm(anchors, axis=1), 1.0, rtol=1e-5)
    logits = anchors @ positives.T / 0.5
    expected = -np.mean(np.diag(numpy_log_softmax(logits)))
    np.testing.assert_allclose(logs["loss"][0], expected, rtol=1e-5)


# 2. Generated vs reference ---------------------------------------------------------------


CASES = [(name, Setup()) for name in SPECS] + [(name, s) for name, s in NON_DEFAULT.items()]


@pytest.mark.parametrize(
    ("name", "setup"),
    CASES,
    ids=lambda v: (
        str(v)
        if isinstance(v, str)
        else "non_default"
        if v.params or v.compile_kwargs
        else "default"
    ),
)
def test_generated_matches_reference(name, setup):
    """The generated model vs its reference, 2 epochs (SimCLR: contrastive Adam, probe SGD;
    the others Adam), with validation data and evaluate() (SimCLR, SCAN): every weight and
    seed state within rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5; both
    trained (check_trained). With the defaults and with non-default values of the
    temperature (SimCLR's init, metric learning's compile) and SCAN's entropy weight."""
    generated = cached_run(name, setup)
    reference = cached_run(name, reference_of(setup))
    check_trained(name, reference)
    check_trained(name, generated)
    assert_runs_close(generated, reference, "generated vs reference")


BROKEN_VARIANTS = [
    ("simclr", broken.SimCLROneDirection),
    ("simclr", broken.SimCLRProbeTrainsEncoder),
    ("metric_learning", broken.EmbeddingModelWithoutTemperature),
    ("scan", broken.SCANEntropyPenalized),
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


@pytest.mark.parametrize("name", SPECS)
def test_xla_matches_reference_under_xla(name):
    """compile(jit_compile=True): generated vs reference, both under XLA, as in
    test_generated_matches_reference (rtol=1e-5/atol=1e-6 on weights, rtol=1e-5 on
    History and evaluate())."""
    generated = run(name, Setup(compile_kwargs=XLA))
    reference = run(name, Setup("reference", compile_kwargs=XLA))
    assert generated.model.jit_compile is True and reference.model.jit_compile is True
    assert_runs_close(generated, reference, "XLA generated vs reference")


@pytest.mark.parametrize("name", SPECS)
def test_mixed_precision_matches_reference(name):
    """mixed_float16 with the default optimizers handed to compile() (Keras's compile()
    wraps metric learning's and SCAN's in a LossScaleOptimizer; SimCLR's generated
    compile() must wrap both itself, the reference gets them wrapped by the test), vs the
    reference in the same situation: the same applied steps and loss scales, every weight
    within rtol=1e-5/atol=1e-6, History and evaluate() within rtol=1e-5."""
    with mixed_float16():
        generated = run(name)
        reference = run(name, Setup("reference", loss_scale=name == "simclr"))
    assert generated.model.dtype_policy.name == "mixed_float16"
    pairs = zip(
        optimizers_of(name, generated.model), optimizers_of(name, reference.model), strict=True
    )
    for got, want in pairs:
        assert isinstance(got, keras.optimizers.LossScaleOptimizer)
        assert int(got.iterations) == int(want.iterations) > 0
        assert float(got.dynamic_scale) == float(want.dynamic_scale)
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


@pytest.mark.parametrize("name", SPECS)
def test_save_and_load_restores_weights_and_optimizers(name, tmp_path):
    """After one epoch, the loaded model has the original's trained weights
    (BatchNormalization statistics included) and every variable of every optimizer the
    step applies (SimCLR: both), exactly; the augmenters' seed states are the next
    test's."""
    original, loaded = saved_and_loaded(name, tmp_path)
    trained = len(initial_state(name))
    assert_weights_close(
        state(name, loaded)[:trained], state(name, original)[:trained], "loaded", rtol=0, atol=0
    )
    assert_optimizers_equal(optimizers_of(name, loaded), optimizers_of(name, original))


@pytest.mark.parametrize("name", SPECS)
def test_loaded_model_keeps_training_identically(name, tmp_path):
    """The loaded model and the original each train one more epoch: the same seed states
    before, then weights within rtol=1e-5/atol=1e-6, History and evaluate() within
    rtol=1e-5."""
    original, loaded = saved_and_loaded(name, tmp_path)
    assert_weights_close(state(name, loaded), state(name, original), "loaded", rtol=0, atol=0)
    resumed = run(name, model=loaded, epochs=1)
    continued = run(name, model=original, epochs=1)
    assert_runs_close(resumed, continued, "loaded vs original")


@pytest.mark.parametrize("name", SPECS)
def test_backup_and_restore_resumes_to_the_uninterrupted_run(name, tmp_path):
    """Interrupted after the first batch of epoch 2 (BackupAndRestore saved epoch 1), then
    resumed by BackupAndRestore in a fresh model: it redoes epoch 2 and ends with the
    uninterrupted run's weights and seed states (rtol=1e-5/atol=1e-6), epoch 2's History
    and evaluate() (rtol=1e-5)."""
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
    """The cases of ``support/specs_self_supervised.py mirrored``, run in a subprocess (logical
    devices must be configured before TensorFlow starts)."""
    return mirrored_subprocess_results("specs_self_supervised")


KERAS_BUILDS_ON_X = pytest.mark.xfail(
    strict=True,
    raises=pytest.fail.Exception,
    reason="Keras 3.15's fit() under a tf.distribute strategy first builds compile()'s loss "
    "and metrics by calling the Functional model on the batch's x, here the (2, 10, 64) "
    "pairs the step splits: ValueError: Input 0 ... is incompatible with the layer",
)
MIRRORED_MARKS = {
    ("metric_learning", "reference"): [KERAS_BUILDS_ON_X],
    ("metric_learning", "generated"): [KERAS_BUILDS_ON_X],
}
MIRRORED_CASES = [
    pytest.param(name, kind, marks=MIRRORED_MARKS.get((name, kind), []))
    for name in SPECS
    for kind in ("reference", "generated")
]


@pytest.mark.parametrize(("name", "kind"), MIRRORED_CASES)
def test_mirrored_matches_single_device(name, kind, mirrored_results):
    """MirroredStrategy over 2 logical CPUs, each replica given the single-device batch
    (so BatchNormalization's statistics and the augmenters' noise are the single-device
    ones), SGD for every optimizer (a loss scaled for distribution twice or not at all
    would be off by 2): every weight and seed state within rtol=1e-5/atol=1e-6, History,
    evaluate() and every batch's logs within rtol=1e-5 of the single-device run. The
    references pass too, which shows the comparison is a fair one."""
    single = case_run(mirrored_results, f"{name}/{kind}/single")
    mirrored = case_run(mirrored_results, f"{name}/{kind}/mirrored")
    assert_runs_close(mirrored, single, "mirrored vs single")
    batches = zip(mirrored.extra["batch_logs"], single.extra["batch_logs"], strict=True)
    for got, want in batches:
        assert_logs_close(got, want, atol=ATOL)
