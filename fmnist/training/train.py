"""train_and_evaluate: the Python outer loop (logging, evaluation, checkpoints, recovery) around the compiled loops."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from absl import logging

from fmnist.data import augment
from fmnist.errors import TrainingError, UserError
from fmnist.models import flops
from fmnist.runtime import host
from fmnist.training import experiment, images
from fmnist.training.metrics import Summaries, format_duration
from fmnist.workdir import storage
from fmnist.workdir.lease import WorkdirLock
from fmnist.workdir.preemption import Preemption

# Keys that fix the checkpointed state's layout (model, optimizer, loss scale) or the meaning of its step (the data
# order and the hold-out): resuming with other values would be wrong. Precision is compared as resolved.
STATE_KEYS = ("model", "model_width", "model_depth", "optimizer", "resolved_precision", "batch_size", "seed",
              "validation_size", "validation_seed", "whitening_patch", "batchnorm_scale")


@dataclass
class Progress:
    step: int
    trained_before: float = 0.0      # Training seconds of the run's earlier processes, from the checkpoint resumed.
    train_time: float = 0.0          # This process's training loops, the compiling first one and rolled-back included.
    timed_time: float = 0.0          # Loops after the first, for throughput.
    timed_steps: int = 0
    loops_run: int = 0
    nan_retries: int = 0
    rollbacks: list = field(default_factory=list)  # One record per rollback: results.json's nan_rollbacks.
    time_to_target: float | None = None   # Run training seconds (evaluation excluded) to reach config.target_accuracy.
    target_step: int | None = None
    eval_time: float = 0.0
    faults_injected: int = 0
    train_metrics: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)

    @property
    def run_train_time(self) -> float:
        """Training seconds of the whole run: the earlier processes' up to their last checkpoint, and this one's."""
        return self.trained_before + self.train_time


def flat_config(config) -> dict:
    """Top-level config values as HParams accepts them."""
    return {k: v for k, v in config.items() if isinstance(v, (bool, int, float, str))}


def check_compatible(exp: experiment.Experiment) -> None:
    """Refuses to resume a workdir written with a different model or optimizer state layout."""
    path = storage.join(exp.workdir, "config.json")
    if not storage.exists(path):
        return
    try:
        before = json.loads(storage.read_text(path))
    except ValueError:
        return
    now = exp.config.to_dict() | {"resolved_precision": exp.precision}
    differ = [key for key in STATE_KEYS if key in before and before[key] != now[key]]
    # The decay may change between runs, but whether averages exist is part of the state: resuming without them
    # would silently drop them from the next checkpoint, resuming with them has none to restore.
    for key in ("ema_decay", "lookahead_every"):
        if bool(before.get(key, 0)) != bool(exp.config[key]):
            differ.append(key)
    if differ:
        key = differ[0]
        if key == "resolved_precision":
            raise UserError(f"workdir {exp.workdir} holds a run trained in {before[key]} (precision="
                            f"{before.get('precision')!r}), this run resolves to {exp.precision}; resume with "
                            f"--config.precision={before[key]}, or use a new --workdir")
        raise UserError(f"workdir {exp.workdir} holds a run with {key}={before.get(key, 0.0)!r}, this config has "
                        f"{key}={now[key]!r}; use the same config to resume, or a new --workdir")


def evaluated_splits(config) -> tuple[str, ...]:
    """The splits evaluated during training: validation when held out, test unless config.evaluate_test is off."""
    return ("validation",) + (("test",) if config.evaluate_test else ())


def target_split(config) -> str:
    """The split whose accuracy config.target_accuracy is compared with."""
    return "test" if config.evaluate_test else "validation"


def run_evals(exp: experiment.Experiment, summaries: Summaries, step: int) -> dict:
    """Evaluates on the test split (unless config.evaluate_test is off) and the validation split when held out;
    logs and writes summaries. With config.ema_decay, the averaged weights are evaluated (and pictured)."""
    with exp.evaluation_weights():
        return _run_evals(exp, summaries, step)


def _run_evals(exp: experiment.Experiment, summaries: Summaries, step: int) -> dict:
    results = {}
    for name in evaluated_splits(exp.config):
        if name not in exp.splits:
            continue
        r = results[name] = exp.evaluate(name)
        prefix = "" if name == "test" else f"{name}/"
        values = {f"{prefix}loss": r["loss"], f"{prefix}accuracy": r["accuracy"]}
        if r["accuracy_tta"] is not None:
            values[f"{prefix}accuracy_tta_flip"] = r["accuracy_tta"]
        if r["accuracy_tta_multiview"] is not None:
            values[f"{prefix}accuracy_tta_multiview"] = r["accuracy_tta_multiview"]
        if name == "test":
            per_class = zip(exp.class_names, r["per_class_accuracy"], strict=True)
            values |= {f"per_class_accuracy/{c}": a for c, a in per_class}
            if exp.runtime.is_chief:
                _eval_images(exp, summaries, step, r["confusion"])
        summaries.scalars("eval", step, values)
        logging.info("%s at step %d: loss %.4f accuracy %.2f%%", name, step, r["loss"], 100 * r["accuracy"])
    return results


def _eval_images(exp: experiment.Experiment, summaries: Summaries, step: int, confusion) -> None:
    """The confusion matrix and a grid of misclassified test images, for TensorBoard's images tab."""
    summaries.image("eval", step, "confusion_matrix", images.confusion_matrix_image(confusion, exp.class_names))
    test = exp.splits["test"]
    summaries.image("eval", step, "misclassified",
                    images.misclassified_grid(exp.model, test.images, test.labels, exp.class_names))


def _start_images(exp: experiment.Experiment, summaries: Summaries, step: int) -> None:
    """The model summary, and a grid of training examples as the model sees them (after augmentation)."""
    c, train = exp.config, exp.splits["train"]
    summaries.text("train", step, "model", images.model_summary_text(exp.model))
    x, y = train.images[:32], train.labels[:32]
    if augment.augment_config_active(c):
        options = augment.options_from_config(c)
        mirror = augment.alternate_mirror(c.seed, tf.range(len(x)), step // exp.plan.steps_per_epoch) \
            if options["flip_alternate"] else None
        x = augment.augment_batch(tf.constant(x), augment.batch_seed(c.seed, step), offset=0, global_batch=len(x),
                                  mirror=mirror, **options).numpy()
    summaries.image("train", step, "training_examples",
                    images.image_grid(x, [exp.class_names[i] for i in y], columns=8))


class Profiler:
    """Records a TensorFlow profiler trace over config.profile_steps ("START,END"), at inner-loop granularity."""

    def __init__(self, spec: str, logdir):
        self.range = tuple(int(s) for s in spec.replace(" ", "").split(",")) if spec else None
        self.logdir, self.active = str(logdir), False

    def update(self, step: int) -> None:
        if self.range is None:
            return
        start, end = self.range
        if not self.active and start <= step < end:
            tf.profiler.experimental.start(self.logdir)
            self.active = True
        elif self.active and step >= end:
            self.stop()

    def stop(self) -> None:
        if self.active:
            tf.profiler.experimental.stop()
            self.active = False
            logging.info("Profiler trace written under %s (TensorBoard's profile tab)", self.logdir)


def _nonfinite(exp: experiment.Experiment, sums: dict, steps: int) -> str | None:
    """What went non-finite in a loop: "loss" (float16: every step skipped; the loss scaler handles fewer), "state"
    (a weight, optimizer slot, BatchNorm statistic or EMA/lookahead average at the loop's end, checked on every
    replica), or None for a healthy loop, the only kind whose state may be checkpointed."""
    if exp.precision == "mixed_float16":
        loss_failed = sums["nonfinite_steps"] >= steps
    else:
        loss_failed = not np.isfinite(sums["loss"])
    if loss_failed:
        return "loss"
    return "state" if sums["nonfinite_state"] > 0 else None


def _recover(exp: experiment.Experiment, p: Progress, stop: int, cause: str, seconds: float):
    """Rolls back to the last checkpoint, with the learning-rate scale of the failed attempt times nan_lr_factor (the
    checkpoint's own scale would repeat the first retry: data, masks and augmentation are deterministic); returns a
    fresh iterator from there. The failed attempt's training seconds stay counted."""
    c = exp.config
    failed_scale = float(exp.lr_scale.numpy())
    p.nan_retries += 1
    if p.nan_retries > c.nan_max_retries:
        raise TrainingError(f"non-finite {cause} in steps {p.step + 1}-{stop} after {c.nan_max_retries} rollbacks "
                            f"with a lower learning rate (the last at x{failed_scale:g} of the configured rate); "
                            "lower --config.learning_rate or check the data")
    exp.checkpoints.roll_back()
    scale = failed_scale * c.nan_lr_factor
    exp.lr_scale.assign(scale)
    exp.train_seconds.assign(p.run_train_time)  # The restore set it back to the checkpoint's.
    to_step = int(exp.step.numpy())
    p.rollbacks.append({"retry": p.nan_retries, "steps": [p.step + 1, stop], "cause": cause,
                        "rolled_back_to": to_step, "lr_scale": scale, "seconds": seconds})
    logging.warning("Non-finite %s in steps %d-%d: rolled back to step %d, learning rate x%g of the configured rate "
                    "(retry %d of %d)", cause, p.step + 1, stop, to_step, scale, p.nan_retries, c.nan_max_retries)
    p.step = to_step
    return exp.train_iterator(p.step)


def _train_one_loop(exp: experiment.Experiment, iterator, p: Progress, stop: int) -> dict:
    c = exp.config
    inject = p.step < c.fault_nan_at_step + 1 <= stop and p.faults_injected < c.fault_nan_repeats
    if inject:
        p.faults_injected += 1
        exp.loops.fault_armed.assign(True)
    t0 = time.perf_counter()
    exp.loops.train(iterator, tf.constant(stop - p.step, tf.int32))
    sums = exp.loops.train_sums.read()
    dt = time.perf_counter() - t0
    if inject:
        exp.loops.fault_armed.assign(False)
    p.train_time += dt
    exp.train_seconds.assign(p.run_train_time)  # Checkpointed with the state it trained.
    if p.loops_run:  # The first loop includes tracing and compilation.
        p.timed_time, p.timed_steps = p.timed_time + dt, p.timed_steps + stop - p.step
    p.loops_run += 1
    sums["seconds"] = dt
    return sums


def run_training(exp: experiment.Experiment, summaries: Summaries, preemption: Preemption, p: Progress) -> None:
    iterator = exp.train_iterator(p.step)
    profiler = Profiler(exp.config.profile_steps if exp.runtime.is_chief else "",
                        storage.join(summaries.logdir, "train"))
    try:
        _loop(exp, summaries, preemption, p, iterator, profiler)
    finally:
        profiler.stop()


def _loop(exp, summaries: Summaries, preemption: Preemption, p: Progress, iterator, profiler: Profiler) -> None:
    c, plan = exp.config, exp.plan
    while p.step < plan.total_steps:
        profiler.update(p.step)
        # Raises LeaseLost (writing nothing) once another run holds the workdir; saves and raises Interrupted on
        # SIGTERM/SIGINT or a preemption notice.
        preemption.check(p.step)
        stop = plan.next_stop(p.step)
        sums = _train_one_loop(exp, iterator, p, stop)
        cause = _nonfinite(exp, sums, stop - p.step)
        if cause is not None:
            iterator = _recover(exp, p, stop, cause, float(sums["seconds"]))
            continue
        step_time = sums["seconds"] / (stop - p.step)
        metrics = {"loss": sums["loss"] / sums["count"], "accuracy": sums["correct"] / sums["count"],
                   "learning_rate": tf.convert_to_tensor(exp.optimizer.learning_rate),
                   "examples_per_sec": c.batch_size / step_time, "step_time_ms": 1000 * step_time,
                   "nonfinite_steps": sums["nonfinite_steps"]}
        p.train_metrics = {k: float(v) for k, v in metrics.items()}  # Plain floats: they go into results.json.
        p.step = stop
        summaries.scalars("train", p.step, p.train_metrics)
        logging.info("step %d/%d (epoch %.2f) loss %.4f acc %.2f%% %s ex/s ETA %s", p.step, plan.total_steps,
                     p.step / plan.steps_per_epoch, p.train_metrics["loss"], 100 * p.train_metrics["accuracy"],
                     f"{p.train_metrics['examples_per_sec']:,.0f}",
                     format_duration((plan.total_steps - p.step) * step_time))
        if p.step % plan.eval_every == 0 or p.step == plan.total_steps:
            t0 = time.perf_counter()
            p.results = run_evals(exp, summaries, p.step)
            p.eval_time += time.perf_counter() - t0
            if exp.runtime.is_chief:
                record_evaluation(exp, p)
            if c.target_accuracy and p.results[target_split(c)]["accuracy"] >= c.target_accuracy:
                p.time_to_target, p.target_step = p.run_train_time, p.step
                logging.info("Reached target accuracy %.2f%% at step %d after %.1f s of training",
                             100 * c.target_accuracy, p.step, p.time_to_target)
                exp.checkpoints.save(p.step)
                return
        if p.step % plan.checkpoint_every == 0 or p.step == plan.total_steps:
            exp.checkpoints.save(p.step)  # Only ever a healthy state.


def record_evaluation(exp: experiment.Experiment, p: Progress) -> None:
    """One line per evaluation in WORKDIR/evals.jsonl (what launch.sweep's pruning reads while the run goes on),
    and `validation_accuracy=X` in the log, the form Katib's StdOut metrics collector parses."""
    accuracy = {name: p.results[name]["accuracy"] if name in p.results else None for name in ("validation", "test")}
    storage.append_json_line(storage.join(exp.workdir, "evals.jsonl"), {
        "step": p.step, "epoch": p.step / exp.plan.steps_per_epoch, "train_time_s": p.run_train_time,
        "validation_accuracy": accuracy["validation"], "test_accuracy": accuracy["test"]})
    if accuracy["validation"] is not None:
        logging.info("validation_accuracy=%.6f", accuracy["validation"])


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming from its latest checkpoint), evaluates, writes results.json."""
    wall_start = time.time()
    exp = experiment.build(config, workdir)
    rt = exp.runtime
    check_compatible(exp)
    lock = WorkdirLock(exp.workdir)
    if rt.is_chief:
        lock.acquire()
    preemption = Preemption(rt, exp.checkpoints, lease=lock)
    summaries = None
    try:
        logging.info("Runtime: %s, precision %s, jit_compile %s", rt.describe(), exp.precision, exp.jit_compile)
        resumed = exp.checkpoints.restore_latest()
        preemption.start()
        p = Progress(step=int(exp.step.numpy()), trained_before=float(exp.train_seconds.numpy()))
        start_step = p.step
        if resumed is None:
            exp.checkpoints.save(0)  # A state to roll back to if the very first steps go non-finite.
        summaries = Summaries(exp.workdir, enabled=rt.is_chief)
        if rt.is_chief:
            storage.write_json_atomic(storage.join(exp.workdir, "config.json"),
                                      config.to_dict() | {"resolved_precision": exp.precision})
            summaries.text("train", start_step, "config", f"```\n{config}\n```")
            summaries.text("train", start_step, "runtime", f"```\n{rt.describe()}\n```")
            _start_images(exp, summaries, start_step)
            resolved = {"resolved_precision": exp.precision, "resolved_jit_compile": exp.jit_compile}
            summaries.hparams(flat_config(config) | resolved | {f"runtime_{k}": str(v) if isinstance(v, list) else v
                                                                for k, v in rt.describe().items()})
        logging.info("Model %s: %s parameters; %d steps of %d per epoch", config.model,
                     f"{exp.model.count_params():,}", exp.plan.total_steps, exp.plan.steps_per_epoch)
        forward_flops = flops.forward_flops_or_none(exp.model)  # Before training: a failure here costs nothing.
        run_training(exp, summaries, preemption, p)
        if not p.results:  # Nothing left to train (a finished run re-run): evaluate the restored weights.
            p.results = run_evals(exp, summaries, p.step)
        preemption.check_lease(p.step)  # The last loop boundary: results.json only from the lease's holder.
        out = _results(exp, p, start_step, resumed, time.time() - wall_start, forward_flops)
        if exp.ema is not None and config.evaluate_test:  # The plain weights' figure beside the averaged one.
            out["eval_accuracy_without_ema"] = exp.evaluate("test")["accuracy"]
        logging.info("Worker %d final weights fingerprint %s", rt.worker_index, out["weights_fingerprint"])
        if rt.is_chief:
            storage.write_json_atomic(storage.join(exp.workdir, "results.json"), out)
            what = (f"Test accuracy {100 * out['eval_accuracy']:.2f}% ({out['eval_count']} examples)"
                    if config.evaluate_test else
                    f"Validation accuracy {100 * out['validation_accuracy']:.2f}% (test split not evaluated)")
            logging.info("%s. TensorBoard: tensorboard --logdir %s", what, summaries.logdir)
        return out
    finally:
        preemption.close()
        if summaries is not None and lock.taken_by is None:  # A run that lost its workdir writes nothing more.
            summaries.flush()
        exp.checkpoints.close()
        lock.release()


def evaluate_only(config, workdir: str) -> dict:
    """Evaluates the workdir's latest checkpoint on the test (and validation) split; writes eval_results.json."""
    exp = experiment.build(config, workdir)
    check_compatible(exp)
    try:
        if exp.checkpoints.restore_latest() is None:
            raise UserError(f"workdir {exp.workdir} has no checkpoint to evaluate; train first (same command "
                            "without --mode=eval)")
        step = int(exp.step.numpy())
        with exp.evaluation_weights():
            results = {name: {k: v for k, v in exp.evaluate(name).items() if k != "confusion"} | {"step": step}
                       for name in ("test", "validation") if name in exp.splits}
    finally:
        exp.checkpoints.close()
    test = results["test"]
    logging.info("Test accuracy at step %d: %.2f%% (%d examples), loss %.4f", step, 100 * test["accuracy"],
                 test["count"], test["loss"])
    if exp.runtime.is_chief:
        storage.write_json_atomic(storage.join(exp.workdir, "eval_results.json"), results)
    return results


def _test_results(exp: experiment.Experiment, test: dict | None) -> dict:
    """results.json's test-split figures; all None when config.evaluate_test is off."""
    if test is None:
        return dict.fromkeys(("eval_accuracy", "eval_loss", "eval_count", "eval_accuracy_tta_flip",
                              "eval_accuracy_tta_multiview", "per_class_accuracy"))
    return {"eval_accuracy": test["accuracy"], "eval_loss": test["loss"], "eval_count": test["count"],
            "eval_accuracy_tta_flip": test["accuracy_tta"],
            "eval_accuracy_tta_multiview": test["accuracy_tta_multiview"],
            "per_class_accuracy": dict(zip(exp.class_names, test["per_class_accuracy"], strict=True))}


def _results(exp: experiment.Experiment, p: Progress, start_step: int, resumed: str | None, wall: float,
             forward_flops: int | None) -> dict:
    c, test = exp.config, p.results.get("test")
    # Training compute of the whole run (all its steps, resumed or not): 3 x forward FLOPs x examples seen.
    train_tflop = flops.TRAIN_FLOPS_FACTOR * forward_flops * p.step * c.batch_size / 1e12 if forward_flops else None
    return {
        **_test_results(exp, test),
        "validation_accuracy": p.results.get("validation", {}).get("accuracy"),
        "train_loss": p.train_metrics.get("loss"), "train_accuracy": p.train_metrics.get("accuracy"),
        "train_examples_per_sec": p.timed_steps * c.batch_size / p.timed_time if p.timed_time else None,
        "train_time_s": p.run_train_time, "train_time_this_process_s": p.train_time, "wall_time_s": wall,
        "steps": p.step, "start_step": start_step, "epochs": p.step / exp.plan.steps_per_epoch,
        "resumed_from": resumed, "nan_retries": p.nan_retries, "nan_rollbacks": p.rollbacks,
        "lr_scale": float(exp.lr_scale.numpy()), "eval_time_s": p.eval_time,
        "target_accuracy": c.target_accuracy or None, "time_to_target_s": p.time_to_target,
        "target_step": p.target_step, "model": c.model,
        "params": exp.model.count_params(), "forward_flops_per_example": forward_flops,
        "train_tflop": train_tflop, "precision": exp.precision, "jit_compile": exp.jit_compile,
        "batchnorm": exp.batchnorm, **host.describe(),
        **exp.runtime.describe(), "weights_fingerprint": exp.weights_fingerprint(), "config": c.to_dict(),
    }
