"""One cell of the benchmark matrix, in its own process (logical CPU devices and multi-worker strategies can only be
set before TensorFlow's runtime starts).

It builds the run with `fmnist.training.experiment.build`, then times fmnist's own compiled loops: training (each loop
call followed by a read of its metric sums, as `fmnist.training.train` does), evaluation on the test split, and the
training input pipeline alone (batches drawn through the same distributed iterator, no model). Warm-up repetitions (the
first one compiles) are discarded. The result is one protocol line (benchmarks.common).

  python -m benchmarks.cell --spec='{"model": "seed_cnn", "batch_size": 128, "precision": "float32"}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass

from benchmarks import common


@dataclass(frozen=True)
class CellSpec:
    """One combination of the matrix, and how long to time it."""

    model: str = "seed_cnn"       # NAME or NAME:WIDTH:DEPTH, e.g. resnet:16:2 (configs/best.py's model).
    batch_size: int = 128          # Global batch.
    precision: str = "float32"     # A config.precision value (auto resolves per device).
    jit_compile: str = "false"     # A config.jit_compile value.
    strategy: str = "default"      # A config.strategy value.
    replicas: int = 1              # mirrored: logical CPU devices; multi_worker: worker processes.
    steps_per_loop: int = 50
    sync_batchnorm: str = "auto"   # A config.sync_batchnorm value.
    steps: int = 200               # Training steps per timed repetition.
    repeats: int = 5               # Timed repetitions.
    warmup: int = 1                # Repetitions run first and discarded (the first one compiles).
    eval_steps: int = 0            # Evaluation batches per repetition (0 = the whole test split).
    data_dir: str = ""

    @property
    def label(self) -> str:
        strategy = self.strategy if self.replicas <= 1 else f"{self.strategy}:{self.replicas}"
        sync = "" if self.sync_batchnorm == "auto" else f" sync_bn={self.sync_batchnorm}"
        return (f"{self.model} b{self.batch_size} {self.precision} jit={self.jit_compile} {strategy} "
                f"spl={self.steps_per_loop}{sync}")

    def config(self):
        """configs/default.py with this cell's settings; enough steps for warm-up and repetitions."""
        from configs import default

        c = default.get_config()
        c.model, c.model_width, c.model_depth = parse_model(self.model)
        c.batch_size, c.precision = self.batch_size, self.precision
        c.jit_compile, c.strategy, c.steps_per_loop = self.jit_compile, self.strategy, self.steps_per_loop
        c.sync_batchnorm = self.sync_batchnorm
        c.num_cpu_devices = self.replicas if self.strategy == "mirrored" else 0
        c.num_train_steps = (self.warmup + self.repeats) * self.steps + 1
        c.data_dir = self.data_dir
        return c


def parse_model(text: str) -> tuple[str, int, int]:
    """NAME[:WIDTH[:DEPTH]] to (name, width, depth); 0 is the model's own default."""
    name, *sizes = text.split(":")
    width, depth = ([int(s) for s in sizes] + [0, 0])[:2]
    return name, width, depth


def loop_sizes(steps: int, steps_per_loop: int) -> list[int]:
    """`steps` split into inner loops of `steps_per_loop` (the last one shorter)."""
    full, rest = divmod(steps, steps_per_loop)
    return [steps_per_loop] * full + ([rest] if rest else [])


def train_steps(exp, iterator, steps: int) -> dict:
    """Runs `steps` training steps through fmnist's compiled loop, as fmnist.training.train does; returns the last
    sums."""
    import tensorflow as tf

    sums = {}
    for n in loop_sizes(steps, exp.config.steps_per_loop):
        exp.loops.train(iterator, tf.constant(n, tf.int32))
        sums = exp.loops.train_sums.read()  # Forces completion, like the outer loop's metric read.
    return sums


def timed(fn, warmup: int, repeats: int, what: str) -> list[float]:
    """Seconds of each of `repeats` calls of fn(), after `warmup` untimed calls."""
    seconds = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        if i >= warmup:
            seconds.append(dt)
        common.progress(f"{what} {'warm-up' if i < warmup else 'repetition'} {i + 1}/{warmup + repeats}: "
                        f"{dt:.2f} s")
    return seconds


def pipeline_drain(exp):
    """A compiled function drawing `n` batches from a distributed iterator, with no model: the pipeline alone."""
    import tensorflow as tf

    strategy = exp.runtime.strategy

    @tf.function
    def drain(iterator, n):
        for _ in tf.range(n):
            strategy.run(lambda images, labels: tf.size(labels), args=next(iterator))

    return drain


def measure(spec: CellSpec) -> dict:
    import tensorflow as tf

    from fmnist.models import flops, models
    from fmnist.training import experiment

    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as workdir:
        t0 = time.perf_counter()
        exp = experiment.build(spec.config(), workdir)
        common.progress(f"built in {time.perf_counter() - t0:.1f} s: {exp.runtime.describe()['strategy']}, "
                        f"{exp.runtime.num_replicas} replicas, {exp.precision}, jit_compile={exp.jit_compile}")
        rt, batch = exp.runtime, spec.batch_size
        iterator = exp.train_iterator(0)
        last: dict = {}

        def train_rep():
            last.update(train_steps(exp, iterator, spec.steps))

        train_s = timed(train_rep, spec.warmup, spec.repeats, "train")

        ds, full_steps = exp.eval_dataset("test")
        eval_steps = min(spec.eval_steps or full_steps, full_steps)
        evaluated: dict = {}

        def eval_rep():
            exp.loops.evaluate(iter(ds), tf.constant(eval_steps, tf.int32))
            evaluated.update(exp.loops.eval_sums.read())

        eval_s = timed(eval_rep, 1, spec.repeats, "eval")

        drain, pipeline_iterator = pipeline_drain(exp), exp.train_iterator(0)
        pipeline_s = timed(lambda: drain(pipeline_iterator, tf.constant(spec.steps)), spec.warmup, spec.repeats,
                           "pipeline")
        counting_model = models.from_config(exp.config)  # float32: the profiler's FLOPs of the trained graph.
        forward = flops.forward_flops_per_example(counting_model)

    train = common.rates(spec.steps * batch, train_s)
    return {
        **dataclasses.asdict(spec), "label": spec.label,
        "resolved_precision": exp.precision, "resolved_jit_compile": exp.jit_compile, "batchnorm": exp.batchnorm,
        **rt.describe(),
        "params": exp.model.count_params(),
        "step_time_ms": common.summarize([1000 * s / spec.steps for s in train_s]),
        "train_examples_per_sec": train, "train_loss": float(last["loss"] / last["count"]),
        "nonfinite_steps": float(last["nonfinite_steps"]),
        "eval_examples_per_sec": common.rates(int(evaluated["count"]), eval_s), "eval_steps": eval_steps,
        "pipeline_examples_per_sec": common.rates(spec.steps * batch, pipeline_s),
        "forward_flops_per_example": forward, "train_flops_per_example": flops.TRAIN_FLOPS_FACTOR * forward,
        "achieved_flops_per_sec": flops.TRAIN_FLOPS_FACTOR * forward * train["median"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="CellSpec fields as JSON.")
    spec = CellSpec(**json.loads(parser.parse_args().spec))
    common.emit("result", **measure(spec))


if __name__ == "__main__":
    common.run_worker(main)
