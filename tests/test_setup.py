"""`make setup` on a broken .venv (a venv without pip, as `python3 -m venv` leaves one on Debian/Ubuntu without
python3-venv, or whose python is gone): the Makefile's own check, run for real in a copy, without any install."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

RECREATE = ".venv has no working python or pip (on Debian/Ubuntu: sudo apt-get install python3-venv): re-creating it"


def _make(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def copy(tmp_path) -> Path:
    for name in ("Makefile", "setup.cfg", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _venv(path: Path, *flags: str) -> None:
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", *flags, str(path)], check=True, timeout=60)


@pytest.mark.parametrize("broken", ["no pip", "python gone"])
def test_a_broken_venv_is_named_in_one_line_and_rebuilt(copy, broken):
    venv = copy / ".venv"
    if broken == "no pip":
        _venv(venv)
    else:
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(copy / "no-such-python")
    (venv / ".installed").touch()  # Newer than setup.cfg: only the check can make `make setup` rebuild it.
    plan = _make(copy, "-n", ".venv/.installed")
    assert plan.returncode == 0 and "-m venv" in plan.stdout and "pip install" in plan.stdout, plan.stdout
    proc = _make(copy, "venv-check")
    assert proc.returncode == 0 and proc.stdout.splitlines() == [RECREATE], proc.stdout + proc.stderr
    assert not venv.exists()


def test_a_working_venv_is_kept(copy):
    venv = copy / ".venv"
    _venv(venv, "--system-site-packages")  # Its python imports the base installation's pip.
    (venv / ".installed").touch()
    assert "is up to date" in _make(copy, ".venv/.installed").stdout  # No check forced a rebuild.
    proc = _make(copy, "venv-check")
    assert proc.returncode == 0 and not proc.stdout and (venv / ".installed").exists()


def test_a_failed_venv_creation_says_what_to_install(copy):
    proc = _make(copy, ".venv/.installed", "PYTHON=false")  # As `python3 -m venv` fails without python3-venv.
    assert proc.returncode != 0
    assert "false -m venv failed: on Debian/Ubuntu: sudo apt-get install python3-venv" in proc.stdout
    assert not (copy / ".venv").exists()
