"""An exponential moving average of the model's weights (config.ema_decay), used for evaluation and export.

All of `model.weights` are averaged: the trainable ones and BatchNorm's moving statistics, so that the averaged model
is self-consistent. The decay warms up as min(decay, (1 + t) / (10 + t)), t counting the optimizer's updates (this
one included), so early averages are not dominated by the random initialisation. The update runs in replica
context after each optimizer step, as the optimizer's own updates do (`maybe_merge_call`, then `extended.update`:
each device averages its own copy, no communication), so it works under every strategy the training loop runs on.
Where checkpoints keep the averages, and how an export reads them back, is fmnist.workdir.checkpoint's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import tensorflow as tf

from fmnist.workdir.checkpoint import ema_holder


def tf_variable(v):
    """The tf.Variable behind a Keras variable (tf.distribute's APIs take tf.Variables); others unchanged."""
    return v.value if isinstance(v, keras.Variable) else v


class WeightAverage:
    """Averages of `model.weights` (create inside `strategy.scope()`); `checkpointable` goes into checkpoints."""

    def __init__(self, model: keras.Model, decay: float, iterations: tf.Variable):
        self.decay, self._model, self._iterations = decay, model, iterations
        self.averages = [tf.Variable(tf_variable(w).read_value(), trainable=False, name=f"ema_{w.name}")
                         for w in model.weights]
        self.checkpointable = ema_holder(self.averages)

    def update(self) -> None:
        """In replica context, after the optimizer's update."""
        t = tf.cast(self._iterations, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + t) / (10.0 + t))

        def average(strategy, pairs):
            for avg, w in pairs:
                strategy.extended.update(avg, lambda a, v: a.assign(a * decay + tf.cast(v, a.dtype) * (1 - decay)),
                                         args=(w,), group=False)

        pairs = list(zip(self.averages, [tf_variable(w) for w in self._model.weights], strict=True))
        tf.__internal__.distribute.interim.maybe_merge_call(average, tf.distribute.get_strategy(), pairs)

    def values(self) -> list:
        return [a.numpy() for a in self.averages]

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own weights again after it."""
        own = self._model.get_weights()
        self._model.set_weights(self.values())
        try:
            yield
        finally:
            self._model.set_weights(own)
