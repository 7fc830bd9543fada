"""Reference for ``specs/stylegan.step``: StyleGAN's fade-in training step (Karras et
al., 2019, growing progressively as ProGAN, Karras et al., 2018), following the
``train_step`` of the keras.io example "Face image generation with StyleGAN".

Algorithm, per batch of real images: count the step and set the fade-in weight
``alpha = min(step / fade_steps, 1)`` (kept by the model, as the example's ``alpha`` and
step counter variables); the generator and the discriminator take ``[input, alpha]``
and blend their old and new blocks with it. Generator step: fakes from latent noise,
one ``g_optimizer`` step on ``-mean(D(fake))``. Discriminator step, on those fakes (drawn
before the generator's update): the Wasserstein estimate ``mean(D(fake)) -
mean(D(real))``, plus ``gp_weight`` times the gradient penalty ``mean((||dD/dx|| -
1)^2)`` at random interpolates ``eps * real + (1 - eps) * fake``, plus the drift term
``drift_weight * mean(D(real)^2)``; one ``d_optimizer`` step. Trackers: ``d_loss``,
``g_loss``.

What it simplifies and how it is written, for Keras 3:

* Only the fade-in step of one resolution: no mapping network, style or noise inputs,
  no phase switching (``min(..., 1)`` is the stable phase once the fade-in ends); the
  sub-models are stand-ins taking ``[input, alpha]`` with alpha as ``(batch, 1)``.
* The penalty differentiates the critic's summed scores (each example's own input
  gradient, as WGAN-GP), on its own tape inside the discriminator's tape.
* Random draws come from one ``keras.random.SeedGenerator`` created last in
  ``__init__``: the latent noise, then the interpolation weights.
* ``step`` and ``alpha`` are non-trainable, unaggregated model variables (saved with the
  model); sub-models run with ``training=True``; each loss goes through its optimizer's
  ``scale_loss`` inside the tape as this replica's share under distribution; trackers
  are weighted by the batch size; sub-model outputs are cast to float32.
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
class StyleGANReference(keras.Model):
    """A generator and a discriminator trained while a new resolution fades in."""

    def __init__(
        self,
        generator,
        discriminator,
        latent_dim,
        fade_steps,
        gp_weight=10.0,
        drift_weight=0.001,
        **kwargs,
    ):
        """Hold the sub-models, the settings, the fade-in state, the trackers and, last,
        the seed generator."""
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.fade_steps = fade_steps
        self.gp_weight = gp_weight
        self.drift_weight = drift_weight
        self.step = self._state("step", "int32")
        self.alpha = self._state("alpha", "float32")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.seed_generator = keras.random.SeedGenerator()
        # Its sub-models are built and it has no call(): nothing for fit() to build under
        # a strategy (Keras would call the model on the batch).
        self.built = True

    def _state(self, name, dtype):
        return self.add_weight(
            name=name,
            shape=(),
            dtype=dtype,
            initializer="zeros",
            trainable=False,
            autocast=False,
            aggregation="only_first_replica",
        )

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        """Configure both optimizers; forward the rest to Keras."""
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [self.d_loss_tracker, self.g_loss_tracker]

    def _fade_in(self, batch_size):
        """Count the step, set alpha from it; alpha for each example, ``(batch, 1)``."""
        self.step.assign(self.step + 1)
        self.alpha.assign(ops.minimum(ops.cast(self.step, "float32") / self.fade_steps, 1.0))
        return ops.full((batch_size, 1), self.alpha)

    def _train_generator(self, batch_size, alphas):
        """One generator step; returns its loss and the fakes it scored."""
        latent = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake_images = _float32(self.generator([latent, alphas], training=True))
            fake_logits = _float32(self.discriminator([fake_images, alphas], training=True))
            g_loss = -ops.mean(fake_logits)
            scaled_loss = self.g_optimizer.scale_loss(_replica_share(g_loss))
        self.g_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return g_loss, fake_images

    def _gradient_penalty(self, real_images, fake_images, alphas):
        """``mean((||dD/dx||_2 - 1)^2)`` at random real/fake interpolates (inside the
        discriminator's tape: its result depends on the discriminator's weights)."""
        batch_size = ops.shape(real_images)[0]
        epsilon = keras.random.uniform((batch_size, 1, 1, 1), seed=self.seed_generator)
        interpolates = epsilon * real_images + (1.0 - epsilon) * fake_images
        with tf.GradientTape() as penalty_tape:
            penalty_tape.watch(interpolates)
            scores = _float32(self.discriminator([interpolates, alphas], training=True))
            total = ops.sum(scores)
        slopes = penalty_tape.gradient(total, interpolates)
        norm = ops.sqrt(ops.sum(ops.square(slopes), axis=[1, 2, 3]))
        return ops.mean(ops.square(norm - 1.0))

    def _drift(self, real_logits, fake_logits):
        """ProGAN's drift term: the real scores kept near 0."""
        return self.drift_weight * ops.mean(real_logits**2)

    def _train_discriminator(self, real_images, fake_images, alphas):
        """One discriminator step: WGAN loss, gradient penalty and drift."""
        variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            fake_logits = _float32(self.discriminator([fake_images, alphas], training=True))
            real_logits = _float32(self.discriminator([real_images, alphas], training=True))
            penalty = self._gradient_penalty(real_images, fake_images, alphas)
            drift = self._drift(real_logits, fake_logits)
            d_loss = (
                ops.mean(fake_logits) - ops.mean(real_logits) + self.gp_weight * penalty + drift
            )
            scaled_loss = self.d_optimizer.scale_loss(_replica_share(d_loss))
        self.d_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return d_loss

    def train_step(self, data):
        """The fade-in update, a generator step, then a discriminator step."""
        real_images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        batch_size = ops.shape(real_images)[0]
        alphas = self._fade_in(batch_size)
        g_loss, fake_images = self._train_generator(batch_size, alphas)
        d_loss = self._train_discriminator(real_images, fake_images, alphas)
        self.d_loss_tracker.update_state(d_loss, sample_weight=batch_size)
        self.g_loss_tracker.update_state(g_loss, sample_weight=batch_size)
        return {m.name: m.result() for m in self.metrics}
