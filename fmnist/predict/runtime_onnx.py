"""An .onnx fmnist export run by ONNX Runtime (pip onnxruntime), without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist.errors import UserError
from fmnist.predict.runtimes import INSTALL_HINT, NUM_CLASSES, check_pixels, not_an_export

QUIET = 3  # ONNX Runtime's log severity: errors only.


class OnnxClassifier:
    """uint8 [N,28,28,1] -> float32 probabilities [N,10], on ONNX Runtime's CPU provider."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        self.path = Path(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(f"running an .onnx model needs onnxruntime: {INSTALL_HINT}") from None
        options = ort.SessionOptions()
        options.log_severity_level = QUIET
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ONNX Runtime's error classes live in a private module.
            reason = str(e).split(" : ")[-1].splitlines()[0].split(" failed:")[-1][:120]  # Drops "Load model from..."
            raise UserError(f"cannot load {self.path} as an ONNX model ({reason})") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or inputs[0].type != "tensor(uint8)" or list(inputs[0].shape[1:]) != [28, 28, 1]:
            found = ", ".join(f"{i.type} {i.shape}" for i in inputs)
            raise not_an_export(self.path, f"inputs {found}, expected raw uint8 pixels [N,28,28,1]", "onnx")
        if len(outputs) != 1 or outputs[0].type != "tensor(float)" or outputs[0].shape[1:] != [NUM_CLASSES]:
            found = ", ".join(f"{o.type} {o.shape}" for o in outputs)
            raise not_an_export(self.path, f"outputs {found}, expected float32 probabilities [N,10]", "onnx")
        self._input_name = inputs[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = check_pixels(images)
        if len(images) == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        return self._session.run(None, {self._input_name: images})[0]
