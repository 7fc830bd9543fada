"""Reference for ``specs/scan.step``: semantic clustering by adopting nearest neighbours
(SCAN; Van Gansbeke et al., 2020), as in keras.io's "Semantic Image Clustering".

Algorithm, per batch ``(anchors, neighbours)``: ``neighbours`` holds each anchor's ``k``
nearest neighbours (mined beforehand), shape ``(batch, k, features)``. The clustering
model gives cluster logits; ``softmax`` turns them into cluster probabilities for the
anchors and for every neighbour. The consistency loss asks an anchor and its neighbours
to fall in the same cluster: ``-mean(log(sum(anchor_probs[:, None, :] * neighbour_probs,
axis=-1)))``, the mean over anchors and neighbours of the log of their probabilities' dot
product. The entropy of the batch's mean cluster assignment ``p``, ``-sum(p * log(p))``
(``p`` clipped to ``[1e-8, 1]`` as keras.io does), keeps the clusters from collapsing
into one. One step of ``compile()``'s optimizer minimizes ``consistency_loss -
entropy_weight * entropy`` over the clustering model. Trackers: ``loss`` (the total),
``consistency_loss``, ``entropy``. The test step (derived by stepc from the train step)
computes the same in inference mode, without the update.

How it is written:

* keras.io writes these two losses as ``keras.losses.Loss`` classes over a Functional
  model of anchors and neighbours; here they are the step itself, in the SCAN paper's
  form. The neighbours go through the clustering model as one batch of ``batch * k``
  examples (reshaped, as keras.io does) and come back as ``(batch, k, clusters)``.
* The clustering model is called with ``training=True`` (anchors first, then the
  neighbours); the loss goes through ``optimizer.scale_loss`` inside the tape and, being
  a hand-written mean, is taken as this replica's share under distribution.
* Trackers are weighted by batch size and listed in ``metrics``; model outputs are cast
  to float32 before the step's own arithmetic (a no-op in float32).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _replica_share(loss):
    """A whole-batch mean as this replica's share of the global loss."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / ops.cast(replicas, loss.dtype)


def _float32(x):
    """A model output (float16 under mixed precision) in float32."""
    return ops.cast(x, "float32")


@keras.saving.register_keras_serializable(package="stepc_references")
class SCANReference(keras.Model):
    """A clustering model trained on anchors and their nearest neighbours."""

    def __init__(self, clustering_model, entropy_weight=5.0, **kwargs):
        """Hold the clustering model, the entropy weight and the trackers."""
        super().__init__(**kwargs)
        self.clustering_model = clustering_model
        self.entropy_weight = entropy_weight
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.consistency_tracker = keras.metrics.Mean(name="consistency_loss")
        self.entropy_tracker = keras.metrics.Mean(name="entropy")
        # Its sub-models are built and it has no call(): nothing for fit() to build under
        # a distribution strategy (which would call the model on a batch).
        self.built = True

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch and at the start of evaluate()."""
        return [self.total_loss_tracker, self.consistency_tracker, self.entropy_tracker]

    def _probabilities(self, anchors, neighbours, training):
        """Cluster probabilities ``(batch, clusters)`` and ``(batch, k, clusters)``."""
        anchor_probs = ops.softmax(_float32(self.clustering_model(anchors, training=training)))
        flat_neighbours = ops.reshape(neighbours, (-1, ops.shape(anchors)[1]))
        neighbour_logits = _float32(self.clustering_model(flat_neighbours, training=training))
        neighbour_probs = ops.reshape(
            ops.softmax(neighbour_logits), (ops.shape(anchors)[0], -1, ops.shape(anchor_probs)[1])
        )
        return anchor_probs, neighbour_probs

    def _scan_losses(self, anchors, neighbours, training):
        """The total loss, the consistency loss and the entropy of one batch."""
        anchor_probs, neighbour_probs = self._probabilities(anchors, neighbours, training)
        similarity = ops.sum(anchor_probs[:, None, :] * neighbour_probs, axis=-1)
        consistency_loss = -ops.mean(ops.log(similarity))
        mean_probs = ops.clip(ops.mean(anchor_probs, axis=0), 1e-8, 1.0)
        entropy = -ops.sum(mean_probs * ops.log(mean_probs))
        return consistency_loss - self.entropy_weight * entropy, consistency_loss, entropy

    def _update_trackers(self, losses, batch_size):
        for tracker, value in zip(self.metrics, losses, strict=True):
            tracker.update_state(value, sample_weight=batch_size)
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data):
        """One optimizer step on the clustering model; returns the trackers."""
        anchors, neighbours, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            losses = self._scan_losses(anchors, neighbours, training=True)
            scaled_loss = self.optimizer.scale_loss(_replica_share(losses[0]))
        variables = self.clustering_model.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return self._update_trackers(losses, ops.shape(anchors)[0])

    def test_step(self, data):
        """The same losses in inference mode, without the update."""
        anchors, neighbours, _ = keras.utils.unpack_x_y_sample_weight(data)
        losses = self._scan_losses(anchors, neighbours, training=False)
        return self._update_trackers(losses, ops.shape(anchors)[0])
