"""compile() and constructor conventions end to end, against hand-written Keras.

Each test compiles a small spec, fits it on the tiny data of
tests/support/constructs.py (3 batches of 8) next to a hand-written Keras model of
the same algorithm (same initial weights, data and optimizer config), and compares
every weight and the logs each test names at rtol 1e-5, atol 1e-6: parameter
defaults used and overridden; Keras's own optimizer, loss and metrics next to the
spec's own numbers (a LearningRateScheduler reaching model.optimizer); a Callable
pair as in keras.io's WGAN-GP; a Layer augmenter in training and inference mode;
an optimizer built in compile(learning_rate) saved, loaded and resumed; a sub-model
called with several arguments. Also the optimizer table against the pinned Keras.
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops
from stepc.tables.keras_optimizers import KEYWORD_ALIASES, OPTIMIZER_CONSTRUCTORS

from tests.support.compare import ATOL, RTOL, assert_weights_close
from tests.support.constructs import (
    BatchLogs,
    TrackedReference,
    X,
    Y,
    assert_same_logs,
    compile_spec,
    dense,
    fit_logs,
    graph,
)

# ---------------------------------------------------------------- Keras facts


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CONSTRUCTORS))
def test_optimizer_constructors_are_keras_own(name: str) -> None:
    """Each optimizer class an item may build, with its parameters in Keras's order."""
    cls = getattr(keras.optimizers, name)
    assert issubclass(cls, keras.optimizers.Optimizer)
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]
    assert tuple(params) == OPTIMIZER_CONSTRUCTORS[name]


def test_optimizer_keyword_aliases_name_keras_parameters() -> None:
    for meant in KEYWORD_ALIASES.values():
        assert any(meant in params for params in OPTIMIZER_CONSTRUCTORS.values()), meant


# ---------------------------------------------------------------- defaults

DEFAULTS = """
model Penalized(Functional):
    compile(opt: Optimizer, alpha: float = 0.5)
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        y_pred = self(x)
        loss = mean(square(y_pred - y)) + alpha * mean(square(y_pred))
        minimize loss over self using opt
        update loss_tracker(loss)
"""


class PenalizedReference(TrackedReference):
    alpha = 0.5

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = ops.mean(ops.square(y_pred - y)) + self.alpha * ops.mean(ops.square(y_pred))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self.report(x, loss)


@pytest.mark.parametrize("alpha", [None, 2.0], ids=["default", "overridden"])
def test_a_compile_default_is_used_and_overridden(alpha) -> None:
    """compile(opt) trains with alpha=0.5, compile(opt, alpha=2.0) with 2.0:
    weights and each batch's `loss` against the reference with that alpha."""
    generated = compile_spec(DEFAULTS, "defaults").Penalized(*graph(1))
    given = {} if alpha is None else {"alpha": alpha}
    generated.compile(opt=keras.optimizers.SGD(0.1), **given)
    reference = PenalizedReference(*graph(1))
    reference.alpha = 0.5 if alpha is None else alpha
    reference.compile(optimizer=keras.optimizers.SGD(0.1))
    assert_same_logs(fit_logs(generated), fit_logs(reference))
    assert_weights_close(generated, reference)
    assert generated.get_compile_config()["alpha"] == reference.alpha


# ---------------------------------------------------------------- Keras's own arguments

KERAS_OWN = """
model Smoothed(Functional):
    compile(optimizer: Optimizer, loss: Loss, metrics: Metrics = None, alpha: float = 0.1)
    metric total_tracker = Mean(name="total")
    train(x, y):
        y_pred = self(x)
        loss = compiled_loss(y, y_pred)
        total = loss + alpha * mean(square(y_pred))
        minimize total over self
        update compiled_metrics(y, y_pred)
        update total_tracker(total)
"""


class SmoothedReference(keras.Model):
    """Keras's compile(optimizer, loss, metrics) with an output penalty of 0.1."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.total_tracker = keras.metrics.Mean(name="total")

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            total = loss + 0.1 * ops.mean(ops.square(y_pred))
        grads = tape.gradient(total, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.total_tracker.update_state(total, sample_weight=ops.shape(x)[0])
        logs = self.compute_metrics(x, y, y_pred)
        return {**logs, "total": self.total_tracker.result()}


def _halving(epoch: int, rate: float) -> float:
    return 0.1 * 0.5**epoch


def _fit_two_epochs(model: keras.Model) -> list[dict[str, float]]:
    logs = BatchLogs()
    scheduler = keras.callbacks.LearningRateScheduler(_halving)
    model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[logs, scheduler])
    return logs.logs


def test_keras_own_optimizer_loss_and_metrics_next_to_the_spec_own() -> None:
    """The optimizer is model.optimizer: a LearningRateScheduler halves its rate in
    the second epoch (so both epochs' weights follow the schedule), the compiled
    loss and metrics are the ones given. Weights, and each batch's `total` and
    `mae`, against Keras's own compile() in a hand-written step."""
    generated = compile_spec(KERAS_OWN, "keras_own").Smoothed(*graph(2))
    generated.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    reference = SmoothedReference(*graph(2))
    reference.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    generated_logs, reference_logs = _fit_two_epochs(generated), _fit_two_epochs(reference)
    assert_weights_close(generated, reference)
    assert len(generated_logs) == len(reference_logs) == 6
    for ours, theirs in zip(generated_logs, reference_logs, strict=True):
        for key in ("total", "mae"):
            np.testing.assert_allclose(ours[key], theirs[key], rtol=RTOL, atol=ATOL, err_msg=key)
    np.testing.assert_allclose(float(generated.optimizer.learning_rate), 0.05, rtol=RTOL)
    config = generated.get_compile_config()
    assert config["alpha"] == 0.1 and config["loss"] == "mse" and config["metrics"] == ["mae"]


# ---------------------------------------------------------------- Callable parameters

WGAN = """
model WGAN:
    init(critic: Model, generator: Model)
    compile(d_optimizer: Optimizer, g_optimizer: Optimizer, d_loss_fn: Callable, \
            g_loss_fn: Callable)
    metric d_tracker = Mean(name="d_loss")
    metric g_tracker = Mean(name="g_loss")
    train(real_images, z):
        fake_images = generator(z)
        d_loss = d_loss_fn(critic(real_images), critic(fake_images))
        minimize d_loss over critic using d_optimizer
        g_loss = g_loss_fn(critic(generator(z)))
        minimize g_loss over generator using g_optimizer
        update d_tracker(d_loss)
        update g_tracker(g_loss)
"""
Z = np.random.default_rng(2).normal(size=(24, 2)).astype("float32")


@keras.saving.register_keras_serializable(package="stepc_compile_runtime")
def critic_loss(real_logits, fake_logits):
    """keras.io's WGAN-GP discriminator loss (without the penalty)."""
    return ops.mean(fake_logits) - ops.mean(real_logits)


@keras.saving.register_keras_serializable(package="stepc_compile_runtime")
def generator_loss(fake_logits):
    return -ops.mean(fake_logits)


def _generator(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])


class WGANReference(keras.Model):
    """keras.io's WGAN-GP train_step, one critic step, without the gradient penalty."""

    def __init__(self, critic, generator, **kwargs):
        super().__init__(**kwargs)
        self.critic, self.generator = critic, generator
        self.d_tracker = keras.metrics.Mean(name="d_loss")
        self.g_tracker = keras.metrics.Mean(name="g_loss")
        self.d_optimizer = keras.optimizers.SGD(0.05)
        self.g_optimizer = keras.optimizers.SGD(0.05)

    @property
    def metrics(self):
        return [self.d_tracker, self.g_tracker]

    def train_step(self, data):
        real_images, z = data
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            d_loss = critic_loss(self.critic(real_images), self.critic(fake, training=True))
        variables = self.critic.trainable_variables
        self.d_optimizer.apply(tape.gradient(d_loss, variables), variables)
        with tf.GradientTape() as tape:
            g_loss = generator_loss(self.critic(self.generator(z, training=True), training=True))
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(g_loss, variables), variables)
        self.d_tracker.update_state(d_loss)
        self.g_tracker.update_state(g_loss)
        return {m.name: m.result() for m in self.metrics}


def test_a_callable_pair_as_in_wgan_gp(tmp_path) -> None:
    """d_loss_fn(real_logits, fake_logits) and g_loss_fn(fake_logits), plain
    functions given to compile(): both models' weights and each batch's d_loss
    and g_loss against keras.io's step; the registered functions save and load."""
    generated = compile_spec(WGAN, "wgan_callables").WGAN(dense(1, 3), _generator(4))
    generated.compile(
        d_optimizer=keras.optimizers.SGD(0.05),
        g_optimizer=keras.optimizers.SGD(0.05),
        d_loss_fn=critic_loss,
        g_loss_fn=generator_loss,
    )
    reference = WGANReference(dense(1, 3), _generator(4))
    reference.compile()
    assert_same_logs(fit_logs(generated, X, Z), fit_logs(reference, X, Z))
    assert_weights_close(generated.critic, reference.critic)
    assert_weights_close(generated.generator, reference.generator)
    generated.save(tmp_path / "wgan.keras")
    loaded = keras.models.load_model(tmp_path / "wgan.keras")
    assert loaded.d_loss_fn is critic_loss and loaded.g_loss_fn is generator_loss


def test_a_callable_must_be_a_function() -> None:
    model = compile_spec(WGAN, "wgan_not_callable").WGAN(dense(1, 3), _generator(4))
    with pytest.raises(TypeError, match=r"wgan_not_callable\.step:4: d_loss_fn must be a function"):
        model.compile(d_optimizer="sgd", g_optimizer="sgd", d_loss_fn=0.5, g_loss_fn=generator_loss)


# ---------------------------------------------------------------- Layer parameters

AUGMENTED = """
model Augmented:
    init(net: Model, augmenter: Layer)
    compile(opt: Optimizer)
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        loss = mean(square(net(augmenter(x)) - y))
        minimize loss over net using opt
        update loss_tracker(loss)
"""


@keras.saving.register_keras_serializable(package="stepc_compile_runtime")
class Shift(keras.layers.Layer):
    """An augmenter that shifts its input by 1 in training mode only."""

    def call(self, x, training=None):
        return x + 1.0 if training else x


class AugmentedReference(TrackedReference):
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(self(x + 1.0, training=True) - y))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return self.report(x, loss)


def test_a_layer_augmenter_in_training_and_inference_mode(tmp_path) -> None:
    """The augmenter runs in training mode in train (x + 1), in inference mode in the
    derived test step: weights and each batch's loss against a reference shifting
    by hand; evaluate() is the unshifted loss; the layer is saved with the model."""
    generated = compile_spec(AUGMENTED, "augmented").Augmented(dense(1, 5), Shift())
    generated.compile(opt=keras.optimizers.SGD(0.1))
    net = dense(1, 5)
    reference = AugmentedReference(net.inputs, net.outputs)
    reference.compile(optimizer=keras.optimizers.SGD(0.1))
    assert_same_logs(fit_logs(generated), fit_logs(reference))
    assert_weights_close(generated.net, reference)
    evaluated = generated.evaluate(X, Y, batch_size=24, verbose=0, return_dict=True)
    expected = np.mean(np.square(generated.net.predict(X, verbose=0) - Y))
    np.testing.assert_allclose(evaluated["loss"], expected, rtol=RTOL, atol=ATOL)
    generated.save(tmp_path / "augmented.keras")
    assert isinstance(keras.models.load_model(tmp_path / "augmented.keras").augmenter, Shift)


# ---------------------------------------------------------------- optimizers built in compile()

BUILT = """
model Enhancer(Functional):
    compile(learning_rate: float = 1e-2)
    optimizer optimizer = Adam(learning_rate=learning_rate)
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        loss = mean(square(self(x) - y))
        minimize loss over self
        update loss_tracker(loss)
"""
BUILT_OWN = """
model Pair:
    init(net: Model)
    compile(learning_rate: float = 1e-2)
    optimizer net_opt = Adam(learning_rate=learning_rate, beta_1=0.8)
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        loss = mean(square(net(x) - y))
        minimize loss over net using net_opt
        update loss_tracker(loss)
"""


def _fit(model: keras.Model, epochs: int = 1) -> None:
    model.fit(X, Y, batch_size=8, epochs=epochs, shuffle=False, verbose=0)


def test_an_optimizer_built_in_compile_matches_keras_adam() -> None:
    """`optimizer optimizer = Adam(learning_rate=learning_rate)` is model.optimizer,
    built from compile(learning_rate=0.05): weights after 2 epochs against Keras's
    default step with compile(Adam(0.05), "mse")."""
    generated = compile_spec(BUILT, "built").Enhancer(*graph(6))
    generated.compile(learning_rate=0.05)
    reference = keras.Model(*graph(6))
    reference.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05), loss="mse")
    _fit(generated, 2)
    _fit(reference, 2)
    assert_weights_close(generated, reference)
    assert isinstance(generated.optimizer, keras.optimizers.Adam)


def _resumable(spec: str):
    """A fresh model of each kind, the compile() arguments it is given, and where
    its optimizer is."""
    if spec == "built_keras_own":
        cls = compile_spec(BUILT, "built_resume").Enhancer
        return (lambda: cls(*graph(7))), (lambda: {"learning_rate": 0.05}), "optimizer"
    if spec == "built_own":
        cls = compile_spec(BUILT_OWN, "built_own_resume").Pair
        return (lambda: cls(dense(1, 7))), (lambda: {"learning_rate": 0.05}), "net_opt"
    cls = compile_spec(KERAS_OWN, "keras_own_resume").Smoothed
    arguments = {"loss": "mse", "metrics": ["mae"], "alpha": 0.2}
    return (lambda: cls(*graph(7))), (lambda: {"optimizer": "adam", **arguments}), "optimizer"


@pytest.mark.parametrize("spec", ["built_keras_own", "built_own", "keras_arguments"])
def test_a_compiled_model_saves_loads_and_resumes(tmp_path, spec: str) -> None:
    """Trained an epoch, saved (model.save and save_weights), loaded and trained an
    epoch more: the same weights and optimizer state as the model never saved,
    and as a fresh model given the saved weights; compile()'s arguments are kept
    (an optimizer built from compile(learning_rate=0.05), or Keras's own optimizer,
    loss and metrics next to the spec's alpha)."""
    build, arguments, optimizer = _resumable(spec)
    original = build()
    original.compile(**arguments())
    _fit(original)
    original.save(tmp_path / "model.keras")
    original.save_weights(tmp_path / "model.weights.h5")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    restored = build()
    restored.compile(**arguments())
    restored.load_weights(tmp_path / "model.weights.h5")
    for model in (original, loaded, restored):
        _fit(model)
    iterations = int(getattr(original, optimizer).iterations)
    for model in (loaded, restored):
        assert_weights_close(model, original)
        assert int(getattr(model, optimizer).iterations) == iterations == 6
    assert loaded.get_compile_config() == original.get_compile_config()


# ---------------------------------------------------------------- sub-model calls

SEVERAL_ARGUMENTS = """
model Seq:
    init(decoder: Model)
    compile(opt: Optimizer)
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        padding_mask = relu(sign(x))
        y_pred = decoder(x, 2.0 * x, padding_mask=padding_mask)
        loss = mean(square(y_pred - y))
        minimize loss over decoder using opt
        update loss_tracker(loss)
"""


class Decoder(keras.Model):
    """A sub-model whose call takes two tensors and a padding mask."""

    def __init__(self, seed: int, **kwargs):
        super().__init__(**kwargs)
        keras.utils.set_random_seed(seed)
        self.dense = keras.layers.Dense(1)
        self(X[:1], X[:1])  # built before compile() builds the optimizer on it

    def call(self, tokens, encoded, padding_mask=None, training=None):
        hidden = tokens + encoded
        return self.dense(hidden if padding_mask is None else hidden * padding_mask)


def test_a_sub_model_called_with_several_arguments() -> None:
    """decoder(x, 2.0 * x, padding_mask=padding_mask): the decoder's weights and each batch's loss
    against the same call written by hand."""
    generated = compile_spec(SEVERAL_ARGUMENTS, "several").Seq(Decoder(8))
    generated.compile(opt=keras.optimizers.SGD(0.1))
    decoder, optimizer = Decoder(8), keras.optimizers.SGD(0.1)
    losses = []
    for start in range(0, 24, 8):
        x, y = X[start : start + 8], Y[start : start + 8]
        with tf.GradientTape() as tape:
            y_pred = decoder(x, 2.0 * x, padding_mask=ops.relu(ops.sign(x)), training=True)
            loss = ops.mean(ops.square(y_pred - y))
        variables = decoder.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
        losses.append(float(loss))
    logs = fit_logs(generated)
    assert_weights_close(generated.decoder, decoder)
    # The tracker's log after batch k is the mean of the first k + 1 losses.
    running = np.cumsum(losses) / np.arange(1, 4)
    np.testing.assert_allclose([log["loss"] for log in logs], running, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- a sub-model's shapes

SHAPES = """
model Probe:
    init(generator: Model)
    compile(opt: Optimizer)
    metric loss_tracker = Mean(name="loss")
    train(x, y):
        z = ones((shape(x)[0], input_shape(generator)[1]))
        loss = mean(square(generator(z) - y)) * output_shape(generator)[-1]
        minimize loss over generator using opt
        update loss_tracker(loss)
"""


def test_a_step_reads_the_input_and_output_shape_of_a_sub_model() -> None:
    """input_shape(generator)[1] as the latent size (2), output_shape(...)[-1] (3):
    the generator's weights and each batch's loss against the literal sizes."""
    generated = compile_spec(SHAPES, "shapes").Probe(_generator(9))
    generated.compile(opt=keras.optimizers.SGD(0.1))
    reference = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    reference.set_weights(_generator(9).get_weights())
    optimizer, losses = keras.optimizers.SGD(0.1), []
    for start in range(0, 24, 8):
        with tf.GradientTape() as tape:
            loss = ops.mean(ops.square(reference(ops.ones((8, 2))) - Y[start : start + 8])) * 3
        variables = reference.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
        losses.append(float(loss))
    logs = fit_logs(generated)
    assert_weights_close(generated.generator, reference)
    running = np.cumsum(losses) / np.arange(1, 4)
    np.testing.assert_allclose([log["loss"] for log in logs], running, rtol=RTOL, atol=ATOL)


EMA = """
model Averaged(Functional):
    compile(optimizer: Optimizer, loss: Loss)
    train(x, y):
        loss = compiled_loss(y, self(x))
        minimize loss over self
"""


def test_keras_own_optimizer_may_average_its_weights() -> None:
    """use_ema=True on Keras's own optimizer: fit() swaps the moving averages into the
    weights at the end, as for Keras's default step (the reference): weights compared."""
    generated = compile_spec(EMA, "ema").Averaged(*graph(10))
    generated.compile(optimizer=keras.optimizers.SGD(0.1, use_ema=True), loss="mse")
    reference = keras.Model(*graph(10))
    reference.compile(optimizer=keras.optimizers.SGD(0.1, use_ema=True), loss="mse")
    _fit(generated, 2)
    _fit(reference, 2)
    assert_weights_close(generated, reference)
    plain = keras.Model(*graph(10))
    plain.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    _fit(plain, 2)
    assert not np.allclose(plain.get_weights()[0], generated.get_weights()[0])  # averaged


def test_keras_arguments_given_through_kwargs_survive_a_save(tmp_path) -> None:
    """compile(metrics=..., jit_compile=...) that the spec's compile() does not declare
    reach Keras through **kwargs; get_compile_config keeps them, so load_model
    compiles the loaded model with them (and with the spec's own `alpha`)."""
    spec = KERAS_OWN.replace(", metrics: Metrics = None", "")
    cls = compile_spec(spec, "kwargs_resume").Smoothed
    model = cls(*graph(7))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"], alpha=0.2, jit_compile=False)
    _fit(model)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    config = loaded.get_compile_config()
    assert config["metrics"] == ["mae"] and config["jit_compile"] is False
    assert config["alpha"] == 0.2
    assert config == model.get_compile_config()
