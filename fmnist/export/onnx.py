"""The ONNX export: one .onnx file for ONNX Runtime (pip onnxruntime) and other ONNX runtimes.

Input uint8 pixels [N,28,28,1] (0-255, Fashion-MNIST style) named `images`, output float32 probabilities [N,10];
the standardisation is inside. Written by Keras's `model.export(format="onnx")` (through tf2onnx), which lacks a
converter for TensorFlow's Erfc (exact GELU, airbench's activation): `_convert_erfc` adds one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from fmnist.export.file_export import check_reproduces, probabilities_model, write_atomically

# onnx and tf2onnx write the file; onnxruntime checks it with the runtime users deploy on.
REQUIRES = {"onnx": "onnx", "tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime"}


def export(model, path: Path) -> None:
    """Writes `model` (float32 logits from standardised images) to the .onnx file `path`, atomically."""
    _convert_erfc()

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # Keras's tf2onnx shim probes numpy for `np.object` (a FutureWarning).
            warnings.simplefilter("ignore", FutureWarning)
            probabilities_model(model).export(str(tmp), format="onnx", verbose=False)

    write_atomically(path, write, lambda tmp: check_reproduces(tmp, model))


def _convert_erfc() -> None:
    """Registers (once) tf2onnx's conversion of TensorFlow's Erfc, which exact GELU (`0.5 x erfc(-x/sqrt 2)`) uses and
    tf2onnx 1.17 cannot convert: erfc(x) = 1 - erf(x), with ONNX's Erf (opset 9). The cancellation for large x
    costs at most float32's resolution near 1 (about 6e-8), which GELU multiplies by 0.5 x."""
    import numpy as np
    from tf2onnx import constants, onnx_opset, utils  # onnx_opset registers tf2onnx's own converters.
    from tf2onnx.handler import tf_op

    del onnx_opset
    if any("Erfc" in ops for ops in tf_op.get_opsets().get(constants.ONNX_DOMAIN, [])):
        return  # Registered before, or a tf2onnx that converts it itself.

    @tf_op("Erfc")
    class Erfc:  # noqa: F841 - registered by the decorator.
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name)
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
            node.type = "Sub"
            ctx.replace_inputs(node, [one.output[0], erf.output[0]])
