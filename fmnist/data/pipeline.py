"""tf.data input pipelines, built per replica through `distribute_datasets_from_function`.

The splits are held in memory (TFDS decoded once per run: the cache), and each pipeline gathers batches by index.
An epoch's order is a stateless permutation of (seed, epoch), so:
  * the data order is reproducible and a resumed run continues at exactly the same position (`start_step`);
  * global batch k holds the same examples whatever the number of workers and replicas: worker i takes its
    contiguous slice of every global batch, and its replicas split that slice in order.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from fmnist.data import augment
from fmnist.data.dataset import Split

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST train pixel statistics (of x / 255).
# Fixed parallelism instead of AUTOTUNE: batches are one gather each (cheap), and tf.data's autotuning thread sleeps
# up to 60 s between rounds, which an iterator's destructor waits out: measured, a 51 s stall at the end of a
# 15-epoch run (the train iterator is destroyed when training ends).
PARALLEL_CALLS, PREFETCH = 2, 4


def _finish(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Repeated: the loops read an exact number of batches, and an infinite dataset spares MultiWorkerMirrored-
    Strategy the all-reduce per step with which a finite one checks that every worker still has data
    (`get_next_as_optional`)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.repeat().prefetch(PREFETCH).with_options(options)


def normalize(images: tf.Tensor) -> tf.Tensor:
    """uint8 [..., 28, 28, 1] to standardised float32."""
    return (tf.cast(images, tf.float32) / 255.0 - MEAN) / STD


def hold_out(train: Split, size: int, seed: int) -> tuple[Split, Split | None]:
    """Splits a seeded hold-out of `size` examples off the train split: (train, validation)."""
    if size <= 0:
        return train, None
    order = np.random.default_rng(seed).permutation(len(train))
    val, rest = np.sort(order[:size]), np.sort(order[size:])
    return (Split(train.images[rest], train.labels[rest]), Split(train.images[val], train.labels[val]))


def _pipeline_batches(indices: tf.Tensor, global_batch: int, ctx: tf.distribute.InputContext) -> tf.Tensor:
    """Global-batch-major indices [steps * global_batch] to this pipeline's per-replica batches [k, b]."""
    pipelines, b = ctx.num_input_pipelines, ctx.get_per_replica_batch_size(global_batch)
    per_step = tf.reshape(indices, [-1, pipelines, global_batch // pipelines])[:, ctx.input_pipeline_id]
    return tf.reshape(per_step, [-1, b])


def train_dataset(split: Split, ctx: tf.distribute.InputContext, *, global_batch: int, seed: int,
                  steps_per_epoch: int, start_step: int, total_steps: int,
                  augment_options: dict | None = None) -> tf.data.Dataset:
    """Yields (images float32 [b,28,28,1], labels int32 [b]) for steps start_step..total_steps-1.

    `augment_options` (augment.options_from_config) augments each batch with a seed of (seed, global step),
    drawn for the whole global batch and sliced per replica: the same whatever the resume point or topology.
    """
    images, labels = tf.constant(split.images), tf.constant(split.labels)
    n = len(split)
    replicas_per_pipeline = global_batch // ctx.num_input_pipelines // ctx.get_per_replica_batch_size(global_batch)

    def epoch_batches(epoch):
        noise = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        order = tf.argsort(noise, stable=True)[: steps_per_epoch * global_batch]
        return tf.data.Dataset.from_tensor_slices(_pipeline_batches(order, global_batch, ctx))

    b = ctx.get_per_replica_batch_size(global_batch)

    def gather(k, idx):  # k counts this pipeline's per-replica batches from start_step on.
        x = tf.gather(images, idx)
        if augment_options is not None:
            step = start_step + k // replicas_per_pipeline
            first_row = (ctx.input_pipeline_id * replicas_per_pipeline + k % replicas_per_pipeline) * b
            mirror = None
            if augment_options.get("flip_alternate"):
                mirror = augment.alternate_mirror(seed, idx, step // steps_per_epoch)
            x = augment.augment_batch(x, augment.batch_seed(seed, step), offset=first_row, global_batch=global_batch,
                                      mirror=mirror, **augment_options)
        return normalize(x), tf.gather(labels, idx)

    first_epoch, offset = divmod(start_step, steps_per_epoch)
    last_epoch = math.ceil(total_steps / steps_per_epoch)
    ds = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(epoch_batches)
    ds = ds.skip(offset * replicas_per_pipeline).take((total_steps - start_step) * replicas_per_pipeline)
    return _finish(ds.enumerate().map(gather, num_parallel_calls=PARALLEL_CALLS))


def eval_steps(num_examples: int, global_batch: int) -> int:
    return math.ceil(num_examples / global_batch)


def eval_dataset(split: Split, ctx: tf.distribute.InputContext, *, global_batch: int) -> tf.data.Dataset:
    """Yields (images, labels, mask): every example exactly once, padding (mask 0) fills the last global batch."""
    images, labels = tf.constant(split.images), tf.constant(split.labels)
    n = len(split)
    padded = np.full(eval_steps(n, global_batch) * global_batch, -1, np.int32)
    padded[:n] = np.arange(n)

    def gather(idx):
        safe = tf.maximum(idx, 0)
        return normalize(tf.gather(images, safe)), tf.gather(labels, safe), tf.cast(idx >= 0, tf.float32)

    ds = tf.data.Dataset.from_tensor_slices(_pipeline_batches(tf.constant(padded), global_batch, ctx))
    return _finish(ds.map(gather, num_parallel_calls=PARALLEL_CALLS))
