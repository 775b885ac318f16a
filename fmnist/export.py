"""Exports a run as a TensorFlow SavedModel in TF Serving's versioned layout (OUTPUT/<version>/).

  python -m fmnist.export --workdir=DIR [--output=DIR/export] [--version=N] [--checkpoint=STEP|PATH]

The SavedModel needs nothing but TensorFlow (`tf.saved_model.load`). Signatures:
  serving_default, classify_images: images uint8 [N,28,28,1] or [N,28,28], Fashion-MNIST style (item light on dark)
  classify_bytes: image_bytes string [N], encoded PNG or JPEG photos of any size and colour, converted the way
      Fashion-MNIST was made (see `to_fashion_mnist`). Sizes are read from the headers first: images of more
      than 50 megapixels are refused, and large JPEGs are decoded at 1/2 to 1/8 scale (see `decode`)
  preprocess_bytes: image_bytes string [N] -> images uint8 [N,28,28,1], the conversion alone (for inspection)
The classify signatures return class_ids int64 [N], class_names string [N] and probabilities float32 [N,10].
`python -m fmnist.predict` feeds files to `classify_bytes`, so both convert an image identically.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from absl import app, flags

from fmnist import console
from fmnist.dataset import CLASS_NAMES
from fmnist.errors import UserError, exit_on_user_error

if TYPE_CHECKING:  # TensorFlow loads lazily, so that the command line reports a mistake at once.
    import tensorflow as tf

IMAGE_SIZE = 28
MAX_PIXELS = 50_000_000  # classify_bytes refuses larger decoded images (read from the header, before decoding).
JPEG_MIN_SIDE = 256      # JPEGs are decoded at the smallest 1/2^k scale (k <= 3) that keeps the short side this long.
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # ITU-R BT.601 luma, as tf.image.rgb_to_grayscale.
PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
# Which weights of a checkpoint to export: `auto` is the EMA when the run kept one (config.ema_decay), as its
# evaluation did, else the model's own.
WEIGHTS = ("auto", "model", "ema")


# ---------------------------------------------------------------------------------------------------------------
# Preprocessing, in TensorFlow ops so that it is part of the SavedModel.


def jpeg_scale(short_side: int) -> int:
    """The JPEG decoding scale (1, 2, 4 or 8; libjpeg's DCT scaling) that keeps the short side >= JPEG_MIN_SIDE."""
    scale = 1
    while scale < 8 and short_side >= JPEG_MIN_SIDE * scale * 2:
        scale *= 2
    return scale


def _header_size(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(height, width) int64 from a PNG or JPEG header, without decoding; (-1, -1) for anything else."""
    import tensorflow as tf

    is_png = tf.logical_and(tf.equal(tf.strings.substr(data, 0, 8), PNG_MAGIC), tf.strings.length(data) >= 24)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), JPEG_MAGIC)

    def png():  # IHDR: big-endian width and height at bytes 16..23.
        wh = tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.int32, little_endian=False)
        return tf.cast(tf.stack([wh[1], wh[0]]), tf.int64)

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)

    hw = tf.case([(is_png, png), (is_jpeg, jpeg)], default=lambda: tf.constant([-1, -1], tf.int64))
    return hw[0], hw[1]


def decode(data: tf.Tensor) -> tf.Tensor:
    """One encoded PNG or JPEG (scalar string) to uint8 [H,W,C]. Refuses other formats, and images of more than
    MAX_PIXELS pixels before decoding them; decodes large JPEGs at 1/2, 1/4 or 1/8 scale (see `jpeg_scale`)."""
    import tensorflow as tf

    height, width = _header_size(data)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), JPEG_MAGIC)
    index = tf.zeros([], tf.int32)  # log2 of the JPEG scale: the graph version of jpeg_scale.
    for step in (2, 4, 8):
        index += tf.cast(tf.logical_and(is_jpeg, tf.minimum(height, width) >= JPEG_MIN_SIDE * step), tf.int32)
    scale = tf.bitwise.left_shift(tf.ones([], tf.int64), tf.cast(index, tf.int64))
    pixels = (height + scale - 1) // scale * ((width + scale - 1) // scale)
    checks = [tf.debugging.assert_non_negative(height, message="not a PNG or JPEG image"),
              tf.debugging.assert_less_equal(pixels, tf.constant(MAX_PIXELS, tf.int64),
                                             message=f"image has more than {MAX_PIXELS:,} pixels")]
    with tf.control_dependencies(checks):
        jpeg = [lambda r=r: tf.io.decode_jpeg(data, channels=0, ratio=r) for r in (1, 2, 4, 8)]
        return tf.cond(is_jpeg, lambda: tf.switch_case(index, jpeg),
                       lambda: tf.io.decode_png(data, channels=0, dtype=tf.uint8))


def _grayscale(image: tf.Tensor) -> tf.Tensor:
    """uint8 [H,W,C] with C in 1..4 (gray, gray+alpha, RGB, RGBA) to float32 gray [H,W,1], alpha over white."""
    import tensorflow as tf

    def channel(i):  # One channel at a time: a large photo never exists as float RGB.
        return tf.cast(image[..., i:i + 1], tf.float32)

    def luma():
        return channel(0) * GRAY_WEIGHTS[0] + channel(1) * GRAY_WEIGHTS[1] + channel(2) * GRAY_WEIGHTS[2]

    def over_white(gray, alpha_channel):
        alpha = channel(alpha_channel) / 255.0
        return gray * alpha + 255.0 * (1.0 - alpha)

    branches = [lambda: channel(0), lambda: over_white(channel(0), 1), luma, lambda: over_white(luma(), 3)]
    return tf.switch_case(tf.shape(image)[-1] - 1, branches)


def _border_mean(gray: tf.Tensor) -> tf.Tensor:
    """Mean of the outer ring of `gray` [H,W,1], one Fashion-MNIST pixel (1/28 of the short side) wide."""
    import tensorflow as tf

    h, w = tf.shape(gray)[0], tf.shape(gray)[1]
    b = tf.maximum(1, tf.minimum(h, w) // IMAGE_SIZE)
    inner = gray[b:h - b, b:w - b]
    ring_count = tf.cast(h * w - tf.size(inner), tf.float32)
    return (tf.reduce_sum(gray) - tf.reduce_sum(inner)) / tf.maximum(ring_count, 1.0)


def _fit(gray: tf.Tensor) -> tf.Tensor:
    """Scales float [H,W,1] so that its long side is 28, keeping the aspect ratio; centres it on black 28x28."""
    import tensorflow as tf

    h, w = tf.shape(gray)[0], tf.shape(gray)[1]
    long_side = tf.maximum(h, w)
    scale = IMAGE_SIZE / tf.cast(long_side, tf.float32)
    nh = tf.clip_by_value(tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32), 1, IMAGE_SIZE)
    nw = tf.clip_by_value(tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32), 1, IMAGE_SIZE)
    size = tf.stack([nh, nw])
    resized = tf.cond(long_side > IMAGE_SIZE,  # Area averaging to shrink (exact for integer factors), else bilinear.
                      lambda: tf.image.resize(gray, size, method="area"),
                      lambda: tf.image.resize(gray, size, method="bilinear"))
    top, left = (IMAGE_SIZE - nh) // 2, (IMAGE_SIZE - nw) // 2
    out = tf.pad(resized, [[top, IMAGE_SIZE - nh - top], [left, IMAGE_SIZE - nw - left], [0, 0]])
    return tf.ensure_shape(out, [IMAGE_SIZE, IMAGE_SIZE, 1])


def to_fashion_mnist(image: tf.Tensor) -> tf.Tensor:
    """A decoded image uint8 [H,W,C] to a Fashion-MNIST image uint8 [28,28,1].

    Grayscale (transparency over white); inverted when the border is light (Fashion-MNIST items are light on
    black: no Fashion-MNIST image has a border mean above 108); long side scaled to 28 keeping the aspect ratio;
    centred with black padding; rounded. A 28x28 Fashion-MNIST image comes out unchanged.
    """
    import tensorflow as tf

    gray = _grayscale(image)
    gray = tf.cond(_border_mean(gray) > 127.5, lambda: 255.0 - gray, lambda: gray)
    return tf.cast(tf.round(tf.clip_by_value(_fit(gray), 0.0, 255.0)), tf.uint8)


def decode_to_fashion_mnist(data: tf.Tensor) -> tf.Tensor:
    """One encoded PNG or JPEG photo (scalar string) to a Fashion-MNIST image uint8 [28,28,1]."""
    return to_fashion_mnist(decode(data))


# ---------------------------------------------------------------------------------------------------------------
# The exported module.


def make_classifier(model, class_names=CLASS_NAMES):
    """A tf.Module around a Keras classifier (float32 logits from standardised images) with the signatures."""
    return _classifier_class()(model, class_names)


@functools.cache
def _classifier_class():
    import tensorflow as tf

    from fmnist.input_pipeline import normalize  # Traced into the graph: the SavedModel does not import it.

    class Classifier(tf.Module):
        def __init__(self, model, class_names):
            super().__init__(name="fmnist_classifier")
            self.model = model
            self.class_names = tf.Variable(list(class_names), trainable=False, name="class_names")  # For readers.
            self._names = tf.constant(list(class_names))

        def _classify(self, images):
            logits = tf.cond(tf.shape(images)[0] > 0,  # oneDNN's convolutions fail on an empty batch.
                             lambda: tf.cast(self.model(normalize(images), training=False), tf.float32),
                             lambda: tf.zeros([0, len(CLASS_NAMES)], tf.float32))
            class_ids = tf.argmax(logits, axis=-1, output_type=tf.int64)
            return {"class_ids": class_ids, "class_names": tf.gather(self._names, class_ids),
                    "probabilities": tf.nn.softmax(logits, axis=-1)}

        @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8, name="images")])
        def classify_images(self, images):
            """uint8 [N,28,28,1] or [N,28,28] Fashion-MNIST style images."""
            message = "images must be uint8 [N,28,28,1] or [N,28,28]"
            rank_ok = tf.debugging.assert_rank_in(images, [3, 4], message=message)
            with tf.control_dependencies([rank_ok]):
                expected = tf.concat([[IMAGE_SIZE, IMAGE_SIZE], tf.ones([tf.rank(images) - 3], tf.int32)], axis=0)
                size_ok = tf.debugging.assert_equal(tf.shape(images)[1:], expected, message=message)
            with tf.control_dependencies([size_ok]):
                images = tf.reshape(images, [-1, IMAGE_SIZE, IMAGE_SIZE, 1])
            return self._classify(images)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def preprocess_bytes(self, image_bytes):
            """Encoded PNG/JPEG images [N] to Fashion-MNIST style uint8 [N,28,28,1]."""
            images = tf.map_fn(decode_to_fashion_mnist, image_bytes,
                               fn_output_signature=tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE, 1], tf.uint8))
            return {"images": images}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def classify_bytes(self, image_bytes):
            """Encoded PNG/JPEG photos [N]: converted as in `preprocess_bytes`, then classified."""
            return self._classify(self.preprocess_bytes(image_bytes)["images"])

        def signatures(self) -> dict:
            images = self.classify_images.get_concrete_function()
            return {"serving_default": images, "classify_images": images,
                    "classify_bytes": self.classify_bytes.get_concrete_function(),
                    "preprocess_bytes": self.preprocess_bytes.get_concrete_function()}

    return Classifier


# ---------------------------------------------------------------------------------------------------------------
# Restoring a run's model.


def read_config(workdir: Path) -> dict:
    path = workdir / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{workdir} has no config.json: pass the --workdir of a training run") from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path} ({e})") from None


def check_checkpoint(workdir: Path, checkpoint: str | None = None) -> str | None:
    """Without TensorFlow: refuses a workdir without checkpoints or a missing `checkpoint` (a step or a path
    prefix); returns the prefix of `checkpoint` when given."""
    directory = workdir / "checkpoints"
    available = sorted((p.name[:-len(".index")] for p in directory.glob("ckpt-*.index")),
                       key=lambda name: int(name[5:]) if name[5:].isdigit() else -1)
    if not checkpoint:
        if not any(directory.glob("*.index")):
            raise UserError(f"{directory} holds no checkpoint: train first "
                            f"(python -m fmnist.main --config=... --workdir={workdir})")
        return None
    path = str(directory / f"ckpt-{checkpoint}") if checkpoint.isdigit() else checkpoint
    if not Path(f"{path}.index").is_file():
        raise UserError(f"no checkpoint {path} (available in {directory}: {', '.join(available) or 'none'})")
    return path


def resolve_checkpoint(workdir: Path, checkpoint: str | None = None) -> str:
    """The checkpoint prefix to export: the latest in workdir/checkpoints, or `checkpoint` (a step or a path)."""
    path = check_checkpoint(workdir, checkpoint)
    if path is None:
        import tensorflow as tf

        path = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
        if path is None:
            raise UserError(f"{workdir / 'checkpoints'} has checkpoint files but no 'checkpoint' index naming the "
                            "latest; pass --checkpoint=STEP")
    return path


def restore_weights(model, path: str, weights: str = "model") -> None:
    """Restores `weights` of checkpoint `path` into float32 `model`; refuses a checkpoint that does not fit."""
    import tensorflow as tf

    from fmnist import ema

    try:
        if weights == "ema":
            ema.restore_into(model, path)
        else:
            tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        reason = str(e).strip().splitlines()[0][:160]
        raise UserError(f"checkpoint {path} does not fit the model in config.json ({reason})") from None


def checkpoint_step(path: str) -> int | None:
    import tensorflow as tf

    try:
        return int(tf.train.load_checkpoint(path).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    except (tf.errors.OpError, ValueError):
        return None


def resolve_weights(weights: str, config: dict) -> str:
    if weights not in WEIGHTS:
        raise UserError(f"unknown weights {weights!r}; choose from {', '.join(WEIGHTS)}")
    if weights == "auto":
        return "ema" if config.get("ema_decay") else "model"
    return weights


def load_model(workdir: str | Path, checkpoint: str | None = None, weights: str = "auto"):
    """(float32 Keras model with the checkpoint's weights, checkpoint path, config dict) of a training run."""
    root = Path(workdir).expanduser().absolute()
    config = read_config(root)
    weights = resolve_weights(weights, config)
    path = resolve_checkpoint(root, checkpoint)
    from fmnist import models

    name = config.get("model")
    if name not in models.MODELS:
        raise UserError(f"{root / 'config.json'} names model {name!r}, unknown to this fmnist "
                        f"(known: {', '.join(sorted(models.MODELS))})")
    model = models.build(name, dtype="float32", width=config.get("model_width", 0),
                         depth=config.get("model_depth", 0), dropout=config.get("dropout", 0.0))
    restore_weights(model, path, weights)
    return model, path, config


# ---------------------------------------------------------------------------------------------------------------
# Writing the versioned SavedModel.


def next_version(root: Path) -> int:
    versions = [int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir()] if root.is_dir() else []
    return max(versions, default=0) + 1


def _check_export(path: str, model) -> None:
    """Reloads the written SavedModel and compares it with the Keras model on a fixed random batch."""
    import numpy as np
    import tensorflow as tf

    from fmnist.input_pipeline import normalize

    images = np.random.default_rng(0).integers(0, 256, (4, IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8)
    expected = tf.nn.softmax(model(normalize(images), training=False)).numpy()
    got = tf.saved_model.load(path).signatures["classify_images"](images=tf.constant(images))["probabilities"]
    if not np.allclose(got.numpy(), expected, atol=1e-5):
        raise RuntimeError(f"the SavedModel written to {path} does not reproduce the Keras model")


def _output_folder(root: Path, version: int | None) -> Path:
    """OUTPUT/<version>, checked to be new and writable (before any model is loaded)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        version = version if version is not None else next_version(root)
        final = root / str(version)
        if version < 1:
            raise UserError(f"--version must be a positive integer, not {version}")
        if final.exists():
            raise UserError(f"{final} already exists; pass another --version or leave it out (next: "
                            f"{next_version(root)})")
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as e:
        raise UserError(f"cannot write to {root} ({e.strerror or e}); pass a writable --output") from None
    return final


def export(workdir: str | Path, output: str | Path | None = None, version: int | None = None,
           checkpoint: str | None = None, weights: str = "auto") -> Path:
    """Writes OUTPUT/<version>/ (default OUTPUT = workdir/export, version = next integer); returns its path.

    Written into a temporary folder next to it, checked by reloading, then renamed: readers (TF Serving polls the
    folder) never see a half-written version.
    """
    workdir = Path(workdir).expanduser().absolute()
    weights = resolve_weights(weights, read_config(workdir))  # Quick checks first, before TensorFlow loads.
    check_checkpoint(workdir, checkpoint)
    final = _output_folder(Path(output).expanduser().absolute() if output else workdir / "export", version)
    model, ckpt_path, config = load_model(workdir, checkpoint, weights)
    import tensorflow as tf

    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    except OSError as e:
        raise UserError(f"cannot write to {final.parent} ({e.strerror or e}); pass a writable --output") from None
    try:
        module = make_classifier(model)
        tf.saved_model.save(module, str(tmp), signatures=module.signatures())
        _check_export(str(tmp), model)
        _write_metadata(tmp, workdir, ckpt_path, weights, config)
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from a server running as another user.
        os.rename(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write the SavedModel to {final} ({e.strerror or e}); free space or pass a "
                        "writable --output") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_metadata(path: Path, workdir: Path, ckpt_path: str, weights: str, config: dict) -> None:
    """assets.extra/fmnist.json (TF Serving's place for extra files): where the model comes from."""
    import tensorflow as tf

    results = {}
    if (workdir / "results.json").is_file():
        try:
            results = json.loads((workdir / "results.json").read_text())
        except (OSError, ValueError):
            results = {}
    meta = {"workdir": str(workdir), "checkpoint": ckpt_path, "step": checkpoint_step(ckpt_path), "weights": weights,
            "class_names": list(CLASS_NAMES), "config": config, "eval_accuracy": results.get("eval_accuracy"),
            "signatures": ["serving_default", "classify_images", "classify_bytes", "preprocess_bytes"],
            "tensorflow": tf.__version__, "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    extra = path / "assets.extra"
    extra.mkdir()
    (extra / "fmnist.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# Command line.

def define_flags() -> None:
    """Defined on demand, not at import: fmnist.main defines its own --workdir, and train.py may import this."""
    flags.DEFINE_string("workdir", None, "A training run's workdir (config.json and checkpoints/).")
    flags.DEFINE_string("output", None, "Export root; the model goes to OUTPUT/<version>/. Default: WORKDIR/export.")
    flags.DEFINE_integer("version", None, "Version folder to write (default: the next integer).", lower_bound=1)
    flags.DEFINE_string("checkpoint", None, "Checkpoint step (e.g. 1000) or path prefix; default the latest.")
    flags.DEFINE_enum("weights", "auto", list(WEIGHTS), "Which weights of the checkpoint to export: auto = the "
                      "weight average when the run kept one (config.ema_decay), as its evaluation did.")
    flags.mark_flag_as_required("workdir")


@exit_on_user_error
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    console.configure()  # Only fmnist's lines unless --verbosity>=1.
    f = flags.FLAGS
    path = export(f.workdir, f.output, f.version, f.checkpoint, f.weights)
    print(f"Exported {path}\n  python -m fmnist.predict --model={path.parent} IMAGE...")


if __name__ == "__main__":
    define_flags()
    app.run(main)
