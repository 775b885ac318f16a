"""train_and_evaluate: the Python outer loop (logging, evaluation, checkpoints) around the compiled inner loops."""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf
from absl import logging

from fmnist import checkpoint, config_validation, dataset, input_pipeline, models, optimizer, precision, strategy
from fmnist import train_loop
from fmnist.errors import UserError
from fmnist.metrics import Summaries, format_duration, write_json_atomic


@dataclass
class Plan:
    """How many steps, and when to log, evaluate and checkpoint."""

    steps_per_epoch: int
    total_steps: int
    steps_per_loop: int
    eval_every: int
    checkpoint_every: int

    def next_stop(self, step: int) -> int:
        """The step the next inner loop runs to: never past an eval or checkpoint boundary or the end."""
        stops = [step + self.steps_per_loop, self.total_steps]
        stops += [(step // every + 1) * every for every in (self.eval_every, self.checkpoint_every)]
        return min(stops)


def make_plan(config, train_examples: int) -> Plan:
    steps_per_epoch = train_examples // config.batch_size
    total = config.num_train_steps if config.num_train_steps > 0 else config.num_epochs * steps_per_epoch
    return Plan(steps_per_epoch, total, config.steps_per_loop,
                config.eval_every_steps or steps_per_epoch, config.checkpoint_every_steps or steps_per_epoch)


def prepare_workdir(workdir: str) -> Path:
    path = Path(workdir).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"workdir {path} is not writable ({e.strerror}); pass a writable --workdir") from None
    return path


def flat_config(config) -> dict:
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in config.items()}


def evaluate(loops: train_loop.Loops, dist_ds, num_steps: int) -> dict:
    loops.evaluate(iter(dist_ds), tf.constant(num_steps))
    sums = loops.eval_sums.read()
    count = sums["count"]
    confusion = sums["confusion"]
    return {"loss": float(sums["loss"] / count), "accuracy": float(sums["correct"] / count), "count": int(count),
            "per_class_accuracy": (confusion.diagonal() / confusion.sum(axis=1).clip(min=1)).tolist(),
            "confusion": confusion.astype(int).tolist()}


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming from its latest checkpoint), evaluates, writes results.json."""
    wall_start = time.time()
    config_validation.validate(config)
    root = prepare_workdir(workdir)
    runtime = strategy.create(config)
    config_validation.check_replicas(config.batch_size, runtime.num_replicas)
    resolved_precision = precision.resolve_precision(config.precision, runtime.device_type)
    jit = precision.resolve_jit_compile(config.jit_compile, runtime.device_type)
    logging.info("Runtime: %s, precision %s, jit_compile %s", runtime.describe(), resolved_precision, jit)

    splits, class_names = dataset.load(config.data_dir or None)
    train_split, val_split = input_pipeline.hold_out(splits["train"], config.validation_size, config.seed)
    plan = make_plan(config, len(train_split))
    keras.utils.set_random_seed(config.seed)

    strat = runtime.strategy
    with strat.scope():
        model = models.build(config.model, dtype=resolved_precision, width=config.model_width,
                             depth=config.model_depth, dropout=config.dropout)
        opt = optimizer.build(config, resolved_precision, plan.total_steps, plan.steps_per_epoch)
        opt.build(model.trainable_variables)  # Before restoring, so the slots are restored too.
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        loops = train_loop.build(strat, model, opt, step, global_batch=config.batch_size, jit_compile=jit,
                                 label_smoothing=config.label_smoothing)
    ckpts = checkpoint.Checkpoints(root, is_chief=runtime.is_chief, worker_index=runtime.worker_index,
                                   keep=config.keep_checkpoints, model=model, optimizer=opt, step=step)
    resumed = ckpts.restore_latest()
    start_step = int(step.numpy())

    summaries = Summaries(root, enabled=runtime.is_chief)
    if runtime.is_chief:
        write_json_atomic(root / "config.json", config.to_dict())
        summaries.text("train", start_step, "config", f"```\n{config}\n```")
        summaries.text("train", start_step, "runtime", f"```\n{runtime.describe()}\n```")
        params = model.count_params()
        logging.info("Model %s: %s parameters", config.model, f"{params:,}")

    train_ds = strat.distribute_datasets_from_function(lambda ctx: input_pipeline.train_dataset(
        train_split, ctx, global_batch=config.batch_size, seed=config.seed, steps_per_epoch=plan.steps_per_epoch,
        start_step=start_step, total_steps=plan.total_steps))
    eval_sets = {"test": splits["test"]} | ({"validation": val_split} if val_split is not None else {})
    eval_ds = {name: (strat.distribute_datasets_from_function(
        lambda ctx, s=s: input_pipeline.eval_dataset(s, ctx, global_batch=config.batch_size)),
        input_pipeline.eval_steps(len(s), config.batch_size)) for name, s in eval_sets.items()}

    iterator = iter(train_ds)
    train_time, timed_time, timed_steps, first_loop = 0.0, 0.0, 0, True
    train_metrics: dict = {}
    results: dict = {}
    current = start_step
    while current < plan.total_steps:
        stop = plan.next_stop(current)
        t0 = time.perf_counter()
        loops.train(iterator, tf.constant(stop - current, tf.int32))
        sums = loops.train_sums.read()
        dt = time.perf_counter() - t0
        train_time += dt
        if not first_loop:  # The first loop includes tracing and compilation.
            timed_time, timed_steps = timed_time + dt, timed_steps + stop - current
        first_loop = False
        step_time = dt / (stop - current)
        rate = config.batch_size / step_time
        train_metrics = {"loss": sums["loss"] / sums["count"], "accuracy": sums["correct"] / sums["count"],
                         "learning_rate": float(opt.learning_rate), "examples_per_sec": rate,
                         "step_time_ms": 1000 * step_time, "nonfinite_steps": sums["nonfinite_steps"]}
        current = stop
        summaries.scalars("train", current, train_metrics)
        eta = (plan.total_steps - current) * step_time
        logging.info("step %d/%d (epoch %.2f) loss %.4f acc %.2f%% %s ex/s ETA %s", current, plan.total_steps,
                     current / plan.steps_per_epoch, train_metrics["loss"], 100 * train_metrics["accuracy"],
                     f"{rate:,.0f}", format_duration(eta))
        if current % plan.eval_every == 0 or current == plan.total_steps:
            results = run_evals(loops, eval_ds, summaries, current, class_names)
        if current % plan.checkpoint_every == 0 or current == plan.total_steps:
            ckpts.save(current)
    if not results:  # Nothing left to train (a finished run re-run): evaluate the restored weights.
        results = run_evals(loops, eval_ds, summaries, current, class_names)
    summaries.flush()
    ckpts.close()

    test = results["test"]
    out = {
        "eval_accuracy": test["accuracy"], "eval_loss": test["loss"], "eval_count": test["count"],
        "per_class_accuracy": dict(zip(class_names, test["per_class_accuracy"])),
        "validation_accuracy": results.get("validation", {}).get("accuracy"),
        "train_loss": train_metrics.get("loss"), "train_accuracy": train_metrics.get("accuracy"),
        "train_examples_per_sec": timed_steps * config.batch_size / timed_time if timed_time else None,
        "train_time_s": train_time, "wall_time_s": time.time() - wall_start,
        "steps": current, "start_step": start_step, "epochs": current / plan.steps_per_epoch,
        "resumed_from": resumed, "model": config.model, "params": model.count_params(),
        "precision": resolved_precision, "jit_compile": jit, **runtime.describe(),
        "config": config.to_dict(),
    }
    if runtime.is_chief:
        write_json_atomic(root / "results.json", out)
        logging.info("Test accuracy %.2f%% (%d examples). TensorBoard: tensorboard --logdir %s",
                     100 * out["eval_accuracy"], out["eval_count"], summaries.logdir)
    return out


def run_evals(loops, eval_ds: dict, summaries: Summaries, step: int, class_names: list[str]) -> dict:
    results = {}
    for name, (dist_ds, num_steps) in eval_ds.items():
        r = evaluate(loops, dist_ds, num_steps)
        results[name] = r
        values = {"loss": r["loss"], "accuracy": r["accuracy"]}
        if name == "test":
            values |= {f"per_class_accuracy/{c}": a for c, a in zip(class_names, r["per_class_accuracy"])}
        summaries.scalars("eval", step, values if name == "test" else {f"{name}/{k}": v for k, v in values.items()})
        logging.info("%s at step %d: loss %.4f accuracy %.2f%%", name, step, r["loss"], 100 * r["accuracy"])
    return results
