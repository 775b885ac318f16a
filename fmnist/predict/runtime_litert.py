"""A .tflite fmnist export run by the LiteRT interpreter (pip ai-edge-litert), without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist.errors import UserError
from fmnist.predict.runtimes import IMAGE_SHAPE, INSTALL_HINT, NUM_CLASSES, check_pixels, not_an_export


class LiteRTClassifier:
    """uint8 [N,28,28,1] -> float32 probabilities [N,10]; the input is resized to each batch's size."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        self.path = Path(path)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UserError(f"running a .tflite model needs ai-edge-litert: {INSTALL_HINT}") from None
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise UserError(f"cannot load {self.path} as a LiteRT model ({str(e).splitlines()[0][:120]})") from None
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise not_an_export(self.path, f"{len(inputs)} inputs and {len(outputs)} outputs", "litert")
        self._input, self._output = inputs[0], outputs[0]
        shape, dtype = tuple(self._input["shape_signature"][1:]), self._input["dtype"]
        scale, zero_point = self._input["quantization"]
        # Raw pixels: uint8 that the model casts itself, or quantised with scale 1 and zero point 0 (int8 export).
        if dtype != np.uint8 or shape != IMAGE_SHAPE or (scale, zero_point) not in ((0.0, 0), (1.0, 0)):
            raise not_an_export(self.path, f"input {dtype.__name__} {list(shape)} scale {scale} zero point "
                                f"{zero_point}, expected raw uint8 pixels [N,28,28,1]", "litert")
        out_shape = tuple(self._output["shape_signature"][1:])
        if self._output["dtype"] != np.float32 or out_shape != (NUM_CLASSES,):
            raise not_an_export(self.path, f"output {self._output['dtype'].__name__} {list(out_shape)}, expected "
                                "float32 probabilities [N,10]", "litert")
        self._batch = -1

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = check_pixels(images)
        if len(images) == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        if len(images) != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], list(images.shape))
            self._interpreter.allocate_tensors()  # Its XNNPACK notice: fmnist.runtime.console_relay drops it.
            self._batch = len(images)
        self._interpreter.set_tensor(self._input["index"], images)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"]).copy()
