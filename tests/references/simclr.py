"""Reference for ``specs/simclr.step``: SimCLR contrastive pretraining with a linear probe
(keras.io, "Semi-supervised image classification using contrastive pretraining with
SimCLR"; Chen et al., 2020).

Algorithm, per zipped batch ``(unlabeled_images, (labeled_images, labels))``:

1. Contrastive step. The unlabelled and labelled images, concatenated, are augmented
   twice by ``contrastive_augmenter``; the encoder and the projection head map each view
   to projections, normalized to unit length. The similarities of every view-1 example
   with every view-2 example, ``p1 @ p2^T / temperature``, are logits whose right class
   is the example's own index (``arange(batch_size)``). The NT-Xent loss is the average
   of the two directions' cross-entropies (rows: 1 -> 2, columns: 2 -> 1), each a mean
   over the batch; one ``contrastive_optimizer`` step updates the encoder and the
   projection head. ``c_acc`` counts how often each direction picks the right partner.
2. Probe step. The labelled images, augmented by ``classification_augmenter``, go
   through the encoder in inference mode (its features are data for the probe) and the
   linear probe; one ``probe_optimizer`` step on the probe's cross-entropy (a
   ``SparseCategoricalCrossentropy(from_logits=True)``) updates the probe only.

Trackers: ``c_loss``, ``c_acc``, ``p_loss``, ``p_acc``. The test step runs the
classification augmenter, the encoder and the probe in inference mode on
``(labeled_images, labels)`` and reports ``p_loss`` and ``p_acc``.

How it is written, as the keras.io example but for Keras 3:

* The published ``contrastive_loss`` returns the per-example vector
  ``(loss_1_2 + loss_2_1) / 2``, whose gradient ``tape.gradient`` takes of its sum; here
  each direction is a batch mean, so the loss is the scalar the tracker reports (the
  published tracker reports the mean of the same vector).
* The augmenters are Keras layers with their own seeded generators (``GaussianNoise``),
  called with ``training=True`` in the train step, so each call draws new noise; the
  model owns no seed generator of its own.
* Every loss goes through its optimizer's ``scale_loss`` inside the tape. The contrastive
  loss is a hand-written mean, taken as this replica's share under distribution; the
  probe's loss object already returns that share, and its tracker gets the global value
  back (as Keras's own step does). The loss trackers are weighted by the batch size as
  Keras counts it for its own loss tracker: the first dimension of the batch's first
  tensor (the unlabelled images; in the test step the labelled ones).
* Sub-model outputs are cast to float32 before the step's own arithmetic (a no-op in
  float32), as Keras's losses cast theirs under mixed precision.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def _replica_share(loss):
    """A whole-batch mean as this replica's share of the global loss."""
    return loss / ops.cast(_replicas(), loss.dtype)


def _global_loss(loss):
    """A Keras loss object's per-replica value as the loss of the whole global batch."""
    return loss * ops.cast(_replicas(), loss.dtype)


def _float32(x):
    """A sub-model's output (float16 under mixed precision) in float32."""
    return ops.cast(x, "float32")


@keras.saving.register_keras_serializable(package="stepc_references")
class SimCLRReference(keras.Model):
    """An encoder pretrained contrastively, with a linear probe trained on its features."""

    def __init__(
        self,
        encoder,
        projection_head,
        linear_probe,
        contrastive_augmenter,
        classification_augmenter,
        temperature=0.1,
        **kwargs,
    ):
        """Hold the sub-models, the augmenters, the temperature and the probe's loss."""
        super().__init__(**kwargs)
        self.encoder = encoder
        self.projection_head = projection_head
        self.linear_probe = linear_probe
        self.contrastive_augmenter = contrastive_augmenter
        self.classification_augmenter = classification_augmenter
        self.temperature = temperature
        self.probe_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.contrastive_loss_tracker = keras.metrics.Mean(name="c_loss")
        self.contrastive_accuracy = keras.metrics.SparseCategoricalAccuracy(name="c_acc")
        self.probe_loss_tracker = keras.metrics.Mean(name="p_loss")
        self.probe_accuracy = keras.metrics.SparseCategoricalAccuracy(name="p_acc")
        # Its sub-models are built and it has no call(): nothing for fit() to build under
        # a distribution strategy (which would call the model on a batch).
        self.built = True

    def compile(self, contrastive_optimizer, probe_optimizer, **kwargs):
        """Configure both optimizers; forward the rest to Keras."""
        super().compile(**kwargs)
        self.contrastive_optimizer = contrastive_optimizer
        self.probe_optimizer = probe_optimizer

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [
            self.contrastive_loss_tracker,
            self.contrastive_accuracy,
            self.probe_loss_tracker,
            self.probe_accuracy,
        ]

    def contrastive_loss(self, projections_1, projections_2):
        """NT-Xent of two views' projections; updates the contrastive accuracy."""
        projections_1 = ops.normalize(projections_1, axis=1)
        projections_2 = ops.normalize(projections_2, axis=1)
        similarities = ops.matmul(projections_1, ops.transpose(projections_2))
        similarities = similarities / self.temperature
        contrastive_labels = ops.arange(ops.shape(projections_1)[0])
        self.contrastive_accuracy.update_state(contrastive_labels, similarities)
        self.contrastive_accuracy.update_state(contrastive_labels, ops.transpose(similarities))
        loss_1_2 = keras.losses.sparse_categorical_crossentropy(
            contrastive_labels, similarities, from_logits=True
        )
        loss_2_1 = keras.losses.sparse_categorical_crossentropy(
            contrastive_labels, ops.transpose(similarities), from_logits=True
        )
        return (ops.mean(loss_1_2) + ops.mean(loss_2_1)) / 2.0

    def _project(self, images):
        """The projection head's output on the encoder's features, both in training mode."""
        return self.projection_head(self.encoder(images, training=True), training=True)

    def _contrastive_step(self, images, batch_size):
        """One contrastive_optimizer step on the encoder and the projection head."""
        augmented_1 = self.contrastive_augmenter(images, training=True)
        augmented_2 = self.contrastive_augmenter(images, training=True)
        with tf.GradientTape() as tape:
            projections_1 = self._project(augmented_1)
            projections_2 = self._project(augmented_2)
            loss = self.contrastive_loss(_float32(projections_1), _float32(projections_2))
            scaled_loss = self.contrastive_optimizer.scale_loss(_replica_share(loss))
        variables = self.encoder.trainable_variables + self.projection_head.trainable_variables
        self.contrastive_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self.contrastive_loss_tracker.update_state(loss, sample_weight=batch_size)

    def _probe_step(self, labeled_images, labels, batch_size):
        """One probe_optimizer step on the linear probe over the encoder's features."""
        augmented = self.classification_augmenter(labeled_images, training=True)
        features = self.encoder(augmented, training=False)
        with tf.GradientTape() as tape:
            class_logits = self.linear_probe(features, training=True)
            loss = self.probe_loss(labels, class_logits)
            scaled_loss = self.probe_optimizer.scale_loss(loss)
        variables = self.linear_probe.trainable_variables
        self.probe_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self._update_probe_trackers(loss, labels, class_logits, batch_size)

    def _update_probe_trackers(self, loss, labels, class_logits, batch_size):
        self.probe_loss_tracker.update_state(_global_loss(loss), sample_weight=batch_size)
        self.probe_accuracy.update_state(labels, class_logits)

    def train_step(self, data):
        """A contrastive step, then a probe step, on one zipped batch."""
        unlabeled_images, labeled, _ = keras.utils.unpack_x_y_sample_weight(data)
        labeled_images, labels = labeled
        batch_size = ops.shape(unlabeled_images)[0]
        images = ops.concatenate([unlabeled_images, labeled_images], axis=0)
        self._contrastive_step(images, batch_size)
        self._probe_step(labeled_images, labels, batch_size)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        """The probe's loss and accuracy, every sub-model in inference mode."""
        labeled_images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        augmented = self.classification_augmenter(labeled_images, training=False)
        class_logits = self.linear_probe(self.encoder(augmented, training=False), training=False)
        loss = self.probe_loss(labels, class_logits)
        self._update_probe_trackers(loss, labels, class_logits, ops.shape(labeled_images)[0])
        return {"p_loss": self.probe_loss_tracker.result(), "p_acc": self.probe_accuracy.result()}
