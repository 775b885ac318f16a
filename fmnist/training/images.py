"""Pictures and text for TensorBoard, drawn with PIL: confusion matrix, captioned image grids, model summary.

Every image function returns uint8 [1,H,W,3], ready for `tf.summary.image(name, image, step=step)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND, INK, GRID = (255, 255, 255), (20, 20, 20), (200, 200, 200)
WRONG = (200, 30, 30)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Scalable when Pillow has FreeType.
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _text_width(font, text: str) -> int:
    return max((math.ceil(font.getlength(line)) for line in text.split("\n")), default=0)


def _batch(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)[None]


def confusion_matrix_image(confusion, class_names: Sequence[str], cell: int = 44) -> np.ndarray:
    """Confusion matrix [K,K] (rows true, columns predicted) as a heat map with counts: uint8 [1,H,W,3].

    The colour of a cell is its share of the row (the true class), so rows of any size compare.
    """
    counts = np.asarray(confusion, dtype=np.int64)
    k = counts.shape[0]
    if counts.shape != (k, k) or len(class_names) != k:
        raise ValueError(f"confusion must be [K,K] with K={len(class_names)} class names, got {counts.shape}")
    font, small = _font(13), _font(11)
    label_w = max(_text_width(font, n) for n in class_names) + 12
    left, top = label_w + 18, label_w + 18  # Room for the row labels and the rotated column labels.
    width, height = left + k * cell + 10, top + k * cell + 10
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    for i in range(k):
        for j in range(k):
            x0, y0 = left + j * cell, top + i * cell
            s = float(shares[i, j])
            colour = (int(255 - 225 * s), int(255 - 160 * s), int(255 - 60 * s)) if i == j else \
                (int(255 - 40 * s), int(255 - 215 * s), int(255 - 215 * s))  # Diagonal blue, errors red.
            draw.rectangle([x0, y0, x0 + cell, y0 + cell], fill=colour, outline=GRID)
            text = str(counts[i, j])
            ink = (255, 255, 255) if s > 0.55 else INK
            draw.text((x0 + (cell - small.getlength(text)) / 2, y0 + cell / 2 - 6), text, fill=ink, font=small)
        draw.text((left - 6 - font.getlength(class_names[i]), top + i * cell + cell / 2 - 7), class_names[i],
                  fill=INK, font=font)
    # Column labels: drawn horizontally on a strip, rotated to read bottom-up.
    strip = Image.new("RGB", (label_w, k * cell), BACKGROUND)
    strip_draw = ImageDraw.Draw(strip)
    for j, name in enumerate(class_names):
        strip_draw.text((label_w - 6 - font.getlength(name), j * cell + cell / 2 - 7), name, fill=INK, font=font)
    image.paste(strip.rotate(90, expand=True), (left, 18))
    draw.text((4, top - 30), "rows: true\ncolumns: predicted", fill=INK, font=small)
    return _batch(image)


def image_grid(images, captions: Sequence[str], scale: int = 3, columns: int = 0,
               highlight_last_line: bool = False) -> np.ndarray:
    """Images uint8 [N,H,W,1] (or [N,H,W]) in a grid, each scaled up `scale` times with its caption under it
    (captions may hold several lines; the last one in red if `highlight_last_line`): uint8 [1,H',W',3]."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    font = _font(11)
    if not len(images):
        image = Image.new("RGB", (120, 30), BACKGROUND)
        ImageDraw.Draw(image).text((6, 8), "(no images)", fill=INK, font=font)
        return _batch(image)
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    side = images.shape[1] * scale
    lines = max(c.count("\n") + 1 for c in captions)
    cell_w = max(side, max(_text_width(font, c) for c in captions)) + 8
    cell_h = side + 13 * lines + 8
    grid = Image.new("RGB", (columns * cell_w, rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for n, (picture, caption) in enumerate(zip(images, captions, strict=True)):
        x0, y0 = (n % columns) * cell_w, (n // columns) * cell_h
        tile = Image.fromarray(np.asarray(picture, dtype=np.uint8), mode="L").resize((side, side), Image.NEAREST)
        grid.paste(tile, (x0 + (cell_w - side) // 2, y0 + 4))
        caption_lines = caption.split("\n")
        for i, line in enumerate(caption_lines):
            colour = WRONG if highlight_last_line and i == len(caption_lines) - 1 else INK
            draw.text((x0 + (cell_w - font.getlength(line)) / 2, y0 + side + 6 + 13 * i), line, fill=colour,
                      font=font)
    return _batch(grid)


def predict_classes(model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class ids [N] that `model` (logits from normalised images) predicts for uint8 images [N,28,28,1]."""
    from fmnist.data.pipeline import normalize

    out = [np.argmax(model(normalize(images[i:i + batch_size]), training=False), axis=-1)
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros([0], np.int64)


def misclassified_grid(model, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                       max_images: int = 36, scan: int = 2000) -> np.ndarray:
    """The first `max_images` of the first `scan` examples that `model` gets wrong, captioned 'true / predicted'
    (the prediction in red): uint8 [1,H,W,3]. E.g. images, labels = exp.splits['test'].images, .labels."""
    images, labels = images[:scan], labels[:scan]
    predicted = predict_classes(model, images)
    wrong = np.flatnonzero(predicted != labels)[:max_images]
    captions = [f"{class_names[labels[i]]}\n{class_names[predicted[i]]}" for i in wrong]
    return image_grid(images[wrong], captions, columns=min(len(wrong), 9) or 1, highlight_last_line=True)


def model_summary_text(model) -> str:
    """A markdown table of the model's layers (type, output shape, dtype policy, parameters) with totals, for
    tf.summary.text."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    total = model.count_params()
    rows = ["| layer | type | output shape | dtype policy | parameters |", "| --- | --- | --- | --- | ---: |"]
    for layer in model.layers:
        try:
            shape = str(tuple(layer.output.shape))
        except (AttributeError, ValueError):
            shape = "?"
        policy = getattr(getattr(layer, "dtype_policy", None), "name", "?")
        params = layer.count_params() if layer.built else 0
        rows.append(f"| {layer.name} | {type(layer).__name__} | {shape} | {policy} | {params:,} |")
    inputs = tuple(model.input_shape) if hasattr(model, "input_shape") else "?"
    head = (f"**{model.name}**: {total:,} parameters ({trainable:,} trainable, {total - trainable:,} not), "
            f"input {inputs}")
    return "\n".join([head, "", *rows])
