"""train_and_evaluate: the Python outer loop (logging, evaluation, checkpoints) around the compiled inner loops."""

from __future__ import annotations

import time

import tensorflow as tf
from absl import logging

from fmnist import experiment
from fmnist.metrics import Summaries, format_duration, write_json_atomic


def run_evals(exp: experiment.Experiment, summaries: Summaries, step: int) -> dict:
    """Evaluates on the test split (and the validation split when held out); logs and writes summaries."""
    results = {}
    for name in ("validation", "test"):
        if name not in exp.splits:
            continue
        r = results[name] = exp.evaluate(name)
        prefix = "" if name == "test" else f"{name}/"
        values = {f"{prefix}loss": r["loss"], f"{prefix}accuracy": r["accuracy"]}
        if name == "test":
            values |= {f"per_class_accuracy/{c}": a for c, a in zip(exp.class_names, r["per_class_accuracy"])}
        summaries.scalars("eval", step, values)
        logging.info("%s at step %d: loss %.4f accuracy %.2f%%", name, step, r["loss"], 100 * r["accuracy"])
    return results


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming from its latest checkpoint), evaluates, writes results.json."""
    wall_start = time.time()
    exp = experiment.build(config, workdir)
    rt, plan = exp.runtime, exp.plan
    logging.info("Runtime: %s, precision %s, jit_compile %s", rt.describe(), exp.precision, exp.jit_compile)
    resumed = exp.checkpoints.restore_latest()
    start_step = current = int(exp.step.numpy())

    summaries = Summaries(exp.workdir, enabled=rt.is_chief)
    if rt.is_chief:
        write_json_atomic(exp.workdir / "config.json", config.to_dict())
        summaries.text("train", start_step, "config", f"```\n{config}\n```")
        summaries.text("train", start_step, "runtime", f"```\n{rt.describe()}\n```")
    logging.info("Model %s: %s parameters; %d steps of %d per epoch", config.model,
                 f"{exp.model.count_params():,}", plan.total_steps, plan.steps_per_epoch)

    iterator = exp.train_iterator(start_step)
    train_time, timed_time, timed_steps, first_loop = 0.0, 0.0, 0, True
    train_metrics: dict = {}
    results: dict = {}
    while current < plan.total_steps:
        stop = plan.next_stop(current)
        t0 = time.perf_counter()
        exp.loops.train(iterator, tf.constant(stop - current, tf.int32))
        sums = exp.loops.train_sums.read()
        dt = time.perf_counter() - t0
        train_time += dt
        if not first_loop:  # The first loop includes tracing and compilation.
            timed_time, timed_steps = timed_time + dt, timed_steps + stop - current
        first_loop = False
        step_time = dt / (stop - current)
        train_metrics = {"loss": sums["loss"] / sums["count"], "accuracy": sums["correct"] / sums["count"],
                         "learning_rate": float(tf.convert_to_tensor(exp.optimizer.learning_rate)),
                         "examples_per_sec": config.batch_size / step_time, "step_time_ms": 1000 * step_time,
                         "nonfinite_steps": sums["nonfinite_steps"]}
        current = stop
        summaries.scalars("train", current, train_metrics)
        logging.info("step %d/%d (epoch %.2f) loss %.4f acc %.2f%% %s ex/s ETA %s", current, plan.total_steps,
                     current / plan.steps_per_epoch, train_metrics["loss"], 100 * train_metrics["accuracy"],
                     f"{train_metrics['examples_per_sec']:,.0f}",
                     format_duration((plan.total_steps - current) * step_time))
        if current % plan.eval_every == 0 or current == plan.total_steps:
            results = run_evals(exp, summaries, current)
        if current % plan.checkpoint_every == 0 or current == plan.total_steps:
            exp.checkpoints.save(current)
    if not results:  # Nothing left to train (a finished run re-run): evaluate the restored weights.
        results = run_evals(exp, summaries, current)
    summaries.flush()
    exp.checkpoints.close()

    test = results["test"]
    out = {
        "eval_accuracy": test["accuracy"], "eval_loss": test["loss"], "eval_count": test["count"],
        "per_class_accuracy": dict(zip(exp.class_names, test["per_class_accuracy"])),
        "validation_accuracy": results.get("validation", {}).get("accuracy"),
        "train_loss": train_metrics.get("loss"), "train_accuracy": train_metrics.get("accuracy"),
        "train_examples_per_sec": timed_steps * config.batch_size / timed_time if timed_time else None,
        "train_time_s": train_time, "wall_time_s": time.time() - wall_start,
        "steps": current, "start_step": start_step, "epochs": current / plan.steps_per_epoch,
        "resumed_from": resumed, "model": config.model, "params": exp.model.count_params(),
        "precision": exp.precision, "jit_compile": exp.jit_compile, **rt.describe(),
        "weights_fingerprint": exp.weights_fingerprint(), "config": config.to_dict(),
    }
    logging.info("Worker %d final weights fingerprint %s", rt.worker_index, out["weights_fingerprint"])
    if rt.is_chief:
        write_json_atomic(exp.workdir / "results.json", out)
        logging.info("Test accuracy %.2f%% (%d examples). TensorBoard: tensorboard --logdir %s",
                     100 * out["eval_accuracy"], out["eval_count"], summaries.logdir)
    return out
