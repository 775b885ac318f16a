"""Checks a config before anything runs: each problem is one ConfigError line naming the key and the fix. Imports
no TensorFlow (the allowed values are fmnist.config.choices')."""

from __future__ import annotations

import re

from fmnist.config import choices
from fmnist.config.choices import JIT_VALUES, PRECISIONS, normalize_jit
from fmnist.errors import ConfigError

TRAIN_EXAMPLES = 60000
OPTIMIZERS = ("adam", "adamw", "sgd", "muon")
LR_SCHEDULES = ("constant", "cosine", "onecycle", "triangular")
ACTIVATIONS = ("gelu", "relu")


def _choice(config, key: str, allowed) -> None:
    value = config[key]
    if value not in allowed:
        raise ConfigError(f"config.{key}={value!r} is not one of {', '.join(map(str, allowed))}; "
                          f"fix it with --config.{key}=...")


def _at_least(config, key: str, low, note: str = "") -> None:
    if config[key] < low:
        raise ConfigError(f"config.{key}={config[key]!r} must be >= {low}{note}")


def validate(config) -> None:
    """Raises ConfigError for the first bad key or value, or a contradictory combination."""
    _choice(config, "model", choices.MODELS)
    _choice(config, "precision", PRECISIONS)
    _choice(config, "strategy", choices.STRATEGIES)
    _choice(config, "optimizer", OPTIMIZERS)
    _choice(config, "lr_schedule", LR_SCHEDULES)
    for key in ("jit_compile", "sync_batchnorm"):
        try:
            normalize_jit(config[key])
        except ValueError:
            raise ConfigError(f"config.{key}={config[key]!r} is not one of {', '.join(JIT_VALUES)}") from None
    for key in ("batch_size", "steps_per_loop", "keep_checkpoints", "fault_nan_repeats"):
        _at_least(config, key, 1)
    for key in ("model_width", "model_depth", "num_cpu_devices", "validation_size", "eval_every_steps",
                "checkpoint_every_steps", "weight_decay", "label_smoothing", "warmup_epochs",
                "scale_lr_with_batch", "nan_max_retries"):
        _at_least(config, key, 0)
    _at_least(config, "fault_nan_replica", -1, " (-1: every replica)")
    _at_least(config, "validation_seed", -1, " (-1: config.seed)")
    _validate_fault(config)
    if config.learning_rate <= 0:
        raise ConfigError(f"config.learning_rate={config.learning_rate!r} must be > 0")
    if not 0 <= config.augment_crop_padding < 28:
        raise ConfigError(f"config.augment_crop_padding={config.augment_crop_padding!r} must be in [0, 28)")
    if not 0 <= config.augment_erasing <= 1:
        raise ConfigError(f"config.augment_erasing={config.augment_erasing!r} must be in [0, 1]")
    _validate_recipe(config)
    if config.profile_steps and not re.fullmatch(r"\d+,\d+", config.profile_steps.replace(" ", "")):
        raise ConfigError(f"config.profile_steps={config.profile_steps!r} must be 'START,END' (steps), e.g. '100,120'")
    if not 0 < config.nan_lr_factor <= 1:
        raise ConfigError(f"config.nan_lr_factor={config.nan_lr_factor!r} must be in (0, 1]")
    if not 0 <= config.target_accuracy < 1:
        raise ConfigError(f"config.target_accuracy={config.target_accuracy!r} must be in [0, 1) (0 = off)")
    if not 0 <= config.dropout < 1:
        raise ConfigError(f"config.dropout={config.dropout!r} must be in [0, 1)")
    if not 0 <= config.ema_decay < 1:
        raise ConfigError(f"config.ema_decay={config.ema_decay!r} must be in [0, 1) (0 = off; typical 0.999)")
    if not 0 <= config.label_smoothing < 1:
        raise ConfigError(f"config.label_smoothing={config.label_smoothing!r} must be in [0, 1)")
    if config.num_epochs < 1 and config.num_train_steps < 1:
        raise ConfigError("config.num_epochs must be >= 1 (or set config.num_train_steps > 0)")
    if not config.evaluate_test and config.validation_size < 1:
        raise ConfigError("config.evaluate_test=false leaves nothing to evaluate: hold out a validation split with "
                          "--config.validation_size=N (e.g. 5000)")
    train_size = TRAIN_EXAMPLES - config.validation_size
    if train_size < config.batch_size:
        raise ConfigError(f"config.batch_size={config.batch_size} exceeds the {train_size} training examples left "
                          f"after config.validation_size={config.validation_size}")
    if config.num_cpu_devices > 1 and config.batch_size % config.num_cpu_devices:
        raise ConfigError(f"config.batch_size={config.batch_size} does not divide over "
                          f"num_cpu_devices={config.num_cpu_devices}; pick a multiple of {config.num_cpu_devices}")
    if config.strategy in ("default", "one_device") and config.num_cpu_devices > 1:
        raise ConfigError(f"config.strategy={config.strategy} uses one device, so num_cpu_devices="
                          f"{config.num_cpu_devices} would be idle; use strategy=mirrored or num_cpu_devices=0")
    if config.tpu and config.strategy not in ("auto", "tpu"):
        raise ConfigError(f"config.tpu={config.tpu!r} names a TPU but config.strategy={config.strategy}; "
                          "use strategy=tpu (or auto), or drop the tpu key")


def _validate_recipe(config) -> None:
    """The airbench recipe's keys (configs/default.py)."""
    _choice(config, "whitening_patch", (2, 4))
    _choice(config, "activation", ACTIVATIONS)
    _at_least(config, "lookahead_every", 0)
    if config.model != "airbench":
        for key, default in choices.AIRBENCH_OPTIONS.items():
            if config[key] != default:
                raise ConfigError(f"config.{key} applies to model=airbench only; drop it or use "
                                  "--config.model=airbench")
    if not 0 <= config.batchnorm_momentum < 1:
        raise ConfigError(f"config.batchnorm_momentum={config.batchnorm_momentum!r} must be in [0, 1)")
    if config.whitening_eps <= 0:
        raise ConfigError(f"config.whitening_eps={config.whitening_eps!r} must be > 0")
    if config.logit_scale <= 0:
        raise ConfigError(f"config.logit_scale={config.logit_scale!r} must be > 0")
    if config.bn_bias_lr_scale <= 0:
        raise ConfigError(f"config.bn_bias_lr_scale={config.bn_bias_lr_scale!r} must be > 0 (1 = off)")
    if config.bn_bias_lr_scale != 1 and config.optimizer != "sgd":
        raise ConfigError(f"config.bn_bias_lr_scale={config.bn_bias_lr_scale} has no effect with optimizer="
                          f"{config.optimizer} (its update ignores the gradient's scale); use --config.optimizer=sgd")
    if not 0 < config.lookahead_decay < 1:
        raise ConfigError(f"config.lookahead_decay={config.lookahead_decay!r} must be in (0, 1)")
    if config.augment_flip_alternate and not config.augment_flip:
        raise ConfigError("config.augment_flip_alternate needs config.augment_flip=true")


def _validate_fault(config) -> None:
    """The fault-injection testing aid's state (a model without BatchNorm is refused when the model is built)."""
    _choice(config, "fault_nan_in", choices.FAULT_STATES)
    for state, key in (("ema", "ema_decay"), ("lookahead", "lookahead_every")):
        if config.fault_nan_in == state and not config[key]:
            raise ConfigError(f"config.fault_nan_in={state} needs config.{key} > 0 (a run with {state} averages)")


def check_replicas(batch_size: int, num_replicas: int) -> None:
    """The global batch must split evenly over the replicas."""
    if batch_size % num_replicas:
        raise ConfigError(f"config.batch_size={batch_size} does not divide over {num_replicas} replicas; "
                          f"pick a multiple of {num_replicas}")
