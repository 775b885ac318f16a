"""Architecture and hyperparameter sweeps with honest validation: select on validation accuracy, report test once.

  python -m launch.sweep --config=configs/cpu.py --sweep=configs/sweeps/arch_lr.py --workdir=DIR \\
      [--parallel=N] [--trials=K] [--dry_run]

Each trial is `python -m fmnist.main --config=CONFIG --workdir=DIR/trials/NAME --config.KEY=VALUE ...`, run as a
subprocess (N at a time with --parallel), its output in DIR/trials/NAME/log.txt. Trial names are deterministic:
`003-model_width=32,learning_rate=0.001`. Re-running the command is resumable: a trial with a results.json is not
re-run (an interrupted one resumes from its checkpoints); delete a trial's results.json to re-run it.

A sweep file defines `get_sweep()` returning a dict:
  method      "grid": every combination of the `parameters` lists, in order (--trials K keeps the first K);
              "random": `num_trials` draws (--trials overrides; the first K draws do not depend on K).
  num_trials  int, for "random".
  seed        int, the random draws' seed (default 0).
  parameters  {config key: values}, values either a list (a grid axis, or a uniform choice for random) or, for
              random only, {"log_uniform": [lo, hi]}, {"uniform": [lo, hi]} or {"int_uniform": [lo, hi]} (inclusive).
              Drawn floats are rounded to 3 significant digits, so a trial's name shows its exact value.
  fixed       {config key: value}, the same for every trial (e.g. model, num_epochs, validation_size).

Selection is on `validation_accuracy` of each trial's results.json, so validation_size must be > 0 (in `fixed` or the
base config): a sweep without it is refused. The test accuracy (`eval_accuracy`) is reported for the winner only,
once, at the end; it plays no part in the ranking.

Outputs, rewritten after every finished trial:
  DIR/sweep.csv and DIR/sweep.md  trials sorted by validation accuracy (failed ones last, with their one-line error);
  DIR/tensorboard                 TensorBoard HParams dashboard data: `tensorboard --logdir DIR/tensorboard`.
Exit code: 0 when every trial has results, 1 when some failed (the others still ran), 2 for a bad command or sweep.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from launch import Parser

PROG = "launch.sweep"
USAGE = f"python -m {PROG} --config=CONFIG --sweep=SWEEP --workdir=DIR [--parallel=N] [--trials=K] [--dry_run]"
ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform")


class SweepError(Exception):
    """A bad sweep file or an impossible sweep: reported as one line, exit code 2."""


@dataclass
class Trial:
    index: int
    params: dict
    name: str = ""
    status: str = "pending"  # pending | ok | failed
    results: dict = field(default_factory=dict)
    error: str = ""

    def __post_init__(self):
        if not self.name:
            label = ",".join(f"{k}={format_value(v)}" for k, v in self.params.items())
            self.name = re.sub(r"[^\w.,=+-]", "_", f"{self.index:03d}-{label}")


def format_value(value) -> str:
    """A value as written on the fmnist.main command line and in trial names."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def load_python(path: str, function: str, *args):
    """Calls `function(*args)` of the Python file at `path` (the repository root importable, for `configs`)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    file = Path(path)
    if not file.is_file():
        raise SweepError(f"{path} is not a file")
    spec = importlib.util.spec_from_file_location(f"_sweep_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, function):
            raise SweepError(f"{path} defines no {function}()")
        return getattr(module, function)(*args)
    except SweepError:
        raise
    except Exception as e:  # noqa: BLE001 - any error in the user's file becomes one line.
        raise SweepError(f"{path}: {type(e).__name__}: {e}") from None


def load_base_config(config_arg: str) -> dict:
    """The base config as a dict; `path:arg` passes `arg` to get_config as ml_collections does."""
    path, _, arg = config_arg.partition(":")
    config = load_python(path, "get_config", *([arg] if arg else []))
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


def _sample(spec, rng: random.Random):
    if isinstance(spec, list):
        return rng.choice(spec)
    (kind, (lo, hi)), = spec.items()
    if kind == "log_uniform":
        return _round3(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    if kind == "uniform":
        return _round3(rng.uniform(lo, hi))
    return rng.randint(lo, hi)


def _check_spec(key: str, spec, method: str) -> None:
    if isinstance(spec, list):
        if not spec:
            raise SweepError(f"parameters.{key} is an empty list")
        return
    if method == "grid" or not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        kinds = "a list" if method == "grid" else "a list or {KIND: [lo, hi]}, KIND one of " + ", ".join(DISTRIBUTIONS)
        raise SweepError(f"parameters.{key}={spec!r} must be {kinds} for method={method}")
    (kind, bounds), = spec.items()
    if not (isinstance(bounds, list | tuple) and len(bounds) == 2 and bounds[0] < bounds[1]):
        raise SweepError(f"parameters.{key}.{kind} must be [lo, hi] with lo < hi")
    if kind == "log_uniform" and bounds[0] <= 0:
        raise SweepError(f"parameters.{key}.log_uniform needs lo > 0")


def make_trials(sweep: dict, base: dict, max_trials: int | None = None) -> list[Trial]:
    """Validates the sweep against the base config and expands it into trials (params: swept keys only)."""
    method, params, fixed = sweep.get("method", "grid"), sweep.get("parameters", {}), sweep.get("fixed", {})
    if method not in ("grid", "random"):
        raise SweepError(f"method={method!r} must be 'grid' or 'random'")
    if not params:
        raise SweepError("the sweep has no parameters")
    for key in [*params, *fixed]:
        if key not in base:
            raise SweepError(f"unknown config key {key!r} in the sweep; see configs/default.py for the keys")
    if both := set(params) & set(fixed):
        raise SweepError(f"{', '.join(sorted(both))} both swept and fixed")
    for key, spec in params.items():
        _check_spec(key, spec, method)
    if method == "grid":
        combos = [dict(zip(params, values, strict=True)) for values in itertools.product(*params.values())]
        combos = combos[:max_trials] if max_trials else combos
    else:
        count = max_trials or sweep.get("num_trials", 0)
        if count < 1:
            raise SweepError("method=random needs num_trials >= 1 (or --trials)")
        rng = random.Random(sweep.get("seed", 0))
        combos = [{k: _sample(spec, rng) for k, spec in params.items()} for _ in range(count)]
    trials = [Trial(i, combo) for i, combo in enumerate(combos)]
    for t in trials:
        if (validation := {**base, **fixed, **t.params}.get("validation_size", 0)) <= 0:
            raise SweepError(f"trial {t.name} has validation_size={validation}: a sweep selects on validation "
                             "accuracy, so set validation_size > 0 in the sweep's `fixed` or the base config "
                             "(the test split is never used for selection)")
    return trials


def trial_command(config_arg: str, trial_dir: Path, overrides: dict) -> list[str]:
    return [sys.executable, "-m", "fmnist.main", f"--config={config_arg}", f"--workdir={trial_dir}",
            *(f"--config.{k}={format_value(v)}" for k, v in overrides.items())]


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


class Runner:
    """Runs trials as subprocesses (terminated if the sweep is interrupted)."""

    def __init__(self, config_arg: str, workdir: Path, fixed: dict):
        self.config_arg, self.workdir, self.fixed = config_arg, workdir, fixed
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def trial_dir(self, trial: Trial) -> Path:
        return self.workdir / "trials" / trial.name

    def spec(self, trial: Trial) -> dict:
        return {"config": self.config_arg, "overrides": {**self.fixed, **trial.params}}

    def load_finished(self, trial: Trial) -> bool:
        """Fills `trial` from an existing results.json; refuses one written by different settings."""
        d = self.trial_dir(trial)
        if not (d / "results.json").is_file():
            return False
        recorded = json.loads((d / "trial.json").read_text()) if (d / "trial.json").is_file() else None
        if recorded is not None and recorded != json.loads(json.dumps(self.spec(trial))):
            raise SweepError(f"{d} was run with other settings ({recorded}); use a new --workdir or delete it")
        trial.results, trial.status = json.loads((d / "results.json").read_text()), "ok"
        return True

    def run(self, trial: Trial) -> Trial:
        d = self.trial_dir(trial)
        d.mkdir(parents=True, exist_ok=True)
        (d / "trial.json").write_text(json.dumps(self.spec(trial), indent=2) + "\n")
        cmd = trial_command(self.config_arg, d, self.spec(trial)["overrides"])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(d / "log.txt", "w") as log:
            log.write(" ".join(cmd) + "\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            with self.lock:
                self.procs.add(proc)
            returncode = proc.wait()
            with self.lock:
                self.procs.discard(proc)
        if returncode == 0 and (d / "results.json").is_file():
            trial.results, trial.status, trial.error = json.loads((d / "results.json").read_text()), "ok", ""
        else:
            trial.status, trial.error = "failed", error_line((d / "log.txt").read_text(errors="replace"), returncode)
        return trial

    def terminate(self) -> None:
        with self.lock:
            for proc in self.procs:
                proc.send_signal(signal.SIGTERM)


def ranked(trials: Sequence[Trial]) -> list[Trial]:
    """Finished trials by validation accuracy (best first, ties by index), then failed, then pending ones."""
    order = {"ok": 0, "failed": 1, "pending": 2}
    return sorted(trials, key=lambda t: (order[t.status], -(t.results.get("validation_accuracy") or 0.0), t.index))


def _row(trial: Trial, keys: Sequence[str], winner: bool) -> dict:
    r = trial.results
    return {"rank": "", "trial": trial.name, "status": trial.status, **{k: trial.params[k] for k in keys},
            "validation_accuracy": r.get("validation_accuracy"), "train_time_s": r.get("train_time_s"),
            "params": r.get("params"), "test_accuracy": r.get("eval_accuracy") if winner else None,
            "error": trial.error}


def write_reports(workdir: Path, trials: Sequence[Trial], keys: Sequence[str], header: dict) -> None:
    """sweep.csv, sweep.md and the HParams data; the test accuracy only for the winner."""
    order = ranked(trials)
    winner = order[0] if order and order[0].status == "ok" else None
    rows = [_row(t, keys, t is winner) for t in order]
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["status"] == "ok" else ""
    with open(workdir / "sweep.csv.tmp", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    os.replace(workdir / "sweep.csv.tmp", workdir / "sweep.csv")

    def pct(x):
        return "" if x is None else f"{100 * x:.2f}%"

    lines = [f"# Sweep {header['sweep']}", "",
             f"Base config `{header['config']}`, method {header['method']}, fixed "
             f"`{json.dumps(header['fixed'])}`. {sum(t.status == 'ok' for t in trials)} of {len(trials)} trials "
             f"finished, {sum(t.status == 'failed' for t in trials)} failed. Ranked by validation accuracy; "
             "the test split is not used for selection.", "",
             "| rank | trial | " + " | ".join(keys) + " | validation accuracy | train time | params | status |",
             "|---" * (len(keys) + 6) + "|"]
    for row in rows:
        time_s = "" if row["train_time_s"] is None else f"{row['train_time_s']:.0f} s"
        params = "" if row["params"] is None else f"{row['params']:,}"
        status = row["status"] + (f": {row['error']}" if row["error"] else "")
        cells = [row["rank"], f"`{row['trial']}`", *(format_value(row[k]) for k in keys),
                 pct(row["validation_accuracy"]), time_s, params, status.replace("|", "\\|")]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    if winner:
        lines += ["", f"**Winner** `{winner.name}`: validation accuracy {pct(winner.results['validation_accuracy'])};"
                  f" test accuracy {pct(winner.results.get('eval_accuracy'))} (reported once, for the winner only)."]
    (workdir / "sweep.md").write_text("\n".join(lines) + "\n")
    write_hparams(workdir / "tensorboard", trials, header["parameters"])


def _domain(spec):
    from tensorboard.plugins.hparams import summary_v2 as hp

    if isinstance(spec, list):
        return hp.Discrete(spec) if len({type(v) for v in spec}) == 1 else None
    (kind, (lo, hi)), = spec.items()
    return hp.IntInterval(lo, hi) if kind == "int_uniform" else hp.RealInterval(float(lo), float(hi))


def write_hparams(logdir: Path, trials: Sequence[Trial], parameters: dict) -> None:
    """The TensorBoard HParams dashboard: the experiment config in `logdir`, one run per finished trial."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.summary.writer.record_writer import RecordWriter  # Unlike EventFileWriter, no TensorFlow.

    def write(path: Path, *summaries) -> None:
        path.mkdir(parents=True, exist_ok=True)
        now = time.time()
        events = [event_pb2.Event(wall_time=now, file_version="brain.Event:2")]
        events += [event_pb2.Event(wall_time=now, step=0, summary=s) for s in summaries]
        with open(path / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.sweep", "wb") as f:
            writer = RecordWriter(f)
            for event in events:
                writer.write(event.SerializeToString())

    shutil.rmtree(logdir, ignore_errors=True)  # Derived data: rewritten whole, so re-runs add no duplicates.
    metrics = {"validation_accuracy": "validation accuracy", "train_time_s": "train time (s)", "params": "params"}
    write(logdir, hp.hparams_config_pb([hp.HParam(k, _domain(s)) for k, s in parameters.items()],
                                       [hp.Metric(tag, display_name=name) for tag, name in metrics.items()]))
    for t in trials:
        if t.status == "ok":
            values = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=t.results[tag])
                                                for tag in metrics if t.results.get(tag) is not None])
            write(logdir / t.name, hp.hparams_pb(t.params, trial_id=t.name), values)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = Parser(prog=PROG, usage=USAGE, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="base fmnist config file (configs/*.py)")
    parser.add_argument("--sweep", required=True, help="sweep file defining get_sweep() (configs/sweeps/*.py)")
    parser.add_argument("--workdir", required=True, help="sweep directory: trials/, sweep.csv, sweep.md, tensorboard/")
    parser.add_argument("--parallel", type=int, default=1, help="trials run at once (default 1)")
    parser.add_argument("--trials", type=int, default=0, help="random: number of draws; grid: keep the first K")
    parser.add_argument("--dry_run", action="store_true", help="print the trials' commands and run nothing")
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error(f"--parallel={args.parallel} must be >= 1")
    if args.trials < 0:
        parser.error(f"--trials={args.trials} must be >= 0")
    return args


def log(message: str) -> None:
    print(f"[sweep] {message}", flush=True)


def sweep(args: argparse.Namespace) -> int:
    spec = load_python(args.sweep, "get_sweep")
    trials = make_trials(spec, load_base_config(args.config), args.trials or None)
    workdir = Path(args.workdir).expanduser().absolute()
    runner = Runner(args.config, workdir, spec.get("fixed", {}))
    if args.dry_run:
        for t in trials:
            print(" ".join(trial_command(args.config, runner.trial_dir(t), runner.spec(t)["overrides"])))
        return 0
    workdir.mkdir(parents=True, exist_ok=True)
    header = {"sweep": args.sweep, "config": args.config, "method": spec.get("method", "grid"),
              "fixed": spec.get("fixed", {}), "parameters": spec["parameters"]}
    keys = list(spec["parameters"])
    todo = []
    for t in trials:
        if runner.load_finished(t):
            log(f"{t.name}: skipped, results.json exists (validation {100 * t.results['validation_accuracy']:.2f}%)")
        else:
            todo.append(t)
    log(f"{len(trials)} trials: {len(trials) - len(todo)} done, {len(todo)} to run, {args.parallel} at a time; "
        f"logs in {workdir / 'trials'}/*/log.txt")
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = []
        for t in todo:
            futures.append(pool.submit(runner.run, t))
        try:
            for future in as_completed(futures):
                t = future.result()
                if t.status == "ok":
                    log(f"{t.name}: validation {100 * t.results['validation_accuracy']:.2f}%, "
                        f"train time {t.results['train_time_s']:.0f} s")
                else:
                    log(f"{t.name}: FAILED ({t.error})")
                write_reports(workdir, trials, keys, header)
        except KeyboardInterrupt:
            for f in futures:
                f.cancel()
            runner.terminate()
            log("interrupted: running trials terminated; run the same command again to resume")
            return 130
    write_reports(workdir, trials, keys, header)
    failed = [t for t in trials if t.status != "ok"]
    best = ranked(trials)[0]
    if best.status == "ok":
        log(f"winner {best.name}: validation {100 * best.results['validation_accuracy']:.2f}%, "
            f"test {100 * best.results['eval_accuracy']:.2f}% (test reported for the winner only)")
    log(f"{len(failed)} of {len(trials)} trials failed" if failed else f"all {len(trials)} trials finished")
    log(f"reports: {workdir / 'sweep.md'}, {workdir / 'sweep.csv'}; tensorboard --logdir {workdir / 'tensorboard'}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return sweep(args)
    except SweepError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
