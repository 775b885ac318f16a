"""Lookahead as airbench does it: every `every` steps the model's weights are averaged into a slow copy
(avg = decay * avg + (1 - decay) * weights) and the model continues from that average (weights = avg).

The trainable weights and BatchNorm's moving statistics take part (as airbench's state_dict); frozen weights (the
whitening kernel) do not, so they stay bit-exact. It runs in
cross-replica context between steps (`sync`, from the training loop), as per-device updates (no communication).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from fmnist.training.ema import tf_variable


class Lookahead:
    """Create inside `strategy.scope()`; `checkpointable` goes into checkpoints (a resume continues the average)."""

    def __init__(self, model: keras.Model, every: int, decay: float):
        self.every, self.decay = every, decay
        statistics = [w for x in model.layers if isinstance(x, keras.layers.BatchNormalization)
                      for w in x.non_trainable_weights]
        self._weights = [tf_variable(w) for w in model.trainable_weights + statistics]
        self.averages = [tf.Variable(w.read_value(), trainable=False, name="lookahead") for w in self._weights]
        self.checkpointable = tf.Module(name="lookahead")
        self.checkpointable.averages = self.averages

    def sync(self, strategy: tf.distribute.Strategy) -> None:
        """In cross-replica context: average the weights in, then copy the average back into the model."""
        d = self.decay
        for avg, w in zip(self.averages, self._weights, strict=True):
            strategy.extended.update(avg, lambda a, v: a.assign(a * d + tf.cast(v, a.dtype) * (1 - d)), args=(w,))
            strategy.extended.update(w, lambda v, a: v.assign(tf.cast(a, v.dtype)), args=(avg,))
