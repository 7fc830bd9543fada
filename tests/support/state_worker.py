"""Subprocess worker for ``tests/test_state_runtime.py``: state the model keeps, on one backend.

    KERAS_BACKEND=jax python -m tests.support.state_worker OUT_DIR [--mirrored]

Compiles ``STATE_SPEC`` with stepc, trains the generated model on a fixed tiny data set
(SGD, no shuffling) in several ways, and prints one line ``RESULT <json>``: for each run
the states' values and the network's weights after training, plus facts about the
variables (which lists hold the states). ``--mirrored`` (TensorFlow only) runs under a
MirroredStrategy over 2 logical CPUs, which must be configured before TensorFlow starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULT_PREFIX = "RESULT "
STATES = ("step_count", "alpha", "queue", "mean_loss")
BATCH = 4
SAMPLES = 16  # 4 batches an epoch
QUEUE_SIZE = 6
RATE = 0.15  # alpha reaches its upper bound 0.5 after 4 steps: the clip matters
STATE_SPEC = """\
model Tracker:
    init(net: Model, queue_size: int, rate: float)
    state step_count: int = 0
    state alpha: float = 0.0
    state queue: float[queue_size, 2] = 0.0
    state mean_loss: float = 0.0

    train(x, y):
        assign step_count = step_count + 1
        assign alpha = clip(alpha + rate, 0.0, 0.5)
        pred = net(x, training=True)
        # read inside the recording, after its assign: the gradient is scaled by the new alpha
        loss = alpha * mean(square(y - pred))
        minimize loss over net
        # the newest batch first: a value with the batch axis (gathered under a strategy)
        assign queue = concatenate([x, queue], axis=0)[:queue_size]
        # a batch-dependent scalar (averaged over replicas under a strategy)
        assign mean_loss = 0.5 * mean_loss + 0.5 * loss
        return loss=loss, step_count=step_count, alpha=alpha
"""


def compiled_module(directory: Path, text: str = STATE_SPEC):
    """The generated module of `text`, imported from `directory`."""
    from stepc.pipeline import compile_source

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tracker.py"
    path.write_text(compile_source(text, "tracker.step"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"tracker_{directory.name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 2)).astype("float32")
    y = rng.normal(size=(SAMPLES, 1)).astype("float32")
    return x, y


def new_model(module):
    import keras
    import numpy as np

    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    net.set_weights([np.array([[0.5], [-0.25]], "float32"), np.array([0.1], "float32")])
    model = module.Tracker(net=net, queue_size=QUEUE_SIZE, rate=RATE)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    return model


def snapshot(model) -> dict:
    return {
        "states": {name: getattr(model, name).numpy().tolist() for name in STATES},
        "weights": [w.tolist() for w in model.net.get_weights()],
    }


def plain_run(module, epochs: int = 1, jit: bool = False) -> dict:
    import keras

    x, y = data()
    model = new_model(module)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0)
    result = snapshot(model)
    result["logs"] = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    result["variables"] = variable_facts(model)
    return result


def variable_facts(model) -> dict:
    ids = {name: id(getattr(model, name)) for name in STATES}
    optimizer_ids = {id(v) for v in model.optimizer.variables}
    return {
        "non_trainable": sorted(
            n for n, i in ids.items() if i in map(id, model.non_trainable_weights)
        ),
        "trainable": sorted(n for n, i in ids.items() if i in map(id, model.trainable_weights)),
        "in_optimizer": sorted(n for n, i in ids.items() if i in optimizer_ids),
    }


def saved_runs(module, directory: Path) -> dict:
    """One epoch, saved (model file and weights file), restored, and one more epoch."""
    import keras

    x, y = data()
    results = {}
    for kind in ("model", "weights"):
        model = new_model(module)
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        if kind == "model":
            path = directory / "tracker.keras"
            model.save(path)
            restored = keras.saving.load_model(path, custom_objects={"Tracker": module.Tracker})
        else:
            path = directory / "tracker.weights.h5"
            model.save_weights(path)
            restored = new_model(module)
            restored.load_weights(path)
        results[f"{kind}_restored"] = snapshot(restored)
        restored.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        results[f"{kind}_continued"] = snapshot(restored)
    return results


class _Interrupt(Exception):
    pass


def backup_run(module, directory: Path) -> dict:
    """Two epochs, interrupted after batch 1 of epoch 2, resumed by BackupAndRestore."""
    import keras

    class InterruptOnce(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.step_count.numpy() == 6:  # epoch 2, its second batch
                raise _Interrupt()

    x, y = data()
    backup = keras.callbacks.BackupAndRestore(str(directory / "backup"), save_freq="epoch")
    model = new_model(module)
    with contextlib.suppress(_Interrupt):
        model.fit(
            x,
            y,
            batch_size=BATCH,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[backup, InterruptOnce()],
        )
    resumed = new_model(module)
    resumed.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[backup])
    return snapshot(resumed)


def minimize_run(module) -> dict:
    """The states after an optimizer step taken outside the spec (no state moves)."""
    import keras

    model = new_model(module)
    x, y = data()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    before = snapshot(model)["states"]
    optimizer = keras.optimizers.SGD(0.1)
    variables = model.trainable_variables + model.non_trainable_variables
    optimizer.build(model.trainable_variables)
    grads = [keras.ops.ones_like(v.value) for v in model.trainable_variables]
    optimizer.apply(grads, model.trainable_variables)
    return {"before": before, "after": snapshot(model)["states"], "count": len(variables)}


def mirrored_run(module) -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(2)]
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        result = plain_run(module)
    result["replicas"] = strategy.num_replicas_in_sync
    return result


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def wrong_shape_message(directory: Path) -> str:
    """The error a step raises when traced with a new queue of the batch's shape
    (4 rows, not QUEUE_SIZE): the trace-time check names the spec line."""
    text = STATE_SPEC.replace(
        "assign queue = concatenate([x, queue], axis=0)[:queue_size]", "assign queue = x"
    )
    module = compiled_module(directory / "wrong", text)
    x, y = data()
    try:
        new_model(module).fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    except ValueError as error:
        return str(error)
    return ""


def main(argv: list[str]) -> None:
    directory = Path(argv[0])
    directory.mkdir(parents=True, exist_ok=True)
    if "--mirrored" in argv:
        import tensorflow  # noqa: F401  (devices configured before Keras builds anything)

        module = compiled_module(directory)
        print(RESULT_PREFIX + json.dumps({"mirrored": mirrored_run(module)}), flush=True)
        return
    module = compiled_module(directory)
    results = {
        "plain": plain_run(module),
        "two_epochs": plain_run(module, epochs=2),
        # XLA on TensorFlow, jax.jit on JAX (torch.compile is not what is asked of torch)
        "jit": plain_run(module, jit=keras_backend() != "torch"),
        "saved": saved_runs(module, directory),
        "backup": backup_run(module, directory),
        "minimize": minimize_run(module),
        "wrong_shape": wrong_shape_message(directory),
    }
    print(RESULT_PREFIX + json.dumps(results), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(sys.argv[1:])
