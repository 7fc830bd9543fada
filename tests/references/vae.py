"""Reference for ``specs/vae.step``: a variational autoencoder (Kingma and Welling, 2014).

Algorithm, per batch of images: the encoder gives each image's code mean ``z_mean`` and
log-variance ``z_log_var``; a code is sampled with the reparameterization trick,
``z = z_mean + exp(z_log_var / 2) * eps`` with ``eps ~ N(0, 1)``; the decoder rebuilds the
image from it. The loss is the reconstruction error (binary cross-entropy of each pixel,
summed over the image, averaged over the batch) plus the KL divergence of
``N(z_mean, exp(z_log_var))`` from ``N(0, 1)`` (summed over the code, averaged over the
batch). One step of the optimizer given to ``compile(optimizer=...)`` updates the encoder
and the decoder together. Trackers report ``loss`` (the total), ``reconstruction_loss``
and ``kl_loss``.

Images are ``(batch, height, width, 1)``: ``keras.losses.binary_crossentropy`` averages
over the last (channel) axis, leaving ``(batch, height, width)`` to sum over axes 1 and 2.

How it is written, as in the Keras VAE example but for Keras 3:

* The noise comes from ``keras.random.normal`` with a ``keras.random.SeedGenerator``
  created last in ``__init__``, so a run is reproducible under
  ``keras.utils.set_random_seed`` (a ``Sampling`` layer with its own generator would draw
  the same numbers only if it were created at the same point).
* Sub-models are called with ``training=True``; the loss goes through
  ``optimizer.scale_loss`` inside the tape and, being a hand-written batch mean, is taken
  as this replica's share under distribution (a no-op on one device).
* Trackers are weighted by batch size and listed in ``metrics`` (which also keeps the
  tracker named "loss" from colliding with compile()'s own), so History records the epoch
  means.
* Under mixed precision the sub-models return float16: their outputs are cast to float32
  before the step's own arithmetic (a no-op in float32), as Keras's losses cast theirs.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _replica_share(loss):
    """A whole-batch mean as this replica's share of the global loss."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / ops.cast(replicas, loss.dtype)


def _float32(x):
    """A sub-model's output (float16 under mixed precision) in float32."""
    return ops.cast(x, "float32")


@keras.saving.register_keras_serializable(package="stepc_references")
class VAEReference(keras.Model):
    """A VAE of an encoder with two outputs and a decoder, trained by ``fit()``."""

    def __init__(self, encoder, decoder, **kwargs):
        """Hold the sub-models, the trackers and, created last, the seed generator."""
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self.seed_generator = keras.random.SeedGenerator()

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def _sample(self, z_mean, z_log_var):
        """A code from ``N(z_mean, exp(z_log_var))``, differentiable in both."""
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def _kl_loss(self, z_mean, z_log_var):
        """KL divergence from the standard normal, summed over the code, batch mean."""
        kl = -0.5 * (1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
        return ops.mean(ops.sum(kl, axis=1))

    def train_step(self, data):
        """One optimizer step on the encoder and decoder; returns the trackers."""
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            z_mean, z_log_var = map(_float32, self.encoder(images, training=True))
            z = self._sample(z_mean, z_log_var)
            reconstruction = _float32(self.decoder(z, training=True))
            pixel_losses = keras.losses.binary_crossentropy(images, reconstruction)
            reconstruction_loss = ops.mean(ops.sum(pixel_losses, axis=(1, 2)))
            kl_loss = self._kl_loss(z_mean, z_log_var)
            total_loss = reconstruction_loss + kl_loss
            scaled_loss = self.optimizer.scale_loss(_replica_share(total_loss))
        variables = self.encoder.trainable_variables + self.decoder.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        batch_size = ops.shape(images)[0]
        self.total_loss_tracker.update_state(total_loss, sample_weight=batch_size)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss, sample_weight=batch_size)
        self.kl_loss_tracker.update_state(kl_loss, sample_weight=batch_size)
        return {metric.name: metric.result() for metric in self.metrics}
