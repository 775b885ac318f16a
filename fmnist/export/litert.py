"""The LiteRT export: one .tflite file for the LiteRT interpreter (pip ai-edge-litert), phones and edge devices.

Input uint8 pixels [N,28,28,1] (0-255, Fashion-MNIST style), output float32 probabilities [N,10]; the
standardisation is inside. Written by Keras's `model.export(format="litert")`, which runs TensorFlow's LiteRT
converter; `quantize="int8"` passes it the settings of full-integer post-training quantisation:
- weights and activations int8, calibrated on CALIBRATION_IMAGES training images (from the run's data_dir);
- the input is uint8 with scale 1 and zero point 0, so it takes the raw pixels (no float op before the first
  convolution);
- the output is dequantised to float32 probabilities (steps of 1/256: the softmax runs in int8).
"""

from __future__ import annotations

from pathlib import Path

from fmnist.export.file_export import check_reproduces, probabilities_model, reference_probabilities, write_atomically

REQUIRES = {"ai_edge_litert": "ai-edge-litert"}  # To check the written file with the runtime users deploy on.
QUANTIZE = ("none", "int8")
CALIBRATION_IMAGES = 300  # Training images the int8 ranges are calibrated on (seeded choice).
CHECK_IMAGES = 200        # Other training images the int8 file is checked on.
MIN_AGREEMENT = 0.95      # Share of CHECK_IMAGES on which the int8 file must pick the float model's class.


def export(model, path: Path, quantize: str = "none", data_dir: str | None = None) -> None:
    """Writes `model` (float32 logits from standardised images) to the .tflite file `path`, atomically. `data_dir`:
    the run's TFDS data dir (config.data_dir; None: the default), where int8 takes its training images from."""
    if quantize == "int8":
        calibration, held_out = training_images(data_dir)
        write_atomically(path, lambda tmp: _write_int8(model, tmp, calibration),
                         lambda tmp: _check_int8(tmp, model, held_out))
    else:
        write_atomically(path, lambda tmp: probabilities_model(model).export(str(tmp), format="litert", verbose=False),
                         lambda tmp: check_reproduces(tmp, model))


def training_images(data_dir: str | None = None):
    """(CALIBRATION_IMAGES, CHECK_IMAGES) distinct training images of the dataset in `data_dir`, uint8 [N,28,28,1],
    chosen with a fixed seed."""
    import numpy as np

    from fmnist.data import dataset

    images = dataset.load(data_dir or None)[0]["train"].images
    order = np.random.default_rng(0).permutation(len(images))
    return images[order[:CALIBRATION_IMAGES]], images[order[CALIBRATION_IMAGES:CALIBRATION_IMAGES + CHECK_IMAGES]]


def _write_int8(model, path: Path, calibration) -> None:
    import numpy as np
    import tensorflow as tf

    def representative_dataset():
        for image in calibration:
            yield [image[None].astype(np.float32)]

    # Float pixels in, quantised to uint8 by the converter: with the calibration's range 0-255 that is scale 1.
    probabilities_model(model, input_dtype="float32").export(
        str(path), format="litert", verbose=False, optimizations=[tf.lite.Optimize.DEFAULT],
        representative_dataset=representative_dataset,
        target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}, inference_input_type=tf.uint8)


def _check_int8(path: Path, model, images) -> None:
    from fmnist.predict import runtimes

    got = runtimes.load(path)(images).argmax(-1)
    agreement = (got == reference_probabilities(model, images).argmax(-1)).mean()
    if agreement < MIN_AGREEMENT:
        raise RuntimeError(f"the int8 model written to {path} picks the float model's class on only "
                           f"{agreement:.1%} of {len(images)} training images")
