"""Reference for ``specs/image_captioning.step``: keras.io's "Image captioning" (a CNN
encoder and a Transformer decoder trained on five captions per image).

Algorithm, per batch ``(images, captions)`` with ``captions`` of shape ``(batch,
num_captions, length)``: a frozen CNN gives the images' features once. Then, for each of
the ``num_captions`` captions in turn, one optimizer step on the encoder and the decoder
together: the encoder maps the features, the decoder reads the caption without its last
token (teacher forcing) and the encoded image and predicts every next token; the loss is
the sparse cross-entropy of those predictions averaged over the caption's real tokens
(padding, token 0, weighs nothing), and the accuracy the share of real tokens predicted
right. The step reports the sum of the captions' losses (``loss``) and the mean of their
accuracies (``acc``) through two ``Mean`` trackers, as the example does. The test step is
the same without the optimizer steps, in inference mode.

How it is written, as the example's ``train_step``/``test_step`` but for Keras 3 and with
tiny stand-ins:

* The example's encoder and decoder are Transformer blocks and its decoder takes a padding
  mask; here they are the small sub-models the test builds (the mask only weighs the loss).
  There is no image augmentation.
* The caption loop is a Python ``for`` unrolled when ``fit`` traces the step, one
  ``GradientTape`` and one ``optimizer.apply`` per caption, so each caption's forward pass
  sees the weights the previous caption's step left.
* The loss goes through ``optimizer.scale_loss`` (a ``LossScaleOptimizer`` works) and is
  taken as this replica's share under distribution, as Keras's own step takes its loss.
* The trackers are weighted by batch size (History then holds epoch means over samples,
  as for Keras's own loss) and listed in ``metrics``.
* Sub-model outputs are cast to float32 before the loss (a no-op unless mixed precision).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _replica_share(loss):
    """A whole-batch mean as this replica's share of the global loss."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / ops.cast(replicas, loss.dtype)


@keras.saving.register_keras_serializable(package="stepc_references")
class ImageCaptioningReference(keras.Model):
    """An encoder and a decoder trained on several captions of each image."""

    def __init__(self, cnn_model, encoder, decoder, num_captions=5, **kwargs):
        """Hold the frozen CNN, the two trained sub-models and the trackers."""
        super().__init__(**kwargs)
        self.cnn_model = cnn_model
        self.encoder = encoder
        self.decoder = decoder
        self.num_captions = num_captions
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.acc_tracker = keras.metrics.Mean(name="acc")
        # Its sub-models are built and it has no call(): fit() under a strategy would
        # otherwise try to build it by calling it on a batch.
        self.built = True

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [self.loss_tracker, self.acc_tracker]

    def _masked_loss(self, tokens_true, probs, weights):
        """Mean sparse cross-entropy over the real (non-padding) tokens."""
        token_losses = keras.losses.sparse_categorical_crossentropy(tokens_true, probs)
        return ops.sum(token_losses * weights) / ops.sum(weights)

    def _masked_accuracy(self, tokens_true, probs, mask, weights):
        """The share of real tokens whose most likely prediction is right."""
        hits = ops.logical_and(ops.equal(tokens_true, ops.argmax(probs, axis=2)), mask)
        return ops.sum(ops.cast(hits, "float32")) / ops.sum(weights)

    def _caption_loss_and_accuracy(self, image_features, caption, training):
        """Teacher forcing on one caption: its masked loss and accuracy."""
        tokens_in, tokens_true = caption[:, :-1], caption[:, 1:]
        mask = ops.not_equal(tokens_true, 0)
        weights = ops.cast(mask, "float32")
        encoded = ops.cast(self.encoder(image_features, training=training), "float32")
        probs = self.decoder([tokens_in, encoded], training=training)
        probs = ops.cast(probs, "float32")
        loss = self._masked_loss(tokens_true, probs, weights)
        return loss, self._masked_accuracy(tokens_true, probs, mask, weights)

    def _caption_step(self, image_features, caption):
        """One optimizer step on the encoder and decoder for one caption."""
        variables = self.encoder.trainable_variables + self.decoder.trainable_variables
        with tf.GradientTape() as tape:
            loss, acc = self._caption_loss_and_accuracy(image_features, caption, True)
            scaled_loss = self.optimizer.scale_loss(_replica_share(loss))
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return loss, acc

    def _report(self, batch_loss, batch_acc, batch_size):
        """Update the trackers with the batch's summed loss and mean accuracy."""
        self.loss_tracker.update_state(batch_loss, sample_weight=batch_size)
        self.acc_tracker.update_state(batch_acc / self.num_captions, sample_weight=batch_size)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        """One optimizer step per caption of each image."""
        images, captions, _ = keras.utils.unpack_x_y_sample_weight(data)
        image_features = self.cnn_model(images, training=False)
        batch_loss, batch_acc = 0.0, 0.0
        for i in range(self.num_captions):
            loss, acc = self._caption_step(image_features, captions[:, i, :])
            batch_loss, batch_acc = batch_loss + loss, batch_acc + acc
        return self._report(batch_loss, batch_acc, ops.shape(images)[0])

    def test_step(self, data):
        """The same losses and accuracies, in inference mode, with no step."""
        images, captions, _ = keras.utils.unpack_x_y_sample_weight(data)
        image_features = self.cnn_model(images, training=False)
        batch_loss, batch_acc = 0.0, 0.0
        for i in range(self.num_captions):
            caption = captions[:, i, :]
            loss, acc = self._caption_loss_and_accuracy(image_features, caption, False)
            batch_loss, batch_acc = batch_loss + loss, batch_acc + acc
        return self._report(batch_loss, batch_acc, ops.shape(images)[0])
