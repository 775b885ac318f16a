"""fmnist's training step against a bare tf.function loop of the same model and data: the framework's overhead.

  python -m benchmarks.loop_overhead [--batch_size=128] [--steps_per_loop=50] [--precision=mixed_bfloat16]

Prints examples/s (median of 5 x 200 steps after a warm-up) for: fmnist (its compiled loop, replica-summed
metrics and all), bare (forward, backward and Adam in one tf.function over the same pipeline), and synthetic
(bare, on one in-memory batch repeated: the pipeline's share).
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf
from absl import app, flags

from configs import default
from fmnist.data import dataset
from fmnist.data import pipeline as input_pipeline
from fmnist.models import models
from fmnist.training import experiment

_BATCH = flags.DEFINE_integer("batch_size", 128, "Global batch.")
_SPL = flags.DEFINE_integer("steps_per_loop", 50, "Steps per compiled call.")
_PRECISION = flags.DEFINE_string("precision", "mixed_bfloat16", "Keras dtype policy.")
STEPS, REPEATS = 200, 5


def _median_rate(run_steps) -> float:
    run_steps(_SPL.value)  # Warm-up: tracing and compilation.
    rates = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        run_steps(STEPS)
        rates.append(STEPS * _BATCH.value / (time.perf_counter() - t0))
    return sorted(rates)[REPEATS // 2]


def fmnist_rate() -> float:
    c = default.get_config()
    c.batch_size, c.steps_per_loop, c.precision, c.num_train_steps = _BATCH.value, _SPL.value, _PRECISION.value, 10**6
    exp = experiment.build(c, "/tmp/fmnist-loop-overhead")
    it = exp.train_iterator(0)

    def run(n):
        for _ in range(n // _SPL.value):
            exp.loops.train(it, tf.constant(_SPL.value))
        exp.loops.train_sums.read()

    return _median_rate(run)


def bare_rate(synthetic: bool) -> float:
    split = dataset.load()[0]["train"]
    model = models.build("seed_cnn", dtype=_PRECISION.value)
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    ds = input_pipeline.train_dataset(split, tf.distribute.InputContext(), global_batch=_BATCH.value, seed=0,
                                      steps_per_epoch=len(split) // _BATCH.value, start_step=0, total_steps=10**6)
    if synthetic:
        ds = tf.data.Dataset.from_tensors(next(iter(ds))).repeat()
    it = iter(ds)

    @tf.function
    def loop(n):
        for _ in tf.range(n):
            images, labels = next(it)
            with tf.GradientTape() as tape:
                logits = tf.cast(model(images, training=True), tf.float32)
                per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=_BATCH.value)
            opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    def run(n):
        for _ in range(n // _SPL.value):
            loop(tf.constant(_SPL.value))
        opt.iterations.numpy()

    return _median_rate(run)


def main(argv: list[str]) -> None:
    del argv
    for name, rate in (("fmnist", fmnist_rate), ("bare", lambda: bare_rate(False)),
                       ("synthetic", lambda: bare_rate(True))):
        print(f"{name:10s} {rate():>10,.0f} ex/s", flush=True)


if __name__ == "__main__":
    app.run(main)
