"""The seed CNN's training step under runtime and layout variants, side by side: which of them moves the kernels.

  python -m benchmarks.step_variants [--variants=default,channels_first,...] [--rounds=3] [--batch_size=128]

Each variant trains the seed CNN (conv32-pool-conv64-pool-dense128-dense10, Adam, mixed precision as `auto` picks
it) in a bare compiled loop (`--steps` steps per call, one in-memory batch: the pipeline is not measured) in its own
process, since thread counts and allocators are fixed when TensorFlow starts. Variants run in rounds, the starting one
rotating, and each reports its best of `--repeats` calls per round; the table gives the median over rounds and the
ratio to `default` (issue 27: what was tried to bring the step closer to the matmul peak).

  default            Keras Conv2D, channels_last (NHWC), TensorFlow's thread pools, glibc malloc.
  channels_first     NCHW convolutions and pooling (transposes before the first and after the last).
  interop_1          TF_NUM_INTEROP_THREADS=1: one op at a time, each on both cores.
  intraop_1          TF_NUM_INTRAOP_THREADS=1: two ops at a time, one core each.
  backward_in_order  the second convolution's input gradient, then its weight gradient (a control dependency),
                     instead of both at once on the two cores.
  jemalloc, tcmalloc LD_PRELOAD of Debian's libjemalloc2 / libtcmalloc-minimal4 (skipped where not installed).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

from benchmarks import common

VARIANTS = ("default", "channels_first", "interop_1", "intraop_1", "backward_in_order", "jemalloc", "tcmalloc")
LIBS = {"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"}
ENV = {"interop_1": {"TF_NUM_INTEROP_THREADS": "1"}, "intraop_1": {"TF_NUM_INTRAOP_THREADS": "1"}}

_VARIANTS = flags.DEFINE_list("variants", list(VARIANTS), f"Some of {', '.join(VARIANTS)}.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds over all variants.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch.")
_STEPS = flags.DEFINE_integer("steps", 50, "Training steps per compiled call.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per round (the best is kept).")
_TIMEOUT = flags.DEFINE_float("timeout", 600, "Seconds a worker may take for one answer before it is killed.")
_WORKER = flags.DEFINE_string("worker", "", "Internal: run as this variant's worker.")


def _model(variant: str, dtype: str):
    import keras
    import tensorflow as tf
    from keras import layers

    fmt = "channels_first" if variant == "channels_first" else "channels_last"

    class InOrderConv(layers.Conv2D):
        """Conv2D whose backward pass computes the input gradient before the weight gradient."""

        def convolution_op(self, inputs, kernel):
            pad = self.padding.upper()

            @tf.custom_gradient
            def conv(x, k):
                def grad(dy):
                    args = {"strides": [1, 1, 1, 1], "padding": pad, "out_backprop": dy}
                    dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=k, **args)
                    with tf.control_dependencies([dx]):
                        dk = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(k), **args)
                    return dx, dk
                return tf.nn.conv2d(x, k, 1, pad), grad
            return conv(inputs, tf.convert_to_tensor(kernel))  # A tensor: the gradient flows to the variable.

    second = InOrderConv if variant == "backward_in_order" else layers.Conv2D
    policy = keras.DTypePolicy(dtype)
    inputs = keras.Input((28, 28, 1))
    x = layers.Permute((3, 1, 2))(inputs) if fmt == "channels_first" else inputs
    x = layers.Conv2D(32, 3, activation="relu", data_format=fmt, dtype=policy)(x)
    x = layers.MaxPooling2D(data_format=fmt, dtype=policy)(x)
    x = second(64, 3, activation="relu", data_format=fmt, dtype=policy)(x)
    x = layers.MaxPooling2D(data_format=fmt, dtype=policy)(x)
    x = layers.Permute((2, 3, 1))(x) if fmt == "channels_first" else x  # Back to NHWC: the same function.
    x = layers.Dense(128, activation="relu", dtype=policy)(layers.Flatten(dtype=policy)(x))
    return keras.Model(inputs, layers.Dense(10, dtype="float32")(x))


def worker(variant: str, batch: int, steps: int, repeats: int) -> None:
    """Runs in the variant's process (the benchmarks' worker protocol, benchmarks.common): after a warm-up, answers
    each `run` command with the round's best examples/s."""
    import keras
    import tensorflow as tf

    from fmnist.runtime.precision import resolve_precision

    dtype = resolve_precision("auto", "CPU")
    model = _model(variant, dtype)
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    x = tf.random.uniform([batch, 28, 28, 1])
    y = tf.random.uniform([batch], 0, 10, tf.int32)

    @tf.function
    def loop():
        for _ in tf.range(steps):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x, training=True)))
            opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    loop().numpy()
    common.emit("ready", dtype=dtype)
    for _ in common.commands():
        best = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            loop().numpy()
            best = max(best, batch * steps / (time.perf_counter() - t0))
        common.emit("result", rate=best)


def _start(variant: str, logs: Path) -> common.Worker | None:
    """The variant's worker (common.worker_environment: fmnist's oneDNN choice, quiet), its own settings last."""
    env = dict(ENV.get(variant, {}))
    if variant in LIBS:
        if not os.path.exists(LIBS[variant]):
            print(f"{variant}: {LIBS[variant]} not installed, skipped", file=sys.stderr)
            return None
        env["LD_PRELOAD"] = LIBS[variant]
    args = [f"--worker={variant}", f"--batch_size={_BATCH.value}", f"--steps={_STEPS.value}",
            f"--repeats={_REPEATS.value}"]
    return common.Worker("benchmarks.step_variants", args, logs / f"{variant}.log", env=env)


def main(argv: list[str]) -> None:
    del argv
    if _WORKER.value:
        return common.run_worker(lambda: worker(_WORKER.value, _BATCH.value, _STEPS.value, _REPEATS.value))
    unknown = sorted(set(_VARIANTS.value) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    logs = Path(tempfile.mkdtemp(prefix="fmnist-step-variants-"))
    workers = {v: w for v in _VARIANTS.value if (w := _start(v, logs)) is not None}
    rates: dict[str, list[float]] = {v: [] for v in workers}
    try:
        dtypes = {v: w.receive(_TIMEOUT.value)["dtype"] for v, w in workers.items()}  # Warm-ups run in parallel.
        for r in range(_ROUNDS.value):
            for v in common.rotated(list(workers), r):
                rates[v].append(workers[v].request(_TIMEOUT.value, op="run")["rate"])
    except common.WorkerError as e:
        raise SystemExit(f"step_variants: {e}") from None
    finally:
        for w in workers.values():
            w.close()
    base = statistics.median(rates["default"]) if "default" in rates else None
    print(f"seed CNN, batch {_BATCH.value}, {_STEPS.value} steps per call, best of {_REPEATS.value} calls per round, "
          f"{_ROUNDS.value} rounds (worker logs: {logs})\n")
    print("| variant | dtype | examples/s (median of rounds) | rounds | vs default |\n| --- | --- | --- | --- | --- |")
    for v in workers:
        med = statistics.median(rates[v])
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"| {v} | {dtypes[v]} | {med:,.0f} | {', '.join(f'{x:,.0f}' for x in rates[v])} | {ratio} |")


if __name__ == "__main__":
    app.run(main)
