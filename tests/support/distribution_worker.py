"""Subprocess worker for the distribution tests of ``test_distribution.py``.

    python tests/support/distribution_worker.py mirrored      # 2 logical CPUs, MirroredStrategy
    python tests/support/distribution_worker.py multiworker   # one worker of TF_CONFIG's cluster

Runs every case of its mode and prints one line ``RESULT <json>`` on stdout: for each case
a ``Run.to_json()`` (weights, History, evaluate() results, per-batch logs), or
``{"error": ...}`` for a case that raised. Distribution needs its own process: logical
devices must be configured before TensorFlow initializes its devices, and a
``MultiWorkerMirroredStrategy`` joins a cluster once per process.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402  (before keras: devices are configured first)

RESULT_PREFIX = "RESULT "
N_SAMPLES = 48  # 3 global batches of 16 per epoch: 8 samples per replica, every batch.


def configure_logical_cpus(count: int) -> None:
    """Split the one physical CPU into ``count`` logical devices (before TF uses it)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def patch_multiworker_reduce(strategy) -> None:
    """Work around two Keras 3.15 bugs that break fit() under MultiWorkerMirroredStrategy
    for every model, ``keras.Model`` with its default ``train_step`` included:

    * ``_maybe_symbolic_build`` calls ``strategy.reduce("MEAN", (x, y), axis=None)`` on the
      whole batch tuple, which the collective all-reduce cannot convert to a tensor
      ("Attempt to convert a value (PerReplica:...) with an unsupported type");
    * ``reduce_per_replica`` reduces each scalar log with ``axis=0`` ("Invalid reduction
      dimension 0 for input with 0 dimensions").

    The patch reduces a structure element by element and a scalar across replicas only.
    Neither touches a step: the steps and their scaling run unchanged.
    """
    original = strategy.reduce

    def reduce(reduce_op, value, axis=None):
        def one(v):
            scalar = all(len(t.shape) == 0 for t in strategy.experimental_local_results(v))
            return original(reduce_op, v, axis=None if scalar else axis)

        return tf.nest.map_structure(one, value)

    strategy.reduce = reduce


def guarded(case):
    """Run ``case()``; a failure becomes ``{"error": type, "message": ..., ...}``."""
    try:
        return case().to_json()
    except Exception as error:  # reported to the test, which fails or asserts on it
        return {
            "error": type(error).__name__,
            "message": str(error)[:2000],
            "traceback": traceback.format_exc()[-4000:],
        }


def mirrored_cases() -> dict:
    """Each functional spec and the GAN, single-device and under MirroredStrategy."""
    from tests.support.fit import (
        FUNCTIONAL_SPECS,
        replicate_batches,
        run_functional,
        run_gan,
    )
    from tests.support.models import GAN_BATCH_SIZE, image_data

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    common = {"synchronized": True, "n_samples": N_SAMPLES, "validation": True}
    results = {}
    for name in FUNCTIONAL_SPECS:
        for setting, extra in (("single", {}), ("mirrored", {"strategy": strategy})):
            results[f"{name}/{setting}"] = guarded(
                lambda name=name, extra=extra: run_functional(name, **common, **extra)
            )
    results["weighted/mirrored_keras_default"] = guarded(
        lambda: run_functional("weighted", "keras", **common, strategy=strategy)
    )
    for setting, extra in (("single", {}), ("mirrored", {"strategy": strategy})):
        results[f"weighted_class_weight/{setting}"] = guarded(
            lambda extra=extra: run_functional(
                "weighted", weighting="class_weight", **common, **extra
            )
        )
    doubled = replicate_batches(image_data(), GAN_BATCH_SIZE, 2)
    gan_mirrored = {"images": doubled, "batch_size": 2 * GAN_BATCH_SIZE, "strategy": strategy}
    results["gan/single"] = guarded(lambda: run_gan())
    results["gan/mirrored"] = guarded(lambda: run_gan(**gan_mirrored))
    results.update(later_spec_cases(strategy))
    results.update(construct_cases(strategy))
    return results


def later_spec_cases(strategy) -> dict:
    """The WGAN-GP, VAE and adversarial specs, single-device and mirrored; the mirrored
    run gets each single-device batch once per replica, as the GAN does (their seed
    generators give every replica the same noise, keras3-facts 15)."""
    from tests.support.fit import replicate_batches
    from tests.support.models import DIGITS_BATCH_SIZE, digits_data
    from tests.support.specs_later import LATER_SPECS, run_later

    images, labels = digits_data()
    doubled = {
        "x": replicate_batches(images, DIGITS_BATCH_SIZE, 2),
        "y": replicate_batches(labels, DIGITS_BATCH_SIZE, 2),
        "batch_size": 2 * DIGITS_BATCH_SIZE,
        "strategy": strategy,
    }
    results = {}
    for name in LATER_SPECS:  # SGD everywhere: Adam would hide a gradient scaled twice
        results[f"{name}/single"] = guarded(lambda name=name: run_later(name, optimizer="sgd"))
        results[f"{name}/mirrored"] = guarded(
            lambda name=name: run_later(name, optimizer="sgd", **doubled)
        )
    return results


CONSTRUCT_CASES = ("clip_norm", "clip_global_norm", "clip_value", "model_gradient")


def construct_cases(strategy) -> dict:
    """Per-target clipping and a gradient with respect to a model, single-device and
    mirrored: each replica gets half of every batch (the models have no batch
    statistics, so the mirrored step computes the single-device one)."""
    results = {}
    for case in CONSTRUCT_CASES:
        for setting, on in (("single", None), ("mirrored", strategy)):
            results[f"{case}/{setting}"] = guarded(lambda case=case, on=on: run_construct(case, on))
    return results


def run_construct(case: str, strategy=None):
    """Two epochs of 3 batches of 8 of ``constructs``' CLIPPED spec (``case`` is
    the clipping option, threshold 0.05) or MODEL_GRADIENT spec, as its tests train
    them: SGD, every batch's logs and the final weights."""
    import keras

    from tests.support import constructs as helpers
    from tests.support.fit import Recorder, Run, strategy_scope

    with strategy_scope(strategy):
        if case == "model_gradient":
            module = helpers.compile_spec(helpers.MODEL_GRADIENT, "model_gradient")
            model, y = module.Norm(*helpers.graph(8)), helpers.Y
            model.compile(optimizer=keras.optimizers.SGD(0.1))
        else:
            module = helpers.compile_spec(helpers.CLIPPED.format(kind=case), "clipped")
            model = module.AutoEncoder(*helpers.encoder_decoder(), threshold=0.05)
            model.compile(opt=keras.optimizers.SGD(0.2))
            y = 3.0 * helpers.Y
    recorder = Recorder(lambda m: m.get_weights())
    history = model.fit(
        helpers.X, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[recorder]
    )
    return Run(
        list(model.get_weights()), history.history, {}, None, {"batch_logs": recorder.batch_logs}
    )


def multiworker_cases() -> dict:
    """basic.step and the GAN under MultiWorkerMirroredStrategy.

    Not guarded: a worker that fails exits at once (the other may be waiting in a
    collective operation, and the test kills it when it sees the first one fail).
    """
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    patch_multiworker_reduce(strategy)
    from tests.support.fit import replicate_batches, run_functional, run_gan
    from tests.support.models import GAN_BATCH_SIZE, image_data

    doubled = replicate_batches(image_data(), GAN_BATCH_SIZE, 2)
    basic = run_functional(
        "basic", synchronized=True, n_samples=N_SAMPLES, validation=True, strategy=strategy
    )
    gan = run_gan(images=doubled, batch_size=2 * GAN_BATCH_SIZE, strategy=strategy)
    return {"basic/multiworker": basic.to_json(), "gan/multiworker": gan.to_json()}


def main(argv: list[str]) -> int:
    mode = argv[1]
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    if mode == "mirrored":
        configure_logical_cpus(2)
        results = mirrored_cases()
    elif mode == "multiworker":
        results = multiworker_cases()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    sys.stdout.write(RESULT_PREFIX + json.dumps(results) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
