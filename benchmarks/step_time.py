"""Training step time and examples/s over a matrix of settings, a side-by-side comparison, FLOP utilisation.

  python -m benchmarks.step_time --output=benchmarks/results \\
      --models=seed_cnn --batch_sizes=128,512 --precisions=float32,mixed_bfloat16 --jit_compile=false,true \\
      --strategies=default,mirrored:2 --steps_per_loop=50

Every matrix cell and every contender runs in its own process (benchmarks.cell, benchmarks.contenders); the matmul
peak too (benchmarks.peak). Writes results.json, results.md and results.png into --output, and the workers' logs
into --output/logs. See benchmarks/README.md for the columns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags, logging

from benchmarks import common, contenders, report
from benchmarks.cell import CellSpec
from fmnist.config.choices import PRECISIONS, normalize_jit
from fmnist.runtime import host
from fmnist.workdir.storage import write_json_atomic

TRAIN_EXAMPLES = 60000

_OUTPUT = flags.DEFINE_string("output", "benchmarks/results", "Folder for results.json, results.md, results.png.")
_MODELS = flags.DEFINE_list("models", ["seed_cnn"], "Models: fmnist.models names, or NAME:WIDTH:DEPTH (resnet:32:1).")
_BATCHES = flags.DEFINE_list("batch_sizes", ["128"], "Global batch sizes.")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], f"Of {', '.join(PRECISIONS)}.")
_JIT = flags.DEFINE_list("jit_compile", ["false", "true"], "Of auto, true, false.")
_STRATEGIES = flags.DEFINE_list(
    "strategies", ["default"], "STRATEGY[:REPLICAS] entries, e.g. default, mirrored:2 (logical CPU devices on a "
    "CPU), multi_worker:2 (worker processes on localhost).")
_SPL = flags.DEFINE_list("steps_per_loop", ["50"], "Training steps per compiled loop call.")
_SYNC_BN = flags.DEFINE_list("sync_batchnorm", ["auto"], "config.sync_batchnorm values (auto, false): the cost of "
                             "synchronised BatchNorm on several replicas.")
_STEPS = flags.DEFINE_integer("steps", 200, "Timed training steps per repetition (also pipeline batches).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions per cell; the median and spread are reported.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed repetitions first (the first one compiles).")
_EVAL_STEPS = flags.DEFINE_integer("eval_steps", 0, "Evaluation batches per repetition (0 = the whole test split).")
_COMPARE = flags.DEFINE_bool("compare", True, "Run the side-by-side comparison (seed CNN).")
_CONTENDERS = flags.DEFINE_list("contenders", list(contenders.KINDS), "Comparison contenders; torch_* need torch.")
_COMPARE_BATCH = flags.DEFINE_integer("compare_batch", 128, "Batch of every contender.")
_COMPARE_EXAMPLES = flags.DEFINE_integer("compare_examples", TRAIN_EXAMPLES,
                                         "Examples per contender per round (at most one epoch, whole batches).")
_ROUNDS = flags.DEFINE_integer("compare_rounds", 3, "Rounds; each contender runs once per round, in rotating order.")
_PEAK_SIZE = flags.DEFINE_integer("peak_size", 4096, "Matmul size for the peak (0 skips it).")
_PEAK_REPEATS = flags.DEFINE_integer("peak_repeats", 5, "Timed matmuls per dtype.")
_TIMEOUT = flags.DEFINE_float("timeout", 1800, "Seconds a worker may take for one answer before it is killed.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir ('' = fmnist's default).")


def parse_strategy(entry: str) -> tuple[str, int]:
    name, _, replicas = entry.partition(":")
    return name, int(replicas or 1)


def matrix() -> list[CellSpec]:
    """Every combination of the list flags, checked before anything runs."""
    for p in _PRECISIONS.value:
        if p not in PRECISIONS:
            raise app.UsageError(f"--precisions: {p!r} is not one of {', '.join(PRECISIONS)}")
    try:
        jits = [normalize_jit(j) for j in _JIT.value]
    except ValueError as e:
        raise app.UsageError(f"--jit_compile: {e} is not one of auto, true, false") from None
    strategies = [parse_strategy(s) for s in _STRATEGIES.value]
    timing = dict(steps=_STEPS.value, repeats=_REPEATS.value, warmup=_WARMUP.value, eval_steps=_EVAL_STEPS.value,
                  data_dir=_DATA_DIR.value)
    return [CellSpec(model=m, batch_size=int(b), precision=p, jit_compile=j, strategy=s, replicas=r,
                     steps_per_loop=int(spl), sync_batchnorm=sync, **timing)
            for m, b, p, j, (s, r), spl, sync in itertools.product(
                _MODELS.value, _BATCHES.value, _PRECISIONS.value, jits, strategies, _SPL.value, _SYNC_BN.value)]


def metadata() -> dict:
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": " ".join(["python -m benchmarks.step_time", *sys.argv[1:]]),
            "cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "onednn": host.onednn_enabled(common.worker_environment()), "cpu_features": host.cpu_features(),
            "python": platform.python_version(),
            "tensorflow": version("tensorflow"), "keras": version("keras"), "torch": version("torch"),
            "git_commit": commit}


def run_peak(logs: Path, dtypes: list[str]) -> dict:
    logging.info("Peak: %dx%d matmul in %s", _PEAK_SIZE.value, _PEAK_SIZE.value, ", ".join(dtypes))
    worker = common.Worker("benchmarks.peak", [f"--size={_PEAK_SIZE.value}", f"--repeats={_PEAK_REPEATS.value}",
                                               f"--dtypes={','.join(dtypes)}"], logs / "peak.log")
    try:
        peaks = worker.receive(_TIMEOUT.value)["peaks"]
    except common.WorkerError as e:
        logging.error("Peak measurement failed: %s", e)
        return {}
    finally:
        worker.close()
    for dtype, p in peaks.items():
        logging.info("Peak %s: %.1f GFLOP/s", dtype, p["flops_per_sec"]["median"] / 1e9)
    return peaks


def run_cell(spec: CellSpec, index: int, logs: Path) -> dict:
    """One cell in its own process (one per worker for multi_worker); the chief's result, or the error."""
    multi = spec.strategy == "multi_worker"
    envs = common.multi_worker_envs(spec.replicas) if multi else [{}]
    args = [f"--spec={json.dumps(dataclasses.asdict(spec))}"]
    workers = [common.Worker("benchmarks.cell", args, logs / f"cell{index:02d}-worker{i}.log", env,
                             on_progress=(lambda m: logging.info("  %s", m)) if i == 0 else None)
               for i, env in enumerate(envs)]
    try:
        answers = common.receive_all(workers, _TIMEOUT.value)
        return {k: v for k, v in answers[0].items() if k != "kind"}
    except common.WorkerError as e:
        return {**dataclasses.asdict(spec), "label": spec.label, "error": str(e)}
    finally:
        for w in workers:
            w.close()


def run_matrix(specs: list[CellSpec], logs: Path, peaks: dict, save) -> list[dict]:
    cells: list[dict] = []
    start = time.monotonic()
    for i, spec in enumerate(specs, 1):
        logging.info("Cell %d/%d: %s", i, len(specs), spec.label)
        cell = run_cell(spec, i, logs)
        if "error" in cell:
            logging.error("Cell %d/%d failed: %s", i, len(specs), cell["error"])
        else:
            cell = report.add_utilisation(cell, peaks)
            t = cell["train_examples_per_sec"]
            logging.info("Cell %d/%d: %s train ex/s (spread %.1f%%), step %.2f ms", i, len(specs),
                         f"{t['median']:,.0f}", t["spread_pct"], cell["step_time_ms"]["median"])
        cells.append(cell)
        save(cells=cells)
        elapsed = time.monotonic() - start
        logging.info("Matrix: %d/%d cells in %.0f s, about %.0f s to go", i, len(specs), elapsed,
                     elapsed / i * (len(specs) - i))
    return cells


def start_contenders(kinds: list[str], steps: int, tmp: Path, logs: Path) -> tuple[dict, dict]:
    """Starts the contenders in parallel (set-up and warm-up are not timed); ({name: Worker}, {name: info}).

    The torch ones start once the first fmnist contender, which writes their data, is ready.
    """
    data, pending, workers, info = tmp / "data.npz", {}, {}, {}
    dumper = next((k for k in kinds if k.startswith("fmnist")), None)

    def start(kind: str) -> None:
        args = [f"--kind={kind}", f"--batch_size={_COMPARE_BATCH.value}", f"--steps={steps}",
                f"--chunks={_ROUNDS.value}", f"--data={data}", f"--workdir={tmp / kind}",
                f"--data_dir={_DATA_DIR.value}", *(["--dump"] if kind == dumper else [])]
        pending[kind] = common.Worker("benchmarks.contenders", args, logs / f"compare-{kind}.log")

    def wait(kind: str) -> None:
        worker = pending.pop(kind)
        try:
            ready = worker.receive(_TIMEOUT.value)
            info[kind] = {k: v for k, v in ready.items() if k not in ("kind", "contender")}
            workers[kind] = worker
            logging.info("Contender %s ready (warm-up %.1f s)", kind, ready["warmup_s"])
        except common.WorkerError as e:
            logging.error("Contender %s failed: %s", kind, e)
            info[kind] = {"error": str(e)}
            worker.close()

    for kind in (k for k in kinds if k in contenders.TF_KINDS):
        start(kind)
    if dumper:
        wait(dumper)
    for kind in (k for k in kinds if k in contenders.TORCH_KINDS):
        if data.exists():
            start(kind)
        else:
            info[kind] = {"error": "no fmnist contender wrote the data the torch contenders train on"}
    for kind in list(pending):
        wait(kind)
    return {k: workers[k] for k in kinds if k in workers}, {k: info[k] for k in kinds}


def run_comparison(logs: Path) -> dict:
    batch = _COMPARE_BATCH.value
    steps = min(_COMPARE_EXAMPLES.value, TRAIN_EXAMPLES) // batch
    kinds, notes = list(_CONTENDERS.value), []
    if importlib.util.find_spec("torch") is None:
        kinds = [k for k in kinds if k not in contenders.TORCH_KINDS]
        notes.append("torch is not installed: no torch rows")
    if not host.native_bf16() and any(k in contenders.EMULATED_WITHOUT_BF16 for k in kinds):
        kinds = [k for k in kinds if k not in contenders.EMULATED_WITHOUT_BF16]
        notes.append(f"this CPU has no native bfloat16, so {', '.join(contenders.EMULATED_WITHOUT_BF16)} (emulated, "
                     "minutes per round, says nothing) did not run")
    note = "; ".join(notes) or None
    logging.info("Side by side: %s; %d steps of %d per contender per round, %d rounds", ", ".join(kinds), steps,
                 batch, _ROUNDS.value)
    with tempfile.TemporaryDirectory(prefix="fmnist-compare-") as tmp:
        workers, info = start_contenders(kinds, steps, Path(tmp), logs)
        seconds: dict[str, list[float]] = {k: [] for k in workers}
        try:
            for r in range(_ROUNDS.value):
                for name in common.rotated(list(workers), r):
                    try:
                        seconds[name].append(workers[name].request(_TIMEOUT.value, op="run")["seconds"])
                    except common.WorkerError as e:
                        logging.error("Contender %s failed: %s", name, e)
                        info[name]["error"] = str(e)
                        workers.pop(name).close()
                logging.info("Round %d/%d: %s", r + 1, _ROUNDS.value, ", ".join(
                    f"{k} {steps * batch / v[-1]:,.0f} ex/s" for k, v in seconds.items() if v))
        finally:
            for worker in workers.values():
                worker.close()
    table = {k: info[k] | ({"examples_per_sec": common.rates(steps * batch, seconds[k]), "seconds": seconds[k]}
                           if seconds.get(k) and "error" not in info[k] else {}) for k in info}
    return {"model": "seed_cnn", "batch_size": batch, "examples_per_round": steps * batch, "rounds": _ROUNDS.value,
            "contenders": table, "ratios": report.ratios(table), "note": note}


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    specs = matrix()
    unknown = [k for k in _CONTENDERS.value if k not in contenders.KINDS]
    if unknown:
        raise app.UsageError(f"--contenders: unknown {unknown}; choose from {', '.join(contenders.KINDS)}")
    out = Path(_OUTPUT.value)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict = {"meta": metadata(), "flags": {f.name: f.value for f in flags.FLAGS.get_key_flags_for_module(
        sys.modules[__name__])}, "peaks": {}, "cells": [], "comparison": {}}
    t0 = time.monotonic()

    def save(**parts) -> None:
        results.update(parts, duration_s=time.monotonic() - t0)
        write_json_atomic(out / "results.json", results)  # An interrupted run keeps the last complete file.

    if _PEAK_SIZE.value > 0:
        save(peaks=run_peak(logs, report.peak_dtypes([s.precision for s in specs])))
    run_matrix(specs, logs, results["peaks"], save)
    if _COMPARE.value:
        save(comparison=run_comparison(logs))
    (out / "results.md").write_text(report.markdown(results))
    try:
        report.chart(results, out / "results.png")
    except ImportError:
        logging.warning("No chart: matplotlib is missing; pip install -e '.[bench]'")
    print(report.markdown(results))
    logging.info("Wrote results.json, results.md and results.png into %s in %.0f s", out, time.monotonic() - t0)
    failed = [c["label"] for c in results["cells"] if "error" in c] + [
        k for k, v in (results["comparison"].get("contenders") or {}).items() if "error" in v]
    if failed:
        logging.error("Failed: %s (see the logs in %s)", ", ".join(failed), logs)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
