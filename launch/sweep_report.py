"""What a sweep writes for people: sweep.csv, sweep.md, TensorBoard HParams data and Optuna's plots (PNG).

All of it is derived from the study and rewritten whole, so any process working on the study can refresh it. Each
file and the TensorBoard folder are written under a temporary name unique to the host and process, then renamed: a
reader never sees half a report, and of two machines refreshing a shared workdir at once the later rename wins (or,
for the folder, the first: both are derived from the same study). A lock file (`.reports.lock`, fcntl) only keeps
this machine's processes from redoing each other's work; it is not relied on across machines.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from launch.search_space import SearchSpace, format_value
from launch.sweep_study import SURPLUS

ORDER = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAIL: 2, TrialState.RUNNING: 3,
         TrialState.WAITING: 4}
PLOTS = {"optimization_history": "plot_optimization_history", "parallel_coordinate": "plot_parallel_coordinate",
         "param_importances": "plot_param_importances", "intermediate_values": "plot_intermediate_values"}


def ranked(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Completed trials by validation accuracy (best first), then pruned (by their last evaluation), failed, running,
    waiting; ties by trial number."""
    def last(t: FrozenTrial) -> float:
        if t.value is not None:
            return t.value
        return t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else 0.0
    return sorted(trials, key=lambda t: (ORDER[t.state], -last(t), t.number))


def winner(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    order = ranked(trials)
    return order[0] if order and order[0].state == TrialState.COMPLETE else None


def rows(trials: Sequence[FrozenTrial], space: SearchSpace, test_accuracy: float | None) -> list[dict]:
    """One row per trial, ranked; the test accuracy on the winner's row only."""
    best = winner(trials)
    out = []
    for rank, t in enumerate(ranked(trials), 1):
        evals = t.intermediate_values
        out.append({
            "rank": rank if t.state == TrialState.COMPLETE else "", "trial": t.number, "state": t.state.name,
            **{k: t.params.get(k) for k in space.keys},
            "validation_accuracy": t.value if t.state == TrialState.COMPLETE else None,  # Pruned: the last one.
            "last_evaluation": evals[max(evals)] if evals else None, "evaluations": len(evals),
            "steps_trained": t.user_attrs.get("steps_trained"), "epochs_trained": t.user_attrs.get("epochs_trained"),
            "train_time_s": t.user_attrs.get("train_time_s"),
            "params": t.user_attrs.get("params"), "test_accuracy": test_accuracy if t is best else None,
            "trial_dir": t.user_attrs.get("trial_dir", ""),
            "note": t.user_attrs.get("error", "interrupted, re-enqueued" if t.user_attrs.get("interrupted") else ""),
        })
    return out


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def _tmp(path: Path) -> Path:
    """A temporary name beside `path`, unique to this host and process (pids repeat across machines)."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}")


def write_csv(path: Path, table: list[dict]) -> None:
    tmp = _tmp(path)
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in table)
    os.replace(tmp, path)


def markdown(table: list[dict], space: SearchSpace, header: dict) -> str:
    counts = {s: sum(r["state"] == s for r in table) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
    epochs = sum(r["epochs_trained"] or 0 for r in table)
    lines = [f"# Sweep {header['sweep']}", "",
             f"Base config `{header['config']}`, sampler {header['method']}, pruner {header['pruner']}, fixed "
             f"`{json.dumps(space.fixed)}`; study `{header['study']}`. Trials: "
             + ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
             + f"; {epochs:.2f} trial-epochs trained. Ranked by validation accuracy; trials never evaluate the test "
             "split.", "",
             "| rank | trial | " + " | ".join(space.keys) + " | validation accuracy | evaluations | epochs trained "
             "| train time | params | state | trial dir |", "|---" * (len(space.keys) + 9) + "|"]
    for r in table:
        state = r["state"].lower() + (f": {r['note']}" if r["note"] else "")
        accuracy = _pct(r["validation_accuracy"]) or (f"({_pct(r['last_evaluation'])} last)"
                                                      if r["last_evaluation"] is not None else "")
        cells = [r["rank"], r["trial"], *(format_value(r[k]) for k in space.keys), accuracy, r["evaluations"],
                 "" if r["epochs_trained"] is None else f"{r['epochs_trained']:.2f}",
                 "" if r["train_time_s"] is None else f"{r['train_time_s']:.0f} s",
                 "" if r["params"] is None else f"{r['params']:,}", state.replace("|", "\\|"), f"`{r['trial_dir']}`"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    best = next((r for r in table if r["rank"] == 1), None)
    if best:
        test = (f"test accuracy {_pct(best['test_accuracy'])} (evaluated once, for the winner only)"
                if best["test_accuracy"] is not None else "test accuracy not evaluated yet")
        lines += ["", f"**Winner** trial {best['trial']} (`{best['trial_dir']}`): validation accuracy "
                  f"{_pct(best['validation_accuracy'])}; {test}."]
    return "\n".join(lines) + "\n"


def _domain(spec):
    from tensorboard.plugins.hparams import summary_v2 as hp

    if isinstance(spec, list):
        return hp.Discrete(spec) if len({type(v) for v in spec}) == 1 else None
    (kind, (lo, hi)), = spec.items()
    return hp.IntInterval(lo, hi) if kind == "int_uniform" else hp.RealInterval(float(lo), float(hi))


def write_hparams(logdir: Path, trials: Sequence[FrozenTrial], space: SearchSpace) -> None:
    """The TensorBoard HParams dashboard: the experiment config in `logdir`, one run per completed trial."""
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

    tmp = _tmp(logdir)
    shutil.rmtree(tmp, ignore_errors=True)
    metrics = {"validation_accuracy": "validation accuracy", "epochs_trained": "epochs trained",
               "train_time_s": "train time (s)", "params": "params"}
    write(tmp, hp.hparams_config_pb([hp.HParam(k, _domain(s)) for k, s in space.parameters.items()],
                                    [hp.Metric(tag, display_name=name) for tag, name in metrics.items()]))
    for t in trials:
        if t.state == TrialState.COMPLETE:
            values = {"validation_accuracy": t.value} | {k: t.user_attrs.get(k) for k in list(metrics)[1:]}
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=k, simple_value=v)
                                                 for k, v in values.items() if v is not None])
            write(tmp / f"trial-{t.number:03d}", hp.hparams_pb(t.params, trial_id=f"trial-{t.number:03d}"), summary)
    shutil.rmtree(logdir, ignore_errors=True)  # Derived data: replaced whole, so re-runs add no duplicates.
    try:
        os.replace(tmp, logdir)
    except OSError:  # Another machine's process put its (equally fresh) copy there meanwhile: keep that one.
        shutil.rmtree(tmp, ignore_errors=True)


def write_plots(study: optuna.Study, plots_dir: Path, log: Callable[[str], None]) -> list[Path]:
    """Optuna's own views of the study as PNG files; a view that needs more trials is skipped with a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, function in PLOTS.items():
        kwargs = {"evaluator": optuna.importance.PedAnovaImportanceEvaluator()} if name == "param_importances" else {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental.
                ax = getattr(views, function)(study, **kwargs)
            figure = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
            figure.set_size_inches(9, 5.5)
            figure.tight_layout()
            tmp = _tmp(plots_dir / f"{name}.png")
            figure.savefig(tmp, dpi=100, format="png")
            plt.close(figure)
            os.replace(tmp, plots_dir / f"{name}.png")
            written.append(plots_dir / f"{name}.png")
        except Exception as e:  # noqa: BLE001 - Optuna raises several types for "not enough trials".
            log(f"plot {name} skipped: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return written


def write_all(workdir: Path, study: optuna.Study, space: SearchSpace, header: dict, test_accuracy: float | None,
              log: Callable[[str], None], plots: bool = True) -> None:
    """Every report. The lock file serialises this machine's processes (fcntl locks are unreliable on NFS and
    absent on Cloud Storage FUSE); across machines, the atomic renames keep the reports whole."""
    with open(workdir / ".reports.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _write_all(workdir, study, space, header, test_accuracy, log, plots)


def _write_all(workdir: Path, study: optuna.Study, space: SearchSpace, header: dict, test_accuracy: float | None,
               log: Callable[[str], None], plots: bool) -> None:
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]  # Never run.
    table = rows(trials, space, test_accuracy)
    if not table:
        return
    write_csv(workdir / "sweep.csv", table)
    tmp = _tmp(workdir / "sweep.md")
    tmp.write_text(markdown(table, space, header))
    os.replace(tmp, workdir / "sweep.md")
    write_hparams(workdir / "tensorboard", trials, space)
    if plots:
        write_plots(study, workdir / "plots", log)
