"""Reference for ``specs/zero_dce.step``: keras.io's "Zero-DCE for low-light image
enhancement" (Guo et al., 2020).

Algorithm, per batch of low-light images ``data``: the DCE net gives 24 curve parameter
maps ``output``; the enhanced image applies the light-enhancement curve
``x + r * (x^2 - x)`` eight times, ``r`` being the channel slices ``output[..., 0:3]``,
``[..., 3:6]``, ... ``[..., 21:24]``. No labels: four losses, as the example writes them,

* illumination smoothness (x 200): the squared differences of neighbouring pixels of the
  curve maps, vertically ``output[:, 1:] - output[:, :h-1]`` and horizontally, each over
  the example's count, divided by the batch size;
* spatial constancy: the channel means of the original and enhanced images, average-pooled
  over 4x4 regions, each convolved with the example's four fixed kernels; the mean of the
  squared differences between the original's and the enhanced image's responses;
* colour constancy (x 5): the mean of ``sqrt(d_rg^2 + d_rb^2 + d_gb^2)``, ``d`` the squared
  differences of the channel means over each image;
* exposure (x 10): the mean of ``(pool16(channel mean) - 0.6)^2``;

and their sum, minimized over the DCE net by an Adam the model builds in
``compile(learning_rate)``. One ``Mean`` tracker per loss and one for the total. The test
step computes the same losses in inference mode.

How it is written, as the example but for Keras 3:

* ``compile(learning_rate)`` gives Keras's ``compile()`` the Adam it builds, so
  ``model.optimizer`` is that Adam (wrapped in a ``LossScaleOptimizer`` under
  ``mixed_float16``, as Keras's ``compile()`` does); the trackers are made in ``__init__``.
* The kernels are the example's, as written: ``(1, 3, 1, 3)`` arrays that ``conv``
  (``tf.nn.conv2d`` in the example) reads as one row of 3 taps, 1 input and 3 output
  channels.
* The total is a hand-written batch mean: under distribution it is taken as this replica's
  share; gradients are of ``optimizer.scale_loss(...)``. Trackers are weighted by batch
  size. The DCE net's output is cast to float32 before the step's arithmetic (a no-op
  unless under mixed precision).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

LEFT_KERNEL = [[[[0.0, 0.0, 0.0]], [[-1.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]]]
RIGHT_KERNEL = [[[[0.0, 0.0, 0.0]], [[0.0, 1.0, -1.0]], [[0.0, 0.0, 0.0]]]]
UP_KERNEL = [[[[0.0, -1.0, 0.0]], [[0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]]]
DOWN_KERNEL = [[[[0.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[0.0, -1.0, 0.0]]]]
LOSS_NAMES = (
    "total_loss",
    "illumination_smoothness_loss",
    "spatial_constancy_loss",
    "color_constancy_loss",
    "exposure_loss",
)


def _replica_share(loss):
    """A whole-batch mean as this replica's share of the global loss."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / ops.cast(replicas, loss.dtype)


def enhanced_image(data, output):
    """The curve ``x + r * (x^2 - x)`` applied with each of the 8 parameter maps."""
    x = data
    for start in range(0, 24, 3):
        r = output[:, :, :, start : start + 3]
        x = x + r * (ops.square(x) - x)
    return x


def illumination_smoothness_loss(x):
    """The example's total variation of the curve maps (its counts, as published)."""
    batch_size = ops.cast(ops.shape(x)[0], "float32")
    h_x = ops.shape(x)[1]
    w_x = ops.shape(x)[2]
    count_h = ops.cast((ops.shape(x)[2] - 1) * ops.shape(x)[3], "float32")
    count_w = ops.cast(ops.shape(x)[2] * (ops.shape(x)[3] - 1), "float32")
    h_tv = ops.sum(ops.square(x[:, 1:, :, :] - x[:, : h_x - 1, :, :]))
    w_tv = ops.sum(ops.square(x[:, :, 1:, :] - x[:, :, : w_x - 1, :]))
    return 2.0 * (h_tv / count_h + w_tv / count_w) / batch_size


def spatial_constancy_loss(original, enhanced):
    """Per region and kernel, the squared change of the pooled brightness response."""
    original_pool = ops.average_pool(ops.mean(original, 3, keepdims=True), 4, 4, "valid")
    enhanced_pool = ops.average_pool(ops.mean(enhanced, 3, keepdims=True), 4, 4, "valid")
    total = 0.0
    for kernel in (LEFT_KERNEL, RIGHT_KERNEL, UP_KERNEL, DOWN_KERNEL):
        kernel = ops.convert_to_tensor(kernel)
        d_original = ops.conv(original_pool, kernel, strides=1, padding="same")
        d_enhanced = ops.conv(enhanced_pool, kernel, strides=1, padding="same")
        total = total + ops.square(d_original - d_enhanced)
    return total


def color_constancy_loss(x):
    """Per image, how far apart the mean red, green and blue are."""
    mean_rgb = ops.mean(x, axis=(1, 2), keepdims=True)
    mr, mg, mb = mean_rgb[:, :, :, 0], mean_rgb[:, :, :, 1], mean_rgb[:, :, :, 2]
    d_rg = ops.square(mr - mg)
    d_rb = ops.square(mr - mb)
    d_gb = ops.square(mb - mg)
    return ops.sqrt(ops.square(d_rg) + ops.square(d_rb) + ops.square(d_gb))


def exposure_loss(x, mean_val=0.6):
    """How far the brightness of each 16x16 region is from ``mean_val``."""
    x = ops.mean(x, axis=3, keepdims=True)
    mean = ops.average_pool(x, pool_size=16, strides=16, padding="valid")
    return ops.mean(ops.square(mean - mean_val))


@keras.saving.register_keras_serializable(package="stepc_references")
class ZeroDCEReference(keras.Model):
    """Zero-DCE: a DCE net trained by ``fit()`` on unlabelled low-light images."""

    def __init__(self, dce_model, **kwargs):
        """Hold the DCE net and one tracker per loss."""
        super().__init__(**kwargs)
        self.dce_model = dce_model
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}

    def compile(self, learning_rate, **kwargs):
        """Build the Adam of ``learning_rate``; forward the rest to Keras."""
        super().compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), **kwargs)

    @property
    def metrics(self):
        """The trackers Keras resets at each epoch."""
        return list(self.trackers.values())

    def compute_losses(self, data, output):
        """The four weighted losses and their total, by tracker name."""
        output = ops.cast(output, "float32")
        enhanced = self._enhance(data, output)
        losses = {
            "illumination_smoothness_loss": 200.0 * illumination_smoothness_loss(output),
            "spatial_constancy_loss": ops.mean(spatial_constancy_loss(data, enhanced)),
            "color_constancy_loss": 5.0 * ops.mean(color_constancy_loss(enhanced)),
            "exposure_loss": 10.0 * ops.mean(exposure_loss(enhanced)),
        }
        losses["total_loss"] = sum(losses.values())
        return losses

    def _enhance(self, data, output):
        """The enhanced image (a method, for the broken variants to replace)."""
        return enhanced_image(data, output)

    def _track(self, losses, data):
        """Every tracker, weighted by batch size; returns their results."""
        batch_size = ops.shape(data)[0]
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name], sample_weight=batch_size)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        """One Adam step on the DCE net."""
        data, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            losses = self.compute_losses(data, self.dce_model(data, training=True))
            scaled_loss = self.optimizer.scale_loss(_replica_share(losses["total_loss"]))
        variables = self.dce_model.trainable_variables
        self.optimizer.apply(tape.gradient(scaled_loss, variables), variables)
        return self._track(losses, data)

    def test_step(self, data):
        """The same losses in inference mode."""
        data, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._track(self.compute_losses(data, self.dce_model(data, training=False)), data)
