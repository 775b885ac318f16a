"""Classifies photos with an exported model: python -m fmnist.predict --model=PATH IMAGE_OR_DIR... [--json] [--top_k=K]

PATH is an export root (its highest numbered version is used), one SavedModel version folder, or a .tflite or .onnx
file (python -m fmnist.export --format=litert|onnx). Images may be any size, colour or grayscale, PNG or JPEG (also
GIF, BMP, WebP, TIFF); folders are searched recursively for image files. A SavedModel gets each image through its
`classify_bytes` signature, which converts it the way Fashion-MNIST was made (fmnist.predict.photo_conversion), so
predictions here equal those of a server running the same SavedModel. For a .tflite or .onnx file the same
TensorFlow ops convert the image, then the LiteRT interpreter or ONNX Runtime classifies the pixels.
Before that, this program reads each file's header with PIL: it refuses files that are empty, not images, or too
large (over 50 megapixels once decoded; JPEGs are decoded at 1/2 to 1/8 scale when large), and converts JPEGs with
an EXIF rotation (upright) and formats other than PNG and JPEG to lossless PNG.
A file that fails gets one line on stderr and the others still run; the exit code is 1 if any file failed.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from fmnist.errors import exit_on_user_error
from fmnist.predict.classify import classify_files, describe, find_images, load_classifier
from fmnist.runtime import console


def define_flags() -> None:
    """Defined on demand, not at import, so that importing this module defines no flags."""
    flags.DEFINE_string("model", None, "Export root (highest version used), a SavedModel version folder, "
                        "or a .tflite or .onnx file.")
    flags.DEFINE_bool("json", False, "Print one JSON object per file (errors too) instead of text.")
    flags.DEFINE_integer("top_k", 1, "How many classes to print per image.", lower_bound=1, upper_bound=10)
    flags.DEFINE_integer("batch_size", 64, "Images per call of the model.", lower_bound=1)
    flags.mark_flag_as_required("model")


@exit_on_user_error
def main(argv: list[str]) -> int:
    if len(argv) < 2:
        raise app.UsageError("give at least one image file or folder")
    console.configure()  # Before TensorFlow loads: no C++ log lines per bad file, only fmnist's lines.
    f = flags.FLAGS
    model = load_classifier(f.model)
    files = find_images(argv[1:])
    names = model.class_names or [str(i) for i in range(10)]
    failed = 0
    for result in classify_files(model, files, f.batch_size):
        if result.error is not None:
            failed += 1
            print(f"fmnist: error: {result.file}: {result.error}", file=sys.stderr, flush=True)
            if f.json:
                print(json.dumps({"file": result.file, "error": result.error}), flush=True)
            continue
        record = describe(result, names, f.top_k)
        if f.json:
            print(json.dumps(record), flush=True)
        else:
            top = ", ".join(f"{t['class_name']} ({t['probability']:.1%})" for t in record["top_k"])
            print(f"{result.file}: {top}", flush=True)
    if failed:
        print(f"fmnist: {failed} of {len(files)} files failed", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
