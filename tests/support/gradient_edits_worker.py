"""Subprocess worker for ``test_gradient_edits_runtime.py``.

    python tests/support/gradient_edits_worker.py mirrored   # TF: one device, then 2 CPUs
    KERAS_BACKEND=jax python tests/support/gradient_edits_worker.py backend [jit]

Prints one line ``RESULT <json>``: the trained embedding table of each run. A backend
is fixed when Keras is first imported, and logical devices before TensorFlow starts,
so each needs its own process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

RESULT_PREFIX = "RESULT "


def mirrored() -> dict:
    """The spec on one device, then under MirroredStrategy over 2 logical CPUs (each
    replica gets half of every batch of 8)."""
    import tensorflow as tf

    from tests.support.distribution_worker import configure_logical_cpus

    configure_logical_cpus(2)
    from tests.support import gradient_edits as case

    single = case.generated_weights()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = case.compiled_module().RowEdit(case.encoder(), keep_row=case.KEEP)
        model.compile(optimizer=case.keras.optimizers.SGD(case.LEARNING_RATE))
    model.fit(case.X, case.Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    table = model.encoder.trainable_variables[0].numpy()
    return {"single": single.tolist(), "mirrored": table.tolist()}


def backend(jit: bool) -> dict:
    from tests.support import gradient_edits as case

    normed = case.normed_weights(jit_compile=jit)
    before, after = case.heads_weights()
    return {
        "second_head_moved": [
            float(abs(a - b).max()) for a, b in zip(before[2:], after[2:], strict=True)
        ],
        "weights": case.generated_weights(jit_compile=jit).tolist(),
        **{f"normed_{i}": w.tolist() for i, w in enumerate(normed)},
    }


def main(argv: list[str]) -> int:
    results = mirrored() if argv[1] == "mirrored" else backend("jit" in argv[2:])
    sys.stdout.write(RESULT_PREFIX + json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
