"""Subprocess worker for the distribution tests of ``test_fit_features.py``.

    python tests/fit_features_worker.py mirrored      # 2 logical CPUs, MirroredStrategy
    python tests/fit_features_worker.py multiworker   # one worker of TF_CONFIG's cluster

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
    from tests.equivalence import GAN_BATCH_SIZE, image_data
    from tests.fit_features_helpers import (
        FUNCTIONAL_SPECS,
        replicate_batches,
        run_functional,
        run_gan,
    )

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
    return results


def multiworker_cases() -> dict:
    """basic.step and the GAN under MultiWorkerMirroredStrategy.

    Not guarded: a worker that fails exits at once (the other may be waiting in a
    collective operation, and the test kills it when it sees the first one fail).
    """
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    patch_multiworker_reduce(strategy)
    from tests.equivalence import GAN_BATCH_SIZE, image_data
    from tests.fit_features_helpers import replicate_batches, run_functional, run_gan

    doubled = replicate_batches(image_data(), GAN_BATCH_SIZE, 2)
    basic = run_functional(
        "basic", synchronized=True, n_samples=N_SAMPLES, validation=True, strategy=strategy
    )
    gan = run_gan(images=doubled, batch_size=2 * GAN_BATCH_SIZE, strategy=strategy)
    return {"basic/multiworker": basic.to_json(), "gan/multiworker": gan.to_json()}


def main(argv: list[str]) -> int:
    mode = argv[1]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
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
