"""Classifies image files with an exported model (a SavedModel, or a .tflite or .onnx file through its runtime):
reads and checks each file, converts it the way Fashion-MNIST was made, and returns one Result per file. The
command line is fmnist.predict's __main__."""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from fmnist.data.dataset import CLASS_NAMES
from fmnist.errors import UserError
from fmnist.predict.photo_conversion import MAX_PIXELS, convert_photos, jpeg_scale

MAX_FILE_BYTES = 256 << 20
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
EXIF_ORIENTATION = 0x0112


class ImageError(Exception):
    """A file that cannot be classified: the message is the one-line reason."""


@dataclass
class Result:
    file: str
    probabilities: list[float] | None = None
    error: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# Reading files.


def find_images(args: list[str]) -> list[tuple[str, str | None]]:
    """(path, error or None) for each file argument, and for each image file found under each folder argument."""
    out: list[tuple[str, str | None]] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            out += [(str(p), None) for p in found] or [(arg, "folder holds no image files (.png, .jpg, ...)")]
        elif path.exists():
            out.append((arg, None))
        else:
            out.append((arg, "no such file or folder"))
    return out


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> bytes:
    """The bytes to send to classify_bytes: the file itself when it is a PNG or an upright JPEG, else a lossless PNG
    made by PIL. Checks the size from the header, as classify_bytes does, before anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise ImageError(f"file of {size / 2**20:.0f} MiB is too large (limit {MAX_FILE_BYTES >> 20} MiB)")
        data = Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read file ({e.strerror or e})") from None
    if not data:
        raise ImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageError(f"image is too large ({e})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageError("not an image (expected PNG or JPEG)") from None
    width, height = image.size
    is_jpeg = image.format in ("JPEG", "MPO")
    scale = jpeg_scale(min(width, height)) if is_jpeg else 1  # As classify_bytes decodes it.
    pixels = -(-width // scale) * -(-height // scale)
    if pixels > max_pixels:
        shrunk = f" even at 1/{scale} scale" if scale > 1 else ""
        raise ImageError(f"image of {width}x{height} = {width * height / 1e6:.1f} megapixels is too large{shrunk} "
                         f"(limit {max_pixels / 1e6:g} megapixels)")
    if is_jpeg:
        try:
            rotated = image.getexif().get(EXIF_ORIENTATION, 1) not in (0, 1)
        except Exception:  # noqa: BLE001 - a broken EXIF block: use the pixels as stored.
            rotated = False
        if not rotated:
            return data
        image.draft(image.mode, (-(-width // scale), -(-height // scale)))  # The same DCT scaling as TensorFlow's.
        return _to_png(image)
    if image.format == "PNG":
        return data
    return _to_png(image)


def _to_png(image) -> bytes:
    """Decodes `image` with PIL, turns it upright (EXIF), keeps gray/colour/alpha, and encodes it as PNG."""
    import numpy as np
    from PIL import Image, ImageOps

    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float gray: scale to 8 bits.
            a = np.asarray(image, dtype=np.float64)
            top = 65535.0 if image.mode != "F" and a.max() > 255 else max(float(a.max()), 1.0)
            image = Image.fromarray(np.clip(a * 255.0 / top, 0, 255).round().astype(np.uint8))
        elif image.mode not in ("L", "LA", "RGB", "RGBA"):
            alpha = "A" in image.getbands() or "transparency" in image.info
            image = image.convert("RGBA" if alpha else "RGB")
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=1)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"corrupt or truncated image ({str(e).splitlines()[0][:100]})") from None
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# The model.


def resolve_model_dir(path: str) -> Path:
    """A SavedModel folder: `path` itself, or its highest numbered version folder (TF Serving's layout)."""
    root = Path(path).expanduser()
    if (root / "saved_model.pb").is_file():
        return root
    versions = [int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()] \
        if root.is_dir() else []
    if not versions:
        raise UserError(f"{path} is neither a SavedModel nor an export root with numbered versions nor a .tflite or "
                        ".onnx file; export one with python -m fmnist.export --workdir=DIR")
    return root / str(max(versions))


class Classifier:
    """An exported classifier of encoded photos; subclasses run one model format (`_run`)."""

    path: Path
    class_names: list[str] | None = None

    def _run(self, images: list[bytes]):
        """Encoded photos [N] -> probabilities float32 [N,10]; tf.errors.InvalidArgumentError for a bad photo."""
        raise NotImplementedError

    def probabilities(self, images: list[bytes]) -> list[list[float] | str]:
        """Per image its class probabilities, or the reason it failed (a failing batch is retried one by one)."""
        import tensorflow as tf

        try:
            return [p.tolist() for p in self._run(images)]
        except tf.errors.InvalidArgumentError as e:
            if len(images) == 1:
                return [_tf_reason(e.message)]
            return [r for image in images for r in self.probabilities([image])]


class SavedModelClassifier(Classifier):
    """A SavedModel's classify_bytes signature and class names, from the SavedModel alone."""

    def __init__(self, path: str):
        self.path = resolve_model_dir(path)  # Before TensorFlow loads: a wrong path is reported at once.
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(self.path))
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise UserError(f"cannot load the SavedModel in {self.path} ({str(e).splitlines()[0][:120]})") from None
        if "classify_bytes" not in loaded.signatures:
            raise UserError(f"the SavedModel in {self.path} has no classify_bytes signature; re-export it with "
                            "python -m fmnist.export")
        self._loaded = loaded  # Keeps the signature's variables alive.
        self._classify = loaded.signatures["classify_bytes"]
        names = getattr(loaded, "class_names", None)
        self.class_names = [n.decode() for n in names.numpy()] if names is not None else None

    def _run(self, images: list[bytes]):
        import tensorflow as tf

        return self._classify(image_bytes=tf.constant(images, tf.string))["probabilities"].numpy()


class FileClassifier(Classifier):
    """A .tflite or .onnx export run by its deploy runtime (fmnist.predict.runtimes). Photos are converted by the
    SavedModel's own TensorFlow ops (fmnist.predict.photo_conversion), so every format sees the same pixels."""

    def __init__(self, path: str):
        from fmnist.predict import runtimes

        self._runtime = runtimes.load(path)  # Before TensorFlow loads: a wrong file is reported at once.
        self.path = self._runtime.path
        self.class_names = list(CLASS_NAMES)
        import tensorflow as tf

        self._convert = tf.function(convert_photos, input_signature=[tf.TensorSpec([None], tf.string)])

    def _run(self, images: list[bytes]):
        import tensorflow as tf

        return self._runtime(self._convert(tf.constant(images, tf.string)).numpy())


def load_classifier(path: str) -> Classifier:
    """The classifier for --model=PATH: a .tflite or .onnx file, else a SavedModel or an export root."""
    from fmnist.predict import runtimes

    return FileClassifier(path) if runtimes.is_model_file(path) else SavedModelClassifier(path)


def _tf_reason(message: str) -> str:
    """The useful line of a TensorFlow error, e.g. 'Invalid PNG data, size 1224'."""
    assertion = re.search(r"assertion failed: \[([^\]]*)\]", message)
    if assertion:
        return assertion.group(1)
    lines = [line.strip() for line in message.splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Graph execution error", "Detected at node",
                                                                      "<stack traces", "[[", "{{", 'File "'))]
    return "cannot decode image: " + (useful[0] if useful else lines[0])[:160]


def classify_files(model: Classifier, files: list[tuple[str, str | None]], batch_size: int = 64):
    """Yields a Result per file, in order: reads and classifies `batch_size` files at a time."""
    for start in range(0, len(files), batch_size):
        results, ready = [], []
        for name, error in files[start:start + batch_size]:
            result = Result(name, error=error)
            if error is None:
                try:
                    ready.append((result, read_image(name)))
                except ImageError as e:
                    result.error = str(e)
            results.append(result)
        if ready:
            for (result, _), out in zip(ready, model.probabilities([data for _, data in ready]), strict=True):
                if isinstance(out, str):
                    result.error = out
                else:
                    result.probabilities = out
        yield from results


def describe(result: Result, class_names: list[str], top_k: int) -> dict:
    """The machine-readable record of one successful result."""
    probs = result.probabilities
    order = sorted(range(len(probs)), key=lambda i: -probs[i])[:top_k]
    top = [{"class_id": i, "class_name": class_names[i], "probability": probs[i]} for i in order]
    return {"file": result.file, **top[0], "top_k": top, "probabilities": probs}
