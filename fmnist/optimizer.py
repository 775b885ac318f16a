"""The optimizer and its learning-rate schedule (a function of the step), from the config."""

from __future__ import annotations

import math

import keras
import tensorflow as tf


class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle (Smith & Topin): cosine rise from peak/25 over `warmup_steps`, cosine fall to peak/1e4."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak, self.total, self.warmup = peak, total_steps, max(warmup_steps, 1)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        up = tf.minimum(step / self.warmup, 1.0)
        down = tf.clip_by_value((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
        start, end = self.peak / 25.0, self.peak / 1e4
        rising = start + (self.peak - start) * (1 - tf.cos(math.pi * up)) / 2
        falling = end + (self.peak - end) * (1 + tf.cos(math.pi * down)) / 2
        return tf.where(step < self.warmup, rising, falling)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total, "warmup_steps": self.warmup}


class Scaled(keras.optimizers.schedules.LearningRateSchedule):
    """A rate or schedule times a variable factor, which non-finite-loss recovery lowers (and checkpoints keep)."""

    def __init__(self, base, scale: tf.Variable):
        self.base, self.scale = base, scale

    def __call__(self, step):
        base = self.base(step) if callable(self.base) else self.base
        return tf.cast(base, tf.float32) * tf.cast(self.scale, tf.float32)

    def get_config(self):
        return {"base": self.base, "scale": float(self.scale.numpy())}


def learning_rate(config, total_steps: int, steps_per_epoch: int):
    """The peak rate (linearly scaled with the batch only when config.scale_lr_with_batch is set) and schedule."""
    peak = config.learning_rate
    if config.scale_lr_with_batch:
        peak *= config.batch_size / config.scale_lr_with_batch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.lr_schedule == "constant":
        return peak
    if config.lr_schedule == "onecycle":
        return OneCycle(peak, total_steps, warmup or max(total_steps // 4, 1))
    if warmup:
        return keras.optimizers.schedules.CosineDecay(0.0, max(total_steps - warmup, 1), warmup_target=peak,
                                                      warmup_steps=warmup)
    return keras.optimizers.schedules.CosineDecay(peak, total_steps)


def build(config, precision: str, total_steps: int, steps_per_epoch: int,
          lr_scale: tf.Variable) -> keras.optimizers.Optimizer:
    """Adam, AdamW or SGD with Nesterov momentum; wrapped in a dynamic LossScaleOptimizer for float16."""
    lr = Scaled(learning_rate(config, total_steps, steps_per_epoch), lr_scale)
    wd = config.weight_decay or None
    if config.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, weight_decay=wd)
    elif config.optimizer == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    else:
        opt = keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True, weight_decay=wd)
    if precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt
