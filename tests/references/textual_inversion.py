"""Reference for ``specs/textual_inversion.step``: the training step of keras.io's "Teach
StableDiffusion new concepts via Textual Inversion", where only the new token's
embedding learns.

Algorithm, per batch ``{"latents", "token_ids", "timesteps"}``: draw Gaussian noise of
the latents' shape, noise the latents to each example's timestep with the scaled-linear
schedule of Stable Diffusion (``betas = linspace(sqrt(0.00085), sqrt(0.012), T) ** 2``,
``noisy = sqrt(abar_t) * latents + sqrt(1 - abar_t) * noise``), embed the prompt's tokens,
encode them with the frozen text encoder and predict the noise with the frozen noise
predictor from the noisy latents, the sinusoidal embedding of the timestep and the encoded
prompt. The loss is the mean squared error of the predicted noise. Its gradient with
respect to the token embedding is zeroed on every row but the placeholder token's, and the
optimizer applies it: only that row of the embedding matrix changes. Reported: the batch's
``loss``, as the example returns it.

How it is written, as the example's ``train_step`` but for Keras 3 and with tiny
stand-ins:

* The example's text encoder holds the token embedding and is trainable with every other
  layer frozen; here the embedding is its own layer and the text encoder and the noise
  predictor (the example's diffusion model) are frozen sub-models, called in inference
  mode. The example encodes images into latents with a frozen VAE; here the latents, and
  the timesteps the example draws, come with the batch (the test makes them). The noise is
  drawn from the model's ``SeedGenerator``.
* On TensorFlow the embedding's gradient is a ``tf.IndexedSlices`` of the looked-up rows;
  the example masks its slices by index, this reference makes it a dense matrix and
  multiplies it by a one-hot column: the same update for SGD.
* The step returns the batch's loss, as the example does, and lists no metrics (see
  ``metrics``).
* The loss goes through ``optimizer.scale_loss`` (the mask, 0 or 1, commutes with the
  scale) and is taken as this replica's share under distribution; ``optimizer.apply``
  sums the replicas' gradients.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

BETA_START = 0.00085
BETA_END = 0.012


def _replica_share(loss):
    """A whole-batch mean as this replica's share of the global loss."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / ops.cast(replicas, loss.dtype)


def _float32(x):
    """A sub-model's output (float16 under mixed precision) in float32."""
    return ops.cast(x, "float32")


@keras.saving.register_keras_serializable(package="stepc_references")
class TextualInversionReference(keras.Model):
    """Trains one row of a token embedding through a frozen text encoder and denoiser."""

    def __init__(
        self,
        token_embedding,
        text_encoder,
        noise_predictor,
        placeholder_id,
        vocab_size,
        train_timesteps,
        time_dim,
        **kwargs,
    ):
        """Hold the layers, the token to learn, the schedule's settings and the seeds."""
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.text_encoder = text_encoder
        self.noise_predictor = noise_predictor
        self.placeholder_id = placeholder_id
        self.vocab_size = vocab_size
        self.train_timesteps = train_timesteps
        self.time_dim = time_dim
        self.seed_generator = keras.random.SeedGenerator()
        # Its sub-models are built and it has no call(): fit() under a strategy would
        # otherwise try to build it by calling it on a batch.
        self.built = True

    @property
    def metrics(self):
        """None: Keras's own loss tracker, never updated, would report 0 for the returned
        ``loss`` (fit() prefers the metrics' results when their names match the logs')."""
        return []

    def _add_noise(self, latents, noise, timesteps):
        """The latents noised to each example's timestep (scaled-linear schedule)."""
        betas = ops.linspace(ops.sqrt(BETA_START), ops.sqrt(BETA_END), self.train_timesteps)
        alphas_cumprod = ops.cumprod(1.0 - ops.square(betas))
        alpha_t = ops.take(alphas_cumprod, timesteps)[:, None]
        return ops.sqrt(alpha_t) * latents + ops.sqrt(1.0 - alpha_t) * noise

    def _timestep_embedding(self, timesteps):
        """Sinusoidal embeddings of the timesteps: cosines, then sines."""
        half = self.time_dim // 2
        freqs = ops.exp(-ops.log(10000.0) * ops.arange(half, dtype="float32") / half)
        args = ops.cast(timesteps, "float32")[:, None] * freqs[None, :]
        return ops.concatenate([ops.cos(args), ops.sin(args)], axis=-1)

    def _noise_loss(self, batch):
        """MSE of the frozen predictor's noise estimate, through the token embedding."""
        latents, timesteps = batch["latents"], batch["timesteps"]
        noise = keras.random.normal(ops.shape(latents), seed=self.seed_generator)
        noisy_latents = self._add_noise(latents, noise, timesteps)
        embeddings = self.token_embedding(batch["token_ids"], training=True)
        hidden = self.text_encoder(embeddings, training=False)
        time_embedding = self._timestep_embedding(timesteps)
        predicted = self.noise_predictor([noisy_latents, time_embedding, hidden], training=False)
        return ops.mean(ops.square(noise - _float32(predicted)))

    def _placeholder_row_only(self, gradient):
        """The embedding's gradient with every row but the placeholder's zeroed."""
        row_mask = ops.one_hot(self.placeholder_id, self.vocab_size)[:, None]
        return tf.convert_to_tensor(gradient) * ops.cast(row_mask, gradient.dtype)

    def train_step(self, data):
        """One optimizer step on the placeholder token's embedding row."""
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss = self._noise_loss(batch)
            scaled_loss = self.optimizer.scale_loss(_replica_share(loss))
        variables = self.token_embedding.trainable_variables
        grads = tape.gradient(scaled_loss, variables)
        grads = [self._placeholder_row_only(g) for g in grads]
        self.optimizer.apply(grads, variables)
        return {"loss": loss}
