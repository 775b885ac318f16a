"""launch.sweep across machines: two sweep processes, each with a workdir of its own, share one study on a real
PostgreSQL server (started by pytest-postgresql on a loopback port, in a temporary folder); a config is trained once
per study; the winner is tested where its checkpoints are; a missing database driver is named."""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, read_results
from optuna.trial import TrialState
from pytest_postgresql import factories
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from launch import search_space, sweep_shared, sweep_study
from launch.search_space import SweepError
from launch.trial_runner import TrialRunner

# pg_ctl through tests/pg_ctl.sh (finds Debian's PostgreSQL; as root, runs the server as the `postgres` user), on a
# free loopback port. If the server cannot start, the test that needs it errors with pg_ctl's reason: never a skip.
postgres = factories.postgresql_proc(executable=str(ROOT / "tests" / "pg_ctl.sh"), port=None,
                                     postgres_options="-c fsync=off")


def test_a_missing_database_driver_is_named_with_a_url_that_works():
    with pytest.raises(SweepError) as e:
        sweep_study.make_storage("postgresql+psycopg2://fmnist:s3cret@127.0.0.1:5432/optuna")
    message = str(e.value)
    assert "'psycopg2'" in message and "pip install psycopg2-binary" in message
    assert "--storage=postgresql+psycopg://USER:PASSWORD@HOST:5432/DB" in message  # psycopg 3: the search extra.
    assert "s3cret" not in message and "\n" not in message


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # study.ask/tell stand for the other machine's process.
def test_a_trial_waits_for_an_earlier_trial_of_its_config_and_takes_its_outcome(tmp_path):
    """Trial 0 runs model_width=8 on another machine (its workdir there); trial 1, the same config here, waits for
    it instead of training, then ends with its value, its evaluations and where its files are."""
    space = search_space.load(str(ROOT / "configs/sweeps/tiny.py"), "configs/smoke.py")
    study = sweep_study.open_study(space, sweep_study.default_storage(tmp_path), "tiny", "random", "none")
    there = study.ask()
    params = space.suggest(there) | {"model_width": 8}
    for key, value in {sweep_shared.CONFIG_HASH: space.config_hash({"model_width": 8}), sweep_shared.HOST: "a",
                       sweep_shared.WORKDIR: "/elsewhere/sweep", sweep_shared.TRIAL_DIR: "trials/abc"}.items():
        there.set_user_attr(key, value)
    there.report(0.5, 1)
    study.enqueue_trial(params)
    here = tmp_path / "here"
    thread = threading.Thread(target=study.optimize, args=(TrialRunner("configs/smoke.py", here, space,
                                                                        log=lambda m: None),), kwargs={"n_trials": 1})
    thread.start()
    while thread.is_alive() and sweep_shared.CONFIG_HASH not in study.trials[-1].user_attrs:
        time.sleep(0.05)
    time.sleep(2 * sweep_shared.POLL_S)  # It reads the study at least twice meanwhile.
    assert study.trials[1].state == TrialState.RUNNING and not here.exists()  # Waiting, not training.
    study.tell(there, 0.75)
    thread.join(timeout=60)
    taken = study.trials[1]
    assert taken.state == TrialState.COMPLETE and taken.value == 0.75 and taken.intermediate_values == {1: 0.5}
    assert taken.user_attrs[sweep_shared.REUSED_FROM] == 0 and taken.user_attrs["epochs_trained"] == 0
    assert (taken.user_attrs[sweep_shared.WORKDIR], taken.user_attrs[sweep_shared.HOST]) == ("/elsewhere/sweep", "a")
    assert not here.exists()


def _postmaster_pid(datadir: str) -> int:
    return int(Path(datadir, "postmaster.pid").read_text().split()[0])


def _running(pid: int) -> bool:
    """Whether `pid` runs: not gone, nor exited and waiting to be reaped (a zombie: the server's parent is init)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def _hparams(logdir: Path) -> tuple[set, dict]:
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return set(acc.PluginTagToContent("hparams")), {t: acc.Scalars(t)[0].value for t in acc.Tags()["scalars"]}


def test_two_machines_share_a_study_on_postgresql_and_the_one_with_the_winner_tests_it(postgres, tmp_path):
    """As on two machines: a sweep process per workdir, both started at once, one study on PostgreSQL (tiny.py: two
    grid points). Every trial ends COMPLETE, the budget is kept, each config is trained once (one by each, usually);
    the process whose workdir holds the winner evaluates it on the test split, the other says in one line where it
    is and what to run there (that command then reports the test accuracy without training); the server stops."""
    url = f"postgresql+psycopg://{postgres.user}@{postgres.host}:{postgres.port}/postgres"
    workdirs = [tmp_path / "machine_a", tmp_path / "machine_b"]
    procs = [subprocess.Popen([sys.executable, "-m", "launch.sweep", "--config=configs/smoke.py",
                               "--sweep=configs/sweeps/tiny.py", f"--workdir={w}", f"--storage={url}"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for w in workdirs]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert not any("Traceback" in o for o in outputs), "\n".join(outputs)

    trials = optuna.load_study(study_name="tiny", storage=url).trials
    ran = [t for t in trials if not t.user_attrs.get(sweep_study.SURPLUS)]  # Surplus: started past the budget.
    assert {t.state for t in ran} == {TrialState.COMPLETE}, [(t.state, t.user_attrs) for t in trials]
    assert len({json.dumps(t.params) for t in ran}) == 2  # The grid: no more (the budget), no less.
    assert all(t.state == TrialState.FAIL and sweep_shared.CONFIG_HASH not in t.user_attrs
               for t in trials if t not in ran)  # Never run.
    configs = {t.user_attrs[sweep_shared.CONFIG_HASH] for t in ran}
    trained = [d for w in workdirs for d in w.glob("trials/*")]
    assert sorted(d.name for d in trained) == sorted(configs)  # Each config trained in one workdir only...
    for d in trained:  # ... once: one fmnist training command in its log.
        commands = [line for line in (d / "log.txt").read_text().splitlines() if " -m fmnist.main " in line]
        assert len([c for c in commands if "--mode=eval" not in c]) == 1, commands
    assert sum(o.count(": started") for o in outputs) == len(configs) == 2  # Usually one each (grid points apart).
    for t in ran:  # Where each trial's files are: in the study.
        assert Path(t.user_attrs[sweep_shared.WORKDIR]) / t.user_attrs[sweep_shared.TRIAL_DIR] in trained

    best = max(ran, key=lambda t: (t.value, -t.number))
    holder = workdirs.index(Path(best.user_attrs[sweep_shared.WORKDIR]))
    winner_dir = workdirs[holder] / best.user_attrs[sweep_shared.TRIAL_DIR]
    test = json.loads((winner_dir / "eval_results.json").read_text())["test"]
    assert test["count"] == 10000 and test["step"] == 30
    assert [d for d in trained if (d / "eval_results.json").exists()] == [winner_dir]
    assert f"test {100 * test['accuracy']:.2f}% (test evaluated for the winner only)" in outputs[holder]
    (line,) = [line for line in outputs[1 - holder].splitlines() if "the winner's checkpoints are" in line]
    assert f" in {winner_dir}, not under this workdir; to test it, run there: python -m launch.sweep " in line
    assert line.endswith(f"--workdir={workdirs[holder]}") and f"--storage={url}" in line

    results = read_results(winner_dir)
    assert results["eval_accuracy"] is None and results["per_class_accuracy"] is None
    assert results["config"]["evaluate_test"] is False and results["config"]["model_width"] == best.params[
        "model_width"]
    evals = [json.loads(line) for line in (winner_dir / "evals.jsonl").read_text().splitlines()]
    assert [e["test_accuracy"] for e in evals] == [None] and evals[-1]["step"] == 30
    assert evals[-1]["validation_accuracy"] == pytest.approx(results["validation_accuracy"])
    assert "validation_accuracy=" in (winner_dir / "log.txt").read_text()  # What Katib's StdOut collector reads.
    with open(workdirs[holder] / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["trial"] == str(best.number) and rows[0]["rank"] == "1"
    assert float(rows[0]["test_accuracy"]) == pytest.approx(test["accuracy"])
    assert all(r["test_accuracy"] == "" for r in rows[1:])
    md = (workdirs[holder] / "sweep.md").read_text()
    assert md.count("test accuracy") == 1 and f"{100 * test['accuracy']:.2f}%" in md
    assert {p.name for p in (workdirs[holder] / "plots").glob("*.png")} >= {"optimization_history.png",
                                                                             "parallel_coordinate.png"}
    assert _hparams(workdirs[holder] / "tensorboard")[0] == {"_hparams_/experiment"}
    _, scalars = _hparams(workdirs[holder] / "tensorboard" / f"trial-{best.number:03d}")
    assert scalars["validation_accuracy"] == pytest.approx(best.value)

    command = shlex.split(line.split("run there: ", 1)[1])  # What the other machine printed.
    there = subprocess.run([sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert there.returncode == 0 and "0 to start" in there.stdout and ": started" not in there.stdout, there.stdout
    assert f"test {100 * test['accuracy']:.2f}%" in there.stdout
    assert (winner_dir / "log.txt").read_text().count("--mode=eval") == 1  # It reused the first evaluation.

    pid = _postmaster_pid(postgres.datadir)
    assert _running(pid)
    with postgres.stopped():  # The fixture starts it again, and stops it the same way at the end of the session.
        assert not _running(pid)
