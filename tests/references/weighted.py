"""Reference for ``specs/weighted.step``: compile()'s loss and metrics with sample weights.

Algorithm: like ``basic``, but the batch's optional sample weight is passed to
``compute_loss`` and to the compiled metrics. ``fit`` supplies it for
``fit(x, y, sample_weight=sw)`` and, as a per-sample weight built from the labels, for
``fit(x, y, class_weight={...})``; for ``fit(x, y)`` it is ``None``. Numerically this is
Keras 3's own default ``train_step`` in all three cases, which
``test_reference_matches_keras_default_weighted`` checks.

Keras 3 pitfalls avoided (see ``/work/shared/keras3-facts.md``):

* The guide's ``if len(data) == 3`` unpacking is replaced by
  ``keras.utils.unpack_x_y_sample_weight`` (fact 4), which handles every form of batch.
* ``compute_loss`` does not update the loss tracker (fact 1): the step does, weighted by
  batch size (fact 3). Keras's default step weights the tracker by the number of samples,
  not by the sum of the sample weights, and so does this one.
* Metrics go through ``compute_metrics`` (not the deprecated ``compiled_metrics`` shim,
  fact 2), which passes ``sample_weight`` to ``weighted_metrics`` only; plain ``metrics``
  stay unweighted, as in Keras's default step.
* Gradients of ``optimizer.scale_loss(loss)`` inside the tape (fact 10);
  ``optimizer.apply`` (fact 6).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="stepc_references")
class WeightedReference(keras.Model):
    """Functional-style model whose ``train_step`` honours sample and class weights."""

    def train_step(self, data):
        """Run one weighted optimizer step on a batch and return the metrics' values."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        trainable = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, trainable), trainable)
        # No public handle on compile()'s loss tracker; same update as Keras's default.
        self._loss_tracker.update_state(loss, sample_weight=ops.shape(x)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
