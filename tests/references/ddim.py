"""Reference for ``specs/ddim.step``: denoising diffusion implicit models (Song et al.,
2020), following the keras.io example "Denoising Diffusion Implicit Models".

Algorithm. A diffusion time ``t`` in ``[0, 1]`` is an angle between ``arccos`` of the
largest and of the smallest signal rate (the cosine schedule); an image mixed with
noise at ``t`` is ``cos(angle) * image + sin(angle) * noise``. Per training batch: draw
noise and one diffusion time per image, mix them, let the network predict the noise
from the noisy images and the noise variances, and take one step of Keras's optimizer on
the mean absolute error of the predicted noise (the error of the image it implies is
tracked too); then move every weight of the EMA network towards the network's,
``ema * ema_weight + (1 - ema) * weight``. The test step does the same with the EMA
network in inference mode (no update), then samples: from pure noise, ``diffusion_steps``
DDIM steps (predict noise and image at time ``1 - step / diffusion_steps``, re-noise the
predicted image to the next time with the predicted noise), and updates the user's KID
metric with the real and the generated images (clipped to ``[0, 1]``). Reported: ``n_loss``
and ``i_loss`` in training, those and ``kid`` in evaluation.

What it simplifies and how it is written, for Keras 3:

* No Normalization layer: the images come in the range the network expects, so there is
  nothing to normalize or denormalize; the network is any model taking ``[noisy_images,
  noise_variances]``.
* The EMA network is a constructor argument (the example clones the network); the loss is
  a hand-written mean absolute error, not compile()'s ``loss``.
* Random draws come from one ``keras.random.SeedGenerator`` created last in
  ``__init__``, in the order the example draws: the noise, the diffusion times, then (test
  step) the sampler's initial noise.
* The loss goes through the optimizer's ``scale_loss`` inside the tape (a
  ``LossScaleOptimizer`` works) as this replica's share under distribution (a no-op on one
  device); trackers are weighted by the batch size; sub-model outputs are cast to float32
  before the step's own arithmetic (a no-op in float32).
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
class DiffusionModelReference(keras.Model):
    """A noise-predicting network with an EMA copy that samples by DDIM."""

    def __init__(
        self,
        network,
        ema_network,
        kid,
        diffusion_steps=5,
        ema=0.999,
        min_signal_rate=0.02,
        max_signal_rate=0.95,
        **kwargs,
    ):
        """Hold the networks, the KID metric, the settings, the trackers and, last, the
        seed generator."""
        super().__init__(**kwargs)
        self.network = network
        self.ema_network = ema_network
        self.kid = kid
        self.diffusion_steps = diffusion_steps
        self.ema = ema
        self.min_signal_rate = min_signal_rate
        self.max_signal_rate = max_signal_rate
        self.noise_loss_tracker = keras.metrics.Mean(name="n_loss")
        self.image_loss_tracker = keras.metrics.Mean(name="i_loss")
        self.seed_generator = keras.random.SeedGenerator()
        # Its sub-models are built and it has no call(): nothing for fit() to build under
        # a strategy (Keras would call the model on the batch).
        self.built = True

    @property
    def metrics(self):
        """Every metric, which Keras resets at each epoch (the KID only the test step
        updates)."""
        return [self.noise_loss_tracker, self.image_loss_tracker, self.kid]

    def diffusion_schedule(self, diffusion_times):
        """The cosine schedule: the noise and signal rates at ``diffusion_times``."""
        start_angle = ops.arccos(self.max_signal_rate)
        end_angle = ops.arccos(self.min_signal_rate)
        angles = start_angle + diffusion_times * (end_angle - start_angle)
        return ops.sin(angles), ops.cos(angles)

    def denoise(self, network, noisy_images, noise_rates, signal_rates, training):
        """The predicted noise and the image it implies."""
        pred_noises = _float32(network([noisy_images, noise_rates**2], training=training))
        pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates
        return pred_noises, pred_images

    def _noisy(self, images):
        """The images mixed with fresh noise at random diffusion times."""
        batch_size = ops.shape(images)[0]
        noises = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        times = keras.random.uniform((batch_size, 1, 1, 1), seed=self.seed_generator)
        noise_rates, signal_rates = self.diffusion_schedule(times)
        return noises, noise_rates, signal_rates, signal_rates * images + noise_rates * noises

    def _track(self, images, noises, pred_noises, pred_images):
        """Update both trackers; return the noise loss."""
        batch_size = ops.shape(images)[0]
        noise_loss = ops.mean(ops.abs(noises - pred_noises))
        image_loss = ops.mean(ops.abs(images - pred_images))
        self.noise_loss_tracker.update_state(noise_loss, sample_weight=batch_size)
        self.image_loss_tracker.update_state(image_loss, sample_weight=batch_size)
        return noise_loss

    def train_step(self, data):
        """One optimizer step on the noise loss, then the EMA update."""
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        noises, noise_rates, signal_rates, noisy_images = self._noisy(images)
        variables = self.network.trainable_variables
        with tf.GradientTape() as tape:
            pred_noises, pred_images = self.denoise(
                self.network, noisy_images, noise_rates, signal_rates, training=True
            )
            noise_loss = ops.mean(ops.abs(noises - pred_noises))
            scaled_loss = self.optimizer.scale_loss(_replica_share(noise_loss))
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self._track(images, noises, pred_noises, pred_images)
        self._update_ema()
        return {m.name: m.result() for m in (self.noise_loss_tracker, self.image_loss_tracker)}

    def _update_ema(self):
        """Move every EMA weight (BatchNorm statistics too) towards the network's."""
        for weight, ema_weight in zip(self.network.weights, self.ema_network.weights, strict=True):
            ema_weight.assign(self.ema * ema_weight + (1.0 - self.ema) * weight)

    def reverse_diffusion(self, initial_noise):
        """``diffusion_steps`` DDIM steps of the EMA network from ``initial_noise``; the
        last predicted images."""
        batch_size = ops.shape(initial_noise)[0]
        step_size = 1.0 / self.diffusion_steps
        next_noisy_images = initial_noise
        for step in range(self.diffusion_steps):
            noisy_images = next_noisy_images
            times = ops.ones((batch_size, 1, 1, 1)) - step * step_size
            noise_rates, signal_rates = self.diffusion_schedule(times)
            pred_noises, pred_images = self.denoise(
                self.ema_network, noisy_images, noise_rates, signal_rates, training=False
            )
            next_noise_rates, next_signal_rates = self.diffusion_schedule(times - step_size)
            next_noisy_images = next_signal_rates * pred_images + next_noise_rates * pred_noises
        return pred_images

    def test_step(self, data):
        """The losses of the EMA network, then sampling and the KID."""
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        noises, noise_rates, signal_rates, noisy_images = self._noisy(images)
        pred_noises, pred_images = self.denoise(
            self.ema_network, noisy_images, noise_rates, signal_rates, training=False
        )
        self._track(images, noises, pred_noises, pred_images)
        initial_noise = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        generated_images = ops.clip(self.reverse_diffusion(initial_noise), 0.0, 1.0)
        self.kid.update_state(images, generated_images)
        return {m.name: m.result() for m in self.metrics}
