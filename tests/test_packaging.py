"""What a wheel installs (fmnist only: configs/, launch/ and benchmarks/ run from the repository), built for real."""

import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT

from fmnist import main

SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "fmnist", "configs", "launch", "benchmarks")


def test_the_wheel_installs_fmnist_only_with_its_license(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:  # A copy: the build writes build/ and *.egg-info into its source tree.
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__", "results")}
                                            if (ROOT / name).is_dir() else {}))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                           str(source), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("fmnist-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"fmnist"}
    assert "fmnist/main.py" in names and "fmnist/config/show.py" in names
    [license_file] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    text = zipfile.ZipFile(wheel).read(license_file).decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_a_config_file_imports_its_siblings_from_any_working_directory(tmp_path, monkeypatch):
    (tmp_path / "project" / "configs").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", list(sys.path))
    main.configs_importable(["fmnist.main", f"--config={tmp_path}/project/configs/mine.py", "--mode=show_config"])
    assert sys.path[1] == str(tmp_path / "project")
    main.configs_importable(["fmnist.main", f"--config={tmp_path}/mine.py"])  # Not in a configs/ folder: as is.
    assert str(tmp_path) not in sys.path
    (tmp_path / "other" / "configs").mkdir(parents=True)
    main.configs_importable(["fmnist.main", "--config", f"{tmp_path}/other/configs/mine.py"])  # absl's other form.
    assert sys.path[1] == str(tmp_path / "other")
