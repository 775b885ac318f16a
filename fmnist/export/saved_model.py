"""The SavedModel export: a versioned folder in TF Serving's layout (OUTPUT/<version>/) that needs nothing but
TensorFlow (`tf.saved_model.load`). Signatures:
  serving_default, classify_images: images uint8 [N,28,28,1] or [N,28,28], Fashion-MNIST style (item light on dark)
  classify_bytes: image_bytes string [N], encoded PNG or JPEG photos of any size and colour, converted the way
      Fashion-MNIST was made (fmnist.predict.photo_conversion). Sizes are read from the headers first: images of more
      than 50 megapixels are refused, and large JPEGs are decoded at 1/2 to 1/8 scale
  preprocess_bytes: image_bytes string [N] -> images uint8 [N,28,28,1], the conversion alone (for inspection)
The classify signatures return class_ids int64 [N], class_names string [N] and probabilities float32 [N,10].
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

from fmnist.data.dataset import CLASS_NAMES
from fmnist.errors import UserError
from fmnist.export.restore import check_checkpoint, checkpoint_step, load_model, read_config, resolve_weights
from fmnist.predict.photo_conversion import IMAGE_SIZE, convert_photos

# ---------------------------------------------------------------------------------------------------------------
# The exported module.


def make_classifier(model, class_names=CLASS_NAMES):
    """A tf.Module around a Keras classifier (float32 logits from standardised images) with the signatures."""
    return _classifier_class()(model, class_names)


@functools.cache
def _classifier_class():
    import tensorflow as tf

    from fmnist.data.pipeline import normalize  # Traced into the graph: the SavedModel does not import it.

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
            return {"images": convert_photos(image_bytes)}

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
# Writing the versioned SavedModel.


def next_version(root: Path) -> int:
    versions = [int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir()] if root.is_dir() else []
    return max(versions, default=0) + 1


def _check_export(path: str, model) -> None:
    """Reloads the written SavedModel and compares it with the Keras model on a fixed random batch."""
    import numpy as np
    import tensorflow as tf

    from fmnist.data.pipeline import normalize

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
