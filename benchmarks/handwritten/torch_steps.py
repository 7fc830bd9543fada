"""Hand-written torch steps: the guide's GAN and the basic spec, as a user writes them.

Written from Keras's guide "Customizing what happens in fit() with PyTorch" (its
end-to-end GAN and its first example): forward pass, ``self.zero_grad()``,
``loss.backward()``, the gradients read from ``v.value.grad``, and ``optimizer.apply``
under ``torch.no_grad()``. One change from the guide's GAN, as a careful user makes it:
the fakes the discriminator trains on are generated under ``torch.no_grad()``, since that
step never needs the generator's gradients (the guide records them and discards them).
Losses are not scaled: these models run in float32.
"""

from __future__ import annotations

import keras
import torch
from keras import ops

LABEL_NOISE = 0.05


def apply_gradients(optimizer, loss, variables) -> None:
    """Backpropagate ``loss`` and step ``optimizer`` on ``variables``."""
    loss.backward()
    gradients = [variable.value.grad for variable in variables]
    with torch.no_grad():
        optimizer.apply(gradients, variables)


@keras.saving.register_keras_serializable(package="stepc_benchmarks")
class BasicTorch(keras.Model):
    """The basic spec: compile()'s loss and metrics, one optimizer on every weight."""

    def train_step(self, data):
        """One optimizer step on a batch; the metrics' current values."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=True)
        self.zero_grad()
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        apply_gradients(self.optimizer, loss, self.trainable_weights)
        logs = {}
        for metric in self.metrics:
            if metric.name == "loss":  # weighted by batch size, as Keras's own step
                metric.update_state(loss, sample_weight=ops.shape(x)[0])
            else:
                metric.update_state(y, y_pred)
            result = metric.result()
            logs.update(result if isinstance(result, dict) else {metric.name: result})
        return logs


@keras.saving.register_keras_serializable(package="stepc_benchmarks")
class GANTorch(keras.Model):
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
        """Configure both optimizers and the loss; forward the rest to Keras."""
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [self.d_loss_tracker, self.g_loss_tracker]

    def _latent_noise(self, batch_size):
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def _train_discriminator(self, real_images, batch_size):
        """One discriminator step on fakes (label ~1) and reals (label ~0)."""
        with torch.no_grad():
            generated = self.generator(self._latent_noise(batch_size), training=True)
        combined = ops.concatenate([generated, real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        noise = keras.random.uniform(ops.shape(labels), seed=self.seed_generator)
        labels = labels + LABEL_NOISE * noise
        self.zero_grad()
        d_loss = self.loss_fn(labels, self.discriminator(combined, training=True))
        apply_gradients(self.d_optimizer, d_loss, self.discriminator.trainable_weights)
        return d_loss

    def _train_generator(self, batch_size):
        """One generator step towards fakes the discriminator calls real (0)."""
        misleading_labels = ops.zeros((batch_size, 1))
        latent = self._latent_noise(batch_size)
        self.zero_grad()
        predictions = self.discriminator(self.generator(latent, training=True), training=True)
        g_loss = self.loss_fn(misleading_labels, predictions)
        apply_gradients(self.g_optimizer, g_loss, self.generator.trainable_weights)
        return g_loss

    def train_step(self, data):
        """Train the discriminator, then the generator, on one batch of real images."""
        real_images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = ops.shape(real_images)[0]
        d_loss = self._train_discriminator(real_images, batch_size)
        g_loss = self._train_generator(batch_size)
        self.d_loss_tracker.update_state(d_loss, sample_weight=batch_size)
        self.g_loss_tracker.update_state(g_loss, sample_weight=batch_size)
        return {metric.name: metric.result() for metric in self.metrics}
