"""Every model through every export format: a short real run of each model in fmnist.models.models.MODELS, exported as a
SavedModel, LiteRT float32, LiteRT int8 and ONNX, each scored on the whole test split by the runtime it deploys on,
beside the test accuracy and loss the run itself reported (results.json).

  python -m benchmarks.export_matrix [--models=NAME,...] [--root=DIR] [--data_dir=DIR] [--json]

Each model trains here (`fmnist.training.train.train_and_evaluate`, in this process) with CASES: the config it is used
with, shrunk to a few dozen steps and a small width (SHRINK), in float32 so that the run evaluates in its exports'
precision. Each run is then exported in this process as `python -m fmnist.export --format=all` would (all four
formats; a process of its own would start TensorFlow again). The .tflite and .onnx files of all models are scored by
one `benchmarks.exports` process that never imports TensorFlow; the SavedModels here, with TensorFlow (their
runtime). Prints the model x
format matrix of test accuracy, with the difference from the run's own figure in points; --json prints one record
per model and format instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Key: (path under WORKDIR/export, name in the table).
FORMATS = {"saved_model": ("1", "SavedModel"), "litert": ("model.tflite", "LiteRT float32"),
           "litert_int8": ("model_int8.tflite", "LiteRT int8"), "onnx": ("model.onnx", "ONNX")}
# Every run: a few dozen steps in one compiled loop, in float32 (a bfloat16 run reports bfloat16's figures, its
# exports are float32), evaluated and checkpointed at the end only, without test-time augmentation (reported beside
# the plain figure, never exported).
SHRINK = {"num_train_steps": 40, "steps_per_loop": 40, "batch_size": 128, "precision": "float32",
          "eval_every_steps": 0, "checkpoint_every_steps": 0, "tta_flip": False, "tta_multiview": False}

# For the models that learn slowest: at about 60% test accuracy many images sit near a tie between two classes, and
# int8's rounding moved them (resnet, 80 steps at batch 128: 216 of 10,000 changed class, 0.45 points lost).
LONGER = {"num_train_steps": 120, "steps_per_loop": 120, "batch_size": 64}


@dataclass(frozen=True)
class Case:
    """A model's run: the config file it is used with, and what shrinks it (width, depth) beside SHRINK."""

    config: str
    overrides: dict = field(default_factory=dict)

    def label(self) -> str:
        return " ".join([self.config, *(f"--config.{k}={v}" for k, v in self.overrides.items())])


# Each model with a config that uses it, so that its graph options are the ones users train with: airbench's
# whitening layer, GELU, BatchNorm without scale and logits x 1/9; fast_cnn in `make train`'s configs/cpu.py;
# resnet in configs/best.py, whose weight average (ema_decay) is what evaluation and export use.
CASES = {
    "seed_cnn": Case("configs/seed_cnn.py", {"model_width": 16, "learning_rate": 3e-3}),
    "bn_cnn": Case("configs/default.py", {"model": "bn_cnn", "model_width": 8, "model_depth": 1,
                                          "learning_rate": 1e-2, **LONGER}),
    "fast_cnn": Case("configs/cpu.py"),
    "resnet": Case("configs/best.py", {"model_width": 8, "model_depth": 1, **LONGER}),
    "airbench": Case("configs/airbench.py", {"model_width": 8, **LONGER}),
}


def case(model: str) -> Case:
    """CASES[model], or configs/default.py with the model at width 8 and depth 1 for a model without one."""
    return CASES.get(model, Case("configs/default.py", {"model": model, "model_width": 8, "model_depth": 1}))


def config_of(model: str, data_dir: str = ""):
    """The ConfigDict of `model`'s case, shrunk, reading its data from `data_dir` ('' = the default)."""
    c = case(model)
    config = importlib.import_module(c.config.removesuffix(".py").replace("/", ".")).get_config()
    config.update({**SHRINK, **c.overrides, "data_dir": data_dir})
    return config


def export_all(workdir: Path) -> str | None:
    """Exports `workdir` in every format under WORKDIR/export, in this process; None, or how it failed."""
    from fmnist.export import formats as export

    try:
        export.export_all(workdir)
    except Exception as e:  # noqa: BLE001 - one model's failure is its row of the matrix, not the end of the others.
        return f"exporting {workdir}: {type(e).__name__}: {e}"
    return None


def score_files(paths: list[Path], test_data: Path) -> dict[Path, dict]:
    """benchmarks.exports' records of the .tflite/.onnx `paths`, scored by one process without TensorFlow."""
    if not paths:
        return {}
    # One thread: ONNX Runtime's default pool spins, which cost 20% more CPU time here and no less wall time.
    proc = subprocess.run([sys.executable, "-m", "benchmarks.exports", *map(str, paths), f"--test_data={test_data}",
                           "--calls=1", "--warmup=0", "--threads=1", "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"benchmarks.exports exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return dict(zip(paths, records, strict=True))


def score_saved_model(path: Path, images, labels) -> dict:
    """The SavedModel's serving_default on every test image, here (TensorFlow is its runtime)."""
    import numpy as np

    from benchmarks import exports

    classify = exports.saved_model_classifier(str(path))
    probabilities = np.concatenate([classify(images[i:i + 1000]) for i in range(0, len(images), 1000)])
    return {"model": str(path), "runtime": "TensorFlow", "accuracy": float((probabilities.argmax(-1) == labels).mean()),
            "loss": exports.cross_entropy(probabilities, labels), "examples": len(labels),
            "size_bytes": exports.size_bytes(path), "tensorflow_imported": True}


@contextlib.contextmanager
def timed(what: str):
    """Prints to stderr how long the block took: wall time, and CPU time of this process and its children."""
    def cpu() -> float:
        return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
                   for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))

    wall, used = time.perf_counter(), cpu()
    yield
    print(f"{what}: {time.perf_counter() - wall:.1f} s wall, {cpu() - used:.1f} s CPU", file=sys.stderr, flush=True)


def run(models: list[str], root: Path, images, labels, data_dir: str = "") -> list[dict]:
    """Trains and exports `models` one after the other under `root`, and scores every format on `images` and
    `labels` (the test split of `data_dir`). One record per model and format, in FORMATS order; a model whose
    export failed has records with only its `error`."""
    import numpy as np

    from fmnist.training import train

    errors = {}
    for model in models:
        workdir = root / model
        with timed(f"{model}: training"):
            train.train_and_evaluate(config_of(model, data_dir), str(workdir))
        with timed(f"{model}: exporting"):
            errors[model] = export_all(workdir)
    paths = {(m, f): root / m / "export" / FORMATS[f][0] for m in models for f in FORMATS if not errors[m]}
    np.savez(root / "test.npz", images=images, labels=labels)
    with timed("scoring the files (no TensorFlow)"):
        scored = score_files([p for (_, f), p in paths.items() if f != "saved_model"], root / "test.npz")
    with timed("scoring the SavedModels"):
        scored |= {p: score_saved_model(p, images, labels) for (_, f), p in paths.items() if f == "saved_model"}
    records = []
    for model in models:
        reported = json.loads((root / model / "results.json").read_text())
        for fmt in FORMATS:
            measured = {"error": errors[model]} if errors[model] else scored[paths[model, fmt]]
            records.append({**measured, "file": measured.get("model"), "model": model, "format": fmt,
                            "case": case(model).label(), "reported_accuracy": reported["eval_accuracy"],
                            "reported_loss": reported["eval_loss"], "reported_count": reported["eval_count"]})
    return records


def matrix(records: list[dict]) -> str:
    """The markdown model x format table of test accuracy; (+-x.xx): points from the run's own figure."""
    rows: dict[str, dict] = {}
    for r in records:
        rows.setdefault(r["model"], {"reported": r["reported_accuracy"], "case": r["case"]})[r["format"]] = r
    lines = ["| model | run | reported | " + " | ".join(name for _, name in FORMATS.values()) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in FORMATS) + " |"]
    for model, row in rows.items():
        cells = []
        for fmt in FORMATS:
            if "error" in row[fmt]:
                cells.append("export failed")
                continue
            delta = round(100 * (row[fmt]["accuracy"] - row["reported"]), 2)
            cells.append(f"{row[fmt]['accuracy']:.2%}" + (f" ({delta:+.2f})" if delta else ""))
        lines.append(f"| {model} | `{row['case']}` | {row['reported']:.2%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from fmnist.models import models
    from fmnist.runtime import host

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(models.MODELS), help="Comma-separated names (default: all).")
    parser.add_argument("--root", default="", help="Where the runs go (default: a temporary folder, removed).")
    parser.add_argument("--data_dir", default="", help="TFDS data dir of the runs ('' = the default).")
    parser.add_argument("--json", action="store_true", help="One JSON record per model and format.")
    args = parser.parse_args()
    names = args.models.split(",")
    unknown = [m for m in names if m not in models.MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {', '.join(models.MODELS)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    host.configure()  # As fmnist.main: this process (training and exporting) runs as users' runs do.
    from fmnist.data import dataset

    test = dataset.load(args.data_dir or None)[0]["test"]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fmnist-export-matrix-") as tmp:
        root = Path(args.root or tmp).absolute()
        root.mkdir(parents=True, exist_ok=True)
        records = run(names, root, test.images, test.labels, args.data_dir)
    print(f"{len(names)} models in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print("\n".join(map(json.dumps, records)) if args.json else matrix(records))
    for model in dict.fromkeys(r["model"] for r in records if "error" in r):
        print(next(r["error"] for r in records if r["model"] == model), file=sys.stderr)


if __name__ == "__main__":
    main()
