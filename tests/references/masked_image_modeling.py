"""Reference for ``specs/masked_image_modeling.step``: keras.io's "Masked image modeling
with Autoencoders" (a masked autoencoder, He et al., 2021), and the example's two layers.

Algorithm, per batch of images: an augmentation layer (the training one in ``fit``, the
test one in ``evaluate``), then the patch layer cuts each image into patches. The patch
encoder projects them, adds position embeddings and splits them into the unmasked
embeddings, the masked ones (a learned mask token in place of the patch), the unmasked
positions, and the indices of the masked and unmasked patches. The encoder reads the
unmasked embeddings only; its outputs plus their positions, followed by the masked
embeddings, go to the decoder, which paints a whole image, cut into patches in turn. The
loss given to ``compile()`` (``MeanSquaredError``) compares the masked patches of the
input with the same patches of the output, gathered with ``take_along_axis``; one
optimizer step updates the patch encoder, encoder and decoder, and the compiled metrics
(``mae``) compare the same two. Reported: ``loss`` and the metrics.

The example's ``PatchEncoder`` draws a new random permutation of the patches per image and
call (``argsort`` of uniform noise). Here the permutation is fixed and seeded: ``argsort`` of
each patch's score under a fixed random projection (a non-trainable weight), so every image
gets its own mask and a run is reproducible without a seed generator in the layer.

How it is written, as the example's ``train_step``/``test_step`` but for Keras 3:

* The example reports by updating every entry of ``self.metrics`` with
  ``update_state(loss_patch, loss_output)``; under Keras 3 those entries are compile()'s
  loss tracker (which would then average the patches weighted by the outputs) and the
  compiled metrics. This reference updates the loss tracker with the loss, weighted by
  batch size and unscaled for distribution as Keras's own step does, and the compiled
  metrics with ``(loss_patch, loss_output)``.
* ``tf.gather(..., batch_dims=1)`` is written ``ops.take_along_axis`` with the indices
  given a last axis of 1, which broadcasts over the patch values.
* Sub-models' float outputs are cast to float32 before the step's own arithmetic (a no-op
  unless under mixed precision); the gradient is of ``optimizer.scale_loss(loss)``.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="stepc_published")
class Patches(keras.layers.Layer):
    """Images ``(batch, h, w, c)`` to patches ``(batch, h*w/p^2, p*p*c)``, row by row."""

    def __init__(self, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size

    def call(self, images):
        patches = ops.image.extract_patches(images, self.patch_size, padding="valid")
        _, rows, columns, area = ops.shape(patches)
        return ops.reshape(patches, (-1, rows * columns, area))

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="stepc_published")
class PatchEncoder(keras.layers.Layer):
    """The example's patch encoder, with a fixed, seeded permutation of the patches.

    Returns ``(unmasked_embeddings, masked_embeddings, unmasked_positions, mask_indices,
    unmask_indices)``.
    """

    def __init__(self, projection_dim, num_mask, **kwargs):
        super().__init__(**kwargs)
        self.projection_dim = projection_dim
        self.num_mask = num_mask

    def build(self, input_shape):
        _, self.num_patches, patch_area = input_shape
        self.projection = keras.layers.Dense(self.projection_dim)
        self.projection.build((None, patch_area))
        self.position_embedding = keras.layers.Embedding(self.num_patches, self.projection_dim)
        self.position_embedding.build((None, self.num_patches))
        self.mask_token = self.add_weight(
            shape=(1, patch_area), initializer="random_normal", name="mask_token"
        )
        self.score_vector = self.add_weight(
            shape=(patch_area,), initializer="random_normal", trainable=False, name="scores"
        )

    def _indices(self, patches):
        """Masked and unmasked patch indices: each image's patches sorted by score."""
        ranks = ops.argsort(ops.matmul(patches, ops.cast(self.score_vector, patches.dtype)))
        return ranks[:, : self.num_mask], ranks[:, self.num_mask :]

    def call(self, patches):
        batch_size = ops.shape(patches)[0]
        positions = ops.arange(self.num_patches)[None, :]
        pos_embeddings = ops.tile(self.position_embedding(positions), (batch_size, 1, 1))
        patch_embeddings = self.projection(patches) + pos_embeddings
        mask_indices, unmask_indices = self._indices(patches)
        unmasked_embeddings = ops.take_along_axis(patch_embeddings, unmask_indices[:, :, None], 1)
        unmasked_positions = ops.take_along_axis(pos_embeddings, unmask_indices[:, :, None], 1)
        masked_positions = ops.take_along_axis(pos_embeddings, mask_indices[:, :, None], 1)
        mask_tokens = ops.repeat(self.mask_token, self.num_mask, axis=0)
        mask_tokens = ops.repeat(mask_tokens[None], batch_size, axis=0)
        masked_embeddings = self.projection(mask_tokens) + masked_positions
        return (
            unmasked_embeddings,
            masked_embeddings,
            unmasked_positions,
            mask_indices,
            unmask_indices,
        )

    def get_config(self):
        config = {"projection_dim": self.projection_dim, "num_mask": self.num_mask}
        return {**super().get_config(), **config}


def _float32(x):
    """A sub-model's output (float16 under mixed precision) in float32."""
    return ops.cast(x, "float32")


def _unscale_for_distribution(loss):
    """One replica's share of a Keras loss, made global (for the loss tracker)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * ops.cast(replicas, loss.dtype)


@keras.saving.register_keras_serializable(package="stepc_references")
class MaskedAutoencoderReference(keras.Model):
    """A masked autoencoder of augmentation and patch layers and three sub-models."""

    def __init__(
        self,
        train_augmentation_model,
        test_augmentation_model,
        patch_layer,
        patch_encoder,
        encoder,
        decoder,
        **kwargs,
    ):
        """Hold the layers and sub-models."""
        super().__init__(**kwargs)
        self.train_augmentation_model = train_augmentation_model
        self.test_augmentation_model = test_augmentation_model
        self.patch_layer = patch_layer
        self.patch_encoder = patch_encoder
        self.encoder = encoder
        self.decoder = decoder

    def calculate_loss(self, images, test=False):
        """The compiled loss of the masked patches, and the two sets of patches."""
        training = not test
        augment = self.test_augmentation_model if test else self.train_augmentation_model
        patches = _float32(self.patch_layer(augment(images, training=training)))
        encoded = self.patch_encoder(patches, training=training)
        unmasked_embeddings, masked_embeddings, unmasked_positions = map(_float32, encoded[:3])
        mask_indices = self._loss_indices(encoded)
        encoder_outputs = _float32(self.encoder(unmasked_embeddings, training=training))
        decoder_inputs = self._decoder_inputs(
            encoder_outputs, unmasked_positions, masked_embeddings
        )
        decoder_outputs = self.decoder(decoder_inputs, training=training)
        decoder_patches = _float32(self.patch_layer(decoder_outputs, training=training))
        loss_patch = ops.take_along_axis(patches, mask_indices[:, :, None], axis=1)
        loss_output = ops.take_along_axis(decoder_patches, mask_indices[:, :, None], axis=1)
        total_loss = self.compute_loss(y=loss_patch, y_pred=loss_output, training=training)
        return total_loss, loss_patch, loss_output

    def _loss_indices(self, encoded):
        """The indices of the patches the loss compares: the masked ones."""
        return encoded[3]

    def _decoder_inputs(self, encoder_outputs, unmasked_positions, masked_embeddings):
        """The encoded patches with their positions, then the masked embeddings."""
        encoder_outputs = encoder_outputs + unmasked_positions
        return ops.concatenate([encoder_outputs, masked_embeddings], axis=1)

    def _report(self, images, total_loss, loss_patch, loss_output):
        """Keras's loss tracker (weighted by batch size) and the compiled metrics."""
        self._loss_tracker.update_state(
            _unscale_for_distribution(total_loss), sample_weight=ops.shape(images)[0]
        )
        self._compile_metrics.update_state(loss_patch, loss_output)
        return self.get_metrics_result()

    def train_step(self, data):
        """One optimizer step on the patch encoder, encoder and decoder."""
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            total_loss, loss_patch, loss_output = self.calculate_loss(images)
            scaled_loss = self.optimizer.scale_loss(total_loss)
        variables = [
            *self.patch_encoder.trainable_variables,
            *self.encoder.trainable_variables,
            *self.decoder.trainable_variables,
        ]
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return self._report(images, total_loss, loss_patch, loss_output)

    def test_step(self, data):
        """The same loss and metrics with the test augmentation, in inference mode."""
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._report(images, *self.calculate_loss(images, test=True))
