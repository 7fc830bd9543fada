"""Reference for ``specs/nnclr.step``: NNCLR (Dwibedi et al., 2021), as in keras.io's
"Self-supervised contrastive learning with NNCLR".

Algorithm, per batch ``(view_1, view_2)`` (two augmented views of the same images):

1. The encoder and the projection head map each view to projections, normalized to unit
   length.
2. Nearest-neighbour positives: each projection is replaced by the row of the feature
   queue (a ``(queue_size, width)`` non-trainable weight of unit rows) most similar to it
   (``take(queue, argmax(p @ queue^T, axis=1), axis=0)``).
3. The contrastive loss with temperature, symmetrized: the similarities of the first
   view's neighbours with the second view's projections, ``nn_1 @ p_2^T / temperature``,
   are logits whose right class is the example's own index, and likewise from the second
   view's neighbours to the first view; the loss is the mean of the two directions'
   mean cross-entropies. One ``contrastive_optimizer`` step updates the encoder and the
   projection head.
4. The queue is rolled: the batch's first-view projections enter at the front, the oldest
   rows leave (``concat([p_1, queue], 0)[:queue_size]``).

Trackers: ``c_loss``; ``c_acc``, how often the encoder's features of one view pick the
other view of the same image as most similar (both directions); ``r_acc``, how often each
feature of the standardized features is most correlated with itself across the views
(both directions), as keras.io's correlation accuracy. The test step (the same statements
in inference mode, without the update and the queue roll) reports the same trackers.

How it is written, and what differs from keras.io:

* No gradient flows through the neighbours, as in the paper (``stop_gradient`` of the
  queue rows; the queue is a weight nothing trains). keras.io passes the gradient of a
  neighbour to the projection it replaces (a straight-through estimator); it also sums
  four similarity matrices where the paper's symmetrized loss has two.
* The two views are data (made by the test), not augmenter layers; there is no linear
  probe.
* The queue is a non-trainable float32 weight (``add_weight``) of ``normalize(normal((
  queue_size, width)), axis=1)``, drawn in ``__init__`` from a ``keras.random.SeedGenerator``
  created first; under ``MirroredStrategy`` it is rolled with the whole global batch's
  projections (gathered across replicas in replica order), so every replica holds the
  same queue.
* The loss is a hand-written mean, taken as this replica's share under distribution and
  scaled by the optimizer's ``scale_loss``; the sub-models' outputs are cast to float32.
  Trackers are weighted by the batch size as Keras counts it (``view_1``'s first
  dimension).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def _replica_share(loss):
    """A whole-batch mean as this replica's share of the global loss."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / ops.cast(replicas, loss.dtype)


def _whole_batch(x):
    """``x`` of every replica, concatenated in replica order (``x`` on one device)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_gather(x, axis=0)


def _float32(x):
    """A sub-model's output (float16 under mixed precision) in float32."""
    return ops.cast(x, "float32")


def _cross_entropy(labels, logits):
    """The mean sparse cross-entropy of class indices with logits."""
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


def _standardized(features):
    """Each feature with mean 0 and standard deviation 1 over the batch."""
    return (features - ops.mean(features, axis=0)) / ops.std(features, axis=0)


@keras.saving.register_keras_serializable(package="stepc_references")
class NNCLRReference(keras.Model):
    """An encoder and a projection head trained with nearest-neighbour positives."""

    def __init__(
        self, encoder, projection_head, width, temperature=0.1, queue_size=10000, **kwargs
    ):
        """Hold the sub-models and settings, draw the feature queue, make the trackers."""
        super().__init__(**kwargs)
        self.encoder = encoder
        self.projection_head = projection_head
        self.width = width
        self.temperature = temperature
        self.queue_size = queue_size
        self.seed_generator = keras.random.SeedGenerator()
        self.feature_queue = self.add_weight(
            name="feature_queue",
            shape=(queue_size, width),
            dtype="float32",
            trainable=False,
            initializer=self._initial_queue,
            autocast=False,  # read as float32 under mixed precision too
            aggregation="only_first_replica",  # every replica computes the same queue
        )
        self.contrastive_loss_tracker = keras.metrics.Mean(name="c_loss")
        self.contrastive_accuracy = keras.metrics.SparseCategoricalAccuracy(name="c_acc")
        self.correlation_accuracy = keras.metrics.SparseCategoricalAccuracy(name="r_acc")
        self.built = True  # the sub-models are built; nothing for fit() to build

    def _initial_queue(self, shape, dtype=None):
        """Unit rows of normal noise."""
        noise = keras.random.normal(shape, seed=self.seed_generator)
        return ops.normalize(noise, axis=1)

    def compile(self, contrastive_optimizer, **kwargs):
        """Configure the contrastive optimizer; forward the rest to Keras."""
        super().compile(**kwargs)
        self.contrastive_optimizer = contrastive_optimizer

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [self.contrastive_loss_tracker, self.contrastive_accuracy, self.correlation_accuracy]

    def nearest_neighbour(self, projections):
        """The queue's row most similar to each projection (no gradient)."""
        similarities = ops.matmul(projections, ops.transpose(self.feature_queue))
        neighbours = ops.take(self.feature_queue, ops.argmax(similarities, axis=1), axis=0)
        return ops.stop_gradient(neighbours)

    def contrastive_loss(self, projections_1, projections_2):
        """The symmetrized loss of nearest-neighbour positives with temperature."""
        labels = ops.arange(ops.shape(projections_1)[0])
        nn_1 = self.nearest_neighbour(projections_1)
        nn_2 = self.nearest_neighbour(projections_2)
        similarities_1_2 = ops.matmul(nn_1, ops.transpose(projections_2)) / self.temperature
        similarities_2_1 = ops.matmul(nn_2, ops.transpose(projections_1)) / self.temperature
        return (
            _cross_entropy(labels, similarities_1_2) + _cross_entropy(labels, similarities_2_1)
        ) / 2.0

    def forward(self, view_1, view_2, training):
        """Both views' features and unit projections."""
        features_1 = _float32(self.encoder(view_1, training=training))
        features_2 = _float32(self.encoder(view_2, training=training))
        projections_1 = ops.normalize(
            _float32(self.projection_head(features_1, training=training)), axis=1
        )
        projections_2 = ops.normalize(
            _float32(self.projection_head(features_2, training=training)), axis=1
        )
        return features_1, features_2, projections_1, projections_2

    def update_trackers(self, loss, features_1, features_2, batch_size):
        """c_loss, c_acc (cosine similarity of features) and r_acc (cross-correlation)."""
        self.contrastive_loss_tracker.update_state(loss, sample_weight=batch_size)
        unit_1, unit_2 = ops.normalize(features_1, axis=1), ops.normalize(features_2, axis=1)
        similarities = ops.matmul(unit_1, ops.transpose(unit_2))
        labels = ops.arange(ops.shape(similarities)[0])
        self.contrastive_accuracy.update_state(labels, similarities)
        self.contrastive_accuracy.update_state(labels, ops.transpose(similarities))
        standard_1, standard_2 = _standardized(features_1), _standardized(features_2)
        correlation = ops.matmul(ops.transpose(standard_1), standard_2) / ops.cast(
            ops.shape(features_1)[0], "float32"
        )
        feature_labels = ops.arange(ops.shape(correlation)[0])
        self.correlation_accuracy.update_state(feature_labels, correlation)
        self.correlation_accuracy.update_state(feature_labels, ops.transpose(correlation))

    def roll_queue(self, projections):
        """The whole batch's projections enter the queue at the front; the oldest leave."""
        rolled = ops.concatenate([_whole_batch(projections), self.feature_queue], axis=0)
        self.feature_queue.assign(rolled[: self.queue_size])

    def train_step(self, data):
        """One contrastive_optimizer step, the trackers, then the queue rolled."""
        view_1, view_2, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            features_1, features_2, projections_1, projections_2 = self.forward(
                view_1, view_2, training=True
            )
            loss = self.contrastive_loss(projections_1, projections_2)
            scaled_loss = self.contrastive_optimizer.scale_loss(_replica_share(loss))
        variables = self.encoder.trainable_variables + self.projection_head.trainable_variables
        self.contrastive_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self.update_trackers(loss, features_1, features_2, ops.shape(view_1)[0])
        self.roll_queue(projections_1)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        """The same losses and trackers in inference mode; the queue is only read."""
        view_1, view_2, _ = keras.utils.unpack_x_y_sample_weight(data)
        features_1, features_2, projections_1, projections_2 = self.forward(
            view_1, view_2, training=False
        )
        loss = self.contrastive_loss(projections_1, projections_2)
        self.update_trackers(loss, features_1, features_2, ops.shape(view_1)[0])
        return {metric.name: metric.result() for metric in self.metrics}
