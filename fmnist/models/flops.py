"""FLOPs of a model, counted by TensorFlow's profiler on the model's inference graph (not estimated by hand).

Convention (the usual one, as in PaLM's "model FLOPs utilisation": 6N per token = 3 x 2N):
  * a multiply-add is 2 FLOPs: Conv2D and MatMul count 2 * MACs;
  * the profiler also counts the ops TensorFlow registers FLOP statistics for: bias adds, pooling, element-wise
    add/mul (residual adds, batch-norm arithmetic); activations such as ReLU, casts and data movement count 0;
  * one training example costs TRAIN_FLOPS_FACTOR (3) x its forward FLOPs: the forward pass, plus the backward pass
    that computes activation gradients and weight gradients (each about one forward). The optimizer update,
    the loss and the input pipeline are not counted.
For the seed CNN this gives 5,319,626 forward FLOPs per image (5,262,080 of them in its two convolutions and two
dense layers), about 16 MFLOP per training image.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import logging

TRAIN_FLOPS_FACTOR = 3


def forward_flops_per_example(model: keras.Model) -> int:
    """FLOPs of one example's forward pass (inference mode), per the module's convention."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder
    from tensorflow.python.util import deprecation

    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    graph = convert_variables_to_constants_v2(concrete).graph  # Variables become constants: only the math remains.
    builder = option_builder.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    with deprecation.silence():
        profile = model_analyzer.profile(graph, options=options)
    return int(profile.total_float_ops)


def forward_flops_or_none(model: keras.Model) -> int | None:
    """`forward_flops_per_example`, or None with a warning: the count uses TensorFlow's private profiler APIs, and a
    change there must not cost a run its results."""
    try:
        return forward_flops_per_example(model)
    except Exception as e:  # noqa: BLE001 - private APIs may fail in any way; the count is optional.
        logging.warning("Could not count the model's FLOPs (%s: %s); results.json will have none",
                        type(e).__name__, str(e).splitlines()[0][:160] if str(e) else "")
        return None
