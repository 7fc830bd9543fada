"""Reference for ``specs/adamatch.step``: AdaMatch (Berthelot et al., 2021), as in keras.io's
"Semi-supervised and domain adaptation with AdaMatch".

Algorithm, per batch ``((source_weak, source_strong, source_labels), (target_weak,
target_strong))`` (labelled source images and unlabelled target images, each in a weakly
and a strongly augmented view):

1. One forward pass of the classifier in training mode over the four views, and one over
   the two source views in inference mode (no BatchNormalization update).
2. Random logit interpolation: each source logit is ``lambda * training + (1 - lambda) *
   inference``, ``lambda`` uniform in ``[0, 1)`` per logit.
3. Distribution alignment: the target's weak-view probabilities are multiplied by the
   ratio of the source's to the target's mean probability of each class (a mean over the
   batch) and normalized to sum to 1: the pseudo-labels.
4. Relative confidence threshold: a pseudo-label counts only where its largest probability
   reaches ``tau`` times the mean largest probability of the source's weak view.
5. The source loss is the cross-entropy of the labels with both source views' logits; the
   target loss the mean, over the target batch, of the masked cross-entropy of the
   (constant) pseudo-labels with the strong target view's logits. The target loss weight
   is warmed up from the step counter: ``mu * (0.5 - cos(min(pi * step / total_steps,
   pi)) / 2)``, then the counter is incremented. One optimizer step on ``source_loss +
   weight * target_loss`` updates the classifier.

Tracker: ``loss`` (the total). The test step reports the classifier's ``accuracy`` on
labelled target images, as keras.io evaluates the trained classifier.

How it is written, and what differs from keras.io:

* Distribution alignment uses each class's mean probability (``mean(p, axis=0)``) as the
  paper does: keras.io's ``reduce_mean`` over the whole batch of probabilities is always
  ``1 / num_classes`` for both domains, so its ratio is 1. The aligned probabilities are
  normalized to a distribution (L1), as the paper's ``normalize``, where keras.io uses an
  L2 norm. The labels are class indices (sparse cross-entropy) rather than one-hot rows.
* The warm-up reaches ``mu`` after ``total_steps`` steps (keras.io's ``2 * pi * step /
  total_steps`` reaches it halfway through training: pass half the steps for that).
* The counter is a non-trainable int32 weight (``add_weight``), so it is saved with the
  model; keras.io's ``tf.Variable`` is not.
* The interpolation weights come from ``keras.random.uniform`` with a
  ``keras.random.SeedGenerator`` created last in ``__init__``.
* The hand-written means are taken as this replica's share under distribution; the loss
  goes through the optimizer's ``scale_loss`` inside the tape; the classifier's outputs
  are cast to float32 (a no-op in float32). The tracker averages the batches' losses
  unweighted, as keras.io's does (the step returns it: no batch-size weighting).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops


def _replica_share(loss):
    """A whole-batch mean as this replica's share of the global loss."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / ops.cast(replicas, loss.dtype)


def _float32(x):
    """The classifier's output (float16 under mixed precision) in float32."""
    return ops.cast(x, "float32")


def _cross_entropy(labels, logits):
    """The mean sparse cross-entropy of class indices with logits."""
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


@keras.saving.register_keras_serializable(package="stepc_references")
class AdaMatchReference(keras.Model):
    """One classifier adapted from labelled source images to unlabelled target images."""

    def __init__(self, classifier, total_steps, tau=0.9, mu=1.0, **kwargs):
        """Hold the classifier, the settings, the step counter, the trackers and, last,
        the seed generator."""
        super().__init__(**kwargs)
        self.classifier = classifier
        self.total_steps = total_steps
        self.tau = tau
        self.mu = mu
        self.step = self.add_weight(
            name="step",
            shape=(),
            dtype="int32",
            trainable=False,
            initializer="zeros",
            aggregation="only_first_replica",  # every replica computes the same count
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.seed_generator = keras.random.SeedGenerator()
        self.built = True  # the classifier is built; nothing for fit() to build

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return [self.loss_tracker, self.accuracy]

    def target_weight(self):
        """The warm-up of the target loss weight from the step counter."""
        step = ops.cast(self.step, "float32")
        angle = ops.minimum(math.pi * step / self.total_steps, math.pi)
        return self.mu * (0.5 - ops.cos(angle) / 2.0)

    def source_logits(self, source_weak, source_strong, training_logits):
        """Random interpolation of the source views' training and inference logits."""
        combined_source = ops.concatenate([source_weak, source_strong], axis=0)
        inference_logits = _float32(self.classifier(combined_source, training=False))
        lambd = keras.random.uniform(ops.shape(training_logits), seed=self.seed_generator)
        return lambd * training_logits + (1.0 - lambd) * inference_logits

    def pseudo_labels(self, source_weak_logits, target_weak_logits):
        """Aligned target pseudo-labels and the relative-confidence mask."""
        source_probs = ops.softmax(source_weak_logits)
        target_probs = ops.softmax(target_weak_logits)
        ratio = ops.mean(source_probs, axis=0) / ops.mean(target_probs, axis=0)
        aligned = ops.normalize(target_probs * ratio, axis=1, order=1)
        threshold = self.tau * ops.mean(ops.max(source_probs, axis=-1))
        mask = ops.max(aligned, axis=-1) >= threshold
        return ops.stop_gradient(aligned), mask

    def losses_of(self, source, target):
        """The total loss of one batch (and nothing else: no update)."""
        source_weak, source_strong, source_labels = source
        target_weak, target_strong = target
        n_source, n_target = ops.shape(source_weak)[0], ops.shape(target_weak)[0]
        images = ops.concatenate([source_weak, source_strong, target_weak, target_strong], 0)
        logits = _float32(self.classifier(images, training=True))
        source_logits = self.source_logits(source_weak, source_strong, logits[: 2 * n_source])
        target_logits = logits[2 * n_source :]
        labels, mask = self.pseudo_labels(source_logits[:n_source], target_logits[:n_target])
        source_loss = _cross_entropy(source_labels, source_logits[:n_source]) + _cross_entropy(
            source_labels, source_logits[n_source:]
        )
        per_example = keras.losses.categorical_crossentropy(
            labels, target_logits[n_target:], from_logits=True
        )
        target_loss = ops.mean(per_example * ops.cast(mask, "float32"))
        return source_loss + self.target_weight() * target_loss

    def train_step(self, data):
        """One AdaMatch step on the classifier; the counter moves on."""
        source, target, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss = self.losses_of(source, target)
            scaled_loss = self.optimizer.scale_loss(_replica_share(loss))
        variables = self.classifier.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self.step.assign(self.step + 1)
        self.loss_tracker.update_state(loss)  # a mean over batches, as keras.io's
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        """The classifier's accuracy on labelled (target) images, in inference mode."""
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        self.accuracy.update_state(labels, _float32(self.classifier(images, training=False)))
        return {"accuracy": self.accuracy.result()}
