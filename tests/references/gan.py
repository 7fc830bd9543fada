"""Reference for ``specs/gan.step``: the guide's GAN, two sub-models and two optimizers.

Algorithm, per batch of real images: decode latent noise into fake images; train the
discriminator on fakes (label 1) and reals (label 0) with uniform noise added to the
labels; then train the generator, through the discriminator, to make its fakes be called
real (0). ``compile(d_optimizer, g_optimizer, loss_fn)`` supplies one optimizer per
sub-model and the loss object. Two ``Mean`` trackers report the epoch's ``d_loss`` and
``g_loss``.

Random draws come from one ``keras.random.SeedGenerator`` created last in ``__init__``
(after the trackers), in the order normal, uniform, normal per step, so a run is
reproducible under ``keras.utils.set_random_seed``.

Keras 3 pitfalls avoided (see ``/work/shared/keras3-facts.md``):

* ``tf.random`` / int seeds are replaced by ``keras.random`` with a ``SeedGenerator``
  attribute (fact 15): backend-neutral, reproducible, and fresh noise every step.
* ``tf.concat``/``tf.shape``/``tf.ones`` become ``keras.ops`` (fact 16).
* Sub-models get an explicit ``training=True`` in the training step.
* Each loss goes through its own optimizer's ``scale_loss`` inside the tape (fact 10):
  optimizers handed to a custom ``compile()`` are never wrapped for mixed precision by
  Keras, but a caller may pass ``LossScaleOptimizer`` instances.
* ``compile()`` forwards ``**kwargs`` to ``keras.Model.compile`` so ``jit_compile``,
  ``steps_per_execution`` and ``run_eagerly`` still work (fact 11).
* Trackers are weighted by batch size (fact 3), and the ``metrics`` property lists them so
  Keras resets them every epoch (fact 5); the returned keys match ``self.metrics`` so
  History records epoch means (fact 8).
* ``keras.utils.unpack_x_y_sample_weight`` accepts a bare image batch or an ``(x,)`` tuple
  (fact 4).

Saving is out of scope here: a saveable GAN would also need ``get_config``/``from_config``
and a compile config that rebuilds both optimizers (fact 14).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

LABEL_NOISE = 0.05


@keras.saving.register_keras_serializable(package="stepc_references")
class GANReference(keras.Model):
    """A GAN trained by ``fit()`` on batches of real images."""

    def __init__(self, discriminator, generator, latent_dim, **kwargs):
        """Hold the sub-models, the trackers and, created last, the seed generator."""
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.seed_generator = keras.random.SeedGenerator()

    def compile(self, d_optimizer, g_optimizer, loss_fn, **kwargs):
        """Configure both optimizers and the loss; forward the rest to Keras."""
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [self.d_loss_tracker, self.g_loss_tracker]

    def _latent_noise(self, batch_size):
        """Draw one batch of latent points from the seed generator."""
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def _train_discriminator(self, real_images, batch_size):
        """One discriminator step on fakes (label ~1) and reals (label ~0)."""
        generated = self.generator(self._latent_noise(batch_size), training=True)
        combined = ops.concatenate([generated, real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        noise = keras.random.uniform(ops.shape(labels), seed=self.seed_generator)
        labels = labels + LABEL_NOISE * noise
        with tf.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined, training=True))
            scaled_loss = self.d_optimizer.scale_loss(d_loss)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return d_loss

    def _train_generator(self, batch_size):
        """One generator step towards fakes the discriminator calls real (0)."""
        misleading_labels = ops.zeros((batch_size, 1))
        latent = self._latent_noise(batch_size)
        with tf.GradientTape() as tape:
            fake = self.generator(latent, training=True)
            predictions = self.discriminator(fake, training=True)
            g_loss = self.loss_fn(misleading_labels, predictions)
            scaled_loss = self.g_optimizer.scale_loss(g_loss)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
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
