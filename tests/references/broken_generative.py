"""Deliberately wrong variants of the generative published specs' references (DDIM,
StyleGAN's fade-in step), as ``broken_published.py`` holds the others' (a module of its
own, so the published-spec test modules never edit one file).

Each differs from its reference in one realistic mistake. ``test_published_generative_specs``
trains each in the reference's scenario and checks that the comparison used for the
generated models fails: a comparison that passed these would not show that the generated
step implements the spec.
"""

from __future__ import annotations

from keras import ops

from tests.references.ddim import DiffusionModelReference
from tests.references.stylegan import StyleGANReference


class DiffusionModelEMASwapped(DiffusionModelReference):
    """The EMA's two weights swapped: the EMA network jumps to the network
    (``(1 - ema) * ema_weight + ema * weight``)."""

    def _update_ema(self):
        for weight, ema_weight in zip(self.network.weights, self.ema_network.weights, strict=True):
            ema_weight.assign((1.0 - self.ema) * ema_weight + self.ema * weight)


class DiffusionModelSamplerOffByOne(DiffusionModelReference):
    """The sampler starts one step late: its first diffusion time is ``1 - step_size``,
    not 1, so the initial noise is taken for a partly denoised image."""

    def reverse_diffusion(self, initial_noise):
        batch_size = ops.shape(initial_noise)[0]
        step_size = 1.0 / self.diffusion_steps
        next_noisy_images = initial_noise
        for step in range(1, self.diffusion_steps + 1):
            times = ops.ones((batch_size, 1, 1, 1)) - step * step_size
            noise_rates, signal_rates = self.diffusion_schedule(times)
            pred_noises, pred_images = self.denoise(
                self.ema_network, next_noisy_images, noise_rates, signal_rates, training=False
            )
            next_noise_rates, next_signal_rates = self.diffusion_schedule(times - step_size)
            next_noisy_images = next_signal_rates * pred_images + next_noise_rates * pred_noises
        return pred_images


class StyleGANAlphaLags(StyleGANReference):
    """Alpha computed from the step count before it is incremented (one step behind)."""

    def _fade_in(self, batch_size):
        self.alpha.assign(ops.minimum(ops.cast(self.step, "float32") / self.fade_steps, 1.0))
        self.step.assign(self.step + 1)
        return ops.full((batch_size, 1), self.alpha)
