"""Reference for ``specs/wgan_gp.step``: WGAN-GP (Gulrajani et al., 2017).

Algorithm, per batch of real images: ``critic_steps`` times, decode latent noise into
fake images and take one critic step on the Wasserstein estimate (mean critic score of the
fakes minus that of the reals) plus ``gp_weight`` times the gradient penalty: the mean of
``(||d critic / d mixed|| - 1)^2`` over random interpolates ``mixed`` between each real
image and its fake. Then one generator step on ``-mean(critic(fake))`` for fresh noise.
``compile(d_optimizer, g_optimizer)`` supplies one optimizer per sub-model. Three ``Mean``
trackers report the last critic step's ``d_loss`` and ``gradient_penalty`` and the
generator's ``g_loss``.

How it is written, as in the Keras WGAN-GP example but for Keras 3:

* The critic steps are a Python ``for`` loop, unrolled when ``fit`` traces the step.
* The penalty is differentiated twice: a tape that watches the interpolates gives the
  critic's input gradient, and that tape and its ``gradient`` call run inside the tape of
  the critic's loss, so the update sees how the penalty depends on the critic's weights.
  ``tape.gradient`` of the critic's ``(batch, 1)`` scores is the gradient of their sum.
* Random draws come from one ``keras.random.SeedGenerator`` created last in
  ``__init__`` (after the trackers), in the order the algorithm uses them: per critic
  step the latent noise, then the interpolation weights; then the generator's noise.
* Sub-models are called with ``training=True``; each loss goes through its optimizer's
  ``scale_loss`` inside the tape (a ``LossScaleOptimizer`` works), and, being a
  hand-written mean over the batch, is taken as this replica's share under distribution,
  as Keras's own step does (a no-op on one device). ``compile()`` forwards ``**kwargs``.
* Trackers are weighted by batch size and listed in ``metrics``, so History records the
  epoch means.
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
class WGANGPReference(keras.Model):
    """A WGAN-GP trained by ``fit()`` on batches of real images."""

    def __init__(self, critic, generator, latent_dim, critic_steps, gp_weight, **kwargs):
        """Hold the sub-models, the settings, the trackers and, last, the seed generator."""
        super().__init__(**kwargs)
        self.critic = critic
        self.generator = generator
        self.latent_dim = latent_dim
        self.critic_steps = critic_steps
        self.gp_weight = gp_weight
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.gp_tracker = keras.metrics.Mean(name="gradient_penalty")
        self.seed_generator = keras.random.SeedGenerator()

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        """Configure both optimizers; forward the rest to Keras."""
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [self.d_loss_tracker, self.g_loss_tracker, self.gp_tracker]

    def _latent_noise(self, batch_size):
        """Draw one batch of latent points from the seed generator."""
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def _gradient_penalty(self, real_images, fake_images):
        """Mean of ``(||grad||_2 - 1)^2`` of the critic at random real/fake interpolates.

        Called inside the critic's tape, so its result is differentiable with respect to
        the critic's weights (a second-order gradient).
        """
        batch_size = ops.shape(real_images)[0]
        alpha = keras.random.uniform((batch_size, 1, 1, 1), seed=self.seed_generator)
        mixed = real_images + alpha * (fake_images - real_images)
        with tf.GradientTape() as penalty_tape:
            penalty_tape.watch(mixed)
            scores = _float32(self.critic(mixed, training=True))
        input_gradient = penalty_tape.gradient(scores, mixed)
        norm = ops.sqrt(ops.sum(ops.square(input_gradient), axis=[1, 2, 3]))
        return ops.mean(ops.square(norm - 1.0))

    def _train_critic(self, real_images):
        """One critic step; returns its loss and its gradient penalty."""
        batch_size = ops.shape(real_images)[0]
        fake_images = _float32(self.generator(self._latent_noise(batch_size), training=True))
        with tf.GradientTape() as tape:
            fake_scores = _float32(self.critic(fake_images, training=True))
            real_scores = _float32(self.critic(real_images, training=True))
            wasserstein = ops.mean(fake_scores) - ops.mean(real_scores)
            penalty = self._gradient_penalty(real_images, fake_images)
            d_loss = wasserstein + self.gp_weight * penalty
            scaled_loss = self.d_optimizer.scale_loss(_replica_share(d_loss))
        variables = self.critic.trainable_variables
        self.d_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return d_loss, penalty

    def _train_generator(self, batch_size):
        """One generator step towards fakes the critic scores high."""
        latent = self._latent_noise(batch_size)
        with tf.GradientTape() as tape:
            fake_images = self.generator(latent, training=True)
            g_loss = -ops.mean(_float32(self.critic(fake_images, training=True)))
            scaled_loss = self.g_optimizer.scale_loss(_replica_share(g_loss))
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return g_loss

    def train_step(self, data):
        """``critic_steps`` critic steps, then one generator step, on one batch."""
        real_images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = ops.shape(real_images)[0]
        if self.critic_steps < 1:
            raise ValueError(f"critic_steps must be at least 1, not {self.critic_steps}")
        for _ in range(self.critic_steps):
            d_loss, penalty = self._train_critic(real_images)
        g_loss = self._train_generator(batch_size)
        self.d_loss_tracker.update_state(d_loss, sample_weight=batch_size)
        self.g_loss_tracker.update_state(g_loss, sample_weight=batch_size)
        self.gp_tracker.update_state(penalty, sample_weight=batch_size)
        return {metric.name: metric.result() for metric in self.metrics}
