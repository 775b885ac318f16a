"""What each of fmnist's speed changes buys, measured side by side in one process on the same in-memory batch.

  python -m benchmarks.ablations [--batch_size=128] [--precision=mixed_bfloat16] [--steps=100] [--rounds=5]

Variants (each a bare compiled training loop: forward, backward, optimizer update, `--steps` steps per call):
  seed_cnn               fmnist's seed_cnn (ReLU after pooling) with fmnist's fused Adam
  seed_cnn/seed-order    the seed's own Keras definition (ReLU before pooling), fused Adam
  seed_cnn/keras-adam    fmnist's seed_cnn with Keras 3's own Adam update
  resnet                 resnet width 16, depth 1 with fmnist's fused BatchNormalization and SGD
  resnet/keras-bn        the same with Keras 3's BatchNormalization
Rounds alternate the variants (rotating the order) so that drift hits all alike; prints the median examples/s of the
rounds and each variant's ratio to its baseline.
"""

from __future__ import annotations

import time
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks.contenders import seeds_keras_model
from fmnist import models
from fmnist import optimizer as fused

_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch.")
_PRECISION = flags.DEFINE_string("precision", "mixed_bfloat16", "Keras dtype policy.")
_STEPS = flags.DEFINE_integer("steps", 100, "Steps per timed call (resnet: a third of it).")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds.")
BASELINES = {"seed_cnn/seed-order": "seed_cnn", "seed_cnn/keras-adam": "seed_cnn", "resnet/keras-bn": "resnet"}


def _model(variant: str) -> keras.Model:
    if variant == "seed_cnn/seed-order":
        return seeds_keras_model(_PRECISION.value)
    if variant.startswith("resnet"):
        bn = keras.layers.BatchNormalization if variant == "resnet/keras-bn" else models.BatchNormalization
        with mock.patch.object(models, "BatchNormalization", bn):
            return models.build("resnet", dtype=_PRECISION.value, width=16, depth=1)
    return models.build("seed_cnn", dtype=_PRECISION.value)


def _optimizer(variant: str) -> keras.optimizers.Optimizer:
    if variant.startswith("resnet"):
        return fused.FusedSGD(0.01, momentum=0.9, nesterov=True)
    return keras.optimizers.Adam(1e-3) if variant == "seed_cnn/keras-adam" else fused.FusedAdam(1e-3)


def make_runner(variant: str):
    """A function running n training steps of `variant` (traced and warmed up here)."""
    model, opt = _model(variant), _optimizer(variant)
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

    steps = _STEPS.value // 3 if variant.startswith("resnet") else _STEPS.value

    def run() -> float:
        t0 = time.perf_counter()
        loop(tf.constant(steps))
        opt.iterations.numpy()
        return steps * _BATCH.value / (time.perf_counter() - t0)

    run()
    return run


def main(argv: list[str]) -> None:
    del argv
    variants = ["seed_cnn", "seed_cnn/seed-order", "seed_cnn/keras-adam", "resnet", "resnet/keras-bn"]
    runners = {v: make_runner(v) for v in variants}
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(_ROUNDS.value):
        for v in variants[r % len(variants):] + variants[:r % len(variants)]:
            rates[v].append(runners[v]())
    medians = {v: float(np.median(rates[v])) for v in variants}
    print(f"batch {_BATCH.value}, {_PRECISION.value}, median of {_ROUNDS.value} rounds")
    print("| variant | ex/s (median) | min | max | baseline / variant |\n| --- | --- | --- | --- | --- |")
    for v in variants:
        ratio = f"{medians[BASELINES[v]] / medians[v]:.2f}x" if v in BASELINES else "baseline"
        print(f"| {v} | {medians[v]:,.0f} | {min(rates[v]):,.0f} | {max(rates[v]):,.0f} | {ratio} |")


if __name__ == "__main__":
    app.run(main)
