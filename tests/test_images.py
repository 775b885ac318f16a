"""TensorBoard pictures and text: shapes, dtypes, and that they change with their input."""

from __future__ import annotations

import numpy as np
import pytest

from fmnist.export.formats import CLASS_NAMES
from fmnist.models import models
from fmnist.training import images


@pytest.fixture(scope="module")
def test_images(splits) -> tuple[np.ndarray, np.ndarray]:
    test = splits[0]["test"]
    return test.images[:60], test.labels[:60]


def _is_batch_of_one_rgb(image: np.ndarray) -> bool:
    return image.dtype == np.uint8 and image.ndim == 4 and image.shape[0] == 1 and image.shape[-1] == 3


def test_confusion_matrix_image():
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 50, (10, 10)) + np.diag(rng.integers(500, 1000, 10))
    picture = images.confusion_matrix_image(confusion, CLASS_NAMES)
    assert _is_batch_of_one_rgb(picture) and picture.shape[1] > 400 and picture.shape[2] > 400
    assert picture.std() > 10  # Not blank.
    changed = confusion.copy()
    changed[6, 0] += 300
    other = images.confusion_matrix_image(changed, CLASS_NAMES)
    assert other.shape == picture.shape and (other != picture).any()
    assert images.confusion_matrix_image(confusion.tolist(), CLASS_NAMES).shape == picture.shape  # From results.
    with pytest.raises(ValueError, match="confusion must be"):
        images.confusion_matrix_image(confusion[:9], CLASS_NAMES)


def test_image_grid(test_images):
    x, y = test_images
    captions = [f"{CLASS_NAMES[label]}\n#{i}" for i, label in enumerate(y[:10])]
    grid = images.image_grid(x[:10], captions)
    assert _is_batch_of_one_rgb(grid)
    assert grid.shape[1] >= 3 * 84 and grid.shape[2] >= 4 * 84  # 4 columns, 3 rows of 84-pixel tiles.
    np.testing.assert_array_equal(images.image_grid(x[:10, ..., 0], captions), grid)  # [N,28,28] is the same.
    assert (images.image_grid(x[1:11], captions) != grid).any()
    assert (images.image_grid(x[:10], captions[:9] + ["Sneaker\n#0"]) != grid).any()
    assert _is_batch_of_one_rgb(images.image_grid(x[:0], []))
    with pytest.raises(ValueError, match="captions"):
        images.image_grid(x[:3], ["a", "b"])


def test_misclassified_grid(test_images):
    x, _ = test_images
    model = models.build("seed_cnn")
    predicted = images.predict_classes(model, x, batch_size=16)
    assert predicted.shape == (60,)
    none_wrong = images.misclassified_grid(model, x, predicted, CLASS_NAMES)
    all_wrong = images.misclassified_grid(model, x, (predicted + 1) % 10, CLASS_NAMES, max_images=20)
    assert _is_batch_of_one_rgb(none_wrong) and _is_batch_of_one_rgb(all_wrong)
    assert all_wrong.shape[1] > none_wrong.shape[1] and all_wrong.shape[2] >= 9 * 84  # 20 tiles, 9 per row.
    assert all_wrong.shape == images.image_grid(x[:20], ["T-shirt/top\nAnkle boot"] * 20, columns=9).shape


def test_model_summary_text():
    model = models.build("bn_cnn", width=8, depth=1)
    text = images.model_summary_text(model)
    assert text.startswith(f"**bn_cnn**: {model.count_params():,} parameters")
    assert "| layer | type | output shape | dtype policy | parameters |" in text
    for layer in model.layers:
        assert f"| {layer.name} | {type(layer).__name__} |" in text
    assert "(None, 28, 28, 8)" in text and "BatchNormalization" in text
    assert images.model_summary_text(models.build("seed_cnn")) != text
    mixed = images.model_summary_text(models.build("bn_cnn", dtype="mixed_bfloat16", width=8, depth=1))
    assert "| mixed_bfloat16 |" in mixed and "| logits | Dense | (None, 10) | float32 |" in mixed
