"""launch.sweep on Optuna: search spaces, config hashes, two processes sharing one study and a workdir, pruning a
running trial, resuming an interrupted sweep. Two machines on PostgreSQL, honest selection (trials never evaluate the
test split) and the reports: tests/test_sweep_shared.py."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, read_results
from optuna.trial import TrialState

from launch import search_space, sweep_study
from launch.search_space import SweepError
from launch.trial_runner import trial_command

BASE = {"model": "seed_cnn", "model_width": 0, "model_depth": 0, "learning_rate": 1e-3, "validation_size": 0,
        "num_train_steps": -1, "evaluate_test": True, "seed": 0, "validation_seed": -1}
TINY = ["--config=configs/smoke.py", "--sweep=configs/sweeps/tiny.py"]


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "launch.sweep", *args]


def run_sweep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_command(*args), cwd=ROOT, capture_output=True, text=True, timeout=600)


def load_study(workdir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'optuna.db'}")


def write_sweep(path: Path, sweep: dict) -> Path:
    path.write_text(f"def get_sweep():\n    return {sweep!r}\n")
    return path


@pytest.mark.parametrize("spec, message", [
    ({"parameters": {"model_width": [8]}}, "validation_size=0"),
    ({"parameters": {"no_such_key": [1]}, "fixed": {"validation_size": 10}}, "unknown config key 'no_such_key'"),
    ({"parameters": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}}, "fixed": {"validation_size": 10}}, "a list"),
    ({"method": "tpe", "parameters": {"learning_rate": {"log_uniform": [0, 1]}}, "fixed": {"validation_size": 10}},
     "lo > 0"),
    ({"method": "bayes", "parameters": {"model_width": [8]}, "fixed": {"validation_size": 10}}, "method='bayes'"),
    ({"parameters": {"model_width": [8]}, "pruner": "asha", "fixed": {"validation_size": 10}}, "pruner='asha'"),
    ({"parameters": {"model_width": [8, 8]}, "fixed": {"validation_size": 10}}, "twice"),
    ({"parameters": {"model_width": [8]}, "fixed": {"model_width": 8, "validation_size": 10}}, "both swept and fixed"),
    ({"parameters": {"model_width": [8]}, "fixed": {"evaluate_test": True, "validation_size": 10}}, "evaluate_test"),
    ({"parameters": {"validation_seed": [0, 1]}, "fixed": {"validation_size": 10}}, "validation_seed cannot be swept"),
    ({"parameters": {"model_width": [8]}, "fixed": {"validation_size": 10, "profile_steps": {1, 2}}},
     "fixed: Object of type set"),
])
def test_bad_sweeps_are_refused(spec, message):
    with pytest.raises(SweepError, match=message):
        search_space.check(spec, BASE, "s")


def test_samplers_draw_from_the_space_and_the_grid_is_complete():
    space = search_space.check({"method": "tpe", "num_trials": 6, "fixed": {"validation_size": 100}, "parameters": {
        "learning_rate": {"log_uniform": [1e-4, 1e-2]}, "model_depth": {"int_uniform": [1, 3]},
        "model": ["resnet", "bn_cnn"]}}, BASE, "s")
    study = optuna.create_study(sampler=sweep_study.make_sampler(space, "tpe"), direction="maximize")
    study.optimize(lambda t: math.log(space.suggest(t)["learning_rate"]), n_trials=6)
    for t in study.trials:
        assert 1e-4 <= t.params["learning_rate"] <= 1e-2 and t.params["model_depth"] in (1, 2, 3)
        assert t.params["model"] in ("resnet", "bn_cnn")
    grid = search_space.check({"parameters": {"model_width": [16, 32], "learning_rate": [1e-3, 3e-3]},
                               "fixed": {"validation_size": 100}}, BASE, "g")
    assert grid.budget() == 4 and grid.budget(3) == 3
    study = optuna.create_study(sampler=sweep_study.make_sampler(grid, "grid"), direction="maximize")
    study.optimize(lambda t: len(grid.suggest(t)), n_trials=10)  # The grid sampler stops the study when done.
    assert sorted(json.dumps(t.params, sort_keys=True) for t in study.trials) == sorted(
        json.dumps(p, sort_keys=True) for p in search_space.grid_points(grid))


def test_a_space_given_with_tuples_is_the_same_space_when_the_study_is_resumed(tmp_path):
    sweep = {"method": "tpe", "num_trials": 2, "fixed": {"validation_size": 10},
             "parameters": {"learning_rate": {"log_uniform": (1e-4, 1e-2)}}}
    storage = sweep_study.default_storage(tmp_path)
    for _ in range(2):  # Created, then resumed: the study recorded the space as JSON (lists).
        study = sweep_study.open_study(search_space.check(sweep, BASE, "t"), storage, "t", "tpe", "none")
    assert study.user_attrs["search_space"]["parameters"] == {"learning_rate": {"log_uniform": [1e-4, 1e-2]}}


def test_every_trial_ranks_on_one_hold_out_whatever_it_sweeps():
    """The hold-out's seed is pinned for the study (the base config's), so trials that sweep `seed` differ in their
    training only; a run outside a sweep keeps the hold-out it always had (validation_seed -1: seed)."""
    from ml_collections import ConfigDict

    from fmnist.training.experiment import hold_out_seed

    base = search_space.load_base_config("configs/smoke.py") | {"seed": 5}
    space = search_space.check({"parameters": {"seed": [0, 1], "learning_rate": [1e-3, 2e-3]},
                                "fixed": {"validation_size": 100}}, base, "s")
    trials = [ConfigDict({**space.base, **space.overrides(p)}) for p in search_space.grid_points(space)]
    assert sorted(t.seed for t in trials) == [0, 0, 1, 1]
    assert {hold_out_seed(t) for t in trials} == {5}
    assert hold_out_seed(ConfigDict(base)) == 5 and base["validation_seed"] == -1


def test_trials_are_recognised_by_their_config_contents_not_its_path(tmp_path):
    copy = tmp_path / "copy_of_smoke.py"
    shutil.copy(ROOT / "configs/smoke.py", copy)
    sweep_file = ROOT / "configs/sweeps/tiny.py"
    here, there = search_space.load(str(sweep_file), "configs/smoke.py"), search_space.load(str(sweep_file), str(copy))
    assert here.config_hash({"model_width": 8}) == there.config_hash({"model_width": 8})
    assert here.config_hash({"model_width": 8}) != here.config_hash({"model_width": 16})
    copy.write_text(copy.read_text().replace("    return c\n", "    c.seed = 7\n    return c\n"))
    assert search_space.load(str(sweep_file), str(copy)).config_hash({"model_width": 8}) != \
        here.config_hash({"model_width": 8})
    assert here.overrides({"model_width": 8})["evaluate_test"] is False


def test_bad_command_is_one_line_and_writes_nothing(tmp_path):
    sweep_file = write_sweep(tmp_path / "no_val.py", {"parameters": {"model_width": [8, 16]}})
    proc = run_sweep("--config=configs/smoke.py", f"--sweep={sweep_file}", f"--workdir={tmp_path / 'w'}")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("launch.sweep: error:")
    assert "validation_size" in proc.stderr and not (tmp_path / "w").exists()


def test_the_budget_holds_with_parallel_trials_a_resumed_study_and_two_processes(tmp_path):
    """A study of 2 trials resumed with 1 done, continued by two processes at once with --parallel=2 each (4 trials
    could start): exactly 1 more runs. They run from another directory with a relative --config, which trials must
    read as the sweep did (paths resolve once); the trial sweeps `seed` and ranks on the study's hold-out."""
    config = tmp_path / "my_smoke.py"
    config.write_text((ROOT / "configs/smoke.py").read_text().replace("    return c\n",
                                                                       "    c.keep_checkpoints = 2\n    return c\n"))
    sweep_file = write_sweep(tmp_path / "budget.py", {
        "method": "random", "num_trials": 2, "parameters": {"seed": {"int_uniform": [1, 1000]}},
        "fixed": {"num_train_steps": 10, "steps_per_loop": 10, "validation_size": 1000}})
    workdir = tmp_path / "w"
    workdir.mkdir()
    space = search_space.load(str(sweep_file), str(config))
    study = sweep_study.open_study(space, sweep_study.default_storage(workdir), "budget", "random", "none")
    study.add_trial(optuna.trial.create_trial(params={"seed": 1}, value=1.0, distributions={  # The winner: no test.
        "seed": optuna.distributions.IntDistribution(1, 1000)}))
    args = [f"--config={config.name}", f"--sweep={sweep_file}", "--workdir=w", "--parallel=2"]
    procs = [subprocess.Popen(sweep_command(*args), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    trials = load_study(workdir, "budget").trials
    ran = [t for t in trials if not t.user_attrs.get(sweep_study.SURPLUS)]
    assert [t.state for t in ran] == [TrialState.COMPLETE, TrialState.COMPLETE], [(t.state, t.user_attrs)
                                                                                  for t in trials]
    assert all(t.state == TrialState.FAIL for t in trials if t not in ran)
    assert sum(o.count(": started") for o in outputs) == 1
    with open(workdir / "sweep.csv", newline="") as f:
        assert [int(row["trial"]) for row in csv.DictReader(f)] == [t.number for t in ran]
    results = read_results(workdir / ran[1].user_attrs["trial_dir"])
    assert results["config"]["keep_checkpoints"] == 2  # The caller's my_smoke.py, not ROOT/my_smoke.py.
    assert results["config"]["seed"] == ran[1].params["seed"] and results["config"]["validation_seed"] == 0


def test_pruner_stops_a_running_trial_on_its_validation_accuracy(tmp_path):
    sweep_file = write_sweep(tmp_path / "prune.py", {
        "method": "random", "num_trials": 4, "pruner": "median", "parameters": {"model_width": [8, 16]},
        "fixed": {"model": "seed_cnn", "num_train_steps": 600, "steps_per_loop": 10, "eval_every_steps": 20,
                  "validation_size": 1000}})
    workdir = tmp_path / "w"
    workdir.mkdir()
    args = ["--config=configs/smoke.py", f"--sweep={sweep_file}", f"--workdir={workdir}"]
    space = search_space.load(str(sweep_file), "configs/smoke.py")
    study = sweep_study.open_study(space, sweep_study.default_storage(workdir), "prune", "random", "median")
    width = optuna.distributions.CategoricalDistribution([8, 16])
    for _ in range(3):  # Three finished trials that were perfect at every evaluation: the median to beat.
        study.add_trial(optuna.trial.create_trial(params={"model_width": 16}, distributions={"model_width": width},
                                                  value=1.0, intermediate_values={i: 1.0 for i in range(1, 31)}))
    study.enqueue_trial({"model_width": 8})
    proc = run_sweep(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (trial,) = load_study(workdir, "prune").get_trials(states=(TrialState.PRUNED,))
    d = workdir / trial.user_attrs["trial_dir"]
    assert trial.params == {"model_width": 8} and not (d / "results.json").exists()
    assert "stopped: SIGTERM at step" in (d / "log.txt").read_text()  # Stopped, with a checkpoint to resume from.
    evals = [json.loads(line) for line in (d / "evals.jsonl").read_text().splitlines()]
    assert 1 <= len(trial.intermediate_values) <= len(evals) and evals[-1]["step"] < 600
    assert 0 < trial.user_attrs["epochs_trained"] < 600 / (59000 // 128)


def test_ctrl_c_on_the_sweeps_process_group_checkpoints_the_trial_and_resumes_it_bit_exactly(tmp_path):
    """SIGINT to the sweep's whole process group, as a terminal's Ctrl-C sends it: the running trial saves a
    checkpoint and no process prints a traceback; the same command then resumes the trial from that checkpoint and
    ends with the weights of an unbroken run (deterministic mode)."""
    sweep_file = write_sweep(tmp_path / "resume.py", {
        "method": "random", "num_trials": 2, "parameters": {"model_width": [8]},
        "fixed": {"model": "seed_cnn", "num_train_steps": 120, "steps_per_loop": 10, "eval_every_steps": 20,
                  "checkpoint_every_steps": 20, "validation_size": 1000, "deterministic": True}})
    workdir = tmp_path / "w"
    workdir.mkdir()
    args = ["--config=configs/smoke.py", f"--sweep={sweep_file}", f"--workdir={workdir}"]
    space = search_space.load(str(sweep_file), "configs/smoke.py")
    study = sweep_study.open_study(space, sweep_study.default_storage(workdir), "resume", "random", "none")
    # A perfect trial added by hand keeps the lead, so the sweep evaluates no winner on the test split (that costs
    # a TensorFlow process, and the shared-study test covers it): this test is about resuming.
    study.add_trial(optuna.trial.create_trial(params={"model_width": 8}, value=1.0, distributions={
        "model_width": optuna.distributions.CategoricalDistribution([8])}))
    proc = subprocess.Popen(sweep_command(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # Its own process group, as a terminal's job.
    deadline = time.monotonic() + 300
    while not list(workdir.glob("trials/*/evals.jsonl")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C again, while the trial saves its checkpoint.
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGINT, out[-3000:] + err[-2000:]
    assert "Traceback" not in out + err, err[-3000:]
    assert out.count("the sweep is stopping; SIGTERM") == 1, out[-3000:]
    study = load_study(workdir, "resume")
    assert [(t.state, bool(t.user_attrs.get("interrupted"))) for t in study.trials] == [
        (TrialState.COMPLETE, False), (TrialState.FAIL, True), (TrialState.WAITING, False)]
    (d,) = workdir.glob("trials/*")
    log = (d / "log.txt").read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    stopped_at = int(re.search(r"fmnist: stopped: SIGTERM at step (\d+); checkpoint saved", log).group(1))
    assert (d / "checkpoints" / f"ckpt-{stopped_at}.index").is_file() and not (d / "results.json").exists()

    again = run_sweep(*args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert f"resuming at step {stopped_at}" in again.stdout and "Resumed from" in (d / "log.txt").read_text()
    results = read_results(d)
    assert results["steps"] == 120 and results["start_step"] == stopped_at
    unbroken = subprocess.run(trial_command("configs/smoke.py", tmp_path / "unbroken", space.overrides(
        {"model_width": 8})), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]
    assert results["weights_fingerprint"] == read_results(tmp_path / "unbroken")["weights_fingerprint"]
    trials = load_study(workdir, "resume").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].value == pytest.approx(results["validation_accuracy"])
    assert trials[2].user_attrs["steps_trained"] == 120 - stopped_at  # Only the steps left after the interruption.


def _children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (from /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # Gone meanwhile.
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_a_trial_that_does_not_stop_is_killed_after_the_stop_timeout(tmp_path):
    """A trial that cannot act on SIGTERM (here: stopped with SIGSTOP) gets SIGKILL --stop_timeout seconds after it,
    with a line, and the sweep exits instead of waiting for it forever."""
    sweep_file = write_sweep(tmp_path / "stuck.py", {"method": "random", "num_trials": 1,
                                                     "parameters": {"model_width": [8]},
                                                     "fixed": {"validation_size": 1000}})
    proc = subprocess.Popen(sweep_command("--config=configs/smoke.py", f"--sweep={sweep_file}",
                                          f"--workdir={tmp_path / 'w'}", "--stop_timeout=2"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline, trial = time.monotonic() + 120, []
    while not trial and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        trial = _children(proc.pid)
    assert trial, proc.communicate()[0][-3000:]
    try:
        os.kill(trial[0], signal.SIGSTOP)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        for pid in (*trial, proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 128 + signal.SIGINT, out[-3000:] + err[-2000:]
    assert re.search(r"^\[sweep\] trial 0: still running 2 s after SIGTERM; SIGKILL to its process group \d+", out,
                     re.M), out[-3000:]
    assert not Path(f"/proc/{trial[0]}").exists()
    (t, retry) = load_study(tmp_path / "w", "stuck").trials
    assert t.state == TrialState.FAIL and t.user_attrs["interrupted"] and retry.state == TrialState.WAITING


def test_failed_trial_is_recorded_with_its_one_line_error(tmp_path):
    sweep_file = write_sweep(tmp_path / "bad.py", {"parameters": {"model_width": ["wide"]},
                                                   "fixed": {"validation_size": 100}})
    proc = run_sweep("--config=configs/smoke.py", f"--sweep={sweep_file}", f"--workdir={tmp_path / 'w'}")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    (trial,) = load_study(tmp_path / "w", "bad").trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["error"].startswith("exit code 2: fmnist: error:")
    with open(tmp_path / "w" / "sweep.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["state"] == "FAIL" and row["note"] == trial.user_attrs["error"] and row["rank"] == ""


@pytest.mark.parametrize("name", ["median", "successive_halving", "hyperband"])
def test_each_pruner_stops_a_trial_far_below_the_others_at_its_first_evaluation(name):
    """The pruners as the sweep configures them, fed per-evaluation accuracies the way trial_runner reports them
    (evaluation 1, 2, ...): eight finished trials near 0.85-0.9, then one at 0.1 after its first evaluation."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="pruners", direction="maximize", pruner=sweep_study.make_pruner(name),
                                sampler=optuna.samplers.RandomSampler(seed=0))  # Hyperband's brackets hash the name.
    for i in range(8):
        trial = study.ask()
        for evaluation in (1, 2, 3):
            trial.report(0.8 + 0.01 * i + 0.02 * evaluation, evaluation)
            assert not trial.should_prune()
        study.tell(trial, 0.86 + 0.01 * i)
    pruned = []
    for _ in range(4):  # Hyperband sends each trial to one of its brackets; not every bracket judges evaluation 1.
        trial = study.ask()
        trial.report(0.1, 1)
        pruned.append(trial.should_prune())
        study.tell(trial, state=TrialState.PRUNED if pruned[-1] else TrialState.FAIL)
    assert any(pruned)


def test_a_signal_while_the_main_thread_holds_the_runner_lock_does_not_deadlock(tmp_path):
    """The sweep's SIGINT handler runs in the main thread between any two bytecodes, possibly while that thread is
    inside the runner's lock: it must not wait for that lock."""
    script = f"""
import os, signal
from pathlib import Path
from launch import search_space, sweep
from launch.trial_runner import TrialRunner
runner = TrialRunner("configs/smoke.py", Path({str(tmp_path)!r}),
                     search_space.load("configs/sweeps/tiny.py", "configs/smoke.py"))
with sweep.stop_on_signals(runner) as caught:
    with runner.lock:
        os.kill(os.getpid(), signal.SIGINT)
print("caught", caught["signal"], "stopping", runner.stopping)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1] == f"caught {int(signal.SIGINT)} stopping True"
