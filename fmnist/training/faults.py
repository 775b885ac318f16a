"""Testing aid: injected NaNs (config.fault_nan_*) that exercise the non-finite recovery of fmnist.training.train.

A fault either makes one step's loss NaN (`state="loss"`), or puts a NaN into one variable of the training state that
no loss or weight shows at once: an optimizer slot, a BatchNorm moving variance, an EMA or a lookahead average. Those
are poisoned at the end of the inner loop that ran the fault's step, after its last update, so only the loop's state
check can catch them.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from fmnist.errors import ConfigError
from fmnist.training.ema import WeightAverage, tf_variable
from fmnist.training.lookahead import Lookahead


@dataclass
class Faults:
    """While armed: the loss of global step `step`, or (`state` other than "loss") one variable of that state at the
    end of the loop that ran it, is NaN on replica `replica` (-1: on every one). `first_local_replica`: the global
    index of this worker's first replica (its workers x replicas before it)."""

    step: int = -1
    replica: int = -1
    state: str = "loss"
    first_local_replica: int = 0


def target(state: str, model: keras.Model, optimizer: keras.optimizers.Optimizer, ema: WeightAverage | None,
           lookahead: Lookahead | None) -> tf.Variable | None:
    """The variable a state fault poisons (None for a loss fault): the optimizer's first slot, the first BatchNorm's
    moving variance, the first EMA or lookahead average. ConfigError when the run has no such state."""
    if state == "loss":
        return None
    if state == "optimizer":
        candidates = [tf_variable(v) for v in optimizer.variables
                      if tf.as_dtype(tf_variable(v).dtype).is_floating and len(v.shape) > 0]
    elif state == "batchnorm":
        candidates = [tf_variable(x.moving_variance) for x in model.layers
                      if isinstance(x, keras.layers.BatchNormalization)]
    else:
        owner = ema if state == "ema" else lookahead
        candidates = owner.averages if owner is not None else []
    if not candidates:
        raise ConfigError(f"config.fault_nan_in={state} poisons state this run does not have (model={model.name}); "
                          "pick another fault_nan_in, or a config with that state")
    return candidates[0]


def poison(strategy: tf.distribute.Strategy, variable: tf.Variable, faults: Faults, when: tf.Tensor) -> None:
    """In cross-replica context: NaN into `variable`'s copy on replica `faults.replica` (every local copy when -1),
    where `when` holds; written into the copies directly, as a faulty update would, without any synchronisation."""
    for i, copy in enumerate(strategy.experimental_local_results(variable)):
        if faults.replica < 0 or faults.first_local_replica + i == faults.replica:
            copy.assign(tf.where(when, tf.fill(tf.shape(copy), tf.constant(float("nan"), copy.dtype)), copy))
