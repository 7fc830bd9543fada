"""Reference for ``specs/lowlevel.step``: the model owns its loss and metric trackers.

Algorithm: ``compile()`` gives only the optimizer. The step computes a scalar mean squared
error with a ``keras.losses.MeanSquaredError`` object created once in ``__init__``, takes
one optimizer step on all trainable variables, and updates two trackers of its own, a
``Mean`` named "loss" and a ``MeanAbsoluteError`` named "mae", which the ``metrics``
property lists so that Keras resets them every epoch and at the start of ``evaluate()``.
Numerically this equals Keras's default step compiled with ``loss="mse"`` and
``metrics=["mae"]``, which ``test_reference_matches_keras_default_lowlevel`` checks.

Keras 3 pitfalls avoided (see ``/work/shared/keras3-facts.md``):

* The guide's ``keras.losses.mean_squared_error`` returns one value per sample; the tape
  then differentiates their sum, a gradient batch-size times too large (fact 7). A ``Loss``
  object reduces to the per-batch mean.
* ``loss_tracker.update_state(loss)`` would weight every batch equally and skew the epoch
  mean on a partial last batch (fact 3); the update is weighted by batch size.
* The tracker named "loss" would collide with compile()'s own loss tracker; the
  ``metrics`` property lists exactly this model's two trackers (fact 5).
* ``keras.utils.unpack_x_y_sample_weight`` instead of ``x, y = data`` (fact 4); gradients
  of ``optimizer.scale_loss(loss)`` inside the tape (fact 10); ``optimizer.apply``
  (fact 6).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="stepc_references")
class LowLevelReference(keras.Model):
    """Functional-style model with its own loss object and metric trackers."""

    def __init__(self, *args, **kwargs):
        """Build the Functional model, then the loss object and trackers."""
        super().__init__(*args, **kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.mae_metric = keras.metrics.MeanAbsoluteError(name="mae")
        self.mse = keras.losses.MeanSquaredError()

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch and at the start of evaluate()."""
        return [self.loss_tracker, self.mae_metric]

    def train_step(self, data):
        """Run one optimizer step on a batch and return the trackers' values."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.mse(y, y_pred)
            scaled_loss = self.optimizer.scale_loss(loss)
        trainable = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, trainable), trainable)
        self.loss_tracker.update_state(loss, sample_weight=ops.shape(x)[0])
        self.mae_metric.update_state(y, y_pred)
        return {metric.name: metric.result() for metric in self.metrics}
