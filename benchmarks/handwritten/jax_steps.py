"""Hand-written JAX steps: the guide's GAN and the basic spec, as a user writes them.

Written from Keras's guide "Customizing what happens in fit() with JAX": the JAX trainer
calls ``train_step(self, state, data)`` with ``state = (trainable, non_trainable,
optimizer_variables, metrics_variables)`` (the values of ``self.trainable_variables``,
``self.non_trainable_variables``, ``self.optimizer.variables`` and
``self.metrics_variables``, in that order) and expects ``(logs, new_state)`` back; the
step is jitted and stateless, so every value it changes must come back in the new state.

The GAN needs what the guide does not show (keras#18881, keras#19358): ``fit()`` threads
only ``self.optimizer.variables``, so ``compile()`` builds each optimizer on its own
sub-model's variables and sets ``self.optimizer`` to an object listing both optimizers'
variables; the seed generator's state travels in ``non_trainable``, so the draws run in a
``StatelessScope`` that maps it. Losses are not scaled: these models run in float32.
"""

from __future__ import annotations

import jax
import keras
from keras import ops

LABEL_NOISE = 0.05


def take(values: list, variables: list, wanted: list) -> list:
    """The values of the ``wanted`` variables, from ``values`` listed like ``variables``
    (found by identity: a model lists its own variables before its sub-models')."""
    position = {id(variable): index for index, variable in enumerate(variables)}
    return [values[position[id(variable)]] for variable in wanted]


def put(values: list, variables: list, wanted: list, new: list) -> list:
    """``values`` with the ``wanted`` variables' entries replaced by ``new``."""
    position = {id(variable): index for index, variable in enumerate(variables)}
    values = list(values)
    for variable, value in zip(wanted, new, strict=True):
        values[position[id(variable)]] = value
    return values


def update_metrics(metrics, variables: list, updates: list) -> tuple[dict, list]:
    """Each metric updated statelessly with its ``(args, kwargs)``; the logs, new variables."""
    logs, new_variables = {}, []
    for metric, (args, kwargs) in zip(metrics, updates, strict=True):
        mine = variables[len(new_variables) : len(new_variables) + len(metric.variables)]
        mine = metric.stateless_update_state(mine, *args, **kwargs)
        result = metric.stateless_result(mine)
        logs.update(result if isinstance(result, dict) else {metric.name: result})
        new_variables += mine
    return logs, new_variables


class StepOptimizers:
    """Set as ``model.optimizer``, so that ``fit()`` threads every optimizer's state."""

    built = True  # each optimizer is built on its own variables in compile()

    def __init__(self, *optimizers: keras.optimizers.Optimizer):
        self.optimizers = optimizers

    @property
    def variables(self) -> list:
        return [variable for optimizer in self.optimizers for variable in optimizer.variables]


@keras.saving.register_keras_serializable(package="stepc_benchmarks")
class BasicJax(keras.Model):
    """The basic spec: compile()'s loss and metrics, one optimizer on every weight."""

    def compute_loss_and_updates(self, trainable, non_trainable, metrics_variables, x, y):
        """The loss to differentiate, with the predictions and the new non-trainables."""
        y_pred, non_trainable = self.stateless_call(trainable, non_trainable, x, training=True)
        loss, (_, _, metrics_variables) = self.stateless_compute_loss(
            trainable, non_trainable, metrics_variables, x=x, y=y, y_pred=y_pred, training=True
        )
        return loss, (y_pred, non_trainable)

    def train_step(self, state, data):
        """One optimizer step on a batch; the metrics' values and the new state."""
        trainable, non_trainable, optimizer_variables, metrics_variables = state
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        grad_fn = jax.value_and_grad(self.compute_loss_and_updates, has_aux=True)
        (loss, (y_pred, non_trainable)), grads = grad_fn(
            trainable, non_trainable, metrics_variables, x, y
        )
        trainable, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, grads, trainable
        )
        # The loss tracker first (weighted by batch size, as Keras's own step), then the
        # compiled metrics: the order of self.metrics.
        updates = [((loss,), {"sample_weight": ops.shape(x)[0]}), ((y, y_pred), {})]
        logs, metrics_variables = update_metrics(self.metrics, metrics_variables, updates)
        return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)


@keras.saving.register_keras_serializable(package="stepc_benchmarks")
class GANJax(keras.Model):
    """The guide's GAN: a discriminator step, then a generator step, per batch."""

    def __init__(self, discriminator, generator, latent_dim, **kwargs):
        """Hold the sub-models, the trackers and, created last, the seed generator."""
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.seed_generator = keras.random.SeedGenerator()
        self.built = True  # its sub-models are built, and it has no call() to build

    def compile(self, d_optimizer, g_optimizer, loss_fn, **kwargs):
        """Build each optimizer on its sub-model; fit() threads both through StepOptimizers."""
        super().compile(**kwargs)
        d_optimizer.build(self.discriminator.trainable_variables)
        g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn
        self.optimizer = StepOptimizers(d_optimizer, g_optimizer)

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [self.d_loss_tracker, self.g_loss_tracker]

    def _draws(self, seed_state, batch_size):
        """The step's draws, in the reference's order, and the seed state after them."""
        latent = (batch_size, self.latent_dim)
        mapping = [(self.seed_generator.state, seed_state)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            first = keras.random.normal(latent, seed=self.seed_generator)
            noise = keras.random.uniform((2 * batch_size, 1), seed=self.seed_generator)
            second = keras.random.normal(latent, seed=self.seed_generator)
        return first, noise, second, scope.get_current_value(self.seed_generator.state)

    def _d_loss(self, d_trainable, d_state, images, labels):
        predictions, d_state = self.discriminator.stateless_call(
            d_trainable, d_state, images, training=True
        )
        return self.loss_fn(labels, predictions), d_state

    def _g_loss(self, g_trainable, g_state, d_trainable, d_state, latent, labels):
        fake, g_state = self.generator.stateless_call(g_trainable, g_state, latent, training=True)
        predictions, d_state = self.discriminator.stateless_call(
            d_trainable, d_state, fake, training=True
        )
        return self.loss_fn(labels, predictions), (g_state, d_state)

    def _unpack(self, state) -> dict:
        """The state's values per sub-model and optimizer."""
        trainable, non_trainable, optimizer_variables, _ = state
        d, g, seed = self.discriminator, self.generator, self.seed_generator
        return {
            "d": take(trainable, self.trainable_variables, d.trainable_variables),
            "g": take(trainable, self.trainable_variables, g.trainable_variables),
            "d_state": take(non_trainable, self.non_trainable_variables, d.non_trainable_variables),
            "g_state": take(non_trainable, self.non_trainable_variables, g.non_trainable_variables),
            "seed": take(non_trainable, self.non_trainable_variables, [seed.state])[0],
            "d_opt": list(optimizer_variables[: len(self.d_optimizer.variables)]),
            "g_opt": list(optimizer_variables[len(self.d_optimizer.variables) :]),
        }

    def _pack(self, w: dict, state) -> tuple[list, list, list]:
        """The new trainable, non-trainable and optimizer values, in the state's order."""
        d, g, seed = self.discriminator, self.generator, self.seed_generator
        trainable = put(state[0], self.trainable_variables, d.trainable_variables, w["d"])
        trainable = put(trainable, self.trainable_variables, g.trainable_variables, w["g"])
        non_trainable = put(state[1], self.non_trainable_variables, [seed.state], [w["seed"]])
        for model, key in ((d, "d_state"), (g, "g_state")):
            wanted = model.non_trainable_variables
            non_trainable = put(non_trainable, self.non_trainable_variables, wanted, w[key])
        return trainable, non_trainable, w["d_opt"] + w["g_opt"]

    def _train_discriminator(self, w: dict, real_images, latent, noise):
        """One discriminator step on fakes (label ~1) and reals (label ~0)."""
        generated, w["g_state"] = self.generator.stateless_call(
            w["g"], w["g_state"], latent, training=True
        )
        combined = ops.concatenate([generated, real_images], axis=0)
        batch_size = ops.shape(real_images)[0]
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        labels = labels + LABEL_NOISE * noise
        grad_fn = jax.value_and_grad(self._d_loss, has_aux=True)
        (d_loss, w["d_state"]), grads = grad_fn(w["d"], w["d_state"], combined, labels)
        w["d"], w["d_opt"] = self.d_optimizer.stateless_apply(w["d_opt"], grads, w["d"])
        return d_loss

    def _train_generator(self, w: dict, latent):
        """One generator step towards fakes the discriminator calls real (0)."""
        misleading_labels = ops.zeros((ops.shape(latent)[0], 1))
        grad_fn = jax.value_and_grad(self._g_loss, has_aux=True)
        (g_loss, (w["g_state"], w["d_state"])), grads = grad_fn(
            w["g"], w["g_state"], w["d"], w["d_state"], latent, misleading_labels
        )
        w["g"], w["g_opt"] = self.g_optimizer.stateless_apply(w["g_opt"], grads, w["g"])
        return g_loss

    def train_step(self, state, data):
        """Train the discriminator, then the generator; the trackers and the new state."""
        real_images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = ops.shape(real_images)[0]
        w = self._unpack(state)
        first, noise, second, w["seed"] = self._draws(w["seed"], batch_size)
        d_loss = self._train_discriminator(w, real_images, first, noise)
        g_loss = self._train_generator(w, second)
        updates = [((loss,), {"sample_weight": batch_size}) for loss in (d_loss, g_loss)]
        logs, metrics_variables = update_metrics(self.metrics, state[3], updates)
        return logs, (*self._pack(w, state), metrics_variables)
