"""benchmarks.frontier on real runs: the session's smoke run, and copies of its results.json edited into other seeds,
another config and a validation hold-out run (real files the tool reads; nothing trained here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import read_results, run_module
from PIL import Image

from benchmarks import frontier


def _copy(run: Path, to: Path, config: dict | None = None, **results) -> Path:
    """A copy of `run`'s results.json and config.json into `to`, with the config's and the results' keys changed."""
    to.mkdir(parents=True)
    r = read_results(run)
    r["config"] |= config or {}
    (to / "results.json").write_text(json.dumps(r | results))
    (to / "config.json").write_text(json.dumps(json.loads((run / "config.json").read_text()) | (config or {})))
    return to


def _rows(table: Path) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.read_text().splitlines()[2:]]


def test_seeds_make_one_point_and_configs_are_labelled(trained_smoke, tmp_path):
    """The smoke run and its seed-1 copy are one point (mean, min-max, KFE mean), a copy with another learning rate
    and twice the compute is a second point labelled by what differs; the PNG is the plot's size."""
    acc, tflop = read_results(trained_smoke)["eval_accuracy"], read_results(trained_smoke)["train_tflop"]
    runs = tmp_path / "runs"
    s0 = _copy(trained_smoke, runs / "s0")
    s1 = _copy(trained_smoke, runs / "s1", {"seed": 1, "steps_per_loop": 10}, eval_accuracy=acc - 0.02)
    _copy(trained_smoke, runs / "lr" / "s0", {"learning_rate": 0.003}, eval_accuracy=acc + 0.01,
          train_tflop=2 * tflop, eval_accuracy_tta_flip=1.0)
    kfe = tmp_path / "kfe.json"
    kfe.write_text(json.dumps({"kfe_s": 24.0, "runs": [{"workdir": str(s0), "kfe": 1.0},
                                                        {"workdir": str(s1), "kfe": 2.0}]}))
    png, table = tmp_path / "out" / "frontier.png", tmp_path / "out" / "frontier.md"
    proc = run_module("benchmarks.frontier", str(runs), f"--png={png}", f"--table={table}", f"--kfe={kfe}")
    assert proc.returncode == 0, proc.stderr
    assert _rows(table) == [
        ["`configs/smoke.py`", "0, 1", f"{tflop:.2f}", f"{100 * (acc - 0.01):.2f}%",
         f"{100 * (acc - 0.02):.2f}-{100 * acc:.2f}%", "1.50"],
        ["`configs/smoke.py learning_rate=0.003`", "0", f"{2 * tflop:.2f}", f"{100 * (acc + 0.01):.2f}%",
         f"{100 * (acc + 0.01):.2f}-{100 * (acc + 0.01):.2f}%", "-"]]
    assert "| test accuracy (mean) |" in table.read_text()
    assert table.read_text() in proc.stdout
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (800, 500)


@pytest.mark.parametrize("case", ["empty", "unreadable", "no_flops", "validation", "kfe"])
def test_bad_input_is_one_line_and_writes_nothing(trained_smoke, tmp_path, capsys, case):
    runs, args = [trained_smoke], []
    if case == "empty":
        (tmp_path / "empty").mkdir()
        runs.append(tmp_path / "empty")
    elif case == "unreadable":
        runs.append(_copy(trained_smoke, tmp_path / "bad"))
        (runs[-1] / "results.json").write_text('{"eval_accuracy": 0.9,')
    elif case == "no_flops":
        runs.append(_copy(trained_smoke, tmp_path / "noflops", train_tflop=None))
    elif case == "validation":
        runs.append(_copy(trained_smoke, tmp_path / "val", {"evaluate_test": False, "validation_size": 5000},
                          eval_accuracy=None, validation_accuracy=0.8))
    else:
        (tmp_path / "kfe.json").write_text(json.dumps({"kfe_s": 24.0, "runs": [{"workdir": "/elsewhere", "kfe": 1}]}))
        args = [f"--kfe={tmp_path / 'kfe.json'}"]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        frontier.main([*map(str, runs), f"--png={out / 'f.png'}", f"--table={out / 'f.md'}", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert {"empty": "no results.json in", "unreadable": "is not readable JSON", "no_flops": "has no train_tflop",
            "validation": "--mixed_splits", "kfe": "has none of these runs"}[case] in err
    assert not out.exists()


def test_mixed_splits_when_asked(trained_smoke, tmp_path, capsys):
    """--mixed_splits draws a validation hold-out run beside the test-split runs, its label saying so."""
    val = _copy(trained_smoke, tmp_path / "val", {"evaluate_test": False, "validation_size": 5000},
                eval_accuracy=None, validation_accuracy=0.8)
    table = tmp_path / "f.md"
    assert frontier.main([str(trained_smoke), str(val), f"--png={tmp_path / 'f.png'}", f"--table={table}",
                          "--mixed_splits"]) == 0
    assert [r[0] for r in _rows(table)].count(
        "`configs/smoke.py evaluate_test=False, validation_size=5000 (validation)`") == 1
    assert "| accuracy (mean) |" in table.read_text()
