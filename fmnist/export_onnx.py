"""The ONNX export: one .onnx file for ONNX Runtime (pip onnxruntime) and other ONNX runtimes.

Input uint8 pixels [N,28,28,1] (0-255, Fashion-MNIST style) named `images`, output float32 probabilities [N,10];
the standardisation is inside. Written by Keras's `model.export(format="onnx")` (through tf2onnx).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from fmnist.file_export import check_reproduces, probabilities_model, write_atomically

# onnx and tf2onnx write the file; onnxruntime checks it with the runtime users deploy on.
REQUIRES = {"onnx": "onnx", "tf2onnx": "tf2onnx", "onnxruntime": "onnxruntime"}


def export(model, path: Path) -> None:
    """Writes `model` (float32 logits from standardised images) to the .onnx file `path`, atomically."""
    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # Keras's tf2onnx shim probes numpy for `np.object` (a FutureWarning).
            warnings.simplefilter("ignore", FutureWarning)
            probabilities_model(model).export(str(tmp), format="onnx", verbose=False)

    write_atomically(path, write, lambda tmp: check_reproduces(tmp, model))
