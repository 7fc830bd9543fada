"""Runs of the three self-supervised published specs (``specs/simclr.step``,
``specs/metric_learning.step``, ``specs/scan.step``) for
``test_published_self_supervised.py`` and its distribution subprocess.

Every run starts alike: sub-models built by the builders below and carrying
``models.initial_weights(builder)`` (the augmenters are new ``GaussianNoise`` layers
with fixed seeds), the model constructed right after ``keras.utils.set_random_seed(SEED)``,
fresh optimizers of a fixed configuration, ``set_random_seed(SEED)`` again right before
``fit`` with ``shuffle=False``, on scikit-learn's 8x8 digits flattened to 64 features.
So two runs differ only in the model class (generated or reference) or in what a test
changes (XLA, a dtype policy, a strategy, a callback).

Data (every epoch ends on a partial batch, except metric learning's, whose batch is one
anchor and one positive per class):

* SimCLR: ``Dataset.zip((unlabeled_images, (labeled_images, labels)))``: 12 unlabelled
  digits in batches of 8 zipped with 6 labelled ones in batches of 4 (two steps); the
  next 12 digits with labels are the validation data and ``evaluate()``'s.
* metric learning: 6 groups of (anchors, positives), each 10 digits, one per class, drawn
  from the first 200 digits; ``fit`` in batches of 2 groups' rows (``pairs`` of shape
  ``(2, 10, 64)``: three steps).
* SCAN: 12 anchor digits in batches of 8, each with its 3 nearest other digits (pixel
  distance) among the first 60; the next 12 anchors are the validation data.

``python tests/support/specs_self_supervised.py mirrored`` runs each spec on one device and under
``MirroredStrategy`` over two logical CPUs (every replica gets the single-device batch:
``fit.replicate_batches``) and prints ``RESULT <json>``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # the distribution subprocess: the repository is importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import keras
import numpy as np

from tests.references.metric_learning import EmbeddingModelReference
from tests.references.scan import SCANReference
from tests.references.simclr import SimCLRReference
from tests.support.fit import Run, loss_scaled, recorded_fit, replicate_batches, strategy_scope
from tests.support.models import SEED, fresh_model, initial_weights, load_spec
from tests.support.workers import mirrored_main

SPECS = ("simclr", "metric_learning", "scan")
CLASS_NAMES = {"simclr": "ContrastiveModel", "metric_learning": "EmbeddingModel", "scan": "SCAN"}
REFERENCES = {
    "simclr": SimCLRReference,
    "metric_learning": EmbeddingModelReference,
    "scan": SCANReference,
}
FEATURES = 64  # 8x8 digits, flattened
N_CLASSES = 10
N_CLUSTERS = 4
K_NEIGHBOURS = 3
EPOCHS = 2
RESULT_PREFIX = "RESULT "
# Per spec, fit's batch sizes: SimCLR (unlabelled, labelled), metric learning (pair
# groups, 2 rows each), SCAN (anchors).
BATCHES = {"simclr": (8, 4), "metric_learning": (2,), "scan": (8,)}
EVALUATE_BATCH_SIZE = 8


def spec_class(name: str, kind: str = "generated") -> type:
    """The class stepc generates for ``specs/<name>.step``, or its reference."""
    if kind == "reference":
        return REFERENCES[name]
    return getattr(load_spec(name), CLASS_NAMES[name])


# Data ------------------------------------------------------------------------------------


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    digits = load_digits()
    return (digits.data / 16.0).astype("float32"), digits.target.astype("int32")


def digits(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Digits ``start:stop`` as ``(n, 64)`` features in ``[0, 1]`` and int labels."""
    images, labels = _digits()
    return images[start:stop].copy(), labels[start:stop].copy()


def anchor_positive_pairs(groups: int = 6) -> np.ndarray:
    """``(2 * groups, 10, 64)``: rows alternate anchors and positives, one per class."""
    images, labels = digits(0, 200)
    rng = np.random.default_rng(SEED)
    rows = []
    for _ in range(groups):
        chosen = [rng.choice(np.flatnonzero(labels == c), 2, replace=False) for c in range(10)]
        rows.append(images[[pair[0] for pair in chosen]])
        rows.append(images[[pair[1] for pair in chosen]])
    return np.stack(rows)


def neighbours_of(anchors: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Each anchor's ``K_NEIGHBOURS`` nearest rows of ``pool`` (itself excluded)."""
    distances = np.linalg.norm(anchors[:, None, :] - pool[None, :, :], axis=-1)
    distances[distances == 0.0] = np.inf
    nearest = np.argsort(distances, axis=1)[:, :K_NEIGHBOURS]
    return pool[nearest]


def scan_data(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Anchors ``(12, 64)`` and their neighbours ``(12, 3, 64)``."""
    anchors, _ = digits(0, 12) if split == "train" else digits(12, 24)
    return anchors, neighbours_of(anchors, digits(0, 60)[0])


def simclr_dataset(replicas: int = 1):
    """The zipped SimCLR batches; each batch repeated ``replicas`` times (a global batch
    of ``replicas`` copies of the single-device batch)."""
    import tensorflow as tf

    unlabeled, _ = digits(0, 12)
    labeled, labels = digits(12, 18)
    u_batch, l_batch = BATCHES["simclr"]
    unlabeled = replicate_batches(unlabeled, u_batch, replicas)
    labeled = replicate_batches(labeled, l_batch, replicas)
    labels = replicate_batches(labels, l_batch, replicas)
    first = tf.data.Dataset.from_tensor_slices(unlabeled).batch(u_batch * replicas)
    second = tf.data.Dataset.from_tensor_slices((labeled, labels)).batch(l_batch * replicas)
    return tf.data.Dataset.zip((first, second))


def validation_data(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The held-out data of ``validation_data`` and ``evaluate()`` (none for metric
    learning, whose published model has no test step)."""
    if name == "simclr":
        return digits(18, 30)
    if name == "scan":
        return scan_data("val")
    return None


def fit_inputs(name: str, replicas: int = 1) -> tuple[tuple, dict]:
    """``fit``'s positional data and batching arguments, batches repeated ``replicas``
    times."""
    if name == "simclr":
        return (simclr_dataset(replicas),), {}
    batch = BATCHES[name][0]
    if name == "metric_learning":
        return (replicate_batches(anchor_positive_pairs(), batch, replicas),), {
            "batch_size": batch * replicas
        }
    anchors, neighbours = scan_data()
    data = tuple(replicate_batches(part, batch, replicas) for part in (anchors, neighbours))
    return data, {"batch_size": batch * replicas}


# Models ----------------------------------------------------------------------------------


def build_encoder() -> keras.Model:
    """SimCLR's encoder: 64 features to 8, with BatchNormalization (``training`` shows)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(FEATURES,)),
            layers.Dense(8),
            layers.BatchNormalization(),
            layers.Activation("relu"),
        ],
        name="encoder",
    )


def build_projection_head() -> keras.Model:
    """SimCLR's projection head: the encoder's 8 features to 4-vectors."""
    layers = keras.layers
    return keras.Sequential(
        [keras.Input(shape=(8,)), layers.Dense(8, activation="relu"), layers.Dense(4)],
        name="projection_head",
    )


def build_linear_probe() -> keras.Model:
    """SimCLR's linear probe: the encoder's 8 features to 10 class logits."""
    return keras.Sequential(
        [keras.Input(shape=(8,)), keras.layers.Dense(N_CLASSES)], name="linear_probe"
    )


def build_clustering_model() -> keras.Model:
    """SCAN's clustering model: 64 features to ``N_CLUSTERS`` logits."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(FEATURES,)),
            layers.Dense(16),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.Dense(N_CLUSTERS),
        ],
        name="clustering_model",
    )


def embedding_graph():
    """Inputs and outputs of metric learning's embedding: 64 features to unit 8-vectors."""
    inputs = keras.Input(shape=(FEATURES,))
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    embeddings = keras.layers.Dense(8, name="embedding")(hidden)
    return inputs, keras.layers.UnitNormalization(name="unit")(embeddings)


@functools.cache
def initial_embedding_weights() -> tuple[np.ndarray, ...]:
    """The one set of initial embedding weights every metric-learning model starts from."""
    keras.utils.set_random_seed(SEED)
    return tuple(keras.Model(*embedding_graph()).get_weights())


SUB_MODELS: dict[str, tuple[tuple[str, Callable[[], keras.Model]], ...]] = {
    "simclr": (
        ("encoder", build_encoder),
        ("projection_head", build_projection_head),
        ("linear_probe", build_linear_probe),
    ),
    "scan": (("clustering_model", build_clustering_model),),
}
AUGMENTERS = (("contrastive_augmenter", 0.2, 11), ("classification_augmenter", 0.05, 12))


def build_model(name: str, kind: str = "generated", cls: type | None = None, **params):
    """A ``kind`` model of spec ``name`` (or of ``cls``) with the shared initial weights;
    ``params`` are extra constructor arguments (SimCLR's temperature, SCAN's weight)."""
    cls = cls or spec_class(name, kind)
    if name == "metric_learning":
        keras.utils.set_random_seed(SEED)
        model = cls(*embedding_graph())
        model.set_weights(list(initial_embedding_weights()))
        return model
    parts = {param: fresh_model(builder) for param, builder in SUB_MODELS[name]}
    if name == "simclr":
        for param, stddev, seed in AUGMENTERS:
            parts[param] = keras.layers.GaussianNoise(stddev, seed=seed)
    keras.utils.set_random_seed(SEED)
    return cls(**parts, **params)


def initial_state(name: str) -> list[np.ndarray]:
    """The trained weights every run of ``name`` starts from (no seed states)."""
    if name == "metric_learning":
        return list(initial_embedding_weights())
    return [w for _, builder in SUB_MODELS[name] for w in initial_weights(builder)]


def state(name: str, model: keras.Model) -> list[np.ndarray]:
    """Every weight the step changes: the sub-models' in ``SUB_MODELS`` order, then
    (SimCLR) each augmenter's seed state."""
    if name == "metric_learning":
        return list(model.get_weights())
    weights = [w for param, _ in SUB_MODELS[name] for w in getattr(model, param).get_weights()]
    if name == "simclr":
        weights += [getattr(model, p).seed_generator.state.numpy() for p, _, _ in AUGMENTERS]
    return weights


# Optimizers ------------------------------------------------------------------------------


def make_optimizers(name: str, kind: str = "default", loss_scale: bool | float = False):
    """``compile``'s optimizer arguments: by default SimCLR's contrastive Adam and probe
    SGD (a swap shows), the others Adam; ``kind="sgd"``: SGD for every one (any constant
    scaling of a gradient shows). ``loss_scale`` wraps each in a LossScaleOptimizer."""

    def make(which: str) -> keras.optimizers.Optimizer:
        if which == "sgd" or kind == "sgd":
            return loss_scaled(keras.optimizers.SGD(learning_rate=0.05), loss_scale)
        return loss_scaled(keras.optimizers.Adam(learning_rate=1e-2), loss_scale)

    if name == "simclr":
        return {"contrastive_optimizer": make("adam"), "probe_optimizer": make("sgd")}
    return {"optimizer": make("adam")}


def optimizers_of(name: str, model: keras.Model) -> list:
    """The optimizers a compiled model's step applies."""
    return [getattr(model, param) for param in make_optimizers(name)]


def compile_model(name: str, model: keras.Model, optimizers: Mapping, **kwargs) -> None:
    """Compile as the spec's comment says: metric learning with compile()'s loss, one
    metric and ``temperature`` (0.2 by default)."""
    if name == "metric_learning":
        kwargs = {
            "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "metrics": ["sparse_categorical_accuracy"],
            **kwargs,
        }
    model.compile(**optimizers, **kwargs)


# Runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """How ``run`` makes a model: its class, constructor and compile() arguments."""

    kind: str = "generated"
    cls: type | None = None
    params: Mapping | None = None
    optimizer: str = "default"
    loss_scale: bool | float = False
    compile_kwargs: Mapping | None = None


def new_model(name: str, setup: Setup, strategy=None) -> keras.Model:
    """A compiled model of ``setup``, made in ``strategy``'s scope if given."""
    with strategy_scope(strategy):
        model = build_model(name, setup.kind, setup.cls, **(setup.params or {}))
        optimizers = make_optimizers(name, setup.optimizer, setup.loss_scale)
        compile_model(name, model, optimizers, **(setup.compile_kwargs or {}))
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
    """Train a model of spec ``name`` (``model``, or a new one of ``setup``) on its data,
    with validation data and then ``evaluate()`` where the spec has a test step.
    ``extra`` holds every batch's logs and the state after every epoch."""
    model = model or new_model(name, setup, strategy)
    data, kwargs = fit_inputs(name, replicas)
    held_out = validation_data(name)
    evaluate_batch = EVALUATE_BATCH_SIZE * replicas
    if held_out is not None:
        # Repeated like the training batches: SCAN's entropy is a whole batch's.
        held_out = tuple(
            replicate_batches(part, EVALUATE_BATCH_SIZE, replicas) for part in held_out
        )
        kwargs.update(validation_data=held_out, validation_batch_size=evaluate_batch)
    history, extra = recorded_fit(
        model, functools.partial(state, name), *data, epochs=epochs, callbacks=callbacks, **kwargs
    )
    results = {}
    if held_out is not None:
        results = model.evaluate(*held_out, batch_size=evaluate_batch, verbose=0, return_dict=True)
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
