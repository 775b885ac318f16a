"""Shared fixtures. The in-process TensorFlow runtime gets 2 logical CPUs, so MirroredStrategy tests run here."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(ROOT))
from fmnist.runtime import host  # noqa: E402 - needs the path; imports no TensorFlow.

host.configure()  # As fmnist.main does: this process and every subprocess the tests start run as users' runs do.


def pytest_configure(config):
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(autouse=True)
def _fresh_collective_keys():
    """Each test's MirroredStrategy gets its own collective group keys, as TensorFlow's own tests do ("only set
    this in tests"): the runtime caches a collective instance's shape per key, so a second strategy in the same
    process whose model differs (BatchNorm all-reduces of other widths) would otherwise collide with the first's."""
    import tensorflow as tf

    tf.distribute.MirroredStrategy._collective_key_base += 10_000


@pytest.fixture(scope="session")
def splits():
    from fmnist.data import dataset

    return dataset.load()


@pytest.fixture(scope="session")
def trained_smoke(tmp_path_factory) -> Path:
    """A real smoke training run (200 steps, about 84% test accuracy), trained once per session and shared by the
    export and predict tests (which must not change it). Under pytest-xdist (`make test` runs 2 workers) the workers
    share one run: the first trains it under a file lock in their common temp folder, the others wait and reuse it.
    It runs as a user runs it, without the tests' TF_CPP_MIN_LOG_LEVEL: tests/test_console.py reads its console."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # Every worker's basetemp is a child of this one.
    workdir = root / "smoke-run"
    with _exclusive(root / "smoke-run.lock"):
        if not (workdir / "results.json").is_file():
            proc = run_main("--config=configs/smoke.py", f"--workdir={workdir}", env={"TF_CPP_MIN_LOG_LEVEL": None})
            assert proc.returncode == 0, proc.stderr[-3000:]
            smoke_console(workdir).write_text(proc.stderr)
            smoke_console(workdir).with_suffix(".stdout").write_text(proc.stdout)
    return workdir


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Holds an exclusive lock on `lock_path`: one pytest-xdist worker builds a shared fixture, the others wait."""
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def smoke_console(workdir: Path) -> Path:
    """Where `trained_smoke` keeps its run's console output (stderr), beside the workdir (its stdout: .stdout)."""
    return workdir.with_suffix(".console")


@pytest.fixture(scope="session")
def exported_files(trained_smoke) -> dict[str, Path]:
    """The smoke run exported as {'litert': .tflite, 'litert_int8': .tflite, 'onnx': .onnx}, in process, once for
    all pytest-xdist workers (under a file lock, as `trained_smoke`). fmnist.export's own checks run each file with
    its runtime before renaming it into place, so a file that exists is complete."""
    from fmnist.export import formats as export

    out = trained_smoke.with_name("smoke-run-files")
    files = {"litert": out / "model.tflite", "litert_int8": out / "model_int8.tflite", "onnx": out / "model.onnx"}
    with _exclusive(trained_smoke.with_name("smoke-run-files.lock")):
        for name, path in files.items():
            if not path.is_file():
                fmt, _, quantize = name.partition("_")
                assert export.export(trained_smoke, path, format=fmt, quantize=quantize or "none") == path
    return files


def run_module(module: str, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs `python -m MODULE ARGS` from the repository root and returns the finished process. `env` adds to this
    environment; a variable set to None is removed."""
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_main(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs `python -m fmnist.main ARGS`."""
    return run_module("fmnist.main", *args, env=env, timeout=timeout)


def imported_modules(stderr: str) -> set[str]:
    """The modules a process run with `-X importtime` (or PYTHONPROFILEIMPORTTIME=1) imported, from its stderr."""
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time")}


def read_results(workdir: Path) -> dict:
    return json.loads((workdir / "results.json").read_text())
