"""Export: a versioned SavedModel that runs with TensorFlow alone and reproduces the trained Keras model."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_module
from PIL import Image

from fmnist.data.pipeline import normalize
from fmnist.errors import UserError
from fmnist.export import formats as export


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def run(trained_smoke) -> Path:
    return trained_smoke


@pytest.fixture(scope="module")
def exported(run) -> Path:
    """The first version, written by the command line."""
    proc = run_module("fmnist.export", f"--workdir={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Exported {run / 'export' / '1'}" in proc.stdout
    return run / "export" / "1"


@pytest.fixture(scope="module")
def test_images(splits) -> tuple[np.ndarray, np.ndarray]:
    """Ten test images of every class: uint8 [100,28,28,1], labels [100]."""
    test = splits[0]["test"]
    idx = np.concatenate([np.flatnonzero(test.labels == c)[:10] for c in range(10)])
    return test.images[idx], test.labels[idx]


def test_layout_and_metadata(run, exported):
    assert (exported / "saved_model.pb").is_file() and (exported / "variables").is_dir()
    assert exported.stat().st_mode & 0o755 == 0o755  # Readable by a server running as another user.
    meta = json.loads((exported / "assets.extra" / "fmnist.json").read_text())
    assert meta["step"] == 200 and meta["checkpoint"].endswith("ckpt-200") and meta["weights"] == "model"
    assert meta["class_names"][9] == "Ankle boot" and meta["config"]["model"] == "seed_cnn"
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # No temporary folder left.


def test_savedmodel_alone_matches_keras(run, exported, test_images, tmp_path):
    """A fresh process importing only TensorFlow and numpy gets the Keras model's classes and probabilities."""
    images, labels = test_images
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "pngs").mkdir()
    for i, image in enumerate(images):
        (tmp_path / "pngs" / f"{i:03d}.png").write_bytes(png(image[..., 0]))
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import numpy as np
        import tensorflow as tf
        model = tf.saved_model.load({str(exported)!r})
        images = np.load({str(tmp_path / 'images.npy')!r})
        data = [p.read_bytes() for p in sorted(Path({str(tmp_path / 'pngs')!r}).iterdir())]
        default = model.signatures["serving_default"](images=tf.constant(images))
        rank3 = model.signatures["classify_images"](images=tf.constant(images[..., 0]))
        encoded = model.signatures["classify_bytes"](image_bytes=tf.constant(data))
        converted = model.signatures["preprocess_bytes"](image_bytes=tf.constant(data))["images"]
        assert not [m for m in sys.modules if m.split(".")[0] == "fmnist"], "the SavedModel imported fmnist"
        np.savez({str(tmp_path / 'out.npz')!r}, ids=default["class_ids"].numpy(), names=default["class_names"].numpy(),
                 probs=default["probabilities"].numpy(), probs3=rank3["probabilities"].numpy(),
                 bytes_ids=encoded["class_ids"].numpy(), bytes_probs=encoded["probabilities"].numpy(),
                 converted=converted.numpy(), names_var=model.class_names.numpy())
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz", allow_pickle=True)

    model, _, _ = export.load_model(run)
    expected = tf.nn.softmax(model(normalize(images), training=False)).numpy()
    np.testing.assert_allclose(out["probs"], expected, atol=1e-5)
    np.testing.assert_array_equal(out["ids"], expected.argmax(-1))
    assert [n.decode() for n in out["names"]] == [export.CLASS_NAMES[i] for i in expected.argmax(-1)]
    assert [n.decode() for n in out["names_var"]] == list(export.CLASS_NAMES)
    assert (out["ids"] == labels).mean() > 0.7  # A trained model, not noise.
    np.testing.assert_array_equal(out["probs3"], out["probs"])
    # The bytes signature converts a 28x28 grayscale PNG back to exactly the same pixels.
    np.testing.assert_array_equal(out["converted"], images)
    np.testing.assert_array_equal(out["bytes_ids"], out["ids"])
    np.testing.assert_allclose(out["bytes_probs"], out["probs"], atol=1e-6)


def test_conversion_of_lossless_variants_is_exact(exported, test_images):
    """Colour, light background, upscaling, non-square crops and transparency all come back to the original."""
    images = test_images[0][::5, ..., 0]
    convert = tf.saved_model.load(str(exported)).signatures["preprocess_bytes"]

    def crop(a):  # Drops the same number of empty columns on both sides: the fit pads them back.
        empty = np.flatnonzero(a.max(axis=0) > 0)
        k = min(empty[0], 27 - empty[-1])
        return a[:, k:28 - k]

    up = np.ones((4, 4), np.uint8)
    variants = {
        "gray": lambda a: a,
        "rgb": lambda a: np.repeat(a[..., None], 3, -1),
        "light background": lambda a: 255 - a,
        "4x upscaled rgb, light background": lambda a: np.repeat(np.kron(255 - a, up)[..., None], 3, -1),
        "non-square 4x upscaled": lambda a: np.kron(crop(a), up),
        "dark ink on transparent": lambda a: np.stack([np.zeros_like(a)] * 3 + [a], -1),
        "gray + alpha, opaque": lambda a: np.stack([a, np.full_like(a, 255)], -1),
    }
    for name, make in variants.items():
        data = tf.constant([png(make(a)) for a in images])
        np.testing.assert_array_equal(convert(image_bytes=data)["images"].numpy()[..., 0], images, err_msg=name)


def test_conversion_fits_and_pads():
    """A wide light photo: inverted, long side scaled to 28, centred on black."""
    photo = np.full((60, 120, 3), 250, np.uint8)
    photo[20:40, 10:110] = (30, 60, 90)  # A dark bar on a light background.
    out = export.decode_to_fashion_mnist(tf.constant(png(photo))).numpy()[..., 0]
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert (out[:7] == 0).all() and (out[21:] == 0).all()  # 14 rows of image centred: 7 rows of padding each side.
    assert out[14, 14] > 180 and out[8, 14] < 20  # The bar is light, its surroundings dark.


def test_large_jpegs_are_decoded_at_reduced_scale():
    photo = np.zeros((1120, 840), np.uint8)
    photo[100:1000, 200:600] = 200
    decoded = export.decode(tf.constant(_jpeg(photo))).numpy()
    assert decoded.shape == (560, 420, 1) and export.jpeg_scale(840) == 2 and export.jpeg_scale(511) == 1
    assert export.jpeg_scale(2048) == 8 and export.jpeg_scale(100_000) == 8
    assert abs(int(decoded[300, 200, 0]) - 200) < 10 and decoded[10, 10, 0] < 10
    assert export.decode(tf.constant(png(photo))).shape == (1120, 840, 1)  # PNGs at full size.


def _jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "JPEG", quality=90)
    return out.getvalue()


def test_bytes_signature_refuses_other_formats_and_huge_headers():
    header = png(np.zeros((8, 8), np.uint8))
    huge = header[:16] + (100_000).to_bytes(4, "big") + (100_000).to_bytes(4, "big") + header[24:]
    for data, reason in ((b"", "not a PNG or JPEG"), (b"GIF89a......", "not a PNG or JPEG"),
                         (huge, "more than 50,000,000 pixels")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=reason):
            export.decode_to_fashion_mnist(tf.constant(data))


def test_versions_checkpoint_choice_and_errors(run, exported, tmp_path):
    assert export.export(run) == run / "export" / "2"  # The next version, after the command line's 1.
    earlier = export.export(run, output=tmp_path / "serving", version=7, checkpoint="100")
    assert earlier == tmp_path / "serving" / "7"
    assert json.loads((earlier / "assets.extra" / "fmnist.json").read_text())["step"] == 100
    images = tf.zeros([2, 28, 28, 1], tf.uint8) + 100
    latest = tf.saved_model.load(str(exported)).signatures["classify_images"](images=images)["probabilities"]
    older = tf.saved_model.load(str(earlier)).signatures["classify_images"](images=images)["probabilities"]
    assert not np.allclose(latest.numpy(), older.numpy(), atol=1e-4)

    with pytest.raises(UserError, match="already exists"):
        export.export(run, output=tmp_path / "serving", version=7)
    with pytest.raises(UserError, match="available in .*ckpt-100, ckpt-200"):
        export.export(run, checkpoint="150")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError, match="cannot write to"):
        export.export(run, output=tmp_path / "a_file" / "export")
    other = tmp_path / "other_model"
    other.mkdir()
    config = json.loads((run / "config.json").read_text()) | {"model": "bn_cnn"}
    (other / "config.json").write_text(json.dumps(config))
    shutil.copytree(run / "checkpoints", other / "checkpoints")
    with pytest.raises(UserError, match="does not fit the model"):
        export.export(other)
    assert sorted(p.name for p in (tmp_path / "serving").iterdir()) == ["7"]


def test_command_line_errors_are_one_line(run, tmp_path):
    empty = tmp_path / "untrained"
    empty.mkdir()
    shutil.copy(run / "config.json", empty / "config.json")
    proc = run_module("fmnist.export", f"--workdir={empty}")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fmnist: error:")]
    assert len(errors) == 1 and "holds no checkpoint: train first" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (empty / "export").exists()
