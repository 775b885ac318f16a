"""The values a config may choose, without TensorFlow: fmnist.config.validation checks a config, and
`--mode=show_config` prints it, before TensorFlow loads. The modules that act on these values take their names from
here."""

from __future__ import annotations

# fmnist.models.models registers one builder under each name (and refuses any other).
MODELS = ("airbench", "bn_cnn", "fast_cnn", "resnet", "seed_cnn")
# PyTorch's 0.1 update rate: Keras's 0.99 leaves the running statistics far off for the first ~1000 steps, which
# made short runs evaluate near chance (measured: bn_cnn 15% test accuracy after 100 steps).
BN_MOMENTUM = 0.9
# Config keys only the airbench family reads, with their defaults (configs/default.py documents them).
AIRBENCH_OPTIONS = {"whitening_patch": 4, "activation": "gelu", "logit_scale": 1.0, "batchnorm_scale": True,
                    "batchnorm_momentum": BN_MOMENTUM}
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
# fmnist.runtime.precision resolves `auto` for the device at hand.
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
JIT_VALUES = ("auto", "true", "false")
# The states fmnist.training.faults can poison (config.fault_nan_in).
FAULT_STATES = ("loss", "optimizer", "batchnorm", "ema", "lookahead")


def normalize_jit(value: str | bool) -> str:
    """Config value (bool or string, as overrides arrive) to one of JIT_VALUES; ValueError otherwise."""
    text = str(value).strip().lower()
    if text not in JIT_VALUES:
        raise ValueError(value)
    return text
