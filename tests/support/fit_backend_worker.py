"""The subprocess behind ``tests/test_fit_features_backends.py``: fit() features on one
Keras backend, and ``.keras`` files moved between backends.

    KERAS_BACKEND=jax python -m tests.support.fit_backend_worker --out DIR --features \
        --save --load tensorflow

Keras fixes its backend when first imported, so each backend runs in its own process
(JAX with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` for DataParallel). It
trains three generated models (``MODELS``: the GAN with two optimizers and random draws,
weighted.step's compiled loss with sample or class weights, the WGAN-GP's nested
gradient), on Dense-only sub-models built after ``keras.utils.set_random_seed(SEED)``,
so every run of one process starts from the same weights and seed state. Each case
(``feature_cases``) writes its numbers, never a verdict: the tests compare them.

``--save`` fits the GAN and weighted.step one epoch (SGD with momentum, drawing
``random_tables``' numbers, the same on every backend), writes
``DIR/<backend>_<model>.keras`` and its state, then fits one more epoch; ``--load B``
loads backend B's files, records the state it finds and fits the same epoch. Results go
to ``DIR/<name>.json`` (``--name``, default the backend): per case a record
(``record``), or ``{"error", "message", "traceback"}`` for a case that raised.
"""

from __future__ import annotations

import argparse
import functools
import json
import linecache
import sys
import time
import traceback
import types
from pathlib import Path

import keras
import numpy as np

from tests.support.models import IMAGE_SHAPE, LATENT_DIM, SEED, SPECS_DIR, dense_graph

BACKEND = keras.backend.backend()
MODELS = ("gan", "weighted", "wgan_gp")
SUB_MODELS = {"gan": ("discriminator", "generator"), "wgan_gp": ("critic", "generator")}
OPTIMIZERS = {"gan": ("d_optimizer", "g_optimizer"), "wgan_gp": ("d_optimizer", "g_optimizer")}
CLASS_NAMES = {"gan": "GAN", "weighted": "CustomModel", "wgan_gp": "WGANGP"}
MONITORED = {"gan": "d_loss", "weighted": "loss", "wgan_gp": "d_loss"}
EPOCHS = 2
BATCH_SIZE = 8
N_SAMPLES = 16  # two full batches an epoch: one traced shape, so JAX compiles once
LOSS_SCALE = 128.0  # small enough that no float16 gradient overflows: no step skipped
CLASS_WEIGHT = {0: 0.5, 1: 3.0}
NAN_SAMPLE = 9  # in the second batch of the first epoch
BINARY = ("class_weight", "explicit")  # 0/1 labels: a sigmoid output, cross-entropy


# Models ----------------------------------------------------------------------------------


def sub_models(name: str) -> dict[str, keras.Model]:
    """The GAN's discriminator (BatchNormalization makes ``training`` observable) or the
    WGAN-GP's critic (none: its penalty is per example), and a generator from
    ``LATENT_DIM`` noise to images in (0, 1)."""
    layers = keras.layers
    normalize = [layers.BatchNormalization()] if name == "gan" else []
    first = [layers.Flatten(), layers.Dense(8), *normalize, layers.LeakyReLU(0.2), layers.Dense(1)]
    second = [layers.Dense(8), layers.BatchNormalization(), layers.LeakyReLU(0.2)]
    second += [layers.Dense(int(np.prod(IMAGE_SHAPE)), "sigmoid"), layers.Reshape(IMAGE_SHAPE)]
    return {
        SUB_MODELS[name][0]: sequential(SUB_MODELS[name][0], IMAGE_SHAPE, first),
        "generator": sequential("generator", (LATENT_DIM,), second),
    }


def sequential(name: str, input_shape: tuple, layers: list) -> keras.Model:
    return keras.Sequential([keras.Input(shape=input_shape), *layers], name=name)


@functools.cache
def generated_class(name: str) -> type:
    """The class stepc generates from ``specs/<name>.step``: the module holding every
    framework's steps, or (while this backend is not yet among them, ``stepc.emit.
    frameworks.ALL``) the module compiled for this backend alone."""
    import stepc
    from stepc.emit.frameworks import ALL

    text = (SPECS_DIR / f"{name}.step").read_text(encoding="utf-8")
    source = stepc.compile_source(text, f"{name}.step", None if BACKEND in ALL else BACKEND)
    # As stepc.load does: importable by name (torch.compile looks the module up) and
    # its lines in linecache (tracebacks show the generated code).
    module = sys.modules[f"stepc_generated.{name}"] = types.ModuleType(f"stepc_generated.{name}")
    filename = f"<stepc {name}.step>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), module.__dict__)
    return getattr(module, CLASS_NAMES[name])


def build(name: str, weighting: str = "sample_weight") -> keras.Model:
    """A fresh model of spec ``name``: the same initial weights and seed state every time
    in one process (``set_random_seed`` before the sub-models and before the model,
    whose seed generator draws its seed there). Class weights go with 0/1 labels: a
    sigmoid output."""
    keras.utils.set_random_seed(SEED)
    cls = generated_class(name)
    if name == "weighted":
        activation = "sigmoid" if weighting in BINARY else None
        return cls(*dense_graph(activation))
    parts = sub_models(name)
    keras.utils.set_random_seed(SEED)
    if name == "gan":
        return cls(**parts, latent_dim=LATENT_DIM)
    return cls(**parts, latent_dim=LATENT_DIM, critic_steps=2, gp_weight=10.0)


def optimizer(kind: str, loss_scale: float | None = None) -> keras.optimizers.Optimizer:
    """SGD (shows any constant scaling of a gradient), SGD with momentum or Adam (both
    have moments to save), behind a LossScaleOptimizer of ``loss_scale`` if given."""
    made = {
        "sgd": lambda: keras.optimizers.SGD(0.05),
        "momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(1e-2),
    }[kind]()
    if loss_scale is None:
        return made
    return keras.optimizers.LossScaleOptimizer(made, initial_scale=loss_scale)


def compile_model(model, name, kind="sgd", *, d_kind="sgd", loss_scale=None, weighting="", **kw):
    """Compile as the TF suite does: the GAN and WGAN-GP get ``d_kind`` for D and
    ``kind`` for G; weighted.step gets ``kind``, mse (binary cross-entropy for 0/1
    labels) and mae as a metric and a weighted metric."""
    if name == "weighted":
        loss = "binary_crossentropy" if weighting in BINARY else "mse"
        metrics = {"metrics": ["mae"], "weighted_metrics": ["mae"]}
        model.compile(optimizer=optimizer(kind, loss_scale), loss=loss, **metrics, **kw)
        return
    optimizers = {
        "d_optimizer": optimizer(d_kind, loss_scale),
        "g_optimizer": optimizer(kind, loss_scale),
    }
    if name == "gan":
        optimizers["loss_fn"] = keras.losses.BinaryCrossentropy(from_logits=True)
    model.compile(**optimizers, **kw)


def data(name: str, weighting: str = "sample_weight") -> tuple[tuple, dict]:
    """``fit``'s arrays and keyword arguments (seeded numpy, no downloads)."""
    rng = np.random.default_rng(SEED)
    if name != "weighted":
        return (rng.uniform(size=(N_SAMPLES, *IMAGE_SHAPE)).astype("float32"),), {}
    x = rng.normal(size=(N_SAMPLES, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1))).astype("float32")
    if weighting == "nan":  # for TerminateOnNaN
        x[NAN_SAMPLE, 0] = np.nan
    if weighting == "class_weight":
        return (x, (y > 0.0).astype("float32")), {"class_weight": CLASS_WEIGHT}
    if weighting == "explicit":  # class_weight's per-sample weights, written out
        labels = (y[:, 0] > 0.0).astype("float32")
        weights = np.where(labels > 0.5, CLASS_WEIGHT[1], CLASS_WEIGHT[0]).astype("float32")
        return (x, labels[:, None]), {"sample_weight": weights}
    return (x, y), {"sample_weight": rng.uniform(0.1, 2.0, size=(N_SAMPLES,)).astype("float32")}


# State -----------------------------------------------------------------------------------


def numpy(value) -> np.ndarray:
    """A variable or tensor of any backend as a numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(value))


def state(model: keras.Model, name: str) -> list[np.ndarray]:
    """Every weight (sub-models in ``SUB_MODELS`` order), then the seed state if any."""
    if name == "weighted":
        return [numpy(v) for v in model.weights]
    weights = [numpy(v) for part in SUB_MODELS[name] for v in getattr(model, part).weights]
    return [*weights, numpy(model.seed_generator.state)]


def optimizer_state(model: keras.Model, name: str) -> dict[str, list]:
    """Each optimizer's variables in order, as ``[name, value]`` (the path's last part:
    its prefix is numbered per process), e.g. iteration, dynamic_scale, moments."""
    return {
        attribute: [
            [v.path.rpartition("/")[2], numpy(v).tolist()]
            for v in getattr(model, attribute).variables
        ]
        for attribute in OPTIMIZERS.get(name, ("optimizer",))
    }


class Recorder(keras.callbacks.Callback):
    """Every training batch's logs."""

    def __init__(self):
        super().__init__()
        self.batch_logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_logs.append({k: float(v) for k, v in (logs or {}).items()})


def fit(model, name, epochs=EPOCHS, callbacks=(), weighting="sample_weight", **fit_kwargs):
    """``fit`` in batches of ``BATCH_SIZE``, ``shuffle=False``, seeded; a ``record``."""
    arrays, kwargs = data(name, weighting)
    recorder = Recorder()
    start = state(model, name)
    keras.utils.set_random_seed(SEED)
    history = model.fit(
        *arrays,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, recorder],
        **{**kwargs, **fit_kwargs},
    )
    return record(model, name, history.history, recorder, start)


def record(model, name, history, recorder=None, start=None) -> dict:
    """What a test compares a run on: plain lists and floats."""
    return {
        "weights": [w.tolist() for w in state(model, name)],
        "start": [w.tolist() for w in start] if start is not None else [],
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "optimizers": optimizer_state(model, name),
        "batch_logs": recorder.batch_logs if recorder else [],
        "jit_compile": bool(model.jit_compile),
        "dtype_policy": model.dtype_policy.name,
    }


# Feature cases ---------------------------------------------------------------------------


def plain(name, kind="sgd", compile_kwargs=None, weighting="sample_weight", **fit_kwargs):
    """A fresh model compiled with ``compile_kwargs`` and fitted."""
    model = build(name, weighting)
    compile_model(model, name, kind, weighting=weighting, **(compile_kwargs or {}))
    return fit(model, name, weighting=weighting, **fit_kwargs)


def mixed(name: str) -> dict:
    """mixed_float16, each optimizer a LossScaleOptimizer around SGD (scale 128)."""
    from tests.support.fit_tools import mixed_float16  # imports TensorFlow: after environment()

    with mixed_float16():
        model = build(name)
        compile_model(model, name, "sgd", loss_scale=LOSS_SCALE)
        return fit(model, name)


def save_and_continue(name: str, directory: Path) -> dict:
    """One epoch (Adam), ``save``, ``load_model``, then epoch 2 on the loaded model."""
    model = build(name)
    compile_model(model, name, "adam")
    fit(model, name, epochs=1)
    path = directory / f"{BACKEND}_{name}_continued.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    result = fit(loaded, name, epochs=EPOCHS, initial_epoch=1)
    result["loaded_class"] = type(loaded).__name__
    return result


def backup_and_restore(name: str, directory: Path) -> dict:
    """An Adam run interrupted after batch 0 of epoch 2, then a fresh model resumed from
    the backup."""
    from tests.support.fit_tools import InterruptAt, Interrupted

    backup = directory / f"{BACKEND}_{name}_backup"
    model = build(name)
    compile_model(model, name, "adam")
    try:
        fit(model, name, callbacks=[keras.callbacks.BackupAndRestore(backup), InterruptAt(1, 0)])
    except Interrupted:
        pass
    else:
        raise AssertionError("the run was not interrupted")
    resumed = build(name)
    compile_model(resumed, name, "adam")
    return fit(resumed, name, callbacks=[keras.callbacks.BackupAndRestore(backup)])


def callbacks(name: str, directory: Path) -> dict:
    """Adam for 4 epochs with ``fit_tools``' callback set: EarlyStopping (no epoch improves
    by 1e9: it stops after epoch 2), ModelCheckpoint every epoch and TensorBoard if
    installed; then the epoch-2 file loaded and its state, and TensorBoard's epoch
    scalars (Keras writes them with tf.summary on every backend)."""
    from tests.support.fit_tools import HAS_TENSORBOARD, read_scalars
    from tests.support.fit_tools import stopping_checkpointing_logging as callback_set

    folder = directory / f"{BACKEND}_{name}_callbacks"
    stopper, watching = callback_set(folder, MONITORED[name])
    model = build(name)
    compile_model(model, name, "adam")
    result = fit(model, name, epochs=4, callbacks=watching)
    result["stopped_epoch"] = stopper.stopped_epoch
    result["checkpoints"] = sorted(p.name for p in folder.glob("*.keras"))
    loaded = keras.models.load_model(folder / "epoch2.keras")
    result["checkpoint_state"] = [w.tolist() for w in state(loaded, name)]
    result["checkpoint_optimizers"] = optimizer_state(loaded, name)
    if HAS_TENSORBOARD:
        result["tensorboard"] = read_scalars(folder / "tb" / "train")
    return result


def terminate_on_nan() -> dict:
    """weighted.step with a NaN feature in the second batch, under TerminateOnNaN."""
    model = build("weighted")
    compile_model(model, "weighted", "sgd")
    result = fit(model, "weighted", callbacks=[keras.callbacks.TerminateOnNaN()], weighting="nan")
    result["stop_training"] = bool(model.stop_training)
    return result


def data_parallel(name: str) -> dict:
    """keras.distribution.DataParallel over 2 CPU devices (JAX only), SGD, Keras's jit."""
    devices = keras.distribution.list_devices("cpu")
    distribution = keras.distribution.DataParallel(devices=devices[:2])
    with distribution.scope():
        result = plain(name)
    result["devices"] = len(devices)
    return result


def feature_cases(directory: Path) -> dict:
    """Every feature case of this backend, by ``model/feature``."""
    cases = {"weighted/terminate_on_nan": terminate_on_nan}
    cases["weighted/class_weight"] = lambda: plain("weighted", weighting="class_weight")
    cases["weighted/explicit_weight"] = lambda: plain("weighted", weighting="explicit")
    for name in MODELS:
        cases.update(model_cases(name, directory))
    return cases


def model_cases(name: str, directory: Path) -> dict:
    """One model's feature cases (``base``: SGD, jit_compile=False)."""
    cases = {
        "base": lambda: plain(name, compile_kwargs={"jit_compile": False}),
        "default": lambda: plain(name),  # Keras's own default jit_compile ("auto")
        "mixed": lambda: mixed(name),
        "steps_per_execution": lambda: plain(name, compile_kwargs={"steps_per_execution": 2}),
        "adam": lambda: plain(name, "adam"),
        "save_load": lambda: save_and_continue(name, directory),
        "backup_and_restore": lambda: backup_and_restore(name, directory),
        "callbacks": lambda: callbacks(name, directory),
    }
    if BACKEND == "jax":
        cases["data_parallel"] = lambda: data_parallel(name)
    return {f"{name}/{feature}": case for feature, case in cases.items()}


# Cross-backend .keras files --------------------------------------------------------------

MOVED = ("gan", "weighted")


def save_cases(directory: Path) -> dict:
    """Per model: one epoch, saved to ``<backend>_<model>.keras``, then one more."""
    return {f"save/{name}": lambda name=name: save_then_fit(name, directory) for name in MOVED}


def save_then_fit(name: str, directory: Path) -> dict:
    """SGD with momentum everywhere: Adam turns float noise on a bias before
    BatchNormalization (no gradient) into full steps, which differ across backends.
    Both epochs draw ``random_tables``' numbers, the same on every backend (inside the
    block from the start: the traced step keeps the draws it was traced with)."""
    from tests.support.random_tables import fixed_tables

    with fixed_tables():
        model = build(name)
        compile_model(model, name, "momentum", d_kind="momentum")
        fit(model, name, epochs=1)
        saved = record(model, name, {})
        model.save(directory / f"{BACKEND}_{name}.keras")
        return {"saved": saved, "continued": fit(model, name, epochs=EPOCHS, initial_epoch=1)}


def load_cases(directory: Path, sources: list[str]) -> dict:
    """Per source backend and model: the file loaded here, then one more epoch."""
    return {
        f"load/{source}/{name}": lambda s=source, n=name: load_then_fit(n, directory, s)
        for source in sources
        for name in MOVED
    }


def load_then_fit(name: str, directory: Path, source: str) -> dict:
    """The file saved on ``source``, loaded here, then epoch 2 on ``random_tables``."""
    from tests.support.random_tables import fixed_tables

    loaded = keras.models.load_model(directory / f"{source}_{name}.keras")
    found = record(loaded, name, {})
    found["loaded_class"] = type(loaded).__name__
    found["optimizer_classes"] = optimizer_classes(loaded, name)
    if BACKEND == "torch":  # a JAX file says jit_compile=True: torch.compile, unless reset
        loaded.jit_compile = False
    with fixed_tables():  # the loaded state is kept if training raises
        return {"saved": found, "continued": guarded(lambda: fit(loaded, name, initial_epoch=1))}


def optimizer_classes(model: keras.Model, name: str) -> list[str]:
    """Each optimizer's class, by module (a file saved on torch names torch's classes)."""
    attributes = OPTIMIZERS.get(name, ("optimizer",))
    return [type(getattr(model, a)).__module__ for a in attributes]


# Running ---------------------------------------------------------------------------------


def guarded(case) -> dict:
    """``case()``, or ``{"error": type, "message": ...}`` if it raised."""
    try:
        return case()
    except Exception as error:  # reported to the test, which fails or asserts on it
        return {
            "error": type(error).__name__,
            "message": str(error)[:2000],
            "traceback": traceback.format_exc()[-3000:],
        }


def environment() -> dict:
    """The backend, and whether loading the generated modules imported TensorFlow."""
    from stepc.emit.frameworks import ALL

    for name in MODELS:
        generated_class(name)
    return {
        "backend": BACKEND,
        "module_frameworks": list(ALL) if BACKEND in ALL else [BACKEND],
        "tensorflow_imported": "tensorflow" in sys.modules,
        # keras.distribution is JAX's (and TF's); None on torch
        "devices": len(keras.distribution.list_devices("cpu")) if BACKEND == "jax" else 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--features", action="store_true")
    parser.add_argument("--save", action="store_true")
    parser.add_argument("--load", nargs="*", default=[])
    parser.add_argument("--only", default="", help="run only cases whose name contains it")
    parser.add_argument("--name", default=BACKEND, help="the results file's name")
    args = parser.parse_args(argv)
    results = {"environment": guarded(environment)}
    cases = feature_cases(args.out) if args.features else {}
    cases.update(save_cases(args.out) if args.save else {})
    cases.update(load_cases(args.out, args.load))
    for label, case in cases.items():
        if args.only in label:
            started = time.process_time()
            results[label] = guarded(case)
            results[label]["cpu_seconds"] = time.process_time() - started  # for the report
    (args.out / f"{args.name}.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
