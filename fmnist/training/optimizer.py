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


class Triangular(keras.optimizers.schedules.LearningRateSchedule):
    """airbench's schedule: linear from peak*`start` up to the peak at `warmup_steps`, linear down to peak*`end` at
    the last step."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, start: float = 0.2, end: float = 0.07):
        self.peak, self.total, self.warmup = peak, max(total_steps, 1), max(warmup_steps, 1)
        self.start, self.end = start, end

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        up = self.start + (1 - self.start) * tf.minimum(step / self.warmup, 1.0)
        down = 1 + (self.end - 1) * tf.clip_by_value((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
        return self.peak * tf.where(step < self.warmup, up, down)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total, "warmup_steps": self.warmup, "start": self.start,
                "end": self.end}


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
    if config.lr_schedule == "triangular":
        return Triangular(peak, total_steps, warmup or int(0.23 * total_steps))  # airbench's 23%.
    if warmup:
        return keras.optimizers.schedules.CosineDecay(0.0, max(total_steps - warmup, 1), warmup_target=peak,
                                                      warmup_steps=warmup)
    return keras.optimizers.schedules.CosineDecay(peak, total_steps)


def build(config, precision: str, total_steps: int, steps_per_epoch: int,
          lr_scale: tf.Variable) -> keras.optimizers.Optimizer:
    """Adam, AdamW, SGD with Nesterov momentum or Muon (keras.optimizers.Muon: Newton-Schulz orthogonalised momentum
    for convolution kernels and dense matrices, AdamW for the rest); wrapped in a LossScaleOptimizer for float16."""
    lr = Scaled(learning_rate(config, total_steps, steps_per_epoch), lr_scale)
    wd = config.weight_decay or None
    if config.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, weight_decay=wd)
    elif config.optimizer == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    elif config.optimizer == "muon":
        opt = keras.optimizers.Muon(lr, momentum=config.momentum, weight_decay=config.weight_decay,
                                    adam_weight_decay=config.weight_decay)
    else:
        opt = keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=True, weight_decay=wd)
    if precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def gradient_multipliers(scale: float, model: keras.Model) -> list[float]:
    """Per trainable variable: `scale` (config.bn_bias_lr_scale) for BatchNorm biases (beta), 1 elsewhere. Under SGD
    a gradient multiplier is a learning-rate multiplier (decoupled weight decay aside); config_validation refuses it
    with the scale-invariant optimizers (Adam, AdamW, and Muon, whose vectors go to AdamW)."""
    betas = {id(x.beta) for x in model.layers if isinstance(x, keras.layers.BatchNormalization) and x.center}
    return [scale if id(v) in betas else 1.0 for v in model.trainable_variables]
