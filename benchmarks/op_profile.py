"""Where a training step's time goes: per-op totals from a TensorFlow profiler trace of fmnist's own loop.

  python -m benchmarks.op_profile [--model=seed_cnn] [--batch_size=128] [--precision=auto] [--steps=100] [--top=15]

Builds the run with `fmnist.training.experiment.build` (configs/default.py plus the flags), warms up, traces `--steps`
training steps with `tf.profiler.experimental`, and reads the trace (XSpace protobuf) directly, so TensorBoard's
profile plugin is not needed. Prints op time per step by op type and by op (summed over the executor's threads, so
with inter-op parallelism it can exceed the wall time), and the wall time per step of the traced steps.
"""

from __future__ import annotations

import collections
import tempfile
import time
from pathlib import Path

from absl import app, flags

from benchmarks.cell import parse_model, train_steps

_MODEL = flags.DEFINE_string("model", "seed_cnn", "NAME or NAME:WIDTH:DEPTH.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Global batch.")
_PRECISION = flags.DEFINE_string("precision", "auto", "config.precision.")
_STEPS = flags.DEFINE_integer("steps", 100, "Traced training steps.")
_TOP = flags.DEFINE_integer("top", 15, "Rows per table.")
# Executor bookkeeping and control flow, not ops that compute (a function call's time includes its ops').
SKIP_PREFIXES = ("Threadpool", "ExecutorState", "Memory", "ExecutorDone", "Eager")
SKIP_TYPES = ("PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If", "StatelessIf")


def op_times(trace_dir: Path) -> dict[str, float]:
    """Seconds per op name ('scope/name:Type') in the trace's TensorFlow compute threads."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(next(trace_dir.rglob("*.xplane.pb")).read_bytes())
    totals: dict[str, float] = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and not name.startswith(SKIP_PREFIXES) and name.rsplit(":", 1)[1] not in SKIP_TYPES:
                    totals[name] += event.duration_ps * 1e-12
    return totals


def _table(title: str, seconds: dict[str, float], steps: int, top: int) -> None:
    total = sum(seconds.values())
    print(f"\n| {title} | ms per step | share |\n| --- | --- | --- |")
    for name, s in sorted(seconds.items(), key=lambda kv: -kv[1])[:top]:
        print(f"| {name[-90:]} | {1000 * s / steps:.3f} | {100 * s / total:.1f}% |")


def main(argv: list[str]) -> None:
    del argv
    import tensorflow as tf

    from configs import default
    from fmnist.training import experiment

    c = default.get_config()
    c.model, c.model_width, c.model_depth = parse_model(_MODEL.value)
    c.batch_size, c.precision, c.num_train_steps = _BATCH.value, _PRECISION.value, 10**6
    with tempfile.TemporaryDirectory(prefix="fmnist-profile-") as tmp:
        exp = experiment.build(c, tmp)
        iterator = exp.train_iterator(0)
        train_steps(exp, iterator, 2 * c.steps_per_loop)  # Warm-up: tracing and compilation.
        trace = Path(tmp) / "trace"
        tf.profiler.experimental.start(str(trace))
        t0 = time.perf_counter()
        train_steps(exp, iterator, _STEPS.value)
        wall = time.perf_counter() - t0
        tf.profiler.experimental.stop()
        seconds = op_times(trace)
    by_type: dict[str, float] = collections.Counter()
    for name, s in seconds.items():
        by_type[name.rsplit(":", 1)[1]] += s
    print(f"{_MODEL.value}, batch {_BATCH.value}, {exp.precision}: {1000 * wall / _STEPS.value:.2f} ms per step wall "
          f"(traced), {1000 * sum(seconds.values()) / _STEPS.value:.2f} ms of op time per step")
    _table("op type", by_type, _STEPS.value, _TOP.value)
    _table("op (name trimmed to its end)", seconds, _STEPS.value, _TOP.value)


if __name__ == "__main__":
    app.run(main)
