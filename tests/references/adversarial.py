"""Reference for ``specs/adversarial.step``: adversarial training with the fast gradient
sign method (Goodfellow et al., 2015).

Algorithm, per batch ``(x, y)``: the gradient of the classifier's loss with respect to the
inputs gives the perturbed batch ``x_adv = x + epsilon * sign(gradient)``, treated as data
(``stop_gradient``); one optimizer step then minimizes the average of the loss on the
batch as given and on the perturbed batch. The loss object is a
``SparseCategoricalCrossentropy`` over the classifier's probabilities. Trackers: the
``loss`` (``Mean``), ``accuracy`` on the clean batch and ``adversarial_accuracy`` on the
perturbed one. The test step runs the classifier in inference mode on the clean batch and
reports ``loss`` and ``accuracy``.

How it is written:

* The input gradient comes from a tape of its own that watches ``x`` (a batch tensor, not
  a variable), before the tape of the update: the classifier runs in training mode in both,
  as every sub-model call of a training step does.
* The optimizer given to ``compile(optimizer=...)`` is used through ``scale_loss`` inside
  the tape, so a ``LossScaleOptimizer`` works.
* A Keras ``Loss`` object already returns this replica's share under distribution; the
  loss tracker gets the global value (multiplied back by the number of replicas, a no-op
  on one device) weighted by batch size, as Keras's own step does, so History records the
  per-sample epoch mean even with a partial last batch.
* The test step returns only ``loss`` and ``accuracy``: ``evaluate()`` then reports the
  step's last values, which are the trackers' means over all its batches.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _global_loss(loss):
    """A Keras loss's per-replica value as the loss of the whole global batch."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * ops.cast(replicas, loss.dtype)


@keras.saving.register_keras_serializable(package="stepc_references")
class AdversarialReference(keras.Model):
    """A classifier trained on each batch and on its FGSM perturbation."""

    def __init__(self, classifier, epsilon, **kwargs):
        """Hold the classifier, the perturbation size, the loss and the trackers."""
        super().__init__(**kwargs)
        self.classifier = classifier
        self.epsilon = epsilon
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.adversarial_accuracy = keras.metrics.SparseCategoricalAccuracy(
            name="adversarial_accuracy"
        )

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch and at the start of evaluate()."""
        return [self.loss_tracker, self.accuracy, self.adversarial_accuracy]

    def _adversarial_examples(self, x, y):
        """The FGSM perturbation of ``x``, as data for the update that follows."""
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = self.loss_fn(y, self.classifier(x, training=True))
        input_gradient = tape.gradient(loss, x)
        return ops.stop_gradient(x + self.epsilon * ops.sign(input_gradient))

    def _update_loss_tracker(self, loss, batch_size):
        """Add one batch's loss to the epoch's per-sample mean."""
        self.loss_tracker.update_state(_global_loss(loss), sample_weight=batch_size)

    def train_step(self, data):
        """One optimizer step on the clean and the perturbed batch."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x_adversarial = self._adversarial_examples(x, y)
        with tf.GradientTape() as tape:
            y_pred = self.classifier(x, training=True)
            y_pred_adversarial = self.classifier(x_adversarial, training=True)
            loss = 0.5 * self.loss_fn(y, y_pred) + 0.5 * self.loss_fn(y, y_pred_adversarial)
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.classifier.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self._update_loss_tracker(loss, ops.shape(x)[0])
        self.accuracy.update_state(y, y_pred)
        self.adversarial_accuracy.update_state(y, y_pred_adversarial)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        """Loss and accuracy of the classifier in inference mode on a clean batch."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self.classifier(x, training=False)
        self._update_loss_tracker(self.loss_fn(y, y_pred), ops.shape(x)[0])
        self.accuracy.update_state(y, y_pred)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy.result()}
