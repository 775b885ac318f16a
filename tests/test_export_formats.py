"""The LiteRT (float32, int8) and ONNX exports of the smoke run: the int8 file's integer graph, atomic writes,
one-line errors. Every model's exports scored by the deploy runtimes without TensorFlow: test_export_every_model.py."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_module

from fmnist.errors import UserError
from fmnist.export import file_export
from fmnist.export import formats as export
from fmnist.predict.runtimes import INSTALL_HINT


def test_files_and_the_int8_graph(exported_files):
    from ai_edge_litert.interpreter import Interpreter

    for path in exported_files.values():
        assert path.stat().st_mode & 0o777 == 0o644  # Readable by a server running as another user.
    assert not [p for p in exported_files["onnx"].parent.iterdir() if p.name.startswith(".")]  # No temporary file.
    assert exported_files["litert_int8"].stat().st_size < exported_files["litert"].stat().st_size / 3
    int8 = Interpreter(model_path=str(exported_files["litert_int8"]))
    image = int8.get_input_details()[0]
    assert image["dtype"] == np.uint8 and image["quantization"] == (1.0, 0)  # Raw pixels, no float op first.
    ops = int8._get_ops_details()
    convolutions = [op for op in ops if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(convolutions) == 4 and "CAST" not in {op["op_name"] for op in ops}
    for op in convolutions:  # Integer weights and activations throughout.
        assert int8._get_tensor_details(op["inputs"][0], 0)["dtype"] == np.int8
        assert int8._get_tensor_details(op["inputs"][1], 0)["dtype"] == np.int8
    assert int8.get_output_details()[0]["dtype"] == np.float32  # Dequantised probabilities.


def test_bad_options_and_paths_are_refused_before_anything_is_written(trained_smoke, tmp_path):
    run = trained_smoke
    (tmp_path / "a_file").write_text("")
    cases = [({"format": "tflite"}, "unknown --format=tflite; choose from saved_model, litert, onnx"),
             ({"format": "litert", "quantize": "int4"}, "unknown --quantize=int4"),
             ({"format": "onnx", "quantize": "int8"}, "--quantize=int8 applies to --format=litert only"),
             ({"quantize": "int8"}, "applies to --format=litert only, not saved_model"),
             ({"format": "litert", "version": 2}, "--version applies to --format=saved_model only"),
             ({"format": "onnx", "output": tmp_path / "model.tflite"}, "must end in .onnx"),
             ({"format": "litert", "output": tmp_path}, "must end in .tflite"),
             ({"format": "litert", "output": tmp_path / "a_file" / "m.tflite"}, "part of it is a file, not a folder")]
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message.replace(".", r"\.")):
            export.export(run, **kwargs)
    with pytest.raises(UserError, match="has no config.json"):
        export.export(tmp_path / "no_run", format="onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    missing = f"--format=onnx needs no-such-package, not installed here: {INSTALL_HINT}"
    with pytest.raises(UserError, match=re.escape(missing)):
        file_export.require({"onnx": "onnx", "fmnist_no_such_module": "no-such-package"}, "--format=onnx")


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous model")

    def half_write(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    def bad_check(path: Path) -> None:
        raise RuntimeError("does not reproduce the Keras model")

    with pytest.raises(UserError, match="No space left on device"):
        file_export.write_atomically(target, half_write, lambda path: None)
    with pytest.raises(RuntimeError, match="does not reproduce"):
        file_export.write_atomically(target, lambda path: path.write_bytes(b"new"), bad_check)
    assert target.read_bytes() == b"previous model" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    file_export.write_atomically(target, lambda path: path.write_bytes(b"new"), lambda path: None)
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_command_line_errors_are_one_line(trained_smoke, tmp_path):
    shutil.copy(trained_smoke / "config.json", tmp_path / "config.json")  # A run without checkpoints.
    cases = [(["--workdir=" + str(trained_smoke), "--format=tflite"], "unknown --format=tflite"),
             (["--workdir=" + str(trained_smoke), "--format=onnx", "--quantize=int8"], "applies to --format=litert"),
             (["--workdir=" + str(trained_smoke), "--format=all", "--quantize=int8"], "does not apply to --format=all"),
             (["--workdir=" + str(tmp_path), "--format=litert"], "holds no checkpoint: train first"),
             (["--workdir=" + str(trained_smoke), "--format=onnx", f"--output={tmp_path / 'config.json' / 'm.onnx'}"],
              "pass a writable --output")]
    for args, message in cases:
        proc = run_module("fmnist.export", *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.strip().startswith("fmnist: error: ") and len(proc.stderr.strip().splitlines()) == 1
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
