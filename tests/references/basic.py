"""Reference for ``specs/basic.step``: a Functional model trained with compile()'s loss.

Algorithm: forward pass with ``training=True``, the loss given to ``compile()`` through
``compute_loss``, one optimizer step on all trainable variables, then the compiled
metrics. Numerically this is Keras 3's own default ``train_step`` for unweighted data,
which ``test_reference_matches_keras_default_basic`` checks.

Keras 3 pitfalls avoided (see ``/work/shared/keras3-facts.md``):

* ``compute_loss`` does not update the loss tracker (fact 1): the step updates it itself,
  weighted by batch size like Keras's default step (fact 3), so the epoch "loss" is the
  per-sample mean even with a partial last batch.
* No ``compiled_loss`` / ``compiled_metrics`` shims (fact 2): metrics go through
  ``compute_metrics``, which updates only the compiled metrics and returns
  ``get_metrics_result()`` (dict-valued results flattened, fact 5).
* ``x, y = data`` is replaced by ``keras.utils.unpack_x_y_sample_weight`` (fact 4). The
  spec's step takes ``(x, y)`` only, so a sample weight, if any, is not used here.
* Gradients are taken of ``optimizer.scale_loss(loss)``, computed inside the tape, so a
  ``LossScaleOptimizer`` under mixed precision gets scaled gradients (fact 10); it is a
  no-op for a plain optimizer. Updates use ``optimizer.apply(grads, vars)`` (fact 6).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="stepc_references")
class BasicReference(keras.Model):
    """Functional-style model whose ``train_step`` uses the loss and metrics of compile()."""

    def train_step(self, data):
        """Run one optimizer step on a batch and return the metrics' current values."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            scaled_loss = self.optimizer.scale_loss(loss)
        trainable = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, trainable), trainable)
        # Keras has no public handle on compile()'s loss tracker; this is the update
        # its default step makes (single device: no distribution unscaling needed).
        self._loss_tracker.update_state(loss, sample_weight=ops.shape(x)[0])
        return self.compute_metrics(x, y, y_pred)
