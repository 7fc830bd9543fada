"""Reference for ``specs/metric_learning.step``: metric learning for image similarity
search (keras.io, "Metric learning for image similarity search").

Algorithm, per batch ``pairs`` of shape ``(2, num_classes, ...)``: ``pairs[0]`` holds one
anchor image of each class and ``pairs[1]`` another image (the positive) of the same
classes, in the same order. The model (Functional, ending in a unit normalization) embeds
both; the similarity of every anchor with every positive is the dot product of their
embeddings, ``einsum("ae,pe->ap", ...)``, divided by a temperature and used as logits
whose right class is the anchor's own index (``arange(num_classes)``). The loss given to
``compile()`` (a ``SparseCategoricalCrossentropy(from_logits=True)``) on them is
minimized with ``compile()``'s optimizer over the whole model; compile()'s metrics are
updated with the same labels and logits.

How it is written, as the keras.io example but for Keras 3:

* ``temperature`` is a ``compile()`` argument with the published value as its default
  (the example hard-codes 0.2 in the step).
* The published step updates every metric of ``self.metrics`` by hand; here the loss goes
  through ``compute_loss``, the loss tracker is updated as Keras's own step does it
  (the global loss, weighted by the batch's first dimension, which for this data is 2)
  and ``compute_metrics`` updates compile()'s metrics.
* The loss object's value is this replica's share under distribution (Keras scales it);
  gradients are taken of ``optimizer.scale_loss`` of it inside the tape.
* The embeddings are cast to float32 before the step's own arithmetic (a no-op in
  float32), as Keras's losses cast theirs under mixed precision.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops
from keras.src.losses import loss as loss_module


def _float32(x):
    """A model output (float16 under mixed precision) in float32."""
    return ops.cast(x, "float32")


@keras.saving.register_keras_serializable(package="stepc_references")
class EmbeddingModelReference(keras.Model):
    """A Functional embedding model trained on anchor/positive pairs, one per class."""

    def compile(self, temperature=0.2, **kwargs):
        """Keep the temperature; forward the optimizer, loss and metrics to Keras."""
        super().compile(**kwargs)
        self.temperature = temperature

    def train_step(self, data):
        """One optimizer step on a batch of anchor/positive pairs."""
        pairs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        anchors, positives = pairs[0], pairs[1]
        with tf.GradientTape() as tape:
            anchor_embeddings = _float32(self(anchors, training=True))
            positive_embeddings = _float32(self(positives, training=True))
            similarities = ops.einsum("ae,pe->ap", anchor_embeddings, positive_embeddings)
            similarities = similarities / self.temperature
            sparse_labels = ops.arange(ops.shape(anchors)[0])
            loss = self.compute_loss(x=pairs, y=sparse_labels, y_pred=similarities)
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self._loss_tracker.update_state(
            loss_module.unscale_loss_for_distribution(loss), sample_weight=ops.shape(pairs)[0]
        )
        return self.compute_metrics(pairs, sparse_labels, similarities)
