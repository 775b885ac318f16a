"""Keras 3 models by name. Each builder returns logits in float32 whatever the compute dtype.

Keep widths multiples of 16 on CPUs: oneDNN's bfloat16 kernels work in blocks of 16 channels. At width 24, fast_cnn's
first BatchNorm (24 channels) takes 12.3 ms of a 43-58 ms training step at batch 256, and the step is slower than at
width 32 (47 ms), which has about 1.8x the FLOPs; width 16's first BatchNorm takes 0.7 ms
(`python -m benchmarks.op_profile --model=fast_cnn:24:1 --batch_size=256`).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from fmnist.config import choices
from fmnist.config.choices import AIRBENCH_OPTIONS, BN_MOMENTUM
from fmnist.data.dataset import IMAGE_SHAPE, NUM_CLASSES
from fmnist.models.layers import BatchNormalization, Dropout

Builder = Callable[..., keras.Model]
MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    if name not in choices.MODELS:  # Configs are checked against that list before TensorFlow loads.
        raise ValueError(f"model {name!r} is not in fmnist.config.choices.MODELS; add it there")

    def wrap(fn: Builder) -> Builder:
        MODELS[name] = fn
        return fn

    return wrap


def build(name: str, *, dtype: str = "float32", width: int = 0, depth: int = 0, dropout: float = 0.0,
          options: dict | None = None) -> keras.Model:
    """Builds model `name` with a Keras dtype policy name ('float32', 'mixed_bfloat16', 'mixed_float16').
    `options`: the keyword options of models that have their own (`model_options`). A run's model: `from_config`."""
    return MODELS[name](dtype=keras.DTypePolicy(dtype), width=width, depth=depth, dropout=dropout, **(options or {}))



def model_options(config) -> dict:
    """The builder options of config.model taken from the config (airbench's; none for the others). `config`: a
    ConfigDict or config.json's dict; a key it lacks (a run older than the key) takes the builder's default."""
    if config.get("model") != "airbench":
        return {}
    return {k: config.get(k, default) for k, default in AIRBENCH_OPTIONS.items()}


def from_config(config, dtype: str = "float32") -> keras.Model:
    """The model a run of `config` trains (a ConfigDict, or config.json's dict): its name, width, depth, dropout and
    the model's own options. Training, export and the benchmarks all build a run's model here, so that they cannot
    build different graphs (an export that dropped airbench's logit_scale would serve wrong probabilities)."""
    return build(config["model"], dtype=dtype, width=config.get("model_width", 0), depth=config.get("model_depth", 0),
                 dropout=config.get("dropout", 0.0), options=model_options(config))


def _head(x, dropout: float, dtype) -> keras.KerasTensor:
    if dropout:
        x = Dropout(dropout, dtype=dtype)(x)
    return layers.Dense(NUM_CLASSES, dtype="float32", name="logits")(x)  # float32 logits for a stable loss.


@register("seed_cnn")
def seed_cnn(*, dtype, width: int, depth: int, dropout: float) -> keras.Model:
    """The seed's CNN: conv32-pool-conv64-pool-dense128-dense10. `width` scales the convolutions (default 32)."""
    del depth
    w = width or 32
    inputs = keras.Input(IMAGE_SHAPE)
    x = layers.Conv2D(w, 3, activation="relu", dtype=dtype)(inputs)
    x = layers.MaxPooling2D(dtype=dtype)(x)
    x = layers.Conv2D(2 * w, 3, activation="relu", dtype=dtype)(x)
    x = layers.MaxPooling2D(dtype=dtype)(x)
    x = layers.Flatten(dtype=dtype)(x)
    x = layers.Dense(128, activation="relu", dtype=dtype)(x)
    return keras.Model(inputs, _head(x, dropout, dtype), name="seed_cnn")


def _conv_bn_relu(x, filters: int, dtype, stride: int = 1, pool: bool = False):
    """3x3 conv, then (with `pool`) a 2x2 max-pool, then BatchNorm and ReLU."""
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, dtype=dtype)(x)
    if pool:
        x = layers.MaxPooling2D(dtype=dtype)(x)
    x = BatchNormalization(momentum=BN_MOMENTUM, dtype=dtype)(x)
    return layers.ReLU(dtype=dtype)(x)


@register("bn_cnn")
def bn_cnn(*, dtype, width: int, depth: int, dropout: float) -> keras.Model:
    """A VGG-style CNN with BatchNorm: `depth` conv-BN-ReLU layers per stage (default 2), 3 stages of `width`*2^i."""
    w, d = width or 32, depth or 2
    inputs = keras.Input(IMAGE_SHAPE)
    x = inputs
    for stage in range(3):
        for _ in range(d):
            x = _conv_bn_relu(x, w * 2**stage, dtype)
        if stage < 2:
            x = layers.MaxPooling2D(dtype=dtype)(x)
    x = layers.GlobalAveragePooling2D(dtype=dtype)(x)
    return keras.Model(inputs, _head(x, dropout, dtype), name="bn_cnn")


def _residual_block(x, filters: int, stride: int, dtype):
    shortcut = x
    y = _conv_bn_relu(x, filters, dtype, stride)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=dtype)(y)
    y = BatchNormalization(momentum=BN_MOMENTUM, gamma_initializer="zeros", dtype=dtype)(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, dtype=dtype)(x)
        shortcut = BatchNormalization(momentum=BN_MOMENTUM, dtype=dtype)(shortcut)
    return layers.ReLU(dtype=dtype)(layers.Add(dtype=dtype)([shortcut, y]))


@register("fast_cnn")
def fast_cnn(*, dtype, width: int, depth: int, dropout: float) -> keras.Model:
    """configs/speedrun.py's CNN: 3 stages (28, 14, 7 pixels) of widths w, 2w, 4w (default 16), a 256-unit dense layer.

    Each stage is `depth` 3x3 convolutions (default 1); the last is pooled *before* its BatchNorm and ReLU (airbench's
    order), so they run on a quarter of the pixels: 16.2k against 13.2k examples/s for BN-ReLU-pool (width 16, a
    128-unit head, batch 256, mixed_bfloat16, this 2-core CPU), accuracy within the seeds' spread. The 3x3x4w map is
    flattened, not averaged.
    """
    w, d = width or 16, depth or 1
    inputs = keras.Input(IMAGE_SHAPE)
    x = inputs
    for stage in range(3):
        for block in range(d):
            x = _conv_bn_relu(x, w * 2**stage, dtype, pool=block == d - 1)
    x = layers.Flatten(dtype=dtype)(x)
    x = layers.Dense(256, use_bias=False, dtype=dtype)(x)
    x = layers.ReLU(dtype=dtype)(BatchNormalization(momentum=BN_MOMENTUM, dtype=dtype)(x))
    return keras.Model(inputs, _head(x, dropout, dtype), name="fast_cnn")


@register("resnet")
def resnet(*, dtype, width: int, depth: int, dropout: float) -> keras.Model:
    """A CIFAR-style ResNet: 3 stages (28, 14, 7 pixels) of `depth` basic blocks (default 2), widths w, 2w, 4w."""
    w, d = width or 32, depth or 2
    inputs = keras.Input(IMAGE_SHAPE)
    x = _conv_bn_relu(inputs, w, dtype)
    for stage in range(3):
        for block in range(d):
            x = _residual_block(x, w * 2**stage, 2 if stage and not block else 1, dtype)
    x = layers.GlobalAveragePooling2D(dtype=dtype)(x)
    return keras.Model(inputs, _head(x, dropout, dtype), name="resnet")


@register("airbench")
def airbench(*, dtype, width: int, depth: int, dropout: float, whitening_patch: int = 4, activation: str = "gelu",
             logit_scale: float = 1.0, batchnorm_scale: bool = True,
             batchnorm_momentum: float = BN_MOMENTUM) -> keras.Model:
    """Keller Jordan's airbench network for 28x28x1: a frozen patch-whitening convolution (fmnist.models.whitening sets
    its kernel from the data) and its activation, then 3 groups of conv-pool-BN-act-conv-BN-act (widths w, 4w, 4w;
    airbench's full width is w=64, half w=32; default 32), a global max-pool, a bias-free linear head whose logits
    are multiplied by `logit_scale` (airbench: 1/9). `batchnorm_scale=False`: BatchNorm without its scale (gamma).
    `batchnorm_momentum`: Keras's momentum of the moving statistics (airbench's "fast" statistics: 0.4, PyTorch 0.6),
    which lookahead, copying averaged statistics back, needs."""
    from fmnist.models.whitening import LAYER_NAME

    w = width or 32
    del depth

    def norm_act(x):
        x = BatchNormalization(momentum=batchnorm_momentum, scale=batchnorm_scale, dtype=dtype)(x)
        return layers.Activation(activation, dtype=dtype)(x)

    inputs = keras.Input(IMAGE_SHAPE)
    k = whitening_patch
    x = layers.Conv2D(2 * k * k, k, use_bias=False, trainable=False, name=LAYER_NAME, dtype=dtype)(inputs)
    x = layers.Activation(activation, dtype=dtype)(x)
    for filters in (w, 4 * w, 4 * w):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=dtype)(x)
        x = norm_act(layers.MaxPooling2D(dtype=dtype)(x))
        x = norm_act(layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=dtype)(x))
    x = layers.GlobalMaxPooling2D(dtype=dtype)(x)
    if dropout:
        x = Dropout(dropout, dtype=dtype)(x)
    logits = layers.Dense(NUM_CLASSES, use_bias=False, dtype="float32", name="logits")(x)
    if logit_scale != 1.0:
        logits = layers.Rescaling(logit_scale, dtype="float32", name="logit_scale")(logits)
    return keras.Model(inputs, logits, name="airbench")
