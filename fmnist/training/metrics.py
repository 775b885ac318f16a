"""Metric sums kept per replica and summed on read, TensorBoard writers, and the console progress line."""

from __future__ import annotations

import tensorflow as tf

from fmnist.workdir import storage


class ReplicaSums:
    """Named float32 accumulators: added to in replica context, summed over all replicas (and workers) on read."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.vars = {
            name: tf.Variable(tf.zeros(shape), trainable=False, name=name,
                              synchronization=tf.VariableSynchronization.ON_READ,
                              aggregation=tf.VariableAggregation.SUM)
            for name, shape in shapes.items()
        }

    def add(self, **values: tf.Tensor) -> None:
        """In replica context."""
        for name, value in values.items():
            self.vars[name].assign_add(tf.cast(value, tf.float32))

    def reset(self) -> None:
        """In replica context (assigning sum-aggregated values across replicas is not allowed)."""
        for v in self.vars.values():
            v.assign(tf.zeros_like(v))

    def read(self) -> dict:
        """In cross-replica context (eager): numpy values summed over replicas."""
        return {name: v.read_value().numpy() for name, v in self.vars.items()}


class Summaries:
    """TensorBoard writers under workdir/tensorboard/{train,eval}; no-ops on non-chief workers."""

    def __init__(self, workdir: str, enabled: bool):
        root = storage.join(workdir, "tensorboard")
        self.logdir = root
        if enabled:
            self.writers = {k: tf.summary.create_file_writer(storage.join(root, k)) for k in ("train", "eval")}
        else:
            self.writers = {k: tf.summary.create_noop_writer() for k in ("train", "eval")}

    def scalars(self, kind: str, step: int, values: dict[str, float]) -> None:
        with self.writers[kind].as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)

    def image(self, kind: str, step: int, name: str, image) -> None:
        with self.writers[kind].as_default(step=step):
            tf.summary.image(name, image, max_outputs=1)

    def hparams(self, values: dict) -> None:
        """The config and resolved runtime (bool, int, float or str values) for TensorBoard's HParams dashboard."""
        from tensorboard.plugins.hparams import api as hp

        with self.writers["train"].as_default():
            hp.hparams(values)

    def text(self, kind: str, step: int, name: str, markdown: str) -> None:
        with self.writers[kind].as_default(step=step):
            tf.summary.text(name, markdown)

    def flush(self) -> None:
        for w in self.writers.values():
            w.flush()


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
