"""Batch-level, seeded, stateless data augmentation for tf.data, applied to uint8 images before `normalize`.

Every random draw comes from `tf.random.stateless_*` with seeds split off one [2] seed, so the same (seed, batch)
always gives the same output: a resumed run sees exactly the augmented batches an uninterrupted one would.
All draws are made for the whole global batch and this replica's rows are sliced out (`offset`), so global batch k
is augmented identically whatever the number of workers and replicas (like the batch contents themselves).

  * crop: zero-pad by `crop_padding` pixels, then take a 28x28 window at a random offset per example (a random
    translation by up to `crop_padding` pixels, zero fill: Fashion-MNIST's background is 0).
  * flip: mirror left-right with probability 1/2 per example; with `flip_alternate` (airbench's derandomised flip)
    each example's mirror is a fixed hash of (seed, example index) in even epochs and its negation in odd ones, so
    every image is seen both ways every two epochs (needs the examples' indices and the epoch).
  * random erasing (Zhong et al., 2017): with probability `erasing` per example, one rectangle of area 2%-40% of
    the image and aspect ratio 0.3-3.3 (log-uniform, as torchvision) is filled with uniform random pixel values
    in [0, 255] (the paper's default; zeros would look like background on Fashion-MNIST). As in torchvision, 10
    candidate rectangles are drawn and the first that fits is used; if none fits (about 1e-9), nothing is erased.

Everything is vectorised over the batch (gathers and masks, no per-example loops).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

ERASE_AREA = (0.02, 0.4)
ERASE_ASPECT = (0.3, 1 / 0.3)
ERASE_ATTEMPTS = 10
_ALTERNATE_RANGE = 2**17 - 1  # Example indices the alternating flip's permutation covers.
_AUGMENT_TAG = 0x6175676D  # "augm": keeps augmentation seeds apart from the data-order seeds (seed, epoch).


def options_from_config(config) -> dict:
    """The augment_batch keyword options of a config (missing keys mean off)."""
    return {"crop_padding": int(config.get("augment_crop_padding", 0)),
            "flip": bool(config.get("augment_flip", False)),
            "flip_alternate": bool(config.get("augment_flip_alternate", False)),
            "erasing": float(config.get("augment_erasing", 0.0))}


def augment_config_active(config) -> bool:
    """Whether the config asks for any training augmentation."""
    return options_active(**options_from_config(config))


def options_active(*, crop_padding: int, flip: bool, erasing: float, flip_alternate: bool = False) -> bool:
    del flip_alternate  # A kind of flip: only with `flip`.
    return crop_padding > 0 or flip or erasing > 0


def batch_seed(seed: int | tf.Tensor, step: int | tf.Tensor) -> tf.Tensor:
    """The int64 [2] augmentation seed of global training step `step` of a run seeded `seed`."""
    base = tf.stack([tf.cast(seed, tf.int64), tf.constant(_AUGMENT_TAG, tf.int64)])
    return tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64))


def alternate_mirror(seed: int | tf.Tensor, example_ids: tf.Tensor, epoch: int | tf.Tensor) -> tf.Tensor:
    """bool [b]: whether each example is mirrored in `epoch` under the alternating flip. The even-epoch choice is
    whether a seeded stateless permutation sends the example's index into its lower half (vectorised)."""
    ids = tf.cast(example_ids, tf.int64)
    key = tf.stack([tf.cast(seed, tf.int64), tf.constant(_AUGMENT_TAG + 1, tf.int64)])
    base = tf.random.experimental.index_shuffle(ids, key, _ALTERNATE_RANGE) <= _ALTERNATE_RANGE // 2
    return tf.not_equal(base, tf.equal(tf.math.floormod(tf.cast(epoch, tf.int64), 2), 1))


def augment_batch(images: tf.Tensor, seed: tf.Tensor, *, crop_padding: int, flip: bool, erasing: float,
                  offset: int | tf.Tensor = 0, global_batch: int | None = None, flip_alternate: bool = False,
                  mirror: tf.Tensor | None = None) -> tf.Tensor:
    """Augments uint8 [b, H, W, C] images; returns uint8 [b, H, W, C] in the same example order.

    `seed` is an int64 [2] stateless seed for the whole global batch; `images` are its rows
    offset..offset+b-1 (`global_batch` defaults to b, i.e. the batch is the whole global batch).
    With `flip_alternate`, `mirror` (bool [b], from `alternate_mirror`) says which examples to mirror.
    """
    if not options_active(crop_padding=crop_padding, flip=flip, erasing=erasing):
        return images
    b, offset = tf.shape(images)[0], tf.cast(offset, tf.int32)
    n = b if global_batch is None else global_batch
    crop_seed, flip_seed, erase_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))

    def draw(kind_seed, shape, **kw):  # Draws for the global batch, this replica's rows.
        return tf.random.stateless_uniform([n, *shape], seed=kind_seed, **kw)[offset:offset + b]

    if flip and flip_alternate and mirror is None:
        raise ValueError("flip_alternate needs `mirror` (alternate_mirror of the batch's example ids and epoch)")
    if not flip:
        mirror = None
    elif not flip_alternate:
        mirror = draw(flip_seed, []) < 0.5
    if crop_padding > 0:
        images = _random_crop(images, crop_padding, draw, crop_seed, mirror)
    elif flip:
        images = tf.where(mirror[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if erasing > 0:
        images = _random_erase(images, erasing, draw, erase_seed)
    return images


def _random_crop(images: tf.Tensor, pad: int, draw: Callable, seed: tf.Tensor, mirror: tf.Tensor | None) -> tf.Tensor:
    """Random crops of the zero-padded images, mirrored where `mirror` (the flip, for free in the same gather)."""
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    s_y, s_x = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    dy = draw(s_y, [], minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    dx = draw(s_x, [], minval=0, maxval=2 * pad + 1, dtype=tf.int32)
    xs = tf.range(width)[None]
    if mirror is not None:
        xs = tf.where(mirror[:, None], width - 1 - xs, xs)
    rows = dy[:, None] + tf.range(height)[None]  # [b, H]
    cols = dx[:, None] + xs                      # [b, W]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)    # [b, H, W + 2 pad, C]
    return tf.gather(out, cols, axis=2, batch_dims=1)      # [b, H, W, C]


def _random_erase(images: tf.Tensor, probability: float, draw: Callable, seed: tf.Tensor) -> tf.Tensor:
    height, width = images.shape[1], images.shape[2]
    s_coin, s_area, s_aspect, s_y, s_x, s_fill = tf.unstack(tf.random.experimental.stateless_split(seed, 6))
    area = draw(s_area, [ERASE_ATTEMPTS], minval=ERASE_AREA[0], maxval=ERASE_AREA[1]) * (height * width)
    aspect = tf.exp(draw(s_aspect, [ERASE_ATTEMPTS], minval=math.log(ERASE_ASPECT[0]),
                         maxval=math.log(ERASE_ASPECT[1])))
    h = tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32)
    w = tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32)
    fits = (h < height) & (w < width)                          # [b, attempts], as torchvision.
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)
    h, w = tf.gather(h, first, batch_dims=1), tf.gather(w, first, batch_dims=1)
    apply = (draw(s_coin, []) < probability) & tf.reduce_any(fits, axis=1)
    y0 = tf.cast(draw(s_y, []) * tf.cast(height - h + 1, tf.float32), tf.int32)  # uniform in [0, H - h]
    x0 = tf.cast(draw(s_x, []) * tf.cast(width - w + 1, tf.float32), tf.int32)
    ys, xs = tf.range(height)[None], tf.range(width)[None]
    in_rows = (ys >= y0[:, None]) & (ys < (y0 + h)[:, None])  # [b, H]
    in_cols = (xs >= x0[:, None]) & (xs < (x0 + w)[:, None])  # [b, W]
    mask = in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]
    return tf.where(mask[..., None], _random_pixels(draw, s_fill, images), images)


def _random_pixels(draw: Callable, seed: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
    """Uniform random uint8 pixels shaped like `images`: 4 per uint32 draw, 4x cheaper than int draws."""
    size = math.prod(images.shape[1:])
    words = draw(seed, [-(-size // 4)], minval=None, maxval=None, dtype=tf.uint32)  # [b, ceil(size / 4)]
    pixels = tf.reshape(tf.bitcast(words, tf.uint8), [tf.shape(words)[0], -1])[:, :size]
    return tf.reshape(pixels, tf.shape(images))
