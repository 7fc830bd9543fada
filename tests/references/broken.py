"""Deliberately wrong variants of the WGAN-GP, VAE and adversarial references.

Each differs from its reference in one realistic mistake. ``tests/test_equivalence.py``
trains them in the same scenario as the reference and checks that the comparison it uses
for the generated models fails: a comparison that passed these would not show that the
generated step implements the spec.

Not here: the adversarial step without ``stop_gradient`` on the perturbed batch, with the
perturbation computed inside the update's tape. It is numerically the same step, because
``sign`` has a zero gradient (measured: identical weights and History).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tests.references.adversarial import AdversarialReference
from tests.references.vae import VAEReference
from tests.references.wgan_gp import WGANGPReference


class WGANGPWithoutPenalty(WGANGPReference):
    """The critic minimizes the Wasserstein estimate only (``gp_weight`` forced to 0).

    The penalty is still computed (the same random draws) and reported.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gp_weight = 0.0


class WGANGPPenaltyNotDifferentiated(WGANGPReference):
    """The penalty is added to the loss as a constant: its input gradient is taken on a
    tape that is not recorded by the critic's tape, so the update ignores it.

    Reported losses agree with the reference at the first step; only the weights differ.
    """

    def _gradient_penalty(self, real_images, fake_images):
        return ops.stop_gradient(super()._gradient_penalty(real_images, fake_images))


class WGANGPOneCriticStep(WGANGPReference):
    """One critic step per generator step, whatever ``critic_steps`` says."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.critic_steps = 1


class VAEWithoutKL(VAEReference):
    """A plain autoencoder with noise: no KL term in the loss (reported as 0)."""

    def _kl_loss(self, z_mean, z_log_var):
        return ops.zeros(())


class VAEStdFromLogVar(VAEReference):
    """The reparameterization uses ``exp(z_log_var)`` (the variance) as the deviation."""

    def _sample(self, z_mean, z_log_var):
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(z_log_var) * epsilon


class AdversarialWrongSign(AdversarialReference):
    """The perturbation goes down the loss gradient: ``x - epsilon * sign(gradient)``."""

    def _adversarial_examples(self, x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = self.loss_fn(y, self.classifier(x, training=True))
        input_gradient = tape.gradient(loss, x)
        return ops.stop_gradient(x - self.epsilon * ops.sign(input_gradient))


class AdversarialUnweightedTracker(AdversarialReference):
    """The loss tracker weights every batch equally, so a partial batch skews the mean."""

    def _update_loss_tracker(self, loss, batch_size):
        self.loss_tracker.update_state(loss)
