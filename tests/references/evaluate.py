"""Reference for ``specs/evaluate.step``: a custom evaluation step, Keras's default training.

Algorithm: ``test_step`` only. Forward pass with ``training=False``, the loss given to
``compile()`` through ``compute_loss(..., training=False)``, the loss tracker updated with
it, then the compiled metrics. ``train_step`` is Keras's default. ``evaluate()`` (and the
``val_`` entries of ``fit(validation_data=...)``) therefore report the true loss, which
``test_reference_matches_keras_default_evaluate`` checks against a plain ``keras.Model``
and against the mean squared error computed with numpy.

Keras 3 pitfalls avoided (see ``/work/shared/keras3-facts.md``):

* The guide's step calls ``compute_loss`` only "for its side effect"; under Keras 3 it has
  none (fact 1) and ``evaluate()`` reports ``loss: 0.0``. Here the loss tracker is updated
  explicitly, weighted by batch size like Keras's default step (fact 3).
* Metrics go through ``compute_metrics`` rather than looping over ``self.metrics``, whose
  entries include the loss tracker and the ``CompileMetrics`` wrapper (facts 2 and 5).
* ``keras.utils.unpack_x_y_sample_weight`` instead of ``x, y = data`` (fact 4). The spec's
  step takes ``(x, y)`` only, so a sample weight, if any, is not used here.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="stepc_references")
class EvaluateReference(keras.Model):
    """Functional-style model with a hand-written ``test_step``."""

    def test_step(self, data):
        """Evaluate one batch: update the loss tracker and compiled metrics."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        # No public handle on compile()'s loss tracker; same update as Keras's default.
        self._loss_tracker.update_state(loss, sample_weight=ops.shape(x)[0])
        return self.compute_metrics(x, y, y_pred)
