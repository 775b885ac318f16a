"""Builds everything a run needs from a config: runtime, data, model, optimizer, compiled loops, checkpoints.

`train.train_and_evaluate` drives it; benchmarks, evaluation-only runs and export reuse it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from fmnist.config import validation as config_validation
from fmnist.data import augment, dataset
from fmnist.data import pipeline as input_pipeline
from fmnist.errors import ConfigError, UserError
from fmnist.models import initializers, layers, models, whitening
from fmnist.runtime import precision, strategy
from fmnist.runtime.precision import normalize_jit
from fmnist.training import ema, faults, lookahead, optimizer, train_loop
from fmnist.workdir import checkpoint, storage


@dataclass
class Plan:
    """How many steps, and when to evaluate and checkpoint."""

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


def prepare_workdir(workdir: str) -> str:
    """The workdir, created if needed and checked writable: a local path made absolute, or a URL that
    `tf.io.gfile` writes (gs://BUCKET/PATH, ...)."""
    path = storage.normalize(workdir)
    probe = storage.join(path, f".fmnist-write-test-{os.getpid()}")
    try:
        tf.io.gfile.makedirs(path)
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("")
        tf.io.gfile.remove(probe)
    except (OSError, tf.errors.OpError) as e:
        raise UserError(f"workdir {path} is not writable ({storage.error_reason(e)}); pass a writable --workdir") \
            from None
    return path


@dataclass
class Experiment:
    config: object
    workdir: str  # A local path or a URL (see fmnist.workdir.storage).
    runtime: strategy.Runtime
    precision: str
    jit_compile: bool
    plan: Plan
    splits: dict[str, dataset.Split]        # train (minus validation), test, and validation when held out
    class_names: list[str]
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    step: tf.Variable
    lr_scale: tf.Variable
    train_seconds: tf.Variable              # Training seconds of the whole run so far (all its processes).
    loops: train_loop.Loops
    checkpoints: checkpoint.Checkpoints
    ema: ema.WeightAverage | None = None    # config.ema_decay > 0: evaluation uses these averaged weights.
    batchnorm: str = "single replica"       # Or "synchronized", or "per-replica, averaged every loop".
    lookahead: lookahead.Lookahead | None = None  # config.lookahead_every > 0.

    @property
    def global_batch(self) -> int:
        return self.config.batch_size

    def train_iterator(self, start_step: int):
        """A distributed iterator over the training batches from `start_step` to the end of the plan."""
        c, split = self.config, self.splits["train"]
        ds = self.runtime.strategy.distribute_datasets_from_function(lambda ctx: input_pipeline.train_dataset(
            split, ctx, global_batch=c.batch_size, seed=c.seed, steps_per_epoch=self.plan.steps_per_epoch,
            start_step=start_step, total_steps=self.plan.total_steps,
            augment_options=augment.options_from_config(c) if augment.augment_config_active(c) else None))
        return iter(ds)

    def eval_dataset(self, name: str):
        """(distributed dataset, steps) covering split `name` exactly once."""
        split = self.splits[name]
        ds = self.runtime.strategy.distribute_datasets_from_function(
            lambda ctx: input_pipeline.eval_dataset(split, ctx, global_batch=self.global_batch))
        return ds, input_pipeline.eval_steps(len(split), self.global_batch)

    def evaluation_weights(self):
        """A context in which the model holds the weights evaluation and export use (the EMA when enabled)."""
        return self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext()

    def evaluate(self, name: str) -> dict:
        """Loss, accuracy, per-class accuracy and confusion matrix on split `name`."""
        ds, steps = self.eval_dataset(name)
        self.loops.evaluate(iter(ds), tf.constant(steps))
        sums = self.loops.eval_sums.read()
        count, confusion = sums["count"], sums["confusion"]
        return {"loss": float(sums["loss"] / count), "accuracy": float(sums["correct"] / count),
                "accuracy_tta": float(sums["correct_tta"] / count) if self.config.tta_flip else None,
                "accuracy_tta_multiview": float(sums["correct_multiview"] / count) if self.config.tta_multiview
                else None,
                "count": int(count), "confusion": confusion.astype(int).tolist(),
                "per_class_accuracy": (confusion.diagonal() / confusion.sum(axis=1).clip(min=1)).tolist()}

    def weights_fingerprint(self) -> str:
        """SHA-256 of all model weights: equal on every worker of a correct multi-worker run."""
        digest = hashlib.sha256()
        for w in self.model.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
        return digest.hexdigest()[:16]


def hold_out_seed(config) -> int:
    """The seed of the validation hold-out: config.validation_seed, or config.seed when that is -1 (as before the
    key existed, so older workdirs keep their hold-out)."""
    return config.seed if config.validation_seed < 0 else config.validation_seed


def build(config, workdir: str) -> Experiment:
    """Validates the config, then builds the run; restores nothing (see `Experiment.checkpoints`)."""
    config_validation.validate(config)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    runtime = strategy.create(config)
    config_validation.check_replicas(config.batch_size, runtime.num_replicas)
    root = prepare_workdir(workdir)  # Only once the config is known to work: bad input writes nothing.
    resolved_precision = precision.resolve_precision(config.precision, runtime.device_type)
    jit = precision.resolve_jit_compile(config.jit_compile, runtime.device_type)

    data, class_names = dataset.load(config.data_dir or None)
    train_split, val_split = input_pipeline.hold_out(data["train"], config.validation_size, hold_out_seed(config))
    splits = {"train": train_split, "test": data["test"]} | ({"validation": val_split} if val_split else {})
    plan = make_plan(config, len(train_split))
    keras.utils.set_random_seed(config.seed)

    sync_bn = synchronized_batchnorm(runtime, jit, normalize_jit(config.sync_batchnorm))
    with runtime.strategy.scope():
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        model = models.from_config(config, dtype=resolved_precision)
        _initialize(model, config, train_split)
        layers.synchronize_batchnorm(model, sync_bn)
        layers.bind_step(model, step, config.seed)
        lr_scale = tf.Variable(1.0, trainable=False, name="lr_scale")
        train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
        opt = optimizer.build(config, resolved_precision, plan.total_steps, plan.steps_per_epoch, lr_scale)
        opt.build(model.trainable_variables)  # Before any restore, so the optimizer slots are restored too.
        average = ema.WeightAverage(model, config.ema_decay, opt.iterations) if config.ema_decay else None
        slow = lookahead.Lookahead(model, config.lookahead_every, config.lookahead_decay) \
            if config.lookahead_every else None
        multipliers = optimizer.gradient_multipliers(config.bn_bias_lr_scale, model) \
            if config.bn_bias_lr_scale != 1 else None
        loops = train_loop.build(runtime.strategy, model, opt, step, global_batch=config.batch_size,
                                 jit_compile=jit, label_smoothing=config.label_smoothing,
                                 tta_flip=config.tta_flip, ema=average,
                                 faults=faults.Faults(config.fault_nan_at_step, config.fault_nan_replica,
                                                      config.fault_nan_in, first_local_replica(runtime)),
                                 average_replica_state=not sync_bn, gradient_multipliers=multipliers,
                                 lookahead=slow, tta_multiview=config.tta_multiview)
    extra = {"ema": average.checkpointable} if average else {}
    extra |= {"lookahead": slow.checkpointable} if slow else {}
    ckpts = checkpoint.Checkpoints(root, is_chief=runtime.is_chief, worker_index=runtime.worker_index,
                                   keep=config.keep_checkpoints, model=model, optimizer=opt, step=step,
                                   lr_scale=lr_scale, train_seconds=train_seconds, **extra)
    batchnorm = ("single replica" if runtime.num_replicas == 1 else
                 "synchronized" if sync_bn else "per-replica, averaged every loop")
    return Experiment(config, root, runtime, resolved_precision, jit, plan, splits, class_names, model, opt, step,
                      lr_scale, train_seconds, loops, ckpts, average, batchnorm, slow)


def first_local_replica(runtime: strategy.Runtime) -> int:
    """The global replica index of this worker's first replica (workers hold equal numbers of replicas)."""
    return runtime.worker_index * (runtime.num_replicas // runtime.num_workers)


def _initialize(model: keras.Model, config, train_split: dataset.Split) -> None:
    """Data- and option-dependent initial weights, before the optimizer and any restore (a resume overwrites them
    with the checkpoint's): the whitening kernel from seeded training images, Dirac init of the convolutions."""
    if whitening.layer(model) is not None:
        images = whitening.sample(train_split.images, config.seed)
        whitening.set_kernel(model, input_pipeline.normalize(images).numpy(), config.whitening_eps)
    if config.dirac_init:
        initializers.apply_dirac(model)


def synchronized_batchnorm(runtime: strategy.Runtime, jit_compile: bool, setting: str = "auto") -> bool:
    """Whether BatchNorm uses the global batch's statistics (config.sync_batchnorm). `auto`: on several replicas,
    except where the forward pass is XLA-compiled on CPU devices, which cannot compile the all-reduce (a
    `merge_call` there); XLA on GPUs and TPUs compiles it as a collective. Otherwise each replica normalises its own
    batch, and the moving statistics are averaged over replicas at the end of every inner loop."""
    possible = not (jit_compile and runtime.device_type == "CPU")
    if setting == "true" and runtime.num_replicas > 1 and not possible:
        raise ConfigError("config.sync_batchnorm=true cannot compile with XLA on CPU devices; use "
                          "--config.sync_batchnorm=auto or --config.jit_compile=false")
    return runtime.num_replicas > 1 and possible and setting != "false"
