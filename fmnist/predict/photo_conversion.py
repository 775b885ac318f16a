"""Photos to Fashion-MNIST images, in TensorFlow ops (so that they can be part of a SavedModel).

`decode_to_fashion_mnist` turns one encoded PNG or JPEG of any size and colour into a uint8 [28,28,1] image the way
Fashion-MNIST was made; `convert_photos` does it for a batch. The SavedModel's classify_bytes signature and
`fmnist.predict` (for .tflite and .onnx models) both use them, so every format sees the same pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # TensorFlow loads lazily, so that command lines report a mistake at once.
    import tensorflow as tf

IMAGE_SIZE = 28
MAX_PIXELS = 50_000_000  # Larger decoded images are refused (read from the header, before decoding).
JPEG_MIN_SIDE = 256      # JPEGs are decoded at the smallest 1/2^k scale (k <= 3) that keeps the short side this long.
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # ITU-R BT.601 luma, as tf.image.rgb_to_grayscale.
PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"


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


def convert_photos(image_bytes: tf.Tensor) -> tf.Tensor:
    """Encoded PNG or JPEG photos (string [N]) to Fashion-MNIST images uint8 [N,28,28,1]."""
    import tensorflow as tf

    return tf.map_fn(decode_to_fashion_mnist, image_bytes,
                     fn_output_signature=tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE, 1], tf.uint8))
