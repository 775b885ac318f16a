"""fmnist.predict on real files: test images saved as PNG and JPEG, in colour, larger, on a light background, come
back to the model's own predictions; bad files get one line each and the rest still run."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from PIL import Image

from fmnist.data.pipeline import normalize
from fmnist.errors import UserError
from fmnist.export import formats as export
from fmnist.predict import classify as predict

UP = np.ones((4, 4), np.uint8)


def _symmetric_crop(a: np.ndarray) -> np.ndarray:
    """Drops the same number of empty columns on both sides (the 28x28 fit pads them back)."""
    filled = np.flatnonzero(a.max(axis=0) > 0)
    k = min(filled[0], 27 - filled[-1])
    return a[:, k:28 - k]


# name: (suffix, make image from a uint8 [28,28] test image, PIL save options). Lossless ones must match exactly.
LOSSLESS = {
    "gray28": (".png", lambda a: a, {}),
    "rgb28": (".png", lambda a: np.repeat(a[..., None], 3, -1), {}),
    "light_background28": (".png", lambda a: 255 - a, {}),
    "rgb112_light_background": (".png", lambda a: np.repeat(np.kron(255 - a, UP)[..., None], 3, -1), {}),
    "nonsquare112": (".png", lambda a: np.kron(_symmetric_crop(a), UP), {}),
    "ink_on_transparent": (".png", lambda a: np.stack([np.zeros_like(a)] * 3 + [a], -1), {}),
}
LOSSY = {
    "jpeg28": (".jpg", lambda a: a, {"quality": 90}),
    "jpeg112_rgb_light_background": (".jpg", lambda a: np.repeat(np.kron(255 - a, UP)[..., None], 3, -1),
                                     {"quality": 90}),
    "png100_bilinear": (".png", lambda a: np.asarray(Image.fromarray(a).resize((100, 100), Image.BILINEAR)), {}),
}


def encode(array: np.ndarray, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **options)
    return out.getvalue()


def huge_png(width: int, height: int) -> bytes:
    """A real, all-black grayscale PNG of width x height pixels: a few hundred KB to write, gigabytes to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), b"\0" * (width + 1)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def run_predict(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # As a user runs it.
    return subprocess.run([sys.executable, "-m", "fmnist.predict", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def run(trained_smoke) -> Path:
    return trained_smoke


@pytest.fixture(scope="module")
def serving(run, tmp_path_factory) -> Path:
    """An export root with one version."""
    root = tmp_path_factory.mktemp("predict") / "serving"
    export.export(run, output=root)
    return root


@pytest.fixture(scope="module")
def originals(splits) -> np.ndarray:
    """Three test images of every class, uint8 [30,28,28]."""
    test = splits[0]["test"]
    return test.images[np.concatenate([np.flatnonzero(test.labels == c)[:3] for c in range(10)]), ..., 0]


@pytest.fixture(scope="module")
def expected(run, originals) -> np.ndarray:
    """The trained Keras model's probabilities for the 28x28 originals."""
    model, _, _ = export.load_model(run)
    return tf.nn.softmax(model(normalize(originals[..., None]), training=False)).numpy()


@pytest.fixture(scope="module")
def photos(originals, tmp_path_factory) -> Path:
    """photos/<variant>/<index><suffix> for every variant of every original."""
    root = tmp_path_factory.mktemp("photos")
    for name, (suffix, make, options) in (LOSSLESS | LOSSY).items():
        (root / name).mkdir()
        fmt = "JPEG" if suffix == ".jpg" else "PNG"
        for i, a in enumerate(originals):
            (root / name / f"{i:02d}{suffix}").write_bytes(encode(make(a), fmt, **options))
    return root


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("bad")
    good_png = encode(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8), "PNG")  # Header intact.
    files = {"empty.png": b"", "notes.txt": b"not an image\n", "text_named.jpg": b"hello, world\n" * 20,
             "truncated.png": good_png[:len(good_png) // 2], "huge.png": huge_png(7500, 7500)}
    for name, data in files.items():
        (root / name).write_bytes(data)
    return [root / name for name in files]


@pytest.fixture(scope="module")
def json_run(serving, photos, bad_files) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    """One predict run over the photos folder (recursively) and the bad files, JSON out."""
    proc = run_predict(f"--model={serving}", "--json", "--top_k=3", str(photos), *map(str, bad_files))
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    return proc, {r["file"]: r for r in records}


def _probabilities(records: dict, photos: Path, variant: str) -> np.ndarray:
    suffix = (LOSSLESS | LOSSY)[variant][0]
    return np.array([records[str(photos / variant / f"{i:02d}{suffix}")]["probabilities"] for i in range(30)])


def test_lossless_photos_get_the_models_own_predictions(json_run, photos, expected):
    proc, records = json_run
    gray = _probabilities(records, photos, "gray28")
    np.testing.assert_allclose(gray, expected, atol=1e-5)
    for variant in LOSSLESS:
        probs = _probabilities(records, photos, variant)
        np.testing.assert_array_equal(probs.argmax(-1), expected.argmax(-1), err_msg=variant)
        np.testing.assert_allclose(probs, gray, atol=1e-5, err_msg=variant)
    record = records[str(photos / "gray28" / "00.png")]
    assert [t["class_id"] for t in record["top_k"]] == list(np.argsort(-expected[0])[:3])
    assert record["class_name"] == export.CLASS_NAMES[record["class_id"]] == record["top_k"][0]["class_name"]


def test_jpeg_and_resampled_photos_mostly_agree(json_run, photos, expected):
    _, records = json_run
    for variant in LOSSY:
        agree = (_probabilities(records, photos, variant).argmax(-1) == expected.argmax(-1)).sum()
        assert agree >= 27, f"{variant}: only {agree} of 30 agree with the 28x28 originals"


def test_bad_files_get_one_line_each_and_the_rest_run(json_run, photos, bad_files):
    proc, records = json_run
    assert proc.returncode == 1
    good = [str(p) for p in sorted(photos.rglob("*")) if p.is_file()]
    assert [r["file"] for r in records.values()] == good + [str(p) for p in bad_files]  # In order, all of them.
    assert all("probabilities" in records[f] for f in good)
    lines = proc.stderr.splitlines()
    reasons = {"empty.png": "empty file", "notes.txt": "not an image", "text_named.jpg": "not an image",
               "truncated.png": "Invalid PNG data", "huge.png": "56.2 megapixels"}
    for path in bad_files:
        mentions = [line for line in lines if str(path) in line]
        assert len(mentions) == 1, (path, proc.stderr[-3000:])
        assert mentions[0].startswith(f"fmnist: error: {path}: ") and reasons[path.name] in mentions[0]
        assert reasons[path.name] in records[str(path)]["error"]
    assert f"fmnist: {len(bad_files)} of {len(good) + len(bad_files)} files failed" in lines
    assert "Traceback" not in proc.stderr


def test_text_output_from_a_version_folder(serving, photos, expected):
    files = [photos / "gray28" / "00.png", photos / "jpeg112_rgb_light_background" / "03.jpg"]
    proc = run_predict(f"--model={serving / '1'}", "--top_k=2", *map(str, files))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line, path in zip(lines, files, strict=True):
        assert re.fullmatch(rf"{re.escape(str(path))}: [A-Za-z/ -]+ \(\d+\.\d%\), [A-Za-z/ -]+ \(\d+\.\d%\)", line)
    assert lines[0].split(": ")[1].startswith(export.CLASS_NAMES[int(expected[0].argmax())] + " (")


def test_predict_equals_the_bytes_signature(json_run, serving, photos):
    """What a server running classify_bytes on the same files answers."""
    _, records = json_run
    files = sorted(p for p in photos.rglob("*") if p.is_file())
    classify = tf.saved_model.load(str(serving / "1")).signatures["classify_bytes"]
    probs = classify(image_bytes=tf.constant([p.read_bytes() for p in files]))["probabilities"].numpy()
    # 1e-5: the batch's composition changes oneDNN's float rounding (seen: 1.2e-6).
    np.testing.assert_allclose(probs, [records[str(p)]["probabilities"] for p in files], atol=1e-5)


def test_read_image_limits_and_conversions(tmp_path, originals, serving):
    preprocess = tf.saved_model.load(str(serving / "1")).signatures["preprocess_bytes"]
    (tmp_path / "huge.png").write_bytes(huge_png(4000, 3000))
    with pytest.raises(predict.ImageError, match="12.0 megapixels is too large .limit 10 megapixels"):
        predict.read_image(tmp_path / "huge.png", max_pixels=10_000_000)
    # A large JPEG goes as it is: classify_bytes decodes it at half scale, so it is refused only beyond that.
    upright = np.kron(255 - originals[0], np.ones((40, 30), np.uint8))  # 1120 x 840, light background.
    (tmp_path / "big.jpg").write_bytes(encode(upright, "JPEG", quality=90))
    assert predict.read_image(tmp_path / "big.jpg") == (tmp_path / "big.jpg").read_bytes()
    with pytest.raises(predict.ImageError, match="too large even at 1/2 scale"):
        predict.read_image(tmp_path / "big.jpg", max_pixels=200_000)
    # A JPEG stored sideways with an EXIF orientation is turned upright, at the scale classify_bytes would use.
    exif = Image.Exif()
    exif[predict.EXIF_ORIENTATION] = 6  # "Rotate 90 degrees clockwise to view".
    Image.fromarray(np.rot90(upright, 1)).save(tmp_path / "phone.jpg", "JPEG", quality=90, exif=exif)
    fixed = predict.read_image(tmp_path / "phone.jpg")
    assert Image.open(io.BytesIO(fixed)).size == (420, 560)
    as_phone, as_upright = preprocess(image_bytes=tf.constant([fixed, (tmp_path / "big.jpg").read_bytes()]))["images"]
    assert np.abs(as_phone.numpy().astype(int) - as_upright.numpy()).max() <= 8
    # Formats other than PNG and JPEG are decoded by PIL and sent as lossless PNG.
    small = np.kron(originals[0], UP)
    Image.fromarray(small).save(tmp_path / "item.gif")
    data = predict.read_image(tmp_path / "item.gif")
    assert data.startswith(b"\x89PNG") and (np.asarray(Image.open(io.BytesIO(data)).convert("L")) == small).all()
    with pytest.raises(UserError, match="neither a SavedModel nor an export root"):
        predict.resolve_model_dir(str(tmp_path))


def test_tflite_and_onnx_files_answer_as_the_savedmodel(json_run, photos, bad_files, exported_files):
    """The same files through the .tflite, int8 .tflite and .onnx exports: the same records in the same order, the
    same reasons for the bad files, the float formats' probabilities to 1e-4, the int8 file's classes mostly."""
    _, saved = json_run
    files = predict.find_images([str(photos), *map(str, bad_files)])
    for name, path in exported_files.items():
        model = predict.load_classifier(str(path))
        assert model.class_names == list(export.CLASS_NAMES)
        results = list(predict.classify_files(model, files))
        assert [r.file for r in results] == list(saved), name
        assert [r.error for r in results] == [saved[r.file].get("error") for r in results], name
        good = [r for r in results if r.error is None]
        probs = np.array([r.probabilities for r in good])
        expected = np.array([saved[r.file]["probabilities"] for r in good])
        if name == "litert_int8":
            assert (probs.argmax(-1) == expected.argmax(-1)).mean() >= 0.95
            assert np.abs(probs - expected).max() < 0.1
        else:
            np.testing.assert_allclose(probs, expected, atol=1e-4, err_msg=name)


def test_command_line_on_a_tflite_file(json_run, photos, bad_files, exported_files):
    _, saved = json_run
    files = [photos / "gray28" / "00.png", photos / "jpeg112_rgb_light_background" / "03.jpg", bad_files[3]]
    proc = run_predict(f"--model={exported_files['litert']}", "--json", "--top_k=3", *map(str, files))
    assert proc.returncode == 1, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["file"] for r in records] == list(map(str, files))
    for record in records:
        reference = saved[record["file"]]
        assert record.keys() == reference.keys()
        if "error" in record:
            assert record["error"] == reference["error"]
        else:
            assert [t["class_id"] for t in record["top_k"]] == [t["class_id"] for t in reference["top_k"]]
            np.testing.assert_allclose(record["probabilities"], reference["probabilities"], atol=1e-4)
    ours = [line for line in proc.stderr.splitlines() if line.startswith("fmnist:")]
    reason = saved[str(bad_files[3])]["error"]
    assert ours == [f"fmnist: error: {bad_files[3]}: {reason}", "fmnist: 1 of 3 files failed"]
    assert "Traceback" not in proc.stderr and "XNNPACK" not in proc.stderr


def test_bad_model_files_are_one_line(tmp_path, exported_files):
    (tmp_path / "garbage.tflite").write_bytes(b"not a model")
    shutil.copy(exported_files["onnx"], tmp_path / "onnx_named.tflite")
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    for name, message in (("garbage.tflite", "cannot load .* as a LiteRT model"),
                          ("onnx_named.tflite", "cannot load .* as a LiteRT model"),
                          ("garbage.onnx", "cannot load .* as an ONNX model .*Protobuf parsing"),
                          ("missing.onnx", "no such file: .*missing.onnx; export one with"),
                          ("model.keras", "neither a SavedModel nor an export root .*nor a .tflite or .onnx file")):
        with pytest.raises(UserError, match=message):
            predict.load_classifier(str(tmp_path / name))
