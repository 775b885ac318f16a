"""The Keras-fit epoch (KFE), the time unit of fmnist's time-to-accuracy figures, measured on this machine; and
the given runs' training times in it.

  python -m benchmarks.kfe [--rounds=3] [--output=kfe.json] [WORKDIR ...]

One KFE is one epoch of the seed CNN with plain Keras `fit` (batch 128, float32, Adam): the side-by-side
comparison's `keras_fit` contender (benchmarks/contenders.py) in its own process, with fmnist's oneDNN choice for
the host, one untimed warm-up epoch, then `--rounds` timed epochs; the fastest is the KFE. (On the 2-core AVX2 host
Keras fit's epochs are bimodal, about 24 s or 41 s, in no fixed order and for a reason not found; the fastest
epoch makes the KFE the steady speed of Keras fit, and run times in KFE conservative.) For each WORKDIR its
results.json `train_time_s` (and `time_to_target_s`, when the run had a target) is divided by it: the whole run's
training seconds, every process of a resumed run included (docs/results.md says what is counted). Measure it just
before or after the runs, on the same quiet machine: times do not carry across hosts, KFE do.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import common, report
from launch import Parser

TRAIN_EXAMPLES = 60_000
BATCH = 128


def measure(rounds: int, examples: int = TRAIN_EXAMPLES, data_dir: str = "", timeout: float = 1800) -> dict:
    """Seconds of one Keras `fit` epoch of the seed CNN: {'kfe_s', 'epochs_s', 'warmup_s'}. Fewer `examples` than
    an epoch make a quick (noisier) check, scaled to the epoch."""
    steps = max(1, min(examples, TRAIN_EXAMPLES) // BATCH)
    with tempfile.TemporaryDirectory(prefix="fmnist-kfe-") as tmp:
        args = ["--kind=keras_fit", f"--batch_size={BATCH}", f"--steps={steps}", f"--chunks={rounds}",
                f"--data={Path(tmp) / 'unused.npz'}", f"--data_dir={data_dir}"]
        worker = common.Worker("benchmarks.contenders", args, Path(tmp) / "keras_fit.log")
        try:
            warmup = worker.receive(timeout)["warmup_s"]
            # Scaled from the full batches (468 in an epoch) to the 60,000 examples of an epoch.
            epochs = [worker.request(timeout, op="run")["seconds"] * TRAIN_EXAMPLES / (steps * BATCH)
                      for _ in range(rounds)]
        finally:
            worker.close()
    return {"kfe_s": min(epochs), "median_s": statistics.median(epochs), "epochs_s": epochs, "warmup_s": warmup}


def read_results(workdir: Path) -> dict:
    """A finished run's results.json; ValueError (one line) when it is missing, unreadable or not a run's."""
    try:
        results = json.loads((workdir / "results.json").read_text())
        float(results["train_time_s"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{workdir / 'results.json'} is not a finished run's results ({type(e).__name__}: {e}); "
                         "give folders of finished runs") from None
    return results


def in_kfe(workdir: Path, r: dict, kfe_s: float) -> dict:
    """A run's results.json figures `r` with its training time (and time to target) in KFE."""
    row = {"workdir": str(workdir), "eval_accuracy": r.get("eval_accuracy"),
           "validation_accuracy": r.get("validation_accuracy"), "train_tflop": r.get("train_tflop"),
           "train_time_s": r["train_time_s"], "kfe": r["train_time_s"] / kfe_s}
    if r.get("time_to_target_s") is not None:
        row |= {"time_to_target_s": r["time_to_target_s"], "kfe_to_target": r["time_to_target_s"] / kfe_s}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m benchmarks.kfe", description=__doc__.splitlines()[0])
    parser.add_argument("workdirs", nargs="*", type=Path, help="Run folders with a results.json.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed Keras fit epochs (the fastest is the KFE).")
    parser.add_argument("--examples", type=int, default=TRAIN_EXAMPLES,
                        help="Examples per timed round (default one epoch; fewer for a quick check, scaled).")
    parser.add_argument("--data_dir", default="", help="TFDS data dir ('' = the default).")
    parser.add_argument("--output", type=Path, help="Also write the figures here as JSON.")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds={args.rounds} must be >= 1")
    if args.examples < BATCH:
        parser.error(f"--examples={args.examples} must be >= {BATCH}")
    if missing := [str(w) for w in args.workdirs if not (w / "results.json").is_file()]:
        parser.error(f"no results.json in {', '.join(missing)}: give folders of finished runs")
    try:
        results = [read_results(w) for w in args.workdirs]
    except ValueError as e:
        parser.error(str(e))
    try:
        kfe = measure(args.rounds, args.examples, args.data_dir)
    except common.WorkerError as e:
        print(f"benchmarks.kfe: error: the Keras fit epoch failed: {e}", file=sys.stderr)
        return 1
    print(f"KFE = {kfe['kfe_s']:.2f} s (fastest of {', '.join(f'{s:.2f}' for s in kfe['epochs_s'])} s; "
          f"{TRAIN_EXAMPLES:,} examples, batch {BATCH}, float32)")
    rows = [in_kfe(w, r, kfe["kfe_s"]) for w, r in zip(args.workdirs, results, strict=True)]
    if rows:
        print("\n".join(report.table(
            ["workdir", "test accuracy", "TFLOP", "training time", "KFE", "KFE to target"],
            [[r["workdir"], "-" if r["eval_accuracy"] is None else f"{100 * r['eval_accuracy']:.2f}%",
              report.num(r["train_tflop"], 2), f"{r['train_time_s']:.1f} s", f"{r['kfe']:.2f}",
              report.num(r.get("kfe_to_target"), 2)] for r in rows])))
    if args.output:
        args.output.write_text(json.dumps({**kfe, "runs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
