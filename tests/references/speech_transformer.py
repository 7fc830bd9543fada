"""Reference for ``specs/speech_transformer.step``: keras.io's "Automatic Speech Recognition
with Transformer".

Algorithm, per batch ``{"source": features, "target": tokens}``: teacher forcing, the
decoder reads the target without its last token (``dec_input = target[:, :-1]``) and
predicts it without its first (``dec_target = target[:, 1:]``). The transformer is called
on ``[source, dec_input]``; the loss given to ``compile()`` (the example's
``CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)``) compares the one-hot
``dec_target`` with the logits, weighted by the padding mask ``dec_target != 0``. One
optimizer step updates the transformer. The test step computes the same loss in inference
mode. Reported: ``loss``.

How it is written, as the example's ``train_step``/``test_step`` but for Keras 3:

* The example keeps its own ``Mean(name="loss")`` updated with the loss; under Keras 3,
  ``compute_loss`` leaves compile()'s loss tracker alone, so this reference updates that
  tracker instead (there is no second tracker of the same name), weighted by batch size
  and unscaled for distribution, as Keras's own step does.
* The wrapper holds the network as a sub-model (the example's ``Transformer`` is the
  network and the step in one class), with ``num_classes`` given to the constructor.
* ``compute_loss`` returns this replica's share under distribution (Keras's losses do), so
  it is differentiated as it is; gradients are of ``optimizer.scale_loss(loss)``.
* A dict batch arrives as ``x``: ``keras.utils.unpack_x_y_sample_weight`` passes it through.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _unscale_for_distribution(loss):
    """One replica's share of a Keras loss, made global (for the loss tracker)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * ops.cast(replicas, loss.dtype)


@keras.saving.register_keras_serializable(package="stepc_references")
class SpeechTransformerReference(keras.Model):
    """A transformer sub-model trained with teacher forcing on dict batches."""

    def __init__(self, transformer, num_classes, **kwargs):
        """Hold the network and the vocabulary size."""
        super().__init__(**kwargs)
        self.transformer = transformer
        self.num_classes = num_classes

    def _masked_loss(self, batch, training):
        """The compiled loss of the next-token logits, padding positions weighted 0."""
        source = batch["source"]
        dec_input, dec_target = self._teacher_forcing(batch["target"])
        preds = self.transformer([source, dec_input], training=training)
        one_hot = ops.one_hot(dec_target, self.num_classes)
        mask = self._padding_mask(dec_target)
        return self.compute_loss(y=one_hot, y_pred=preds, sample_weight=mask, training=training)

    def _teacher_forcing(self, target):
        """The decoder's input (all but the last token) and what it predicts (the next)."""
        return target[:, :-1], target[:, 1:]

    def _padding_mask(self, dec_target):
        """1 where ``dec_target`` is a token, 0 where it is padding."""
        return ops.cast(ops.not_equal(dec_target, 0), "float32")

    def _track(self, loss, batch):
        """Keras's loss tracker, weighted by batch size as in Keras's own step."""
        batch_size = ops.shape(batch["source"])[0]
        self._loss_tracker.update_state(_unscale_for_distribution(loss), sample_weight=batch_size)
        return {"loss": self._loss_tracker.result()}

    def train_step(self, data):
        """One optimizer step on the transformer."""
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss = self._masked_loss(batch, training=True)
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.transformer.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return self._track(loss, batch)

    def test_step(self, data):
        """The same loss in inference mode."""
        batch, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._track(self._masked_loss(batch, training=False), batch)
