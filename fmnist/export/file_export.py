"""What the single-file exports (.tflite, .onnx) share: the pixels-to-probabilities Keras model, the output checks,
the check for the `export` extra, and the atomic write (temporary file, check, rename)."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from fmnist.errors import UserError
from fmnist.predict.photo_conversion import IMAGE_SIZE
from fmnist.predict.runtimes import INSTALL_HINT


def require(packages: dict[str, str], what: str) -> None:
    """Refuses to go on when a module of `packages` ({module: pip name}) is not installed."""
    missing = [pip for module, pip in packages.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise UserError(f"{what} needs {', '.join(missing)}, not installed here: {INSTALL_HINT}")


def check_output(path: Path, suffix: str, flag: str = "--output") -> Path:
    """`path`, checked (before any model is loaded) to end in `suffix`, not to be a folder, and to be writable."""
    if path.suffix.lower() != suffix:
        raise UserError(f"{flag}={path} must end in {suffix} for this format")
    if path.is_dir():
        raise UserError(f"{flag}={path} is a folder; pass a file path ending in {suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"cannot write to {path.parent}: part of it is a file, not a folder; pass a writable "
                        f"{flag}") from None
    except OSError as e:
        raise UserError(f"cannot write to {path.parent} ({e.strerror or e}); pass a writable {flag}") from None
    return path


def write_atomically(path: Path, write: Callable[[Path], None], check: Callable[[Path], None]) -> None:
    """write(tmp) into a temporary file next to `path`, check(tmp), then rename it to `path` (replacing an older
    file): readers never see a half-written model, and a failure leaves nothing behind."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".tmp-{path.stem}-", suffix=path.suffix, dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write to {path.parent} ({e.strerror or e}); pass a writable --output") from None
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        check(tmp)
        tmp.chmod(0o644)  # mkstemp's 0600 would hide the model from a server running as another user.
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path} ({e.strerror or e}); free space or pass a writable --output") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def probabilities_model(model, input_dtype: str = "uint8"):
    """A Keras model around `model` (float32 logits from standardised images): pixels [N,28,28,1] of
    `input_dtype`, 0-255 as in the dataset -> float32 probabilities [N,10]. The standardisation
    (fmnist.data.pipeline.normalize) and the softmax are inside it. Called once, as Keras's ONNX export needs."""
    import keras
    import numpy as np

    from fmnist.data.pipeline import normalize

    class Standardize(keras.layers.Layer):
        def call(self, images):
            return normalize(images)

    images = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), dtype=input_dtype, name="images")
    probabilities = keras.layers.Softmax(name="probabilities")(model(Standardize()(images), training=False))
    wrapped = keras.Model(images, probabilities, name="fmnist_probabilities")
    wrapped(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1), input_dtype))
    return wrapped


def reference_probabilities(model, images):
    """The Keras model's float32 probabilities for uint8 `images`, to check an export against."""
    import tensorflow as tf

    from fmnist.data.pipeline import normalize

    return tf.nn.softmax(model(normalize(images), training=False)).numpy()


def check_reproduces(path: Path, model, atol: float = 1e-4) -> None:
    """Runs the written file with its deploy runtime on a fixed random batch and compares it with the Keras model."""
    import numpy as np

    from fmnist.predict import runtimes

    images = np.random.default_rng(0).integers(0, 256, (4, IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8)
    got = runtimes.load(path)(images)
    if not np.allclose(got, reference_probabilities(model, images), atol=atol):
        raise RuntimeError(f"the model written to {path} does not reproduce the Keras model")
