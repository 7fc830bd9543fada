"""The generated models under distribution strategies (issue #4), in subprocesses.

Logical devices must be configured before TensorFlow initializes its devices, and a
``MultiWorkerMirroredStrategy`` joins a cluster once per process, so every distributed
run happens in ``support/distribution_worker.py``, started by ``conftest.py`` when the session
starts (``support/workers.py``); each test here awaits its worker's results and compares a case's
distributed run with the same case run on one device by the same worker.

* ``MirroredStrategy`` over 2 logical CPUs: the five seed specs, the three later specs
  (WGAN-GP, VAE, adversarial training), per-target clipping and a gradient with respect
  to a model;
* ``MultiWorkerMirroredStrategy``, two worker processes on 127.0.0.1: basic.step and the
  GAN.

Tolerance: every weight within rtol=1e-5/atol=1e-6 (``support/compare.py``'s) and every
History value, batch log and ``evaluate()`` result within rtol=1e-5. Most agree bit for
bit; the largest difference measured is 1.2e-7 (float32 rounding of the all-reduced sums).
A loss scaled for distribution twice or not at all would be off by a factor of 2.
"""

from __future__ import annotations

import pytest

from tests.support.compare import ATOL, assert_batch_logs_close, assert_runs_close
from tests.support.distribution_worker import CONSTRUCT_CASES
from tests.support.fit import FUNCTIONAL_SPECS, Run
from tests.support.specs_later import LATER_SPECS


def worker_run(results: dict, case: str) -> Run:
    """One case of a worker's results; a case that raised fails the test."""
    data = results[case]
    if "error" in data:
        pytest.fail(f"{case}: {data['error']}: {data['message']}\n{data['traceback']}")
    return Run.from_json(data)


def assert_batches_close(actual: Run, expected: Run, skip: tuple[str, ...] = ()) -> None:
    """Every training batch's logs (but the ``skip`` keys) within rtol=1e-5, atol=1e-6."""
    got, want = actual.extra["batch_logs"], expected.extra["batch_logs"]
    assert_batch_logs_close(got, want, atol=ATOL, skip=skip)


@pytest.mark.parametrize("case", [*FUNCTIONAL_SPECS, "weighted_class_weight"])
def test_mirrored_matches_single_device(case, distribution_workers):
    """MirroredStrategy over 2 logical CPUs vs one device, in a subprocess: 48 samples in
    global batches of 16 (8 per replica), 3 epochs of SGD, with validation data, a
    synchronized BatchNormalization (so both compute the same function). The reported
    loss and metrics (History per epoch, val_ metrics, every batch's logs, evaluate()
    where stepc generates the test step) within rtol=1e-5 and every weight within
    rtol=1e-5/atol=1e-6 (measured: 1.2e-7). ``weighted_class_weight``: weighted.step with
    class_weight and a sigmoid output.

    Per-batch logs are Keras's mean over replicas of each replica's own metric results:
    for the sample-weighted ``weighted_mae`` that is not the global weighted mean (for
    Keras's own train_step too), so that key's batch logs are compared, in
    ``test_mirrored_weighted_batch_logs_equal_keras_default``, with Keras's default step
    under the same strategy instead; its epoch values (synced metrics) are compared here.
    """
    results = distribution_workers["mirrored"].results()[0]
    single = worker_run(results, f"{case}/single")
    mirrored = worker_run(results, f"{case}/mirrored")
    assert_runs_close(mirrored, single, "mirrored vs single")
    assert_batches_close(mirrored, single, skip=("weighted_mae",))


def test_mirrored_weighted_batch_logs_equal_keras_default(distribution_workers):
    """weighted.step under MirroredStrategy vs a plain keras.Model (Keras's default
    train_step) under the same strategy, with sample weights: every batch's logs,
    ``weighted_mae`` included, History and weights within rtol=1e-5/atol=1e-6."""
    results = distribution_workers["mirrored"].results()[0]
    generated = worker_run(results, "weighted/mirrored")
    default = worker_run(results, "weighted/mirrored_keras_default")
    assert_runs_close(generated, default, "generated vs Keras default")
    assert_batches_close(generated, default)


def test_mirrored_gan_matches_single_device(distribution_workers):
    """The GAN under MirroredStrategy (2 replicas), compiled as a user would, vs one device.

    Every replica draws the same noise from the seed generator (keras3-facts 15), so the
    mirrored run gets each single-device batch once per replica (global batch 16, each
    replica sees the single-device batch of 8): each replica then computes the
    single-device step exactly, and if each loss is scaled for distribution once, the
    all-reduced gradients are the single-device ones. Weights and seed state within
    rtol=1e-5/atol=1e-6 (measured: equal), d_loss/g_loss per epoch and per batch within
    rtol=1e-5 (a loss reported unscaled would be half: keras3-facts 9). Before the
    generated compile() built both optimizers, Adam created its slots inside the
    replicated step and fit() failed ("You must feed a value for placeholder tensor").
    """
    results = distribution_workers["mirrored"].results()[0]
    data = results["gan/mirrored"]
    assert "error" not in data, f"{data['error']}: {data['message'][:400]}"
    single = worker_run(results, "gan/single")
    mirrored = Run.from_json(data)
    assert_runs_close(mirrored, single, "mirrored GAN vs single")
    assert_batches_close(mirrored, single)


@pytest.mark.parametrize("case", ["basic", "gan"])
def test_multiworker_matches_single_process(case, distribution_workers):
    """MultiWorkerMirroredStrategy, two worker processes on 127.0.0.1 (TF_CONFIG, ports
    picked free at run time), one replica each, vs the single-device run of the mirrored
    worker: basic.step as in ``test_mirrored_matches_single_device``, the GAN as in
    ``test_mirrored_gan_matches_single_device`` (batches repeated per replica). Both
    workers' weights within
    rtol=1e-5/atol=1e-6, History, per-batch logs and evaluate() within rtol=1e-5.

    Keras 3.15's fit() fails under this strategy for every model (keras.Model's own
    train_step too) in two reductions outside the step; the worker patches
    ``strategy.reduce`` for those (see ``patch_multiworker_reduce``); the steps run
    unchanged."""
    workers = distribution_workers["multiworker"].results()
    single_results = distribution_workers["mirrored"].results()[0]
    single = worker_run(single_results, f"{case}/single")
    assert len(workers) == 2
    for index, results in enumerate(workers):
        got = worker_run(results, f"{case}/multiworker")
        assert_runs_close(got, single, f"worker {index} vs single")
        assert_batches_close(got, single)


@pytest.mark.parametrize("name", LATER_SPECS)
def test_mirrored_later_spec_matches_single_device(name, distribution_workers):
    """The WGAN-GP, VAE and adversarial specs under MirroredStrategy (2 replicas) vs one
    device, SGD for every optimizer (Adam would hide a gradient scaled by a constant),
    2 epochs on 12 digits (batches of 8 and 4). Their seed generators give every
    replica the same noise (keras3-facts 15), so, as for the GAN, the mirrored run gets
    each single-device batch once per replica: each replica computes the single-device
    step, and the all-reduced gradients equal the single-device ones only if each loss is
    scaled for distribution exactly once. That covers the nested tape of the WGAN-GP's
    penalty (the gradient of a full ``sum`` with respect to the mixed images, taken per
    replica), its repeat block, the VAE's reparameterized sample and the adversarial
    input gradient. Weights (and seed state), History, every batch's logs and (adversarial)
    evaluate() on 12 validation digits within rtol=1e-5/atol=1e-6 (measured: VAE and
    adversarial equal; WGAN-GP weights 6e-8 apart, batch logs 6.7e-7 relative). With
    Adam for the WGAN-GP's generator, the bias of its Dense layer before BatchNorm (zero
    gradient but for rounding) ended 4e-4 apart: Adam turns rounding noise into full
    steps, which is why every optimizer here is SGD."""
    results = distribution_workers["mirrored"].results()[0]
    single = worker_run(results, f"{name}/single")
    mirrored = worker_run(results, f"{name}/mirrored")
    assert_runs_close(mirrored, single, f"mirrored {name} vs single")
    assert_batches_close(mirrored, single)


@pytest.mark.parametrize("case", CONSTRUCT_CASES)
def test_mirrored_construct_matches_single_device(case, distribution_workers):
    """Two constructs whose generated helpers have a path of their own under a
    strategy, under MirroredStrategy (2 replicas) vs one device, each replica getting
    half of every batch of 8 (no batch statistics, so the same function):

    * ``clip_norm`` / ``clip_global_norm`` / ``clip_value``: ``support/constructs``'
      CLIPPED spec (the encoder's gradients clipped at 0.05, the decoder's not);
      ``_clipped`` all-reduces the replicas' gradients, clips the whole batch's
      gradient and hands each replica its share back. Clipping each replica's share
      instead would clip at twice the threshold.
    * ``model_gradient``: ``support/constructs``' MODEL_GRADIENT,
      ``g = gradient(loss, self)`` and its ``global_norm`` reported;
      ``_sum_over_replicas`` makes it the whole batch's gradient on every replica.
      Each replica's own share would report about half.

    Weights after 2 epochs of SGD within rtol=1e-5/atol=1e-6 (measured: 7.5e-8), History
    and every batch's logs (loss, grad_norm) within rtol=1e-5."""
    results = distribution_workers["mirrored"].results()[0]
    single = worker_run(results, f"{case}/single")
    mirrored = worker_run(results, f"{case}/mirrored")
    assert_runs_close(mirrored, single, f"mirrored {case} vs single")
    assert_batches_close(mirrored, single)
