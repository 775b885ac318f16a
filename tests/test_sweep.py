"""launch.sweep: trial expansion, honest selection on validation, reports, HParams data, resuming, refusals."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, read_results
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from launch import sweep

BASE = {"model": "seed_cnn", "model_width": 0, "model_depth": 0, "learning_rate": 1e-3, "validation_size": 0,
        "num_train_steps": -1}
TINY = ["--config=configs/smoke.py", "--sweep=configs/sweeps/tiny.py"]


def run_sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.sweep", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_grid_trials_are_ordered_and_named_by_their_parameters():
    spec = {"method": "grid", "parameters": {"model_width": [16, 32], "learning_rate": [1e-3, 3e-3]},
            "fixed": {"validation_size": 5000}}
    trials = sweep.make_trials(spec, BASE)
    assert [t.name for t in trials] == [
        "000-model_width=16,learning_rate=0.001", "001-model_width=16,learning_rate=0.003",
        "002-model_width=32,learning_rate=0.001", "003-model_width=32,learning_rate=0.003"]
    assert [t.name for t in sweep.make_trials(spec, BASE, max_trials=2)] == [t.name for t in trials[:2]]


def test_random_trials_are_seeded_and_their_prefix_is_stable():
    spec = {"method": "random", "num_trials": 5, "seed": 3, "fixed": {"validation_size": 100},
            "parameters": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "model_depth": {"int_uniform": [1, 3]},
                           "model": ["resnet", "bn_cnn"]}}
    trials = sweep.make_trials(spec, BASE)
    assert [t.name for t in trials] == [t.name for t in sweep.make_trials(spec, BASE)]
    assert [t.name for t in sweep.make_trials(spec, BASE, max_trials=8)][:5] == [t.name for t in trials]
    for t in trials:
        assert 1e-4 <= t.params["learning_rate"] <= 1e-2 and float(f"{t.params['learning_rate']:.3g}") == \
            t.params["learning_rate"]
        assert t.params["model_depth"] in (1, 2, 3) and t.params["model"] in ("resnet", "bn_cnn")
    assert len({t.params["learning_rate"] for t in trials}) == 5


@pytest.mark.parametrize("spec, message", [
    ({"parameters": {"model_width": [8]}}, "validation_size=0"),
    ({"parameters": {"model_width": [8]}, "fixed": {"validation_size": 0}}, "validation_size=0"),
    ({"parameters": {"no_such_key": [1]}, "fixed": {"validation_size": 10}}, "unknown config key 'no_such_key'"),
    ({"parameters": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}}, "fixed": {"validation_size": 10}}, "a list"),
    ({"method": "random", "parameters": {"learning_rate": {"log_uniform": [0, 1]}}, "num_trials": 2,
      "fixed": {"validation_size": 10}}, "lo > 0"),
    ({"method": "random", "parameters": {"model_width": [8]}, "fixed": {"validation_size": 10}}, "num_trials"),
    ({"parameters": {"model_width": [8]}, "fixed": {"model_width": 8, "validation_size": 10}}, "both swept and fixed"),
])
def test_bad_sweeps_are_refused(spec, message):
    with pytest.raises(sweep.SweepError, match=message):
        sweep.make_trials(spec, BASE)


def test_failed_trial_is_recorded_with_its_error_and_the_sweep_goes_on(tmp_path, monkeypatch):
    script = "import sys; print('noise'); print('fmnist: error: config.x is bad', file=sys.stderr); sys.exit(2)"
    monkeypatch.setattr(sweep, "trial_command", lambda *a: [sys.executable, "-c", script])
    sweep_file = tmp_path / "s.py"
    sweep_file.write_text("def get_sweep():\n    return {'parameters': {'model_width': [8, 16]}, "
                          "'fixed': {'validation_size': 100}}\n")
    args = sweep.parse_args([f"--config={ROOT / 'configs/smoke.py'}", f"--sweep={sweep_file}",
                             f"--workdir={tmp_path / 'w'}"])
    assert sweep.sweep(args) == 1
    rows = read_csv(tmp_path / "w" / "sweep.csv")
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert rows[0]["error"] == "exit code 2: fmnist: error: config.x is bad"
    assert "failed: exit code 2: fmnist: error: config.x is bad" in (tmp_path / "w" / "sweep.md").read_text()


def test_results_of_other_settings_are_not_reused(tmp_path):
    runner = sweep.Runner("configs/smoke.py", tmp_path, {"validation_size": 100})
    trial = sweep.Trial(0, {"model_width": 8})
    d = runner.trial_dir(trial)
    d.mkdir(parents=True)
    (d / "results.json").write_text('{"validation_accuracy": 0.5}')
    (d / "trial.json").write_text('{"config": "configs/smoke.py", "overrides": {"validation_size": 100, '
                                  '"model_width": 8}}')
    assert runner.load_finished(trial) and trial.status == "ok"
    other = sweep.Runner("configs/smoke.py", tmp_path, {"validation_size": 200})
    with pytest.raises(sweep.SweepError, match="other settings"):
        other.load_finished(sweep.Trial(0, {"model_width": 8}))


def test_sweep_without_validation_is_refused_in_one_line(tmp_path):
    sweep_file = tmp_path / "no_val.py"
    sweep_file.write_text("def get_sweep():\n    return {'parameters': {'model_width': [8, 16]}}\n")
    proc = run_sweep("--config=configs/smoke.py", f"--sweep={sweep_file}", f"--workdir={tmp_path / 'w'}")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("launch.sweep: error:")
    assert "validation_size" in proc.stderr and not (tmp_path / "w").exists()


def _hparams_tags(logdir: Path) -> tuple[set, dict]:
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return set(acc.PluginTagToContent("hparams")), {t: acc.Scalars(t)[0].value for t in acc.Tags()["scalars"]}


def test_tiny_sweep_end_to_end_and_resume(tmp_path):
    workdir = tmp_path / "sweep"
    proc = run_sweep(*TINY, f"--workdir={workdir}", "--parallel=2")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    names = ["000-model_width=8", "001-model_width=16"]
    results = {n: read_results(workdir / "trials" / n) for n in names}

    rows = read_csv(workdir / "sweep.csv")
    accuracies = [float(r["validation_accuracy"]) for r in rows]
    assert sorted(r["trial"] for r in rows) == names and accuracies == sorted(accuracies, reverse=True)
    assert [r["status"] for r in rows] == ["ok", "ok"] and [r["rank"] for r in rows] == ["1", "2"]
    winner = rows[0]["trial"]
    assert accuracies[0] == pytest.approx(results[winner]["validation_accuracy"])
    assert float(rows[0]["test_accuracy"]) == pytest.approx(results[winner]["eval_accuracy"])
    assert rows[1]["test_accuracy"] == ""  # The test split is reported for the winner only.
    md = (workdir / "sweep.md").read_text()
    assert md.index(rows[0]["trial"]) < md.index(rows[1]["trial"]) and md.count("test accuracy") == 1
    assert f"{100 * results[winner]['eval_accuracy']:.2f}%" in md
    assert f"test {100 * results[winner]['eval_accuracy']:.2f}%" in proc.stdout

    assert _hparams_tags(workdir / "tensorboard")[0] == {"_hparams_/experiment"}
    for n in names:
        tags, scalars = _hparams_tags(workdir / "tensorboard" / n)
        assert tags == {"_hparams_/session_start_info"}
        assert scalars["validation_accuracy"] == pytest.approx(results[n]["validation_accuracy"])

    mtimes = {n: os.stat(workdir / "trials" / n / "results.json").st_mtime_ns for n in names}
    again = run_sweep(*TINY, f"--workdir={workdir}")
    assert again.returncode == 0 and again.stdout.count("skipped, results.json exists") == 2
    assert {n: os.stat(workdir / "trials" / n / "results.json").st_mtime_ns for n in names} == mtimes
    assert read_csv(workdir / "sweep.csv") == rows

    (workdir / "trials" / names[0] / "results.json").unlink()
    third = run_sweep(*TINY, f"--workdir={workdir}")
    assert third.returncode == 0, third.stdout[-2000:]
    assert f"{names[1]}: skipped" in third.stdout and f"{names[0]}: skipped" not in third.stdout
    assert os.stat(workdir / "trials" / names[1] / "results.json").st_mtime_ns == mtimes[names[1]]
    assert read_results(workdir / "trials" / names[0])["validation_accuracy"] == pytest.approx(
        results[names[0]]["validation_accuracy"])
