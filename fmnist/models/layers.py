"""Layers that compute what Keras's do, on TensorFlow's faster fused kernels, and that train the same on any number of
replicas.

Keras 3's BatchNormalization computes its statistics and normalisation as separate element-wise ops in float32 (so
each bfloat16 activation is cast up and back); on this CPU those ops took half of a small ResNet's training step
(profiled: benchmarks/README.md). `BatchNormalization` here is the same layer, with the same variables, arguments
and checkpoints, whose common case (4-D NHWC input, no mask, no renorm, not synchronised) runs TensorFlow's
FusedBatchNormV3 (oneDNN on CPU, cuDNN on GPU), which reads the compute dtype directly and keeps its statistics in
float32. The one intended difference: the moving variance is updated with the unbiased batch variance, as
TensorFlow's fused kernel (and PyTorch) do; Keras 3 uses the biased one.

Across replicas (tf.distribute), `BatchNormalization(synchronized=True)` normalises each replica's batch with the
statistics of the global batch (one all-reduce of 2C+1 sums per layer and step, and one for its gradient), so that
N replicas train exactly as one replica with the same global batch, and every replica's moving statistics are the
same. `Dropout` draws its mask for the whole global batch from (seed, global step) and keeps its replica's rows, so
the masks do not depend on the topology and a resumed run draws the masks an unbroken run would have drawn.
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
        return (rank == 4 and self.axis in (-1, 3) and mask is None and not self.renorm and self.center
                and self.epsilon >= MIN_FUSED_EPSILON)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, self.compute_dtype)
        gamma = self.gamma if self.scale else tf.ones_like(self.beta)  # The fused kernel needs a scale.
        replicas = _replica_context()
        if training and self.trainable and self.synchronized and replicas.num_replicas_in_sync > 1:
            return self._synchronized_call(x, replicas, gamma)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=True, exponential_avg_factor=1.0 - self.momentum)
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
            return y
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, self.beta, mean=self.moving_mean,
                                                   variance=self.moving_variance, epsilon=self.epsilon,
                                                   is_training=False)
        return y

    def _synchronized_call(self, x, replicas: tf.distribute.ReplicaContext, gamma):
        """Normalises with the global batch's statistics: sums over every replica's batch, in one all-reduce.

        The sums are taken around the moving mean (equal on every replica), which keeps E[x^2] - E[x]^2 from
        cancelling; the moving variance gets the unbiased variance, as the fused kernel gives it.
        """
        shift = tf.stop_gradient(tf.convert_to_tensor(self.moving_mean))
        centred = tf.cast(x, tf.float32) - shift
        count = tf.cast(tf.reduce_prod(tf.shape(centred)[:-1]), tf.float32)
        local = tf.concat([tf.reduce_sum(centred, [0, 1, 2]), tf.reduce_sum(tf.square(centred), [0, 1, 2]),
                           count[None]], 0)
        total = replicas.all_reduce(tf.distribute.ReduceOp.SUM, local)
        channels = centred.shape[-1]
        n = total[-1]
        mean_shifted, mean_square = total[:channels] / n, total[channels:2 * channels] / n
        variance = tf.maximum(mean_square - tf.square(mean_shifted), 0.0)
        mean = mean_shifted + shift
        y = tf.nn.batch_normalization(centred, mean_shifted, variance, tf.cast(self.beta, tf.float32),
                                      tf.cast(gamma, tf.float32), self.epsilon)
        rate = 1.0 - self.momentum
        unbiased = variance * n / tf.maximum(n - 1.0, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + tf.stop_gradient(mean) * rate)
        self.moving_variance.assign(self.moving_variance * self.momentum + tf.stop_gradient(unbiased) * rate)
        return tf.cast(y, self.compute_dtype)


def _replica_context() -> tf.distribute.ReplicaContext:
    """The current replica context; the default strategy's (one replica) in cross-replica code such as export."""
    return tf.distribute.get_replica_context() or _DEFAULT_CONTEXT


class _OneReplica:
    """Stands in for a replica context where there is none (cross-replica code)."""

    num_replicas_in_sync = 1
    replica_id_in_sync_group = 0


_DEFAULT_CONTEXT = _OneReplica()


@keras.saving.register_keras_serializable(package="fmnist")
class Dropout(keras.layers.Dropout):
    """keras.layers.Dropout whose training mask is a function of (noise seed, global step, example's global row).

    `bind_step(model, step, seed)` gives every such layer of a model the run's step variable; without one (a model
    built outside fmnist's training loop) the layer is Keras's own.
    """

    _fmnist_step = None
    _fmnist_seed = 0

    def call(self, inputs, training=False):
        if not training or not self.rate or self._fmnist_step is None:
            return super().call(inputs, training=training)
        replicas = _replica_context()
        b = tf.shape(inputs)[0]
        shape = tf.concat([[b * replicas.num_replicas_in_sync], tf.shape(inputs)[1:]], 0)
        seed = tf.stack([tf.constant(self._fmnist_seed, tf.int64), tf.cast(self._fmnist_step(), tf.int64)])
        first = tf.cast(replicas.replica_id_in_sync_group, tf.int32) * b
        keep = tf.random.stateless_uniform(shape, seed)[first:first + b] >= self.rate
        return tf.where(keep, inputs / tf.cast(1.0 - self.rate, inputs.dtype), tf.zeros_like(inputs))


def bind_step(model: keras.Model, step: tf.Variable, seed: int) -> None:
    """Makes `model`'s fmnist Dropout layers draw their masks from (seed, layer index, `step`).

    The step is read through a function, so Keras does not track it as one of the layer's weights.
    """
    dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]
    for index, layer in enumerate(dropouts):
        object.__setattr__(layer, "_fmnist_step", lambda: step)
        object.__setattr__(layer, "_fmnist_seed", seed * 1009 + index)


def synchronize_batchnorm(model: keras.Model, synchronized: bool) -> None:
    """Sets whether `model`'s BatchNormalization layers use the global batch's statistics across replicas."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = synchronized
