"""Exports a training run for serving or deployment:

  python -m fmnist.export --workdir=DIR [--format=saved_model|litert|onnx|all] [--quantize=int8] [--output=PATH]
                          [--version=N] [--checkpoint=STEP|PATH] [--weights=auto|model|ema]

Formats, one module each:
  saved_model  (default) a TensorFlow SavedModel in TF Serving's versioned layout, OUTPUT/<version>/ (OUTPUT default
               WORKDIR/export), with signatures for uint8 images and for encoded photos: fmnist.export.saved_model
  litert       one .tflite file for the LiteRT interpreter, float32, or int8 with --quantize=int8: fmnist.export.litert
  onnx         one .onnx file for ONNX Runtime: fmnist.export.onnx
  all          all four in one process: OUTPUT/<version>/, OUTPUT/model.tflite, model_int8.tflite and model.onnx
               (OUTPUT default WORKDIR/export)
The file formats take uint8 pixels [N,28,28,1] (0-255, Fashion-MNIST style) and return float32 probabilities
[N,10]; OUTPUT is the file (default WORKDIR/export/model.tflite, model_int8.tflite or model.onnx), replaced if it
exists. They need the `export` extra (pip install 'fmnist[export]'). Every format is written to a temporary path,
checked against the Keras model with its runtime, then renamed. `python -m fmnist.predict --model=PATH` runs any.
"""

from __future__ import annotations

from absl import app, flags

from fmnist.errors import exit_on_user_error
from fmnist.export.formats import check_options, export, export_all
from fmnist.export.restore import WEIGHTS
from fmnist.runtime import console


def define_flags() -> None:
    """Defined when run, not at import: fmnist.main defines its own --workdir."""
    flags.DEFINE_string("workdir", None, "A training run's workdir (config.json and checkpoints/).")
    # Strings, not enums, so that a wrong value gets fmnist's one-line error with the choices.
    flags.DEFINE_string("format", "saved_model", "saved_model (TF Serving folder), litert (.tflite file), onnx "
                        "(.onnx file), or all (the four, under --output).")
    flags.DEFINE_string("quantize", "none", "none, or int8: full-integer post-training quantisation (--format=litert "
                        "only), calibrated on training images.")
    flags.DEFINE_string("output", None, "saved_model: export root, the model goes to OUTPUT/<version>/ (default "
                        "WORKDIR/export). litert, onnx: the file (default WORKDIR/export/model[_int8].tflite|.onnx). "
                        "all: the folder of all four (default WORKDIR/export).")
    flags.DEFINE_integer("version", None, "saved_model: version folder to write (default: the next integer).",
                         lower_bound=1)
    flags.DEFINE_string("checkpoint", None, "Checkpoint step (e.g. 1000) or path prefix; default the latest.")
    flags.DEFINE_enum("weights", "auto", list(WEIGHTS), "Which weights of the checkpoint to export: auto = the "
                      "weight average when the run kept one (config.ema_decay), as its evaluation did.")
    flags.mark_flag_as_required("workdir")


@exit_on_user_error
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    console.configure()  # Only fmnist's lines unless --verbosity>=1.
    f = flags.FLAGS
    check_options(f.format, f.quantize, f.version)
    if f.format == "all":
        paths = export_all(f.workdir, f.output, f.version, f.checkpoint, f.weights)
    else:
        paths = [export(f.workdir, f.output, f.version, f.checkpoint, f.weights, f.format, f.quantize)]
    for path in paths:
        model = path.parent if path.suffix not in (".tflite", ".onnx") else path
        print(f"Exported {path}\n  python -m fmnist.predict --model={model} IMAGE...")


if __name__ == "__main__":
    define_flags()
    app.run(main)
