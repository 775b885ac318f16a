"""Layers that compute what Keras's do, on TensorFlow's faster fused kernels.

Keras 3's BatchNormalization computes its statistics and normalisation as separate element-wise ops in float32 (so
each bfloat16 activation is cast up and back); on this CPU those ops took half of a small ResNet's training step
(profiled: benchmarks/README.md). `BatchNormalization` here is the same layer, with the same variables, arguments
and checkpoints, whose common case (4-D NHWC input, no mask, no renorm, not synchronised) runs TensorFlow's
FusedBatchNormV3 (oneDNN on CPU, cuDNN on GPU), which reads the compute dtype directly and keeps its statistics in
float32. The one intended difference: the moving variance is updated with the unbiased batch variance, as
TensorFlow's fused kernel (and PyTorch) do; Keras 3 uses the biased one.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# TensorFlow's fused kernel refuses smaller epsilons.
MIN_FUSED_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="fmnist")
class BatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization on TensorFlow's fused kernel where it applies; Keras's own code elsewhere."""

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (rank == 4 and self.axis in (-1, 3) and mask is None and not self.renorm and not self.synchronized
                and self.scale and self.center and self.epsilon >= MIN_FUSED_EPSILON)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, self.compute_dtype)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=True, exponential_avg_factor=1.0 - self.momentum)
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
            return y
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, self.gamma, self.beta, mean=self.moving_mean,
                                                   variance=self.moving_variance, epsilon=self.epsilon,
                                                   is_training=False)
        return y
