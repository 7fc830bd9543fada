"""Runs of the two published specs that keep state (``specs/adamatch.step``: a step
counter; ``specs/nnclr.step``: a feature queue) for ``test_published_state_specs.py`` and
its distribution subprocess.

Every run starts alike: sub-models built by the builders below carrying
``models.initial_weights(builder)``, the model constructed right after
``keras.utils.set_random_seed(SEED)`` (NNCLR's queue is then set to ``initial_queue()``,
so the comparison does not rest on two models drawing alike), fresh optimizers of a fixed
configuration, ``set_random_seed(SEED)`` again right before ``fit`` with
``shuffle=False``, on scikit-learn's 8x8 digits flattened to 64 features, with views made
here by numpy noise of fixed seeds. So two runs differ only in the model class (generated
or reference) or in what a test changes (XLA, a dtype policy, a strategy, a callback).

Data (20 training samples in batches of 8: every epoch ends on a partial batch of 4):

* AdaMatch: ``fit(x=(source_weak, source_strong, source_labels), y=(target_weak,
  target_strong))``: source digits 0-19 with labels; target digits 100-119 inverted
  (``1 - x``, another domain), unlabelled; weak views add noise of stddev 0.05, strong
  ones 0.3. ``total_steps`` is the run's 6 steps, so the warm-up weight takes six values
  from 0 to 0.93. Validation and ``evaluate()``: inverted digits 200-211 with labels.
* NNCLR: ``fit(view_1, view_2)``, two noisy views (stddev 0.1) of digits 0-19; a queue of
  16 rows of width 4 (two full batches). Validation and ``evaluate()``: views of digits
  200-211.

``python tests/support/specs_state.py mirrored`` runs each spec's reference and generated
model on one device and under ``MirroredStrategy`` over two logical CPUs (every replica
gets the single-device batch: ``fit.replicate_batches``) and prints ``RESULT <json>``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # the distribution subprocess: the repository is importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import keras
import numpy as np

from tests.references.adamatch import AdaMatchReference
from tests.references.nnclr import NNCLRReference
from tests.support.fit import Run, loss_scaled, recorded_fit, replicate_batches, strategy_scope
from tests.support.models import SEED, fresh_model, initial_weights, load_spec
from tests.support.specs_self_supervised import digits
from tests.support.workers import mirrored_main

SPECS = ("adamatch", "nnclr")
CLASS_NAMES = {"adamatch": "AdaMatch", "nnclr": "NNCLR"}
REFERENCES = {"adamatch": AdaMatchReference, "nnclr": NNCLRReference}
FEATURES = 64  # 8x8 digits, flattened
N_CLASSES = 10
WIDTH = 4  # NNCLR's projections and queue rows
QUEUE_SIZE = 16
EPOCHS = 2
BATCH_SIZE = 8
N_TRAIN = 20  # 2 * 8 + 4
TOTAL_STEPS = EPOCHS * 3
RESULT_PREFIX = "RESULT "


def spec_class(name: str, kind: str = "generated") -> type:
    """The class stepc generates for ``specs/<name>.step``, or its reference."""
    if kind == "reference":
        return REFERENCES[name]
    return getattr(load_spec(name), CLASS_NAMES[name])


# Data ------------------------------------------------------------------------------------


def noisy(images: np.ndarray, stddev: float, seed: int) -> np.ndarray:
    """``images`` plus normal noise of ``stddev`` from ``(SEED, seed)``, float32."""
    rng = np.random.default_rng([SEED, seed])
    return (images + stddev * rng.normal(size=images.shape)).astype("float32")


def target_domain(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Digits ``start:stop`` inverted (``1 - x``), with their labels."""
    images, labels = digits(start, stop)
    return (1.0 - images).astype("float32"), labels


def adamatch_data() -> tuple[tuple, tuple]:
    """``(source_weak, source_strong, source_labels)`` and ``(target_weak, target_strong)``."""
    source, labels = digits(0, N_TRAIN)
    target, _ = target_domain(100, 100 + N_TRAIN)
    source_views = (noisy(source, 0.05, 1), noisy(source, 0.3, 2))
    return (*source_views, labels), (noisy(target, 0.05, 3), noisy(target, 0.3, 4))


def nnclr_views(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy views of digits ``start:stop``."""
    images, _ = digits(start, stop)
    return noisy(images, 0.1, 5 + start), noisy(images, 0.1, 6 + start)


def fit_data(name: str, replicas: int = 1) -> tuple:
    """``fit``'s ``x`` and ``y``, each batch repeated ``replicas`` times."""
    x, y = adamatch_data() if name == "adamatch" else nnclr_views(0, N_TRAIN)

    def repeat(part):
        return keras.tree.map_structure(lambda a: replicate_batches(a, BATCH_SIZE, replicas), part)

    return repeat(x), repeat(y)


def validation_data(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The held-out data of ``validation_data`` and ``evaluate()``."""
    return target_domain(200, 212) if name == "adamatch" else nnclr_views(200, 212)


# Models ----------------------------------------------------------------------------------


def build_classifier() -> keras.Model:
    """AdaMatch's classifier: 64 features to 10 logits, with BatchNormalization."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(FEATURES,)),
            layers.Dense(16),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Dense(N_CLASSES),
        ],
        name="classifier",
    )


def build_encoder() -> keras.Model:
    """NNCLR's encoder: 64 features to 8 (tanh: no feature is constant over a batch,
    which the correlation accuracy divides by)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(FEATURES,)),
            layers.Dense(8),
            layers.BatchNormalization(),
            layers.Activation("tanh"),
        ],
        name="encoder",
    )


def build_projection_head() -> keras.Model:
    """NNCLR's projection head: the encoder's 8 features to ``WIDTH``-vectors."""
    layers = keras.layers
    return keras.Sequential(
        [keras.Input(shape=(8,)), layers.Dense(8, activation="relu"), layers.Dense(WIDTH)],
        name="projection_head",
    )


SUB_MODELS = {
    "adamatch": (("classifier", build_classifier),),
    "nnclr": (("encoder", build_encoder), ("projection_head", build_projection_head)),
}
DEFAULT_PARAMS = {
    "adamatch": {"total_steps": TOTAL_STEPS},
    "nnclr": {"width": WIDTH, "queue_size": QUEUE_SIZE},
}


@functools.cache
def _initial_queue() -> np.ndarray:
    rows = np.random.default_rng([SEED, 99]).normal(size=(QUEUE_SIZE, WIDTH))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype("float32")


def initial_queue() -> np.ndarray:
    """The unit rows every NNCLR run's queue starts from."""
    return _initial_queue().copy()


def build_model(name: str, kind: str = "generated", cls: type | None = None, **params):
    """A ``kind`` model of spec ``name`` (or of ``cls``) with the shared initial weights;
    ``params`` are constructor arguments besides the defaults of ``DEFAULT_PARAMS``."""
    cls = cls or spec_class(name, kind)
    parts = {param: fresh_model(builder) for param, builder in SUB_MODELS[name]}
    keras.utils.set_random_seed(SEED)
    model = cls(**parts, **{**DEFAULT_PARAMS[name], **params})
    if name == "nnclr":
        model.feature_queue.assign(initial_queue())
    return model


def initial_state(name: str) -> list[np.ndarray]:
    """The trained weights every run of ``name`` starts from."""
    return [w for _, builder in SUB_MODELS[name] for w in initial_weights(builder)]


def state_variables(name: str, model: keras.Model) -> list:
    """The variables the step changes besides the sub-models' weights: AdaMatch's step
    counter and seed state, NNCLR's queue."""
    if name == "adamatch":
        return [model.step, model.seed_generator.state]
    return [model.feature_queue]


def state(name: str, model: keras.Model) -> list[np.ndarray]:
    """Every weight the step changes: the sub-models' in ``SUB_MODELS`` order, then
    ``state_variables``."""
    weights = [w for param, _ in SUB_MODELS[name] for w in getattr(model, param).get_weights()]
    return weights + [keras.ops.convert_to_numpy(v) for v in state_variables(name, model)]


# Optimizers ------------------------------------------------------------------------------


def optimizer_param(name: str) -> str:
    """The compile() argument of the spec's one optimizer."""
    return "optimizer" if name == "adamatch" else "contrastive_optimizer"


def make_optimizers(name: str, kind: str = "adam", loss_scale: bool | float = False) -> dict:
    """compile()'s optimizer: Adam by default, ``kind="sgd"`` SGD (any constant scaling of
    a gradient shows); ``loss_scale`` wraps it in a LossScaleOptimizer."""
    if kind == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=0.05)
    else:
        optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    return {optimizer_param(name): loss_scaled(optimizer, loss_scale)}


def optimizers_of(name: str, model: keras.Model) -> list:
    """The optimizers a compiled model's step applies."""
    return [getattr(model, optimizer_param(name))]


# Runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """How ``run`` makes a model: its class, constructor and compile() arguments."""

    kind: str = "generated"
    cls: type | None = None
    params: Mapping | None = None
    optimizer: str = "adam"
    loss_scale: bool | float = False
    compile_kwargs: Mapping | None = None


def new_model(name: str, setup: Setup, strategy=None) -> keras.Model:
    """A compiled model of ``setup``, made in ``strategy``'s scope if given."""
    with strategy_scope(strategy):
        model = build_model(name, setup.kind, setup.cls, **(setup.params or {}))
        optimizers = make_optimizers(name, setup.optimizer, setup.loss_scale)
        model.compile(**optimizers, **(setup.compile_kwargs or {}))
    return model


def run(
    name: str,
    setup: Setup = Setup(),
    *,
    model: keras.Model | None = None,
    epochs: int = EPOCHS,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    strategy=None,
    replicas: int = 1,
) -> Run:
    """Train a model of spec ``name`` (``model``, or a new one of ``setup``) on its data
    with validation data, then ``evaluate()``; ``extra`` holds every batch's logs and
    the state after every epoch."""
    model = model or new_model(name, setup, strategy)
    x, y = fit_data(name, replicas)
    batch = BATCH_SIZE * replicas
    held_out = tuple(replicate_batches(p, BATCH_SIZE, replicas) for p in validation_data(name))
    history, extra = recorded_fit(
        model,
        functools.partial(state, name),
        x,
        y,
        batch_size=batch,
        epochs=epochs,
        callbacks=callbacks,
        validation_data=held_out,
        validation_batch_size=batch,
    )
    results = model.evaluate(*held_out, batch_size=batch, verbose=0, return_dict=True)
    return Run(state(name, model), history, results, model, extra)


# The distribution subprocess -------------------------------------------------------------


def mirrored_results() -> dict:
    """Each spec's reference and generated model with SGD, on one device and under
    MirroredStrategy (2 logical CPUs); a case that raises is reported as
    ``{"error": ...}``."""
    import tensorflow as tf

    from tests.support.distribution_worker import guarded

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    results = {}
    for name in SPECS:
        for kind in ("reference", "generated"):
            sgd = Setup(kind, optimizer="sgd")
            results[f"{name}/{kind}/single"] = guarded(lambda name=name, s=sgd: run(name, s))
            results[f"{name}/{kind}/mirrored"] = guarded(
                lambda name=name, s=sgd: run(name, s, strategy=strategy, replicas=2)
            )
    return results


def main(argv: list[str]) -> int:
    """``mirrored``: the results of ``mirrored_results``, as one JSON line."""
    return mirrored_main(argv, mirrored_results)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
