"""Every shipped spec trained on one Keras backend, for ``test_cross_backend.py``.

``python -m tests.support.backend_runs --backend B --out DIR`` runs, in one process whose
Keras runs on ``B`` (it sets ``KERAS_BACKEND`` before Keras is imported), each spec of
``RUNS`` in each variant of ``VARIANTS[B]`` (TF: plain, and XLA for the GAN and WGAN-GP;
JAX: ``jax.jit``, Keras's default, and for the GAN and WGAN-GP also without; torch:
eager) and writes, per variant and spec, ``DIR/<variant>/<spec>.npz`` and ``.json``:

* ``initial/<path>`` and ``final/<path>`` in the ``.npz``: every variable of the model
  but its SeedGenerators' states (its sub-models' weights and BatchNorm statistics, the
  state a spec declares: float, int or bool) before and after ``fit``, by variable path;
* in the ``.json``: ``logs`` (every training step's logs), ``evaluate`` (the results of
  ``evaluate(return_dict=True)``, where the spec is evaluated), ``seed_states`` (every
  SeedGenerator's ``[seed, counter]`` after ``fit`` and after ``evaluate``), or ``error``
  (the traceback) if the run raised.

``DIR/<backend>.json`` holds ``random_tables.counter_advances()`` on that backend.

Every run starts alike on every backend: ``keras.backend.clear_session()`` (the same
variable paths), the spec's generated module, sub-models from the builders of the
equivalence and published-spec tests, the model constructed right after
``keras.utils.set_random_seed(SEED)`` (the same SeedGenerator seeds), then every float
variable its initializer did not set to a constant replaced by a numpy Glorot-uniform
draw from ``(SEED, its index)``: the same initial weights, with no file passed between
backends. It fits the spec's three fixed numpy batches (``SpecRun.sizes``) for one epoch
with SGD (Zero-DCE's spec builds its own Adam) under ``random_tables.fixed_tables()``, so
every backend draws the same numbers, then evaluates one more batch.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SEED = 1337
TRAIN_SIZES = (8, 8, 8)  # three steps of one shape: JAX and XLA compile each step once
# compile()'s loss tracker weights each batch by its size: where a spec reports it, a
# partial last batch shows whether every backend does.
PARTIAL_SIZES = (8, 8, 4)
EVAL_SIZES = (8,)
LEARNING_RATE = 0.05
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SpecRun:
    """How one spec is trained: ``build(cls)`` makes the model from the generated class,
    ``compile()`` gives compile()'s arguments (fresh optimizers), ``batch(n, rng)`` makes
    one training batch of ``n`` samples, and ``eval_batch`` (by default ``batch``) one
    batch for ``evaluate()``, if the spec is ``evaluated``."""

    class_name: str
    build: Callable
    compile: Callable[[], dict]
    batch: Callable
    sizes: tuple[int, ...] = TRAIN_SIZES
    eval_batch: Callable | None = None
    evaluated: bool = True


@dataclass(frozen=True)
class Variant:
    """A way to run on one backend: extra compile() arguments, and the specs it runs
    (empty: all)."""

    name: str
    compile_kwargs: dict = field(default_factory=dict)
    specs: tuple[str, ...] = ()


VARIANTS = {
    "tensorflow": (
        Variant("tensorflow"),
        # XLA for the two steps that draw and take nested gradients: the other specs
        # agreed within 6e-7 too, and XLA's compile time is most of TensorFlow's.
        Variant("tensorflow_xla", {"jit_compile": True}, ("gan", "wgan_gp")),
    ),
    "jax": (Variant("jax"), Variant("jax_no_jit", {"jit_compile": False}, ("gan", "wgan_gp"))),
    "torch": (Variant("torch"),),
}


# Optimizers and data ---------------------------------------------------------------------


def _sgd():
    import keras

    return keras.optimizers.SGD(learning_rate=LEARNING_RATE)


def _floats(rng, *shape, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.uniform(size=shape)).astype("float32")


def _regression(n, rng):
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, (x[:, :1] - 0.5 * x[:, 1:2] + 0.1 * rng.normal(size=(n, 1))).astype("float32")


def _weighted(n, rng):
    return (*_regression(n, rng), rng.uniform(0.1, 2.0, size=(n,)).astype("float32"))


def _labelled(*shape: int) -> Callable:
    """Batches of ``(features of shape, int class labels in 0..9)``."""
    return lambda n, rng: (_floats(rng, n, *shape), rng.integers(0, 10, size=(n,)).astype("int32"))


def _simclr(n, rng):
    return _floats(rng, n, 64), _labelled(64)(n // 2, rng)


def _scan(n, rng):
    return _floats(rng, n, 64), _floats(rng, n, 3, 64)


def _speech(n, rng):
    target = np.zeros((n, 5), "int32")
    for row, length in enumerate(rng.integers(3, 6, size=n)):
        target[row, 0] = 1  # the start token, then tokens 2..5, then padding
        target[row, 1:length] = rng.integers(2, 6, size=length - 1)
    return {"source": rng.normal(size=(n, 6, 4)).astype("float32"), "target": target}


def _adamatch(n, rng):
    """Labelled source and unlabelled target digits-like rows, each in a weak and a
    strong view."""
    source_weak, source_strong, target_weak, target_strong = (_floats(rng, n, 64) for _ in range(4))
    labels = rng.integers(0, 10, size=(n,)).astype("int32")
    return (source_weak, source_strong, labels), (target_weak, target_strong)


def _two_views(n, rng):
    return _floats(rng, n, 64), _floats(rng, n, 64)


def _images(*shape, scale: float = 1.0):
    return lambda n, rng: (_floats(rng, n, *shape, scale=scale),)


# Models ----------------------------------------------------------------------------------


def _functional(cls):
    from tests.support.models import dense_graph

    return cls(*dense_graph())


def _embedding(cls):
    from tests.support.specs_self_supervised import embedding_graph

    return cls(*embedding_graph())


def _with(**parts) -> Callable:
    """``build(cls)``: ``cls(**parts)``, each part made if it is a maker (a sub-model's
    builder), the model itself right after ``set_random_seed(SEED)`` (its
    SeedGenerator's seed is drawn there)."""

    def build(cls):
        import keras

        arguments = {name: part() if callable(part) else part for name, part in parts.items()}
        keras.utils.set_random_seed(SEED)
        return cls(**arguments)

    return build


def _model(module: str, builder: str) -> Callable:
    """A builder of the tests' support modules, imported when first called."""

    def make():
        import importlib

        return getattr(importlib.import_module(f"tests.support.{module}"), builder)()

    return make


def _support(module: str, name: str) -> Callable:
    """A function of the tests' support modules (a batch maker), imported when called."""

    def call(*args):
        import importlib

        return getattr(importlib.import_module(f"tests.support.{module}"), name)(*args)

    return call


def _keras(module: str, name: str, *args, **kwargs) -> Callable:
    """A maker of ``keras.<module>.<name>(*args, **kwargs)``: a layer or a loss."""

    def make():
        import keras

        return getattr(getattr(keras, module), name)(*args, **kwargs)

    return make


def _patches():
    from tests.references.masked_image_modeling import Patches

    return Patches(4)


def _compile(*optimizers: str, **extra) -> Callable[[], dict]:
    """compile()'s arguments: a fresh SGD for each of ``optimizers`` (by default Keras's
    own ``optimizer``), and ``extra``, each value made when called if it is a maker."""
    names = optimizers or ("optimizer",)

    def arguments():
        made = {k: v() if callable(v) else v for k, v in extra.items()}
        return {**{name: _sgd() for name in names}, **made}

    return arguments


_VIS = "specs_vision_speech"
_SSL = "specs_self_supervised"
_STATE = "specs_state"
_GEN = "specs_generative"
_LOOPS = "specs_loops"
_MSE_MAE = {"loss": "mse", "metrics": ["mae"]}

RUNS: dict[str, SpecRun] = {
    "basic": SpecRun("CustomModel", _functional, _compile(**_MSE_MAE), _regression, PARTIAL_SIZES),
    "evaluate": SpecRun("CustomModel", _functional, _compile(**_MSE_MAE), _regression),
    "lowlevel": SpecRun("CustomModel", _functional, _compile(), _regression),
    "weighted": SpecRun(
        "CustomModel",
        _functional,
        _compile(**_MSE_MAE, weighted_metrics=["mae"]),
        _weighted,
        PARTIAL_SIZES,
    ),
    "gan": SpecRun(
        "GAN",
        _with(
            discriminator=_model("models", "build_discriminator"),
            generator=_model("models", "build_generator"),
            latent_dim=4,
        ),
        _compile(
            "d_optimizer",
            "g_optimizer",
            loss_fn=_keras("losses", "BinaryCrossentropy", from_logits=True),
        ),
        _images(8, 8, 1),
    ),
    "wgan_gp": SpecRun(
        "WGANGP",
        _with(
            critic=_model("models", "build_critic"),
            generator=_model("models", "build_generator"),
            latent_dim=4,
            critic_steps=2,
            gp_weight=10.0,
        ),
        _compile("d_optimizer", "g_optimizer"),
        _images(8, 8, 1),
    ),
    "vae": SpecRun(
        "VAE",
        _with(encoder=_model("models", "build_encoder"), decoder=_model("models", "build_decoder")),
        _compile(),
        _images(8, 8, 1),
    ),
    "adversarial": SpecRun(
        "AdversarialClassifier",
        _with(classifier=_model("models", "build_classifier"), epsilon=0.02),
        _compile(),
        _labelled(8, 8, 1),
    ),
    "simclr": SpecRun(
        "ContrastiveModel",
        _with(
            encoder=_model(_SSL, "build_encoder"),
            projection_head=_model(_SSL, "build_projection_head"),
            linear_probe=_model(_SSL, "build_linear_probe"),
            contrastive_augmenter=_keras("layers", "GaussianNoise", 0.2, seed=11),
            classification_augmenter=_keras("layers", "GaussianNoise", 0.05, seed=12),
        ),
        _compile("contrastive_optimizer", "probe_optimizer"),
        _simclr,
        eval_batch=_labelled(64),
    ),
    "metric_learning": SpecRun(
        "EmbeddingModel",
        _embedding,
        _compile(
            loss=_keras("losses", "SparseCategoricalCrossentropy", from_logits=True),
            metrics=["sparse_categorical_accuracy"],
        ),
        _images(10, 64),  # pairs[0]: 10 anchors, pairs[1]: their 10 positives
        sizes=(2, 2, 2),  # a batch is always one (anchors, positives) pair
        evaluated=False,  # the published model has no test step
    ),
    "scan": SpecRun(
        "SCAN",
        _with(clustering_model=_model(_SSL, "build_clustering_model")),
        _compile(),
        _scan,
    ),
    "speech_transformer": SpecRun(
        "SpeechTransformer",
        _with(transformer=_model(_VIS, "build_transformer"), num_classes=6),
        _compile(
            loss=_keras("losses", "CategoricalCrossentropy", from_logits=True, label_smoothing=0.1)
        ),
        _speech,
        PARTIAL_SIZES,
    ),
    "zero_dce": SpecRun(
        "ZeroDCE",
        _with(dce_model=_model(_VIS, "build_dce_net")),
        lambda: {"learning_rate": 1e-3},  # the spec builds its own Adam from it
        _images(16, 16, 3, scale=0.4),
    ),
    "adamatch": SpecRun(
        "AdaMatch",
        _with(classifier=_model(_STATE, "build_classifier"), total_steps=3),
        _compile(),
        _adamatch,
        PARTIAL_SIZES,
        eval_batch=_labelled(64),
    ),
    "nnclr": SpecRun(
        "NNCLR",
        _with(
            encoder=_model(_STATE, "build_encoder"),
            projection_head=_model(_STATE, "build_projection_head"),
            width=4,
            queue_size=16,
            # The queue holds projections, activations of a training-mode BatchNorm:
            # at the published 0.1 the backends' float rounding in them reaches 1e-5.
            temperature=0.5,
        ),
        _compile("contrastive_optimizer"),
        _two_views,
    ),
    "masked_image_modeling": SpecRun(
        "MaskedAutoencoder",
        _with(
            train_augmentation_model=_keras("layers", "Rescaling", 1.0 / 255.0),
            test_augmentation_model=_keras("layers", "Rescaling", 1.0 / 255.0),
            patch_layer=_patches,
            patch_encoder=_model(_VIS, "build_patch_encoder"),
            encoder=_model(_VIS, "build_mae_encoder"),
            decoder=_model(_VIS, "build_mae_decoder"),
        ),
        _compile(**_MSE_MAE),
        _images(8, 8, 3, scale=255.0),
        PARTIAL_SIZES,
    ),
    "ddim": SpecRun(
        "DiffusionModel",
        _with(
            network=_model(_GEN, "build_network"),
            ema_network=_model(_GEN, "build_ema_network"),
            kid=_model(_GEN, "KernelInceptionDistance"),
            diffusion_steps=3,
            ema=0.9,
        ),
        _compile(),
        _images(4, 4, 1),
    ),
    "stylegan": SpecRun(
        "StyleGAN",
        _with(
            generator=_model(_GEN, "build_generator"),
            discriminator=_model(_GEN, "build_discriminator"),
            latent_dim=4,
            fade_steps=4,
            drift_weight=0.1,
        ),
        _compile("d_optimizer", "g_optimizer"),
        _images(4, 4, 1),
        evaluated=False,  # the published step is train_step only
    ),
    "image_captioning": SpecRun(
        "ImageCaptioningModel",
        _with(
            cnn_model=_model(_LOOPS, "build_cnn"),
            encoder=_model(_LOOPS, "build_caption_encoder"),
            decoder=_model(_LOOPS, "build_caption_decoder"),
            num_captions=5,
        ),
        _compile(),
        _support(_LOOPS, "captioning_batch"),
        PARTIAL_SIZES,
    ),
    "textual_inversion": SpecRun(
        "TextualInversion",
        _with(
            token_embedding=_model(_LOOPS, "build_token_embedding"),
            text_encoder=_model(_LOOPS, "build_text_encoder"),
            noise_predictor=_model(_LOOPS, "build_noise_predictor"),
            placeholder_id=9,
            vocab_size=10,
            train_timesteps=50,
            time_dim=4,
        ),
        _compile(),
        _support(_LOOPS, "inversion_data"),
        evaluated=False,  # the published step has no test step
    ),
}


# One run ---------------------------------------------------------------------------------


def batches(make: Callable, sizes: tuple[int, ...], offset: int = 0) -> list:
    """One batch per size, each from its own fixed numpy generator."""
    return [make(n, np.random.default_rng(SEED + offset + i)) for i, n in enumerate(sizes)]


def _dataset(batch_list: list):
    """A PyDataset serving exactly these batches, in order, on every backend."""
    import keras

    class FixedBatches(keras.utils.PyDataset):
        def __len__(self):
            return len(batch_list)

        def __getitem__(self, index):
            return batch_list[index]

    return FixedBatches()


def _every_framework() -> bool:
    """Whether ``stepc.load``'s module (every framework in ``ALL``) has this backend's
    steps; until a backend joins ``ALL`` it is compiled alone."""
    import keras
    from stepc.emit.frameworks import ALL

    return keras.backend.backend() in ALL


@functools.cache
def _module(spec: str) -> types.ModuleType:
    """The spec's generated module, as ``_every_framework`` says."""
    import keras
    import stepc

    path = REPO_ROOT / "specs" / f"{spec}.step"
    if _every_framework():
        return stepc.load(str(path))
    text = stepc.compile_source(path.read_text(), path.name, backend=keras.backend.backend())
    module = types.ModuleType(f"stepc_generated.{spec}")
    sys.modules[module.__name__] = module
    exec(compile(text, f"<stepc {path}>", "exec"), module.__dict__)
    return module


def _paths(model) -> dict[str, object]:
    """Every variable of the model (sub-models included) by path, in model order."""
    named: dict[str, object] = {}
    for variable in model.variables:
        path = variable.path
        while path in named:  # two unnamed layers' paths may coincide
            path += "'"
        named[path] = variable
    return named


def _is_float(variable) -> bool:
    return "float" in str(variable.dtype)


def _is_seed_state(variable) -> bool:
    """A SeedGenerator's ``[seed, counter]`` (Keras names every one so)."""
    return variable.name == "seed_generator_state"


def numpy_initial_values(model) -> None:
    """Every float variable whose initial value is not constant (kernels, embeddings,
    random projections) set to a Glorot-uniform draw from ``(SEED, its index)``;
    constants (biases, BatchNorm statistics, scales) are the same everywhere already."""
    from keras import ops

    for index, variable in enumerate(_paths(model).values()):
        value = ops.convert_to_numpy(variable)
        if not _is_float(variable) or value.size == 0 or np.all(value == value.flat[0]):
            continue
        fan_in = int(np.prod(value.shape[:-1])) if value.ndim > 1 else value.size
        limit = np.sqrt(6.0 / (fan_in + value.shape[-1]))
        rng = np.random.default_rng([SEED, index])
        variable.assign(rng.uniform(-limit, limit, size=value.shape).astype(value.dtype))


def float_weights(model, prefix: str) -> dict[str, np.ndarray]:
    """Every variable but the seed states, by path under ``prefix``: the float weights and
    a spec's declared state of any dtype (an int counter is compared exactly)."""
    from keras import ops

    items = _paths(model).items()
    return {f"{prefix}/{p}": ops.convert_to_numpy(v) for p, v in items if not _is_seed_state(v)}


def seed_states(model) -> dict[str, list[int]]:
    from keras import ops

    items = _paths(model).items()
    return {p: [int(x) for x in ops.convert_to_numpy(v)] for p, v in items if _is_seed_state(v)}


def _logs_recorder():
    import keras
    from keras import ops

    class StepLogs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps: list[dict[str, float]] = []

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self.steps.append({k: float(ops.convert_to_numpy(v)) for k, v in logs.items()})

    return StepLogs()


def run_spec(spec: str, variant: Variant) -> tuple[dict, dict]:
    """Train ``spec`` once as ``variant`` says; the ``.npz`` arrays and the ``.json``."""
    import keras

    description = RUNS[spec]
    keras.backend.clear_session()
    model = description.build(getattr(_module(spec), description.class_name))
    numpy_initial_values(model)
    arrays = float_weights(model, "initial")
    model.compile(**description.compile(), **variant.compile_kwargs)
    recorder = _logs_recorder()
    train = _dataset(batches(description.batch, description.sizes))
    model.fit(train, epochs=1, shuffle=False, verbose=0, callbacks=[recorder])
    arrays.update(float_weights(model, "final"))
    record = {"logs": recorder.steps, "seed_states": {"fit": seed_states(model)}}
    record["module"] = "every framework's" if _every_framework() else "this backend's only"
    if description.evaluated:
        make = description.eval_batch or description.batch
        evaluation = _dataset(batches(make, EVAL_SIZES, offset=100))
        results = model.evaluate(evaluation, verbose=0, return_dict=True)
        record["evaluate"] = {k: float(v) for k, v in results.items()}
        record["seed_states"]["evaluate"] = seed_states(model)
    return arrays, record


def write_run(out: Path, spec: str, variant: Variant) -> None:
    """Run and write ``out/<variant>/<spec>.npz`` and ``.json`` (or the error)."""
    folder = out / variant.name
    folder.mkdir(parents=True, exist_ok=True)
    started = time.process_time()
    try:
        arrays, record = run_spec(spec, variant)
    except Exception:  # reported by the test of this (spec, variant)
        arrays, record = {}, {"error": traceback.format_exc(limit=-8)}
    record["cpu_seconds"] = round(time.process_time() - started, 2)  # for the report only
    np.savez(folder / f"{spec}.npz", **arrays)
    (folder / f"{spec}.json").write_text(json.dumps(record, indent=1))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", required=True, choices=sorted(VARIANTS))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--specs", nargs="*", default=sorted(RUNS))
    parser.add_argument("--variants", nargs="*", help="a subset of VARIANTS[backend]")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    import keras

    from tests.support.random_tables import counter_advances, fixed_tables

    if keras.backend.backend() != args.backend:  # Keras was imported before this ran
        raise SystemExit(f"Keras runs on {keras.backend.backend()}, not {args.backend}")
    args.out.mkdir(parents=True, exist_ok=True)
    check = {"counter_advances": counter_advances()}
    (args.out / f"{args.backend}.json").write_text(json.dumps(check))
    with fixed_tables():
        for variant in VARIANTS[args.backend]:
            if args.variants and variant.name not in args.variants:
                continue
            for spec in args.specs:
                if not variant.specs or spec in variant.specs:
                    write_run(args.out, spec, variant)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
