"""Architecture and hyperparameter sweeps on Optuna: grid, random or TPE search, pruning on validation accuracy,
resumable and shareable studies; the winner's test accuracy is evaluated once, at the end.

  python -m launch.sweep --config=configs/seed_cnn.py --sweep=configs/sweeps/arch_lr.py --workdir=DIR \\
      [--sampler=grid|random|tpe] [--pruner=none|median|successive_halving|hyperband] [--trials=K] \\
      [--parallel=N] [--storage=URL] [--study=NAME] [--stop_timeout=S] [--dry_run]

The sweep file's format is in launch/search_space.py (`method` is the default --sampler). Each trial is
`python -m fmnist.main --config=CONFIG --workdir=DIR/trials/HASH --config.KEY=VALUE ... --config.evaluate_test=false`,
HASH naming the contents of the trial's resolved config (launch/trial_runner.py). Trials never evaluate the test
split: they select on `validation_size`'s hold-out, and the pruner reads each evaluation's validation accuracy from
the trial's evals.jsonl while it runs, stopping (SIGTERM) trials it prunes.

The study lives in --storage (default `sqlite:///DIR/optuna.db`), named after the sweep file (`arch_lr`) unless
--study says otherwise. Re-running the same command continues it: finished trials stay, trials stopped by Ctrl-C or
SIGTERM run again and resume from their checkpoints. Trials run in sessions of their own: a terminal's Ctrl-C and a
`kill -INT PID` of the sweep alike reach the sweep alone, which sends each running trial one SIGTERM (it saves a
checkpoint at its next loop boundary) and SIGKILL --stop_timeout seconds later if it still runs. --trials is never
exceeded, with --parallel, on resume, or with other processes on the study. Several processes given the same
--storage and study share its trials: on one machine the SQLite default, across machines
`--storage=postgresql+psycopg://USER:PASSWORD@HOST/DB` (each machine with its own DIR, or one shared DIR). They
coordinate through the study alone (launch/sweep_shared.py): a config is trained once, and each trial records its
host and DIR. Once out of trials, each process waits for the study's running trials to end; a process whose DIR holds
the winner evaluates it on the test split, any other prints one line naming the host and DIR that hold it and the
command to run there, and exits 0.

Outputs, rewritten after every trial: DIR/sweep.csv and DIR/sweep.md (trials ranked by validation accuracy, the
trial-epochs each trained), DIR/tensorboard (HParams: `tensorboard --logdir DIR/tensorboard`), DIR/plots/*.png
(Optuna's optimisation history, parallel coordinates, parameter importances, intermediate values).
Exit code: 0 when the sweep finished, 1 when some trials failed (the others still ran), 2 for a bad command or sweep,
130/143 when stopped by SIGINT/SIGTERM (run the command again to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from launch import Parser
from launch.search_space import METHODS, PRUNERS, SweepError, format_value

PROG = "launch.sweep"
USAGE = (f"python -m {PROG} --config=CONFIG --sweep=SWEEP --workdir=DIR [--sampler=S] [--pruner=P] [--trials=K] "
         "[--parallel=N] [--storage=URL] [--study=NAME] [--stop_timeout=S] [--dry_run]")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = Parser(prog=PROG, usage=USAGE, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="base fmnist config file (configs/*.py)")
    parser.add_argument("--sweep", required=True, help="sweep file defining get_sweep() (configs/sweeps/*.py)")
    parser.add_argument("--workdir", required=True, help="sweep directory: trials/, optuna.db, reports")
    parser.add_argument("--sampler", choices=METHODS, help="default: the sweep file's method")
    parser.add_argument("--pruner", choices=PRUNERS, help="default: the sweep file's pruner, else none")
    parser.add_argument("--trials", type=int, default=0, help="random/tpe: trials in the study; grid: at most K")
    parser.add_argument("--parallel", type=int, default=1, help="trials this process runs at once (default 1)")
    parser.add_argument("--storage", default="", help="Optuna storage URL (default sqlite:///WORKDIR/optuna.db)")
    parser.add_argument("--study", default="", help="study name (default: the sweep file's name, e.g. arch_lr)")
    parser.add_argument("--stop_timeout", type=float, default=120.0,
                        help="seconds a stopped trial gets to save its checkpoint before SIGKILL (default 120)")
    parser.add_argument("--dry_run", action="store_true", help="print the search and the first trial's command")
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error(f"--parallel={args.parallel} must be >= 1")
    if args.trials < 0:
        parser.error(f"--trials={args.trials} must be >= 0")
    if not args.stop_timeout > 0:
        parser.error(f"--stop_timeout={args.stop_timeout} must be > 0")
    return args


def log(message: str) -> None:
    print(f"[sweep] {message}", flush=True)


def absolute_config(config_arg: str) -> str:
    """--config's file made absolute against the caller's directory (a `:ARG` suffix kept): resolved once here, so
    trials, which run from the repository root, read the file the sweep read."""
    path, sep, arg = config_arg.partition(":")
    return str(Path(path).expanduser().absolute()) + sep + arg


def sweep(args: argparse.Namespace) -> int:
    from launch import search_space

    args.config, args.sweep = absolute_config(args.config), str(Path(args.sweep).expanduser().absolute())
    space = search_space.load(args.sweep, args.config)
    method, pruner = args.sampler or space.method, args.pruner or space.pruner
    if method == "grid" and space.method != "grid":
        raise SweepError(f"--sampler=grid needs a sweep of lists only; {args.sweep} has method={space.method}")
    space.method = method
    budget = space.budget(args.trials)
    if budget < 1:
        raise SweepError(f"method={method} needs num_trials >= 1 in the sweep file (or --trials)")
    workdir = Path(args.workdir).expanduser().absolute()
    if args.dry_run:
        from launch.trial_runner import TrialRunner, trial_command

        first = search_space.grid_points(space)[0] if method == "grid" else {}
        log(f"sampler {method}, pruner {pruner}, {budget} trials over {space.parameters}")
        print(" ".join(trial_command(args.config, TrialRunner(args.config, workdir, space).trial_dir(first),
                                     space.overrides(first))))
        return 0
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SweepError(f"--workdir={workdir} cannot be created ({e.strerror}); pass a writable --workdir") from None
    return _optimize(args, space, method, pruner, budget, workdir)


@contextlib.contextmanager
def stop_on_signals(runner) -> Iterator[dict]:
    """While in the block, SIGINT/SIGTERM stop the runner's trials; yields {"signal": the first one caught}. The
    handler only sets flags (runner.request_stop): it takes no lock and prints nothing, as it may run while the main
    thread holds either. Repeats change nothing: each trial gets one SIGTERM, and SIGKILL after --stop_timeout."""
    caught = {}

    def on_signal(signum, frame):
        caught.setdefault("signal", signum)
        runner.request_stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _optimize(args, space, method: str, pruner: str, budget: int, workdir: Path) -> int:
    from launch import sweep_report, sweep_shared, sweep_study
    from launch.trial_runner import TrialFailed, TrialInterrupted, TrialRunner, TrialSurplus

    storage = args.storage or sweep_study.default_storage(workdir)
    study_name = args.study or space.name
    study = sweep_study.open_study(space, storage, study_name, method, pruner)
    distinct = method == "grid"
    runner = TrialRunner(args.config, workdir, space, log=log, budget=budget, distinct=distinct,
                         stop_timeout_s=args.stop_timeout)
    header = {"sweep": args.sweep, "config": args.config, "method": method, "pruner": pruner, "study": study_name}

    def after_trial(study, trial):
        if trial.user_attrs.get(sweep_study.SURPLUS):
            runner.log(f"trial {trial.number}: not run (the study's {budget} trials were started by others)")
            return
        value = "" if trial.value is None else f", validation {100 * trial.value:.2f}%"
        runner.log(f"trial {trial.number}: {trial.state.name.lower()}{value} "
                   f"({trial.user_attrs.get('epochs_trained', 0):.2f} epochs trained)")
        sweep_report.write_all(workdir, study, space, header, None, runner.log, plots=False)

    todo = sweep_study.remaining(study, budget, distinct)
    log(f"study {study_name!r} in {sweep_study.safe_url(storage)}: sampler {method}, pruner {pruner}, {budget} "
        f"trials, {todo} to start, {args.parallel} at a time here; trial logs in {workdir / 'trials'}/*/log.txt")
    with stop_on_signals(runner) as caught:
        if todo:  # n_trials: at most `todo` here; within_budget: at most `budget` with every process's trials.
            study.optimize(runner, n_trials=todo, n_jobs=args.parallel,
                           catch=(TrialFailed, TrialInterrupted, TrialSurplus),
                           callbacks=[sweep_study.StopAtBudget(budget, distinct, lambda: runner.stopping),
                                      after_trial])
        if "signal" not in caught:
            sweep_shared.wait_for_running(study, log, lambda: runner.stopping)
        if "signal" not in caught:
            code = _finish(study, space, runner, workdir, header, rerun_flags(args))
            if "signal" not in caught:  # Else it came during the test evaluation, which stopped.
                return code
        requeued = sweep_study.requeue_interrupted(study)
        log(f"{signal.Signals(caught['signal']).name}: stopped; trials {requeued} enqueued again: run the same "
            "command to resume")
        sweep_report.write_all(workdir, study, space, header, None, log, plots=False)
        return 128 + caught["signal"]


def rerun_flags(args: argparse.Namespace) -> list[str]:
    """This sweep's flags but --workdir, as another machine would run it (the storage URL without its password)."""
    from launch.sweep_study import safe_url

    flags = [f"--config={args.config}", f"--sweep={args.sweep}"]
    for name in ("sampler", "pruner", "trials", "storage", "study"):
        value = getattr(args, name)
        if value:
            flags.append(f"--{name}={safe_url(value) if name == 'storage' else value}")
    return flags


def _finish(study, space, runner, workdir: Path, header: dict, flags: list[str]) -> int:
    """The winner's test accuracy (by a process whose workdir holds its results), the reports, the exit code."""
    from optuna.trial import TrialState

    from launch import sweep_report, sweep_shared
    from launch.sweep_study import SURPLUS
    from launch.trial_runner import TrialInterrupted

    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]
    best = sweep_report.winner(trials)
    still_running = any(t.state == TrialState.RUNNING for t in trials)  # Only when stopped while waiting.
    test_accuracy, not_here = None, None
    if best is not None and not still_running and sweep_shared.TRIAL_DIR in best.user_attrs:  # Not added by hand.
        if sweep_shared.reachable(workdir, best):
            try:
                test_accuracy = runner.evaluate_test(best.params)
            except TrialInterrupted:
                return 1  # Stopped by a signal: the caller says so; the next run evaluates.
        else:
            not_here = sweep_shared.elsewhere(best, flags)
            log(not_here)
    sweep_report.write_all(workdir, study, space, header, test_accuracy, log)
    states = [t.state for t in trials]
    epochs = sum(t.user_attrs.get("epochs_trained", 0) for t in trials)
    log(f"{states.count(TrialState.COMPLETE)} complete, {states.count(TrialState.PRUNED)} pruned, "
        f"{states.count(TrialState.FAIL)} failed; {epochs:.2f} trial-epochs trained in all")
    if best is not None:
        params = ",".join(f"{k}={format_value(v)}" for k, v in best.params.items())
        test = (f"test {100 * test_accuracy:.2f}% (test evaluated for the winner only)" if test_accuracy is not None
                else "test not evaluated here (its checkpoints are elsewhere: see above)" if not_here
                else "test not evaluated (trials still running)" if still_running
                else "test not evaluated (no trial directory)")
        log(f"winner trial {best.number} ({params}, {best.user_attrs.get('trial_dir')}): validation "
            f"{100 * best.value:.2f}%, {test}")
    log(f"reports: {workdir / 'sweep.md'}, {workdir / 'sweep.csv'}, {workdir / 'plots'}; "
        f"tensorboard --logdir {workdir / 'tensorboard'}")
    failed = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get("interrupted")]
    return 1 if failed or best is None else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return sweep(args)
    except SweepError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
