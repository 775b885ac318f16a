"""End to end: a real smoke training as a subprocess, its outputs, and resuming it."""

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import read_results, run_main, smoke_console


@pytest.fixture(scope="module")
def smoke_run(trained_smoke, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the session's smoke run (these tests resume and extend it) and its console output."""
    workdir = tmp_path_factory.mktemp("smoke") / "run"
    shutil.copytree(trained_smoke, workdir)
    return workdir, smoke_console(trained_smoke).read_text()


def test_smoke_run_trains_and_reports(smoke_run):
    workdir, console = smoke_run
    r = read_results(workdir)
    assert isinstance(r["train_loss"], float) and r["train_loss"] < 1.0
    assert r["eval_accuracy"] > 0.70  # Chance is 0.10; 200 steps of the seed CNN reach about 0.84.
    assert r["eval_count"] == 10000
    assert r["steps"] == 200 and r["model"] == "seed_cnn"
    assert r["strategy"] == "default" and r["num_replicas"] == 1
    assert r["precision"] in ("float32", "mixed_bfloat16") and r["jit_compile"] is False
    assert r["train_examples_per_sec"] > 0 and 0 < r["train_time_s"] < r["wall_time_s"]
    assert r["config"]["batch_size"] == 128
    assert "Test accuracy" in console and "tensorboard --logdir" in console


def test_rerun_resumes_and_trains_no_further(smoke_run):
    workdir, _ = smoke_run
    before = read_results(workdir)
    proc = run_main("--config=configs/smoke.py", f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = read_results(workdir)
    assert after["resumed_from"].endswith("ckpt-200") and after["start_step"] == 200
    assert after["eval_accuracy"] == pytest.approx(before["eval_accuracy"], abs=1e-6)
    assert after["weights_fingerprint"] == before["weights_fingerprint"]
    assert after["train_time_s"] == before["train_time_s"] and after["train_time_this_process_s"] == 0  # The run's.


def test_longer_run_resumes_where_it_stopped(smoke_run, tmp_path):
    """Extending a finished run continues from its last step, not from zero; results.json's train_time_s and
    time_to_target_s, and evals.jsonl's train_time_s, count the first process's training too."""
    workdir, _ = smoke_run
    first = read_results(workdir)
    proc = run_main("--config=configs/smoke.py", f"--workdir={workdir}", "--config.num_train_steps=240",
                    "--config.target_accuracy=0.01")  # Reached at the first evaluation, at the end (step 240).
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = read_results(workdir)
    assert r["start_step"] == 200 and r["steps"] == 240 and r["target_step"] == 240
    assert "Resumed from" in proc.stderr
    assert 0 < r["train_time_this_process_s"] < r["train_time_s"]
    assert r["train_time_s"] == pytest.approx(first["train_time_s"] + r["train_time_this_process_s"], rel=1e-12)
    assert r["time_to_target_s"] == r["train_time_s"]
    evals = [json.loads(line) for line in (workdir / "evals.jsonl").read_text().splitlines()]
    assert evals[-1]["step"] == 240 and evals[-1]["train_time_s"] == r["train_time_s"]


# --mode=eval on a finished run (its results, TTA): tests/test_console.py, whose --verbosity=1 evaluation of this
# module's smoke run it is.


def test_eval_mode_without_checkpoint_is_one_line(tmp_path):
    """What `--mode=eval` runs, in this process: a UserError, which every entry point prints as one line (exit 2)."""
    from configs import smoke
    from fmnist.errors import UserError
    from fmnist.training import train

    message = f"workdir {tmp_path} has no checkpoint to evaluate; train first"
    with pytest.raises(UserError, match=f"^{re.escape(message)}"):
        train.evaluate_only(smoke.get_config(), str(tmp_path))
    assert not (tmp_path / "eval_results.json").exists()


def test_target_accuracy_stops_at_the_first_evaluation_reaching_it(tmp_path):
    """Evaluations every 40 steps; the run must stop at the first one at or above the target, not later."""
    proc = run_main("--config=configs/smoke.py", f"--workdir={tmp_path}", "--config.eval_every_steps=40",
                    "--config.target_accuracy=0.75", "--config.num_train_steps=400")
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = read_results(tmp_path)
    evals = [(int(s), float(a)) for s, a in re.findall(r"test at step (\d+): loss \S+ accuracy ([\d.]+)%", proc.stderr)]
    first = next(step for step, acc in evals if acc >= 75.0)
    assert r["target_step"] == first == r["steps"] == evals[-1][0] and first < 400
    assert all(acc < 75.0 for step, acc in evals if step < first)
    assert 0 < r["time_to_target_s"] <= r["train_time_s"] and r["eval_time_s"] > 0
