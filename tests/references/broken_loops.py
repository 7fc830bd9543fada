"""Deliberately wrong variants of the references of ``specs/image_captioning.step`` and
``specs/textual_inversion.step``.

Each differs from its reference in one realistic mistake. ``test_published_loop_specs.py``
trains each in the reference's scenario and checks that the comparison the generated
models pass fails: a comparison that passed these would not show that the generated step
takes one step per caption, or applies the masked gradient.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tests.references.image_captioning import ImageCaptioningReference, _replica_share
from tests.references.textual_inversion import TextualInversionReference


class ImageCaptioningOneStep(ImageCaptioningReference):
    """One optimizer step on the sum of the captions' losses, not one per caption."""

    def train_step(self, data):
        images, captions, _ = keras.utils.unpack_x_y_sample_weight(data)
        image_features = self.cnn_model(images, training=False)
        variables = self.encoder.trainable_variables + self.decoder.trainable_variables
        batch_loss, batch_acc = 0.0, 0.0
        with tf.GradientTape() as tape:
            for i in range(self.num_captions):
                caption = captions[:, i, :]
                loss, acc = self._caption_loss_and_accuracy(image_features, caption, True)
                batch_loss, batch_acc = batch_loss + loss, batch_acc + acc
            scaled_loss = self.optimizer.scale_loss(_replica_share(batch_loss))
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return self._report(batch_loss, batch_acc, tf.shape(images)[0])


class TextualInversionUnmasked(TextualInversionReference):
    """The embedding's gradient applied unmasked: every prompt token's row learns."""

    def _placeholder_row_only(self, gradient):
        return tf.convert_to_tensor(gradient)
