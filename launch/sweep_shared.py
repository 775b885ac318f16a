"""Sweep processes on several machines share one study through its storage, never through file locks.

File locks (`fcntl.flock`) are unreliable on NFS and do not exist on Cloud Storage FUSE, the file systems a
multi-machine sweep would share, and machines with workdirs of their own share no file at all. So everything that
must be decided once per study is decided from the study (an RDB: PostgreSQL across machines), whose trial numbers
the storage hands out in order, atomically:
- One training per config: a trial whose config (its hash, `config_hash`) an earlier-numbered trial is running waits
  for it to end, then takes its outcome (`same_config`): a COMPLETE value is reused, PRUNED stays pruned, and only a
  FAIL leaves the config to be run again. Every process decides the same way, as the numbers are the same for all.
- Where each trial ran: its user attrs `host`, `workdir` and `trial_dir` (`record_where`), so any process can say
  where the winner's checkpoints are.
- Who tests the winner: every process, once out of trials, waits for the study's running trials to end
  (`wait_for_running`), so all of them know the winner; a process whose workdir holds the winner's results (its own
  trial, or a shared workdir) evaluates it, any other says in one line where they are and what to run there
  (`elsewhere`). Several machines on one shared workdir may each evaluate it (one machine's processes take turns:
  trial_runner.evaluate_test): the same checkpoint gives the same figures, and fmnist writes eval_results.json
  atomically.
"""

from __future__ import annotations

import shlex
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from launch.sweep_study import SURPLUS

CONFIG_HASH = "config_hash"  # user attrs of each trial: what it trains, where, on which machine
WORKDIR = "workdir"
HOST = "host"
TRIAL_DIR = "trial_dir"  # relative to WORKDIR
REUSED_FROM = "reused_from"  # the number of the trial whose outcome a trial of the same config took
TAKEN = ("train_time_s", "params", "steps", "end_epoch")  # What else a trial takes from one of the same config.
POLL_S = 1.0
STALE_CHECK_S = 30.0  # How often a waiting process fails trials whose process died (Optuna's heartbeat).


def record_where(trial: optuna.Trial, workdir: Path, trial_dir: Path) -> None:
    trial.set_user_attr(WORKDIR, str(workdir))
    trial.set_user_attr(HOST, socket.gethostname())
    trial.set_user_attr(TRIAL_DIR, str(trial_dir.relative_to(workdir)))


def _wait(study: optuna.Study, blocking: Callable[[list[FrozenTrial]], list[FrozenTrial]],
          stopping: Callable[[], bool]) -> list[FrozenTrial]:
    """Polls the study until `blocking(trials)` is empty or `stopping()`; returns the trials last read. Trials whose
    process died stay RUNNING until Optuna's heartbeat check fails them: a waiting process runs that check too."""
    checked = time.monotonic()
    while True:
        trials = study.get_trials(deepcopy=False)
        if not blocking(trials) or stopping():
            return trials
        if time.monotonic() - checked >= STALE_CHECK_S:
            optuna.storages.fail_stale_trials(study)
            checked = time.monotonic()
        time.sleep(POLL_S)


def same_config(trial: optuna.Trial, config_hash: str, stopping: Callable[[], bool]) -> FrozenTrial | None:
    """Waits while an earlier-numbered trial runs this config (or has not said yet which config it runs), then
    returns the trial whose outcome this one takes: a COMPLETE or PRUNED trial of the same config (the first), or
    None when this trial must run it."""
    trial.set_user_attr(CONFIG_HASH, config_hash)

    def blocking(trials: list[FrozenTrial]) -> list[FrozenTrial]:
        return [t for t in trials if t.number < trial.number and t.state == TrialState.RUNNING
                and not t.user_attrs.get(SURPLUS) and t.user_attrs.get(CONFIG_HASH, config_hash) == config_hash]

    trials = _wait(trial.study, blocking, stopping)
    done = [t for t in trials if t.user_attrs.get(CONFIG_HASH) == config_hash and t.number != trial.number
            and t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return min(done, key=lambda t: (t.state != TrialState.COMPLETE, t.number), default=None)


def take_outcome(trial: optuna.Trial, earlier: FrozenTrial) -> float:
    """This trial's result is `earlier`'s (the same config): its value, evaluations and where its files are."""
    for step, value in sorted(earlier.intermediate_values.items()):
        trial.report(value, step)
    for key in (TRIAL_DIR, WORKDIR, HOST, *TAKEN):
        if key in earlier.user_attrs:
            trial.set_user_attr(key, earlier.user_attrs[key])
    trial.set_user_attr("steps_trained", 0)  # Nothing trained for this trial.
    trial.set_user_attr("epochs_trained", 0.0)
    trial.set_user_attr(REUSED_FROM, earlier.number)
    if earlier.state == TrialState.PRUNED:
        raise optuna.TrialPruned(f"trial {earlier.number} of the same config was pruned")
    return float(earlier.value)


def wait_for_running(study: optuna.Study, log: Callable[[str], None], stopping: Callable[[], bool]) -> None:
    """Waits until no trial of the study runs (each process's last trials), so that the winner is known."""
    def running(trials: list[FrozenTrial]) -> list[FrozenTrial]:
        return [t for t in trials if t.state == TrialState.RUNNING]

    others = running(study.get_trials(deepcopy=False))
    if others:
        log(f"waiting for trials {[t.number for t in others]} (other processes) to end: then the winner is known")
        _wait(study, running, stopping)


def reachable(workdir: Path, best: FrozenTrial) -> bool:
    """Whether this process sees the winner's results (its checkpoints beside them) under its own workdir."""
    return (workdir / best.user_attrs[TRIAL_DIR] / "results.json").is_file()


def elsewhere(best: FrozenTrial, flags: list[str]) -> str:
    """One line: the winner's checkpoints are not here; where they are, and the command that tests it there (this
    sweep's `flags` with that --workdir: the study is done, so there it only evaluates and writes the reports)."""
    workdir = best.user_attrs.get(WORKDIR, "?")
    command = [*flags, f"--workdir={workdir}"]
    return (f"the winner's checkpoints are on {best.user_attrs.get(HOST, '?')} in "
            f"{Path(workdir) / best.user_attrs[TRIAL_DIR]}, not under this workdir; to test it, run there: "
            f"{shlex.join([Path(sys.executable).name, '-m', 'launch.sweep', *command])}")
