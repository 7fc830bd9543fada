"""The loop specs of ``tests/specs/loops_*.step`` trained on one Keras backend.

``python -m tests.support.loops_worker --backend B --out FILE`` sets ``KERAS_BACKEND``
before Keras is imported, then for each spec of ``RUNS`` builds its model from numpy
initial weights (the same on every backend), fits the fixed numpy data for one epoch
(batches of 8, no shuffling, SGD) and writes every weight after training to
``FILE`` (``<spec>/<index>`` in an ``.npz``). ``tests/test_loops_runtime.py`` compares
the backends' files weight for weight; its TensorFlow tests build the same models
in process with these functions.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

SPECS = Path(__file__).resolve().parents[1] / "specs"
BATCH, SAMPLES, FEATURES, COLUMNS, HIDDEN = 8, 24, 4, 3, 5
LEARNING_RATE = 0.05


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = rng.normal(size=(SAMPLES, COLUMNS)).astype("float32")
    return x, y


def batches(x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x[s : s + BATCH], y[s : s + BATCH]) for s in range(0, len(x), BATCH)]


def graph(heads: int = 1):
    """A tanh layer, then `heads` linear outputs of COLUMNS (a list when several)."""
    import keras

    inputs = keras.Input((FEATURES,))
    hidden = keras.layers.Dense(HIDDEN, activation="tanh")(inputs)
    outputs = [keras.layers.Dense(COLUMNS)(hidden) for _ in range(heads)]
    return inputs, outputs if heads > 1 else outputs[0]


def initial_weights(model, seed: int) -> None:
    """Every weight from a numpy draw of `seed`: the same on every backend."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.weights]
    )


def functional(heads: int = 1, seed: int = 1, cls=None):
    import keras

    model = (cls or keras.Model)(*graph(heads))
    initial_weights(model, seed)
    return model


def sgd():
    import keras

    return keras.optimizers.SGD(LEARNING_RATE)


def build_index(module):
    model = functional(cls=module.ColumnModel)
    model.compile(optimizer=sgd())
    return model


def build_heads(module):
    model = module.Heads(functional(heads=3))
    model.compile(opt=sgd())
    return model


def _two_models(cls):
    model = cls(functional(seed=1), functional(seed=2))
    model.compile(f_opt=sgd(), g_opt=sgd())
    return model


def build_pair(module):
    return _two_models(module.Pair)


def build_nested(module):
    return _two_models(module.Nested)


# Four passes over an axis of 3: known only when traced (the model's output shape).
OUT_OF_RANGE = """\
model ColumnModel(Functional):
    train(x, y):
        repeat 4 as i:
            z = self(x)
            loss = mean(square(z[:, i] - y[:, 0]))
            minimize loss over self
        return loss=loss
"""


def range_error(directory: Path) -> str:
    """What fit() raises for OUT_OF_RANGE, as `Type: message` ("" if nothing)."""
    import stepc

    spec = directory / "range.step"
    spec.write_text(OUT_OF_RANGE, encoding="utf-8")
    model = functional(cls=stepc.load(str(spec)).ColumnModel)
    model.compile(optimizer=sgd())
    x, y = data()
    try:
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    except Exception as exc:  # noqa: BLE001 - the test reads which error it was
        return f"{type(exc).__name__}: {exc}"
    return ""


RUNS = {
    "loops_index": build_index,
    "loops_heads": build_heads,
    "loops_pair": build_pair,
    "loops_nested": build_nested,
}


def fit(name: str):
    """The spec's model after one epoch on `data()`."""
    import stepc

    module = stepc.load(str(SPECS / f"{name}.step"))
    model = RUNS[name](module)
    x, y = data()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend
    import keras

    arrays = {}
    for name in RUNS:
        keras.backend.clear_session()
        weights = fit(name).get_weights()
        arrays.update({f"{name}/{i}": np.asarray(w) for i, w in enumerate(weights)})
    keras.backend.clear_session()
    arrays["range_error"] = np.asarray(range_error(Path(args.out).parent))
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
