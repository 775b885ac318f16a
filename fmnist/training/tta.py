"""Multi-view test-time augmentation (airbench's): each image, its mirror, and both shifted by one pixel up-left
and down-right (edge pixels repeated), 6 views; the prediction averages their softmax probabilities. Reported beside
the plain accuracy (`accuracy_tta_multiview`), never instead of it."""

from __future__ import annotations

import tensorflow as tf


def shift(images: tf.Tensor, dy: int, dx: int) -> tf.Tensor:
    """[b, H, W, C] images moved by (dy, dx) pixels (|dy|, |dx| <= 1), the vacated border filled by its neighbour."""
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    return padded[:, 1 - dy:1 - dy + height, 1 - dx:1 - dx + width]


def views(images: tf.Tensor) -> list[tf.Tensor]:
    """The 6 views: {image, mirror} x {unshifted, up-left, down-right}."""
    out = []
    for x in (images, tf.image.flip_left_right(images)):
        out += [x, shift(x, -1, -1), shift(x, 1, 1)]
    return out


def predict(logits_of, images: tf.Tensor) -> tf.Tensor:
    """Class predictions [b] from the probabilities averaged over the views; `logits_of` maps images to logits."""
    probabilities = tf.add_n([tf.nn.softmax(logits_of(v)) for v in views(images)])
    return tf.argmax(probabilities, -1, output_type=tf.int32)
