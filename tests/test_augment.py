"""Batch augmentation: shapes, example order, determinism, and what each transform may change."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from fmnist.data import augment

ALL_ON = {"crop_padding": 3, "flip": True, "erasing": 0.5}
OFF = {"crop_padding": 0, "flip": False, "erasing": 0.0}


@pytest.fixture(scope="module")
def batch(splits):
    data, _ = splits
    return data["train"].images[:64]


def run(images, step=1, **options):
    opts = OFF | options
    return augment.augment_batch(tf.constant(images), augment.batch_seed(0, step), **opts).numpy()


def shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """image translated so that out[y, x] = image[y + dy, x + dx], zero outside."""
    h, w = image.shape[:2]
    p = max(abs(dy), abs(dx))
    padded = np.pad(image, [(p, p), (p, p), (0, 0)])
    return padded[p + dy:p + dy + h, p + dx:p + dx + w]


@pytest.mark.parametrize("options", [{"crop_padding": 2}, {"flip": True}, {"erasing": 1.0}, ALL_ON])
def test_shape_and_dtype_kept(batch, options):
    out = run(batch, **options)
    assert out.shape == batch.shape and out.dtype == np.uint8


def test_everything_off_is_identity(batch):
    assert np.array_equal(run(batch), batch)
    assert not augment.augment_config_active(ml_collections.ConfigDict({"seed": 0}))
    config = ml_collections.ConfigDict({"augment_crop_padding": 0, "augment_flip": True, "augment_erasing": 0.0})
    assert augment.augment_config_active(config)
    assert augment.options_from_config(config) == {"crop_padding": 0, "flip": True, "erasing": 0.0,
                                                   "flip_alternate": False}


def test_flip_keeps_example_order(batch):
    out = run(batch, flip=True)
    same = [np.array_equal(o, x) for o, x in zip(out, batch, strict=True)]
    mirrored = [np.array_equal(o, x[:, ::-1]) for o, x in zip(out, batch, strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 10 < sum(mirrored) < 54  # About half of 64 flipped.


def test_deterministic_per_seed(batch):
    assert np.array_equal(run(batch, step=5, **ALL_ON), run(batch, step=5, **ALL_ON))
    assert not np.array_equal(run(batch, step=5, **ALL_ON), run(batch, step=6, **ALL_ON))
    other_run = augment.augment_batch(tf.constant(batch), augment.batch_seed(1, 5), **ALL_ON).numpy()
    assert not np.array_equal(run(batch, step=5, **ALL_ON), other_run)


def test_crop_is_a_shift_of_the_original(batch):
    p = 2
    out = run(batch, crop_padding=p)
    offsets = []
    for o, x in zip(out, batch, strict=True):
        shifts = [(dy, dx) for dy in range(-p, p + 1) for dx in range(-p, p + 1)]
        matches = [s for s in shifts if np.array_equal(o, shift(x, *s))]
        assert matches, "every crop is the original translated by at most crop_padding pixels"
        offsets.append(matches[0])
    assert len(set(offsets)) > 5  # Offsets vary per example.


def test_crop_and_flip_is_a_shift_or_its_mirror(batch):
    out = run(batch, crop_padding=1, flip=True)
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    mirrored = 0
    for o, x in zip(out, batch, strict=True):
        plain = any(np.array_equal(o, shift(x, *s)) for s in shifts)
        flipped = any(np.array_equal(o, shift(x, *s)[:, ::-1]) for s in shifts)
        assert plain or flipped
        mirrored += flipped and not plain
    assert 10 < mirrored < 54


def test_erasing_changes_at_most_one_rectangle(batch):
    out = run(batch, erasing=1.0)
    changed_examples = 0
    for o, x in zip(out, batch, strict=True):
        ys, xs = np.nonzero((o != x)[..., 0])
        if not len(ys):
            continue
        changed_examples += 1
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert h < 28 and w < 28 and h * w <= 0.4 * 784 * 1.2  # The changed pixels fit in one legal rectangle.
    assert changed_examples >= 60
    half = run(batch, erasing=0.5)
    assert 10 < sum(not np.array_equal(o, x) for o, x in zip(half, batch, strict=True)) < 54


def test_replica_slices_match_the_global_batch(batch):
    """A replica augmenting its rows of the global batch gets what one device augmenting all rows gets."""
    seed = augment.batch_seed(3, 17)
    whole = augment.augment_batch(tf.constant(batch), seed, **ALL_ON).numpy()
    parts = [augment.augment_batch(tf.constant(batch[i:i + 16]), seed, offset=i, global_batch=64, **ALL_ON).numpy()
             for i in range(0, 64, 16)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_works_inside_tf_data(batch):
    ds = tf.data.Dataset.from_tensors(tf.constant(batch)).repeat(2).enumerate()
    ds = ds.map(lambda k, x: augment.augment_batch(x, augment.batch_seed(0, k), **ALL_ON))
    first, second = [b.numpy() for b in ds]
    assert np.array_equal(first, run(batch, step=0, **ALL_ON)) and np.array_equal(second, run(batch, step=1, **ALL_ON))
