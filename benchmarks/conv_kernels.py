"""How close a model's convolution kernels run to the machine's peak, each kernel timed alone.

  python -m benchmarks.conv_kernels [--model=seed_cnn] [--batch_size=128] [--precision=auto]

For every Conv2D layer of the model (its real shapes, strides and padding, in the compute dtype), times the three
kernels of a training step one at a time: forward, input gradient (not for a layer that reads the model's input:
training never computes it) and weight gradient, plus the forward and the weight gradient written as one large
matmul each (im2col: patches x kernel, patches^T x output gradient), the usual alternative formulation, checked
against the native kernels' values. Kernels are timed in rounds in rotating order and the median is reported, with
GFLOP/s against a square matmul peak measured in the same process. A profile of a whole step
(benchmarks.op_profile) shows kernels sharing the cores with each other; this shows what each one does alone.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import common
from benchmarks.cell import parse_model
from benchmarks.peak import matmul_peak
from fmnist.models import models
from fmnist.runtime.precision import resolve_precision

_MODEL = flags.DEFINE_string("model", "seed_cnn", "NAME or NAME:WIDTH:DEPTH.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch.")
_PRECISION = flags.DEFINE_string("precision", "auto", "Keras dtype policy (float32, mixed_bfloat16, ...); auto: this "
                                 "host's (bfloat16 where native, else float32, as training resolves it).")
_CALLS = flags.DEFINE_integer("calls", 30, "Kernel calls per timed round.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds.")
_PEAK_SIZE = flags.DEFINE_integer("peak_size", 4096, "Square matmul size for the peak (0 skips it).")


def conv_shapes(model: keras.Model) -> list[dict]:
    """Name, input shape, kernel shape, strides and padding of each Conv2D layer; whether it reads the input."""
    shapes = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            shapes.append({"name": layer.name, "input": tuple(layer.input.shape[1:]),
                           "output": tuple(layer.output.shape[1:]), "kernel": tuple(layer.kernel.shape),
                           "strides": tuple(layer.strides), "padding": layer.padding.upper(),
                           "first": layer.input is model.inputs[0]})
    return shapes


def kernels(shape: dict, batch: int, dtype: str) -> dict[str, Callable[[], tf.Tensor]]:
    """The layer's kernels as compiled functions of fixed random tensors; each returns its whole result."""
    kh, kw, cin, cout = shape["kernel"]
    strides, padding = [1, *shape["strides"], 1], shape["padding"]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, *shape["input"])), dtype)
    w = tf.constant(rng.normal(size=shape["kernel"]), dtype)
    dy = tf.constant(rng.normal(size=(batch, *shape["output"])), dtype)
    found = {
        "forward": tf.function(lambda: tf.nn.conv2d(x, w, strides, padding)),
        "input gradient": tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=x.shape, filter=w, out_backprop=dy, strides=strides, padding=padding)),
        "weight gradient": tf.function(lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=w.shape, out_backprop=dy, strides=strides, padding=padding)),
    }

    patches = tf.function(lambda: im2col(x, shape))
    found["forward (im2col matmul)"] = tf.function(lambda: tf.reshape(
        tf.matmul(tf.reshape(patches(), [-1, kh * kw * cin]), tf.reshape(w, [-1, cout])), dy.shape))
    found["weight gradient (im2col matmul)"] = tf.function(lambda: tf.reshape(
        tf.matmul(tf.reshape(patches(), [-1, kh * kw * cin]), tf.reshape(dy, [-1, cout]), transpose_a=True), w.shape))
    if shape["first"]:
        del found["input gradient"]
    return found


def im2col(x: tf.Tensor, shape: dict) -> tf.Tensor:
    """[batch, out_h, out_w, kh * kw * cin]: each output position's receptive field, as shifted strided slices
    (faster here than tf.image.extract_patches), in the kernel's (kh, kw, cin) order."""
    kh, kw = shape["kernel"][:2]
    (oh, ow), (sh, sw) = shape["output"][:2], shape["strides"]
    if shape["padding"] == "SAME":
        pad_h, pad_w = (max((o - 1) * s + k - i, 0)
                        for o, s, k, i in zip((oh, ow), (sh, sw), (kh, kw), x.shape[1:3], strict=True))
        x = tf.pad(x, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
    return tf.concat([x[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]
                      for i in range(kh) for j in range(kw)], axis=-1)


def relative_error(a: tf.Tensor, b: tf.Tensor) -> float:
    a, b = (np.asarray(tf.cast(t, tf.float32)) for t in (a, b))
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30))


def seconds_per_call(fn: Callable[[], tf.Tensor], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        out = fn()
    out.numpy()
    return (time.perf_counter() - t0) / calls


def main(argv: list[str]) -> None:
    del argv
    name, width, depth = parse_model(_MODEL.value)
    policy = resolve_precision(_PRECISION.value, "CPU")
    model = models.build(name, dtype=policy, width=width, depth=depth)
    dtype = keras.mixed_precision.Policy(policy).compute_dtype
    batch, calls = _BATCH.value, _CALLS.value
    timers, flops, errors, inputs = {}, {}, {}, {}
    for shape in conv_shapes(model):
        inputs[shape["name"]] = "x".join(str(d) for d in shape["input"])
        kh, kw, cin, cout = shape["kernel"]
        work = 2 * batch * int(np.prod(shape["output"][:2])) * kh * kw * cin * cout
        found = kernels(shape, batch, dtype)
        for kernel, fn in found.items():
            fn()  # Traces and warms up.
            timers[(shape["name"], kernel)], flops[(shape["name"], kernel)] = fn, work
        errors[shape["name"]] = max(relative_error(found[k](), found[f"{k} (im2col matmul)"]())
                                    for k in ("forward", "weight gradient"))
    times: dict[tuple, list[float]] = {key: [] for key in timers}
    for r in range(_ROUNDS.value):
        for key in common.rotated(list(timers), r):
            times[key].append(seconds_per_call(timers[key], calls))
    peak = None
    if _PEAK_SIZE.value:
        with contextlib.redirect_stdout(sys.stderr):  # Its progress lines are protocol messages, not this table.
            peak = matmul_peak(_PEAK_SIZE.value, dtype, repeats=5)["flops_per_sec"]["median"]
    peak_text = f"{peak / 1e9:,.1f} GFLOP/s ({dtype} {_PEAK_SIZE.value}^3 matmul)" if peak else "not measured"
    print(f"{_MODEL.value}, batch {batch}, {policy} (compute {dtype}), median of {_ROUNDS.value} rounds of "
          f"{calls} calls; peak {peak_text}\n")
    print("| layer | input | kernel | ms | GFLOP/s | % of peak |\n| --- | --- | --- | --- | --- | --- |")
    native_ms = 0.0
    for (layer, kernel), samples in times.items():
        seconds = statistics.median(samples)
        native_ms += 0 if "im2col" in kernel else 1000 * seconds
        rate = flops[layer, kernel] / seconds
        share = f"{100 * rate / peak:.0f}%" if peak else "-"
        print(f"| {layer} | {inputs[layer]} | {kernel} | {1000 * seconds:.3f} | {rate / 1e9:,.1f} | {share} |")
    print(f"\nNative kernels together: {native_ms:.2f} ms per step. im2col against the native kernels "
          "(max relative difference): " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))


if __name__ == "__main__":
    app.run(main)
