"""Runs a single-file fmnist export (.tflite or .onnx) with the runtime users deploy it on, without TensorFlow.

Every runtime is a `PixelClassifier`: called with uint8 pixels [N,28,28,1] (0-255, Fashion-MNIST style), it returns
float32 class probabilities [N,10]. `load` picks the runtime by the file's suffix.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from fmnist.errors import UserError

INSTALL_HINT = "pip install 'fmnist[export]'"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
# Suffix: (module, class, what to call the format in messages).
RUNTIMES = {".tflite": ("fmnist.predict.runtime_litert", "LiteRTClassifier", "LiteRT"),
            ".onnx": ("fmnist.predict.runtime_onnx", "OnnxClassifier", "ONNX")}


class PixelClassifier(Protocol):
    path: Path

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N,28,28,1] -> float32 probabilities [N,10]."""


def is_model_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RUNTIMES


def load(path: str | Path, num_threads: int | None = None) -> PixelClassifier:
    """The runtime for `path` (.tflite: LiteRT, .onnx: ONNX Runtime), with the file loaded and checked."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in RUNTIMES:
        raise UserError(f"{path} is neither a .tflite nor an .onnx file")
    if not path.is_file():
        raise UserError(f"no such file: {path}; export one with python -m fmnist.export --workdir=DIR "
                        f"--format={'litert' if suffix == '.tflite' else 'onnx'} --output={path}")
    module, name, _ = RUNTIMES[suffix]
    return getattr(importlib.import_module(module), name)(path, num_threads=num_threads)


def check_pixels(images: np.ndarray) -> np.ndarray:
    """`images` as a contiguous uint8 [N,28,28,1] array; refuses anything else."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images must be uint8 [N,28,28,1], not {images.dtype} {list(images.shape)}")
    return np.ascontiguousarray(images)


def not_an_export(path: Path, what: str, fmt: str) -> UserError:
    return UserError(f"{path} is not an fmnist {fmt} export ({what}); export one with python -m fmnist.export "
                     f"--workdir=DIR --format={fmt}")
