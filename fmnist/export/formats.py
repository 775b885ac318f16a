"""The export formats and where each goes: `export` writes one (saved_model, litert, onnx; one module each in
this package), `export_all` all four. The command line is fmnist.export's __main__."""

from __future__ import annotations

import importlib
from pathlib import Path

from fmnist.data.dataset import CLASS_NAMES
from fmnist.errors import UserError
from fmnist.export.restore import check_checkpoint, load_model, read_config, resolve_weights
from fmnist.predict.photo_conversion import MAX_PIXELS, decode, decode_to_fashion_mnist, jpeg_scale

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
