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

import importlib
from pathlib import Path

from absl import app, flags

from fmnist.data.dataset import CLASS_NAMES
from fmnist.errors import UserError, exit_on_user_error
from fmnist.export.restore import WEIGHTS, check_checkpoint, load_model, read_config, resolve_weights
from fmnist.predict.photo_conversion import MAX_PIXELS, decode, decode_to_fashion_mnist, jpeg_scale
from fmnist.runtime import console

# The names after `export` stay importable from here, where they were before each format got its own module.
__all__ = ["export", "export_all", "FORMATS", "QUANTIZE", "CLASS_NAMES", "MAX_PIXELS", "decode",
           "decode_to_fashion_mnist", "jpeg_scale", "load_model"]

FORMATS = ("saved_model", "litert", "onnx")
ALL = (("saved_model", "none"), ("litert", "none"), ("litert", "int8"), ("onnx", "none"))  # What --format=all writes.
QUANTIZE = ("none", "int8")
FILE_FORMATS = {"litert": ("fmnist.export.litert", ".tflite"), "onnx": ("fmnist.export.onnx", ".onnx")}


def default_output(workdir: Path, format: str, quantize: str = "none", root: Path | None = None) -> Path:
    """Where `format` goes: ROOT (the SavedModel's export root) or ROOT/model[_int8].tflite|.onnx; ROOT defaults
    to WORKDIR/export."""
    root = root or workdir / "export"
    if format == "saved_model":
        return root
    suffix = FILE_FORMATS[format][1]
    return root / f"model{'_int8' if quantize == 'int8' else ''}{suffix}"


def check_options(format: str, quantize: str, version: int | None) -> None:
    if format == "all":
        if quantize != "none":
            raise UserError(f"--quantize={quantize} does not apply to --format=all, which writes float32 and int8")
        return
    if format not in FORMATS:
        raise UserError(f"unknown --format={format}; choose from {', '.join(FORMATS)}, all")
    if quantize not in QUANTIZE:
        raise UserError(f"unknown --quantize={quantize}; choose from {', '.join(QUANTIZE)}")
    if quantize != "none" and format != "litert":
        raise UserError(f"--quantize={quantize} applies to --format=litert only, not {format}")
    if version is not None and format != "saved_model":
        raise UserError(f"--version applies to --format=saved_model only; --format={format} writes the file --output")


def export(workdir: str | Path, output: str | Path | None = None, version: int | None = None,
           checkpoint: str | None = None, weights: str = "auto", format: str = "saved_model",
           quantize: str = "none") -> Path:
    """Exports the run in `workdir` as `format`; returns what it wrote (the SavedModel's version folder, or the
    file). Mistakes in the options, the workdir, the installed packages and the output are reported before
    TensorFlow loads the model."""
    check_options(format, quantize, version)
    if format == "all":
        raise ValueError("export() writes one format; export_all() writes them all")
    if format == "saved_model":
        from fmnist.export import saved_model as export_saved_model

        return export_saved_model.export(workdir, output, version, checkpoint, weights)
    from fmnist.export.file_export import check_output, require

    workdir = Path(workdir).expanduser().absolute()
    weights = resolve_weights(weights, read_config(workdir))
    check_checkpoint(workdir, checkpoint)
    module_name, suffix = FILE_FORMATS[format]
    module = importlib.import_module(module_name)
    require(module.REQUIRES, f"--format={format}")
    path = check_output(Path(output).expanduser().absolute() if output else default_output(workdir, format, quantize),
                        suffix)
    model, _, config = load_model(workdir, checkpoint, weights)
    if format == "litert":
        module.export(model, path, quantize, data_dir=config.get("data_dir"))
    else:
        module.export(model, path)
    return path


def export_all(workdir: str | Path, output: str | Path | None = None, version: int | None = None,
               checkpoint: str | None = None, weights: str = "auto") -> list[Path]:
    """Exports the run in `workdir` in every format (ALL) under `output` (default WORKDIR/export): the SavedModel's
    version folder, then the files. The packages the files need are checked before anything is written."""
    from fmnist.export.file_export import require

    for module_name, _ in FILE_FORMATS.values():
        require(importlib.import_module(module_name).REQUIRES, "--format=all")
    workdir = Path(workdir).expanduser().absolute()
    root = Path(output).expanduser().absolute() if output else None
    return [export(workdir, default_output(workdir, fmt, quantize, root), version if fmt == "saved_model" else None,
                   checkpoint, weights, fmt, quantize) for fmt, quantize in ALL]


# ---------------------------------------------------------------------------------------------------------------
# Command line.

def define_flags() -> None:
    """Defined on demand, not at import: fmnist.main defines its own --workdir, and train.py may import this."""
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
