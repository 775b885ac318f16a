"""Accuracy against training compute: the frontier fmnist's configs trace, drawn as a PNG and a markdown table.

  python -m benchmarks.frontier RUN [RUN ...] [--png=frontier.png] [--table=frontier.md] [--kfe=kfe.json]

A RUN is a finished run's workdir (its results.json) or a folder searched for them at any depth; shell globs work
too. Runs whose configs differ only in the seed (and in keys that change no result: logging, checkpoints, data_dir,
TTA) are one point: the mean accuracy, whiskers from the lowest to the highest seed. A point is labelled by the file
in configs/ nearest its config, with the keys where it differs (results.json does not record the file a run came
from, so a run labels by what it ran, against today's configs).
Honest accounting: the accuracy is results.json's `eval_accuracy`, the test split, one model (the EMA weights where
a config averages them), never a TTA figure; the compute is its `train_tflop`, 3 x forward FLOPs x every example the
run trained on (augmented copies included, evaluation not counted). A run that did not evaluate the test split
(`evaluate_test=false`) counts its validation hold-out, and is refused beside test-split runs unless --mixed_splits.
--kfe adds each point's mean training time in KFE from `python -m benchmarks.kfe --output=kfe.json RUN ...`, run
from the same folder on the same runs.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks import report
from launch import Parser

ROOT = Path(__file__).resolve().parents[1]
# Config keys that change no figure of a run: they neither split a point nor appear in its label.
IGNORED = {"seed", "data_dir", "steps_per_loop", "eval_every_steps", "checkpoint_every_steps", "keep_checkpoints",
           "profile_steps", "tpu", "tta_flip", "tta_multiview"}
LABEL_KEYS = 4  # Differing keys shown in a label; more are counted.


class InputError(ValueError):
    """Bad input, as one line: what is wrong and how to fix it."""


@dataclass
class Run:
    workdir: Path
    config: dict
    seed: int
    split: str  # 'test', or 'validation' when the run did not evaluate the test split.
    accuracy: float
    tflop: float


@dataclass
class Point:
    label: str
    split: str
    runs: list[Run]
    kfe: float | None = None

    @property
    def accuracies(self) -> list[float]:
        return [r.accuracy for r in self.runs]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def tflop(self) -> float:
        return statistics.fmean(r.tflop for r in self.runs)


def find_runs(paths: list[Path]) -> list[Path]:
    """The run folders: each path holding a results.json, else every folder below it that holds one."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.exists():
            raise InputError(f"{path} does not exist: give run folders (or folders holding them)")
        hits = [path / "results.json"] if (path / "results.json").is_file() else sorted(path.rglob("results.json"))
        if not hits:
            raise InputError(f"no results.json in {path} or below: give folders of finished runs")
        found |= dict.fromkeys(h.parent.resolve() for h in hits)
    return list(found)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path} is not readable JSON ({type(e).__name__}: {e}); leave that run out") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} holds no JSON object; leave that run out")
    return data


def read_run(workdir: Path) -> Run:
    """A finished run's figures from its results.json (the config from it, or from config.json beside it)."""
    path = workdir / "results.json"
    r = _json(path)
    config = r.get("config") or (_json(workdir / "config.json") if (workdir / "config.json").is_file() else None)
    if not isinstance(config, dict):
        raise InputError(f"{path} has no config and {workdir} no config.json: not a run of fmnist.main")
    split, accuracy = ("test", r.get("eval_accuracy"))
    if accuracy is None:  # evaluate_test=false: results.json holds the hold-out's figure only.
        split, accuracy = ("validation", r.get("validation_accuracy"))
    if not isinstance(accuracy, int | float) or not isinstance(r.get("train_tflop"), int | float):
        missing = "train_tflop" if accuracy is not None else "eval_accuracy (or validation_accuracy)"
        raise InputError(f"{path} has no {missing}: not a finished run's results (or its FLOP count failed); "
                         "leave that run out")
    return Run(workdir, config, int(config.get("seed", 0)), split, float(accuracy), float(r["train_tflop"]))


def config_files() -> dict[str, dict]:
    """{'configs/NAME.py': its config as JSON would hold it} for the config files beside this repository."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    out = {}
    for path in sorted((ROOT / "configs").glob("*.py")):
        try:
            config = importlib.import_module(f"configs.{path.stem}").get_config().to_dict()
        except Exception:  # noqa: BLE001 - not a config file (configs/__init__.py), or one that cannot load here.
            continue
        out[f"configs/{path.name}"] = json.loads(json.dumps(config))
    return out


def _differences(config: dict, reference: dict) -> list[str]:
    """`config`'s KEY=VALUE where `reference` differs or lacks the key (a key the run lacks, being older, is none)."""
    return [f"{k}={v}" for k, v in sorted(config.items()) if k not in IGNORED and (k not in reference
                                                                                   or v != reference[k])]


def label(config: dict, files: dict[str, dict]) -> str:
    """The nearest config file's name and the keys where `config` differs from it."""
    if not files:
        return f"{config.get('model', '?')} (no configs/ to compare with)"
    name = min(files, key=lambda f: len(_differences(config, files[f])))
    diffs = _differences(config, files[name])
    more = f", +{len(diffs) - LABEL_KEYS} more" if len(diffs) > LABEL_KEYS else ""
    return " ".join([name, ", ".join(diffs[:LABEL_KEYS]) + more]).strip()


def group(runs: list[Run], files: dict[str, dict]) -> list[Point]:
    """One point per config up to the seed and the IGNORED keys (and per split), by training compute."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.config.items() if k not in IGNORED} | {"": run.split}, sort_keys=True)
        groups.setdefault(key, []).append(run)
    points = [Point(label(g[0].config, files), g[0].split, sorted(g, key=lambda r: r.seed)) for g in groups.values()]
    return sorted(points, key=lambda p: (p.tflop, p.label))


def add_kfe(points: list[Point], path: Path) -> None:
    """Each point's mean KFE, from benchmarks.kfe's --output; '-' unless every one of its runs is there."""
    data = _json(path)
    try:
        kfe = {Path(row["workdir"]).resolve(): float(row["kfe"]) for row in data["runs"]}
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path} is not benchmarks.kfe's --output ({type(e).__name__}: {e})") from None
    if not any(r.workdir in kfe for p in points for r in p.runs):
        raise InputError(f"{path} has none of these runs: measure them with python -m benchmarks.kfe "
                         f"--output={path} RUN ... from this folder")
    for p in points:
        if all(r.workdir in kfe for r in p.runs):
            p.kfe = statistics.fmean(kfe[r.workdir] for r in p.runs)


def _name(p: Point, mixed: bool) -> str:
    return f"{p.label} (validation)" if mixed and p.split == "validation" else p.label


def markdown(points: list[Point]) -> str:
    splits = {p.split for p in points}
    mixed = len(splits) > 1
    what = "accuracy" if mixed else f"{splits.pop()} accuracy"
    rows = [[f"`{_name(p, mixed)}`", ", ".join(str(r.seed) for r in p.runs), f"{p.tflop:.2f}",
             f"{100 * p.mean:.2f}%", f"{100 * min(p.accuracies):.2f}-{100 * max(p.accuracies):.2f}%",
             report.num(p.kfe, 2)] for p in points]
    lines = report.table(["config", "seeds", "TFLOP", f"{what} (mean)", "min-max", "KFE"], rows)
    return "\n".join(lines) + "\n"


def chart(points: list[Point], path: Path) -> None:
    """Accuracy (mean, whiskers min-max) against training TFLOP on a log axis, the frontier dashed, 800x500 px."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mixed = len({p.split for p in points}) > 1
    fig, ax = plt.subplots(figsize=(8, 5))
    middle = statistics.geometric_mean([min(p.tflop for p in points), max(p.tflop for p in points)])
    for p in points:
        y, right = 100 * p.mean, p.tflop > middle  # Labels of the right half go to the left of their point.
        err = [[y - 100 * min(p.accuracies)], [100 * max(p.accuracies) - y]]
        ax.errorbar([p.tflop], [y], yerr=err, fmt="s" if p.split == "validation" else "o", capsize=4)
        ax.annotate(f"{_name(p, mixed)}: {y:.2f}% (n={len(p.runs)})", (p.tflop, y), xytext=(-6 if right else 6, 4),
                    textcoords="offset points", ha="right" if right else "left", fontsize=8)
    best, front = -1.0, []
    for p in points:  # By compute: a point is on the frontier when nothing cheaper is as accurate.
        if p.mean > best:
            best, front = p.mean, [*front, p]
    ax.plot([p.tflop for p in front], [100 * p.mean for p in front], "--", color="grey", linewidth=1, zorder=0)
    ax.set_xscale("log")
    ax.margins(x=0.3, y=0.15)
    ax.set_xlabel("training compute (TFLOP, log scale)")
    ax.set_ylabel("validation / test accuracy (%)" if mixed else f"{points[0].split} accuracy (%)")
    ax.set_title("fmnist: accuracy against training compute (mean of seeds, whiskers min-max)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m benchmarks.frontier", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="Run folders (with results.json) or folders holding them.")
    parser.add_argument("--png", type=Path, default=Path("frontier.png"), help="The plot (default frontier.png).")
    parser.add_argument("--table", type=Path, default=Path("frontier.md"),
                        help="The markdown table (default frontier.md); also printed.")
    parser.add_argument("--kfe", type=Path, help="benchmarks.kfe's --output for these runs: adds the KFE column.")
    parser.add_argument("--mixed_splits", action="store_true",
                        help="Allow validation hold-out runs (evaluate_test=false) beside test-split runs.")
    args = parser.parse_args(argv)
    try:
        runs = [read_run(w) for w in find_runs(args.runs)]
        if not args.mixed_splits and len({r.split for r in runs}) > 1:
            held = next(r.workdir for r in runs if r.split == "validation")
            raise InputError(f"{held} evaluated a validation hold-out, not the test split as the others did: leave "
                             "it out, or pass --mixed_splits to draw both")
        points = group(runs, config_files())
        if args.kfe:
            add_kfe(points, args.kfe)
    except InputError as e:
        parser.error(str(e))
    text = markdown(points)
    for path in (args.png, args.table):
        path.parent.mkdir(parents=True, exist_ok=True)
    chart(points, args.png)
    tmp = args.table.with_name(f".{args.table.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, args.table)
    print(text, end="")
    print(f"{len(runs)} runs, {len(points)} points: {args.png}, {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
