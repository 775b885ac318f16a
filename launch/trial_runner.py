"""Runs one sweep trial as a `python -m fmnist.main` subprocess and feeds its evaluations to Optuna's pruner.

A trial's directory is `WORKDIR/trials/HASH`, HASH naming the contents of its resolved config
(search_space.config_hash): the same config always lands in the same directory, whatever the trial number, process
or base config path.
- A directory with a results.json of the same config is reused: nothing is trained again.
- Otherwise fmnist runs there (resuming from its checkpoints, if an earlier trial was pruned or interrupted), its
  output in log.txt. While it runs, each new line of its evals.jsonl (one per evaluation) is reported to Optuna as
  (validation accuracy, evaluation number); when the pruner says so the process gets SIGTERM (fmnist saves a
  checkpoint and exits 143) and the trial ends PRUNED.
- A config trained (or being trained) by an earlier trial of the study, on this machine or another, is not trained
  again: the trial waits for it and takes its outcome (launch/sweep_shared.py; no file lock). Each trial records
  its host, workdir and trial directory in the study.
- A trial past the study's budget (started by a concurrent thread or process) is not run (sweep_study.within_budget).

Each fmnist process leads a session of its own, so a terminal's Ctrl-C reaches only the sweep, which stops every
trial the same way whether it got a terminal's SIGINT or a `kill -INT` of its pid: exactly one SIGTERM to the trial's
process group, then SIGKILL to the group if it still runs `stop_timeout_s` later (a line says so).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna

from launch import sweep_shared
from launch.search_space import ROOT, SearchSpace, format_value
from launch.sweep_study import INTERRUPTED, SURPLUS, within_budget

TRAIN_EXAMPLES = 60000  # Fashion-MNIST's train split (fmnist.config.validation, not imported: it loads Keras).
POLL_S = 0.5
SAME_TRIAL = ("overrides", "config_hash")  # What trial.json must match for a result to be reused (not the path).
STOP_TIMEOUT_S = 120.0  # SIGKILL a trial that has not stopped this long after SIGTERM (launch.sweep --stop_timeout).


class TrialFailed(Exception):
    """fmnist exited without results: the trial is FAIL, with the one line that says why."""


class TrialInterrupted(Exception):
    """The sweep was told to stop: the trial is FAIL, marked interrupted, and re-enqueued."""


class TrialSurplus(Exception):
    """Started past the budget: the trial is FAIL, marked surplus, never run, left out of the reports and counts."""


def trial_command(config_arg: str, trial_dir: Path, overrides: dict, mode: str = "train") -> list[str]:
    mode_flag = [] if mode == "train" else [f"--mode={mode}"]
    return [sys.executable, "-m", "fmnist.main", f"--config={config_arg}", f"--workdir={trial_dir}", *mode_flag,
            *(f"--config.{k}={format_value(v)}" for k, v in overrides.items())]


def _env() -> dict:
    """The sweep's environment, with this repository first on the path (so trials run this checkout's fmnist)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def error_line(log: str, returncode: int) -> str:
    """The one line that says why a trial failed."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for pattern in (r"^fmnist: error:", r"^\w+(\.\w+)*(Error|Exception)\b", r"error", r"."):
        hits = [line for line in lines if re.search(pattern, line, flags=re.IGNORECASE)]
        if hits:
            reason = hits[-1][:300]
            break
    else:
        reason = ""
    code = f"killed by signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
    return f"{code}: {reason}" if reason else code


def read_evals(trial_dir: Path) -> list[dict]:
    """The evaluations in trial_dir/evals.jsonl, one per step (the latest wins), in step order."""
    path = trial_dir / "evals.jsonl"
    if not path.is_file():
        return []
    by_step = {}
    for line in path.read_text().splitlines():
        if line.endswith("}"):  # A line being written has no closing brace yet.
            record = json.loads(line)
            by_step[record["step"]] = record
    return [by_step[s] for s in sorted(by_step)]


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Sends `sig` to the process group `proc` leads (its own session), unless it has exited and been reaped."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class TrialRunner:
    """The Optuna objective: one call runs (or reuses) one trial. Thread-safe, for --parallel."""

    def __init__(self, config_arg: str, workdir: Path, space: SearchSpace, log=print, budget: int = 0,
                 distinct: bool = False, stop_timeout_s: float = STOP_TIMEOUT_S):
        self.config_arg, self.workdir, self.space, self._log = config_arg, workdir, space, log
        self.budget, self.distinct, self.stop_timeout_s = budget, distinct, stop_timeout_s
        self.lock = threading.Lock()  # One line at a time from the trial threads (--parallel); see request_stop.
        self.stopping = False

    def trial_dir(self, params: dict) -> Path:
        return self.workdir / "trials" / self.space.config_hash(params)

    def spec(self, params: dict) -> dict:
        return {"config": self.config_arg, "overrides": self.space.overrides(params),
                "config_hash": self.space.config_hash(params)}

    def log(self, message: str) -> None:
        with self.lock:
            self._log(message)

    def request_stop(self) -> None:
        """Stops every running trial (SIGTERM: fmnist saves a checkpoint); no new one starts. Safe in a signal
        handler: it only sets a flag, which the thread watching each trial acts on within POLL_S. (A handler runs in
        the main thread between any two bytecodes: one that took `lock`, or printed, could wait forever for the
        very thread it interrupted.)"""
        self.stopping = True

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.space.suggest(trial)
        if self.budget and not within_budget(trial.study, trial.number, params, self.budget, self.distinct):
            trial.set_user_attr(SURPLUS, True)
            raise TrialSurplus(f"not run: the study's {self.budget} trials were started by others")
        earlier = sweep_shared.same_config(trial, self.space.config_hash(params), lambda: self.stopping)
        if self.stopping:
            trial.set_user_attr(INTERRUPTED, True)
            raise TrialInterrupted("the sweep is stopping")
        if earlier is not None:
            self.log(f"trial {trial.number}: the outcome of trial {earlier.number} of the same config "
                     f"({earlier.state.name.lower()}), trained on {earlier.user_attrs.get(sweep_shared.HOST, '?')}")
            return sweep_shared.take_outcome(trial, earlier)
        d = self.trial_dir(params)
        d.mkdir(parents=True, exist_ok=True)
        sweep_shared.record_where(trial, self.workdir, d)
        return self._run(trial, params, d)

    def _run(self, trial: optuna.Trial, params: dict, d: Path) -> float:
        spec = self.spec(params)
        results = read_json(d / "results.json")
        recorded = read_json(d / "trial.json") or {}
        if results is not None and all(recorded.get(k) == json.loads(json.dumps(spec[k])) for k in SAME_TRIAL):
            self._report(trial, read_evals(d), prune=False, reported=set())
            self.log(f"trial {trial.number} {d.name}: reused the results of the same config")
            return self._finish(trial, params, d, results, results["steps"], results["steps"])
        (d / "trial.json").write_text(json.dumps(spec, indent=2) + "\n")
        start_step = (read_json(d / "sweep_progress.json") or {}).get("end_step", 0)
        self.log(f"trial {trial.number} {d.name} {params}: started" + (f" (resuming at step {start_step})"
                                                                        if start_step else ""))
        returncode, pruned = self._run_process(trial, d, spec["overrides"])
        results = read_json(d / "results.json") if returncode == 0 else None
        end_step = self._end_step(d, results)
        (d / "sweep_progress.json").write_text(json.dumps({"end_step": end_step}) + "\n")
        self._account(trial, params, start_step, end_step)
        if pruned:
            raise optuna.TrialPruned(f"pruned at evaluation {len(read_evals(d))}")
        if self.stopping and results is None:
            trial.set_user_attr(INTERRUPTED, True)
            raise TrialInterrupted("stopped by a signal to the sweep; it resumes when the sweep is run again")
        if results is None:
            error = error_line((d / "log.txt").read_text(errors="replace"), returncode)
            trial.set_user_attr("error", error)
            raise TrialFailed(error)
        return self._finish(trial, params, d, results, start_step, end_step)

    def _run_process(self, trial: optuna.Trial, d: Path, overrides: dict) -> tuple[int, bool]:
        """Runs fmnist, reporting evaluations as they appear; (exit code, pruned)."""
        pruned, reported = False, set()

        def stop_now() -> bool:
            nonlocal pruned
            pruned = pruned or self._report(trial, read_evals(d), prune=True, reported=reported)
            return pruned or self.stopping

        code = self._run_supervised(trial_command(self.config_arg, d, overrides), d, f"trial {trial.number}",
                                    stop_now)
        if not pruned and code == 0:
            self._report(trial, read_evals(d), prune=False, reported=reported)
        return code, pruned

    def _run_supervised(self, cmd: list[str], d: Path, name: str, stop_now) -> int:
        """Runs `cmd` in a session of its own, output appended to d/log.txt, and returns its exit code. Polls
        `stop_now` every POLL_S: once it is true, SIGTERM to the process group, and SIGKILL to the group if it still
        runs stop_timeout_s later. The process never outlives this call, even when it raises."""
        with open(d / "log.txt", "a") as log:
            log.write(" ".join(cmd) + "\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_env(),
                                    cwd=ROOT, start_new_session=True)
        term_at = None
        try:
            while proc.poll() is None:
                time.sleep(POLL_S)
                if term_at is None and stop_now():
                    if self.stopping:
                        self.log(f"{name}: the sweep is stopping; SIGTERM (it saves a checkpoint to resume from)")
                    _signal_group(proc, signal.SIGTERM)
                    term_at = time.monotonic()
                elif term_at is not None and time.monotonic() - term_at >= self.stop_timeout_s:
                    self.log(f"{name}: still running {self.stop_timeout_s:g} s after SIGTERM; SIGKILL to its process "
                             f"group {proc.pid} (it resumes from its last checkpoint)")
                    _signal_group(proc, signal.SIGKILL)
                    term_at = float("inf")
        finally:
            if proc.poll() is None:  # An exception above (e.g. the study's storage failed): no orphan trial.
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    @staticmethod
    def _report(trial: optuna.Trial, evals: list[dict], prune: bool, reported: set) -> bool:
        """Reports evaluations not reported yet (step = evaluation number); True when the pruner says stop."""
        for number, record in enumerate(evals, 1):
            if number in reported or record.get("validation_accuracy") is None:
                continue
            trial.report(record["validation_accuracy"], number)
            reported.add(number)
            if prune and trial.should_prune():
                return True
        return False

    @staticmethod
    def _end_step(d: Path, results: dict | None) -> int:
        """The step the trial's checkpoints reached: results.json's, the SIGTERM stop's, or the last evaluation's."""
        if results is not None:
            return int(results["steps"])
        stops = re.findall(r"stopped: \w+ at step (\d+)", (d / "log.txt").read_text(errors="replace"))
        evals = read_evals(d)
        return max([0] + [int(s) for s in stops[-1:]] + [e["step"] for e in evals[-1:]])

    def _account(self, trial: optuna.Trial, params: dict, start_step: int, end_step: int) -> None:
        """Compute spent by this trial: training steps, and epochs (what the sweep's cost is counted in)."""
        config = {**self.space.base, **self.space.overrides(params)}
        steps_per_epoch = (TRAIN_EXAMPLES - config["validation_size"]) // config["batch_size"]
        trial.set_user_attr("steps_trained", end_step - start_step)
        trial.set_user_attr("epochs_trained", (end_step - start_step) / steps_per_epoch)
        trial.set_user_attr("end_epoch", end_step / steps_per_epoch)

    def _finish(self, trial: optuna.Trial, params: dict, d: Path, results: dict, start_step: int,
                end_step: int) -> float:
        self._account(trial, params, start_step, end_step)
        if results.get("validation_accuracy") is None:
            raise TrialFailed(f"{d}/results.json has no validation_accuracy")
        for key in ("train_time_s", "params", "steps"):
            trial.set_user_attr(key, results.get(key))
        return float(results["validation_accuracy"])

    def evaluate_test(self, params: dict) -> float:
        """The test accuracy of a trial's final checkpoint (`fmnist.main --mode=eval`); an eval_results.json of the
        final step is reused. The caller checks that the trial's directory is here. This machine's processes take
        turns (a lock file: fcntl, reliable on local disks only), so the second reuses the first's evaluation; on a
        shared file system two machines may both evaluate it, which costs time, not correctness."""
        d = self.trial_dir(params)
        with open(d / ".test.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._evaluate_test(d, params)

    def _evaluate_test(self, d: Path, params: dict) -> float:
        results, evaluated = read_json(d / "results.json") or {}, read_json(d / "eval_results.json") or {}
        if evaluated.get("test", {}).get("step") != results.get("steps"):
            cmd = trial_command(self.config_arg, d, self.spec(params)["overrides"], mode="eval")
            code = self._run_supervised(cmd, d, f"test evaluation of {d.name}", lambda: self.stopping)
            if self.stopping:
                raise TrialInterrupted("the sweep is stopping")
            evaluated = read_json(d / "eval_results.json") or {}
            if code != 0 or "test" not in evaluated:
                raise TrialFailed(f"test evaluation of {d}: " + error_line((d / "log.txt").read_text(), code))
        return float(evaluated["test"]["accuracy"])
