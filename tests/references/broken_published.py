"""Deliberately wrong variants of the published specs' references.

Each differs from its reference in one realistic mistake. The published specs' tests train
each in the reference's scenario and check that the comparison used for the generated
models fails: a comparison that passed these would not show that the generated step
implements the spec. (Shared by the two published-spec test modules: each edits only its
own section.)
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from tests.references.masked_image_modeling import MaskedAutoencoderReference
from tests.references.metric_learning import EmbeddingModelReference
from tests.references.scan import SCANReference
from tests.references.simclr import SimCLRReference
from tests.references.speech_transformer import SpeechTransformerReference
from tests.references.zero_dce import ZeroDCEReference

# SimCLR, metric learning, SCAN (tests/test_published_self_supervised.py) ----------------


class SimCLROneDirection(SimCLRReference):
    """The NT-Xent loss of one direction only (view 1 -> view 2), not the average of two."""

    def contrastive_loss(self, projections_1, projections_2):
        projections_1 = ops.normalize(projections_1, axis=1)
        projections_2 = ops.normalize(projections_2, axis=1)
        similarities = ops.matmul(projections_1, ops.transpose(projections_2))
        similarities = similarities / self.temperature
        labels = ops.arange(ops.shape(projections_1)[0])
        self.contrastive_accuracy.update_state(labels, similarities)
        self.contrastive_accuracy.update_state(labels, ops.transpose(similarities))
        return ops.mean(
            keras.losses.sparse_categorical_crossentropy(labels, similarities, from_logits=True)
        )


class SimCLRProbeTrainsEncoder(SimCLRReference):
    """The probe's step also updates the encoder (its features are not data): the probe
    optimizer's gradient reaches the encoder's weights, in training mode."""

    def _probe_step(self, labeled_images, labels, batch_size):
        augmented = self.classification_augmenter(labeled_images, training=True)
        with tf.GradientTape() as tape:
            class_logits = self.linear_probe(self.encoder(augmented, training=True), training=True)
            loss = self.probe_loss(labels, class_logits)
            scaled_loss = self.probe_optimizer.scale_loss(loss)
        variables = self.linear_probe.trainable_variables + self.encoder.trainable_variables
        self.probe_optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        self._update_probe_trackers(loss, labels, class_logits, batch_size)


class EmbeddingModelWithoutTemperature(EmbeddingModelReference):
    """The similarities used as logits unscaled (``temperature`` ignored)."""

    def compile(self, temperature=0.2, **kwargs):
        super().compile(temperature=1.0, **kwargs)


class SCANEntropyPenalized(SCANReference):
    """The entropy term with the wrong sign: clusters are pushed to collapse."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.entropy_weight = -self.entropy_weight


# Speech Transformer, Zero-DCE, masked image modelling (test_published_vision_speech.py) --


class SpeechTransformerUnmasked(SpeechTransformerReference):
    """No padding mask: the padding after each utterance counts in the loss."""

    def _padding_mask(self, dec_target):
        return None


class SpeechTransformerUnshifted(SpeechTransformerReference):
    """Teacher forcing without the shift: the decoder predicts the token it reads."""

    def _teacher_forcing(self, target):
        return target[:, :-1], target[:, :-1]


class ZeroDCEOneCurveMap(ZeroDCEReference):
    """Every curve iteration uses the first three parameter maps (``output[..., 0:3]``)."""

    def _enhance(self, data, output):
        x = data
        for _ in range(8):
            x = x + output[:, :, :, 0:3] * (ops.square(x) - x)
        return x


class ZeroDCEUnweightedSmoothness(ZeroDCEReference):
    """The illumination smoothness loss without its weight of 200 (reported unweighted)."""

    def compute_losses(self, data, output):
        losses = super().compute_losses(data, output)
        losses["illumination_smoothness_loss"] = losses["illumination_smoothness_loss"] / 200.0
        losses["total_loss"] = sum(v for k, v in losses.items() if k != "total_loss")
        return losses


class MaskedAutoencoderLossOnVisiblePatches(MaskedAutoencoderReference):
    """The loss (and metrics) compare the unmasked patches, which the encoder saw."""

    def _loss_indices(self, encoded):
        return encoded[4]


class MaskedAutoencoderWithoutPositions(MaskedAutoencoderReference):
    """The encoder's outputs go to the decoder without their position embeddings."""

    def _decoder_inputs(self, encoder_outputs, unmasked_positions, masked_embeddings):
        return ops.concatenate([encoder_outputs, masked_embeddings], axis=1)
