"""What fmnist's fused BatchNormalization buys, measured side by side in one process on the same in-memory batch.

  python -m benchmarks.ablations [--batch_size=128] [--precision=mixed_bfloat16] [--steps=30] [--rounds=5]

Variants (each a bare compiled training loop: forward, backward, SGD update, `--steps` steps per call), for
`--widths` resnet widths (depth 1):
  resnet:W           fmnist's resnet, whose BatchNormalization runs TensorFlow's fused kernel (fmnist.models.layers)
  resnet:W/keras-bn  the same model with Keras 3's own BatchNormalization
Rounds alternate the variants (rotating the order) so that drift hits all alike; prints the median examples/s of the
rounds and the speed-up of the fused layer.
"""

from __future__ import annotations

import time
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import common
from fmnist.models import models

_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch.")
_PRECISION = flags.DEFINE_string("precision", "mixed_bfloat16", "Keras dtype policy.")
_STEPS = flags.DEFINE_integer("steps", 30, "Steps per timed call.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds.")
_WIDTHS = flags.DEFINE_list("widths", ["16", "32"], "resnet widths.")


def make_runner(width: int, keras_bn: bool):
    """A function running `--steps` training steps and returning examples/s (traced and warmed up here)."""
    bn = keras.layers.BatchNormalization if keras_bn else models.BatchNormalization
    with mock.patch.object(models, "BatchNormalization", bn):
        model = models.build("resnet", dtype=_PRECISION.value, width=width, depth=1)
    opt = keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True)
    opt.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(_BATCH.value, 28, 28, 1)).astype("float32"))
    labels = tf.constant(rng.integers(0, 10, _BATCH.value).astype("int32"))

    @tf.function
    def loop(n):
        for _ in tf.range(n):
            with tf.GradientTape() as tape:
                logits = tf.cast(model(images, training=True), tf.float32)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    def run() -> float:
        t0 = time.perf_counter()
        loop(tf.constant(_STEPS.value))
        opt.iterations.numpy()
        return _STEPS.value * _BATCH.value / (time.perf_counter() - t0)

    run()
    return run


def main(argv: list[str]) -> None:
    del argv
    variants = [(f"resnet:{w}" + ("/keras-bn" if keras_bn else ""), int(w), keras_bn)
                for w in _WIDTHS.value for keras_bn in (False, True)]
    runners = {name: make_runner(w, keras_bn) for name, w, keras_bn in variants}
    names = list(runners)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(_ROUNDS.value):
        for name in common.rotated(names, r):
            rates[name].append(runners[name]())
    medians = {name: float(np.median(rates[name])) for name in names}
    print(f"batch {_BATCH.value}, {_PRECISION.value}, median of {_ROUNDS.value} rounds")
    print("| variant | ex/s (median) | min | max | fused / Keras |\n| --- | --- | --- | --- | --- |")
    for name in names:
        base = name.removesuffix("/keras-bn")
        ratio = f"{medians[base] / medians[name]:.2f}x" if name != base else ""
        print(f"| {name} | {medians[name]:,.0f} | {min(rates[name]):,.0f} | {max(rates[name]):,.0f} | {ratio} |")


if __name__ == "__main__":
    app.run(main)
