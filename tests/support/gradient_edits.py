"""The spec, data, models and hand-written step of ``test_gradient_edits_runtime.py``.

Imported by the test and by ``gradient_edits_worker.py`` (one process per backend,
and one with 2 logical CPUs for MirroredStrategy): framework-neutral Keras, every
initial weight from numpy so that each backend starts from the same values.
"""

from __future__ import annotations

import types

import keras
import numpy as np
import stepc
from keras import ops

ROWS, WIDTH, KEEP = 6, 3, 2
SPEC = f"""
model RowEdit:
    init(encoder: Model, keep_row: int)
    metric tracker = Mean(name="loss")

    train(x, y):
        loss = mean(square(encoder(x) - y))
        grads = gradient(loss, encoder)
        row_mask = one_hot(keep_row, {ROWS})[:, None]
        masked = grads * row_mask
        scaled = 0.5 * clip(masked, -0.05, 0.05)
        apply scaled to encoder
        update tracker(loss)
"""
X = np.random.default_rng(0).integers(0, ROWS, size=(24, 4)).astype("int32")
Y = np.random.default_rng(1).normal(size=(24, WIDTH)).astype("float32")
INITIAL = np.random.default_rng(2).normal(scale=0.1, size=(ROWS, WIDTH)).astype("float32")
LEARNING_RATE = 0.5


def compiled_module() -> types.ModuleType:
    module = types.ModuleType("stepc_gradient_edits")
    exec(stepc.compile_source(SPEC, "row_edit.step"), module.__dict__)
    return module


def encoder() -> keras.Model:
    """Embedding(6, 3) averaged over the 4 tokens: one (6, 3) variable, INITIAL."""
    model = keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(ROWS, WIDTH),
            keras.layers.GlobalAveragePooling1D(),
        ]
    )
    model.set_weights([INITIAL])
    return model


class HandWritten(keras.Model):
    """The spec's step written by hand with tf.GradientTape (TensorFlow only)."""

    def __init__(self, encoder, keep_row):
        super().__init__()
        self.encoder, self.keep_row = encoder, keep_row
        self.tracker = keras.metrics.Mean(name="loss")

    def call(self, x):
        return self.encoder(x)

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(ops.cast(self.encoder(x, training=True), "float32") - y))
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.encoder.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        scale = self.optimizer.scale_loss(ops.ones((), dtype="float32"))
        row_mask = ops.one_hot(self.keep_row, ROWS)[:, None]
        grads = [0.5 * ops.clip(g / scale * row_mask, -0.05, 0.05) * scale for g in grads]
        self.optimizer.apply(grads, variables)
        self.tracker.update_state(loss)
        return {"loss": self.tracker.result()}

    @property
    def metrics(self):
        return [self.tracker]


def trained_weights(model: keras.Model, **compile_options) -> np.ndarray:
    """The encoder's (6, 3) table after one epoch of 3 batches of 8 (SGD)."""
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), **compile_options)
    model.fit(X, Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return np.asarray(ops.convert_to_numpy(model.encoder.trainable_variables[0]))


def generated_weights(**compile_options) -> np.ndarray:
    return trained_weights(compiled_module().RowEdit(encoder(), keep_row=KEEP), **compile_options)


# A second spec: in a repeat block, the encoder's gradient divided by its global norm
# and applied; then a minimize of the decoder, which sees the updated encoder.
NORMED_SPEC = """
model Normed:
    init(enc: Model, dec: Model)
    compile(e_opt: Optimizer, d_opt: Optimizer)
    metric tracker = Mean(name="loss")

    train(x, y):
        repeat 2:
            loss = mean(square(dec(enc(x)) - y))
            grads = gradient(loss, enc)
            normed = grads / (global_norm(grads) + 1e-6)
            apply where(abs(normed) > 0.1, normed, 0.0) * 0.05 to enc using e_opt
        decoded = mean(square(dec(enc(x)) - y))
        minimize decoded over dec using d_opt
        update tracker(decoded)
"""
DENSE_X = np.random.default_rng(3).normal(size=(24, 3)).astype("float32")
DENSE_Y = np.random.default_rng(4).normal(size=(24, 2)).astype("float32")


def dense(inputs: int, units: int, seed: int) -> keras.Model:
    model = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(units)])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=(inputs, units)).astype("float32"), np.zeros(units)])
    return model


class NormedByHand(keras.Model):
    """NORMED_SPEC's step written by hand with tf.GradientTape (float32, one device)."""

    def __init__(self, enc, dec):
        super().__init__()
        self.enc, self.dec = enc, dec
        self.tracker = keras.metrics.Mean(name="loss")

    def compile(self, e_opt, d_opt):
        super().compile()
        self.e_opt, self.d_opt = e_opt, d_opt

    def train_step(self, data):
        import tensorflow as tf

        x, y = data
        for _ in range(2):
            with tf.GradientTape() as tape:
                loss = ops.mean(ops.square(self.dec(self.enc(x)) - y))
            grads = tape.gradient(loss, self.enc.trainable_variables)
            norm = tf.linalg.global_norm(grads)
            grads = [g / (norm + 1e-6) for g in grads]
            grads = [ops.where(ops.abs(g) > 0.1, g, 0.0) * 0.05 for g in grads]
            self.e_opt.apply(grads, self.enc.trainable_variables)
        with tf.GradientTape() as tape:
            decoded = ops.mean(ops.square(self.dec(self.enc(x)) - y))
        grads = tape.gradient(decoded, self.dec.trainable_variables)
        self.d_opt.apply(grads, self.dec.trainable_variables)
        self.tracker.update_state(decoded)
        return {"loss": self.tracker.result()}

    @property
    def metrics(self):
        return [self.tracker]


def normed_weights(model=None, **compile_options) -> list[np.ndarray]:
    """Every weight of enc and dec after one epoch of 3 batches of 8 (SGD)."""
    if model is None:
        module = types.ModuleType("stepc_gradient_edits_normed")
        exec(stepc.compile_source(NORMED_SPEC, "normed.step"), module.__dict__)
        model = module.Normed(dense(3, 4, 5), dense(4, 2, 6))
    sgd = keras.optimizers.SGD
    model.compile(e_opt=sgd(LEARNING_RATE), d_opt=sgd(0.1), **compile_options)
    model.fit(DENSE_X, DENSE_Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    models = (model.enc, model.dec)
    return [np.asarray(ops.convert_to_numpy(v)) for m in models for v in m.weights]


# A third spec: the loss reaches one of the encoder's two heads; the other head's
# gradient is None, kept None through the edit, so apply() leaves it alone (with a
# weight decay, a zero gradient would still move it).
HEADS_SPEC = """
model Heads:
    init(enc: Model)
    metric tracker = Mean(name="loss")

    train(x, y):
        first, second = enc(x)
        loss = mean(square(first - y))
        grads = gradient(loss, enc)
        apply 0.5 * grads to enc
        update tracker(loss)
"""


def two_heads() -> keras.Model:
    inputs = keras.Input((3,))
    model = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)])
    rng = np.random.default_rng(8)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def heads_weights() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The two heads' weights before and after one epoch (SGD with weight decay)."""
    module = types.ModuleType("stepc_gradient_edits_heads")
    exec(stepc.compile_source(HEADS_SPEC, "heads.step"), module.__dict__)
    model = module.Heads(two_heads())
    before = [np.array(w) for w in model.enc.get_weights()]
    model.compile(optimizer=keras.optimizers.SGD(0.1, weight_decay=0.1))
    model.fit(DENSE_X, DENSE_Y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return before, [np.array(w) for w in model.enc.get_weights()]
