"""The Optuna study behind a sweep: storage, sampler, pruner, trial budget and resuming.

Storage is an Optuna RDB URL (default `sqlite:///WORKDIR/optuna.db`, for one machine; PostgreSQL,
`postgresql+psycopg://...`, across machines); several `launch.sweep` processes given the same URL and study name work
on one study, coordinated by it alone (launch/sweep_shared.py). Trials carry a heartbeat: a trial whose process died
without a word (SIGKILL, a lost machine) is failed after GRACE_PERIOD_S and retried with the same parameters; a trial
stopped by SIGINT or SIGTERM is marked `interrupted` and re-enqueued at once (`requeue_interrupted`). A retried trial
has the same config, so it runs in the same trial directory and resumes from its checkpoints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from launch.search_space import SearchSpace, SweepError

HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 120
RACE_MESSAGES = ("already exists", "UNIQUE constraint failed", "duplicate key")  # Two processes creating tables.
INTERRUPTED = "interrupted"  # user attr of a trial stopped by a signal to the sweep (not a failure of its config)
SURPLUS = "surplus"  # user attr of a trial started past the budget (by a concurrent process or thread): never run


def default_storage(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'optuna.db'}"


WORKING_URL = "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB"  # psycopg 3, which the search extra installs
PIP_NAMES = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient",
             "pymysql": "PyMySQL"}  # Driver modules whose pip name differs.


def safe_url(url: str) -> str:
    """The storage URL with its password masked (for messages and logs)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def check_driver(url: str) -> None:
    """A one-line SweepError when the URL's database driver is not installed: the driver to install, and a URL that
    works with what the search extra installs (SQLAlchemy 2.1 maps postgresql:// to psycopg 3)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        return  # Not a URL SQLAlchemy knows: RDBStorage says so below.
    try:
        dialect.import_dbapi()
    except ImportError as e:
        module = (e.name or dialect.driver).split(".")[0]
        fix = (f"use --storage={WORKING_URL} (psycopg 3: pip install -e '.[search]'), or pip install "
               f"{PIP_NAMES.get(module, module)}" if dialect.name == "postgresql"
               else f"pip install {PIP_NAMES.get(module, module)}")
        raise SweepError(f"--storage={safe_url(url)}: its database driver {module!r} ({dialect.name}+"
                         f"{dialect.driver}) is not installed; {fix}") from None


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats; SQLite waits for the lock instead of failing when processes share it.
    Processes that open a new database at the same moment race to create its tables: for a SQLite file, a lock file
    beside it (fcntl: this machine's processes; SQLite itself is for one machine) serialises that, and a lost race
    elsewhere (PostgreSQL) is retried (the tables are there by then)."""
    check_driver(url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") and url != "sqlite:///:memory:" else ""
    for attempt in range(4):
        try:
            with _file_lock(Path(path + ".lock") if path else None), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Heartbeats: Optuna 2.8+.
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                    grace_period=GRACE_PERIOD_S,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
        except Exception as e:  # noqa: BLE001 - SQLAlchemy and drivers raise many types for a bad URL.
            if attempt < 3 and any(m in str(e) for m in RACE_MESSAGES):
                time.sleep(1 + attempt)  # Lost the race to create the tables: they are there now.
                continue
            raise SweepError(f"--storage={safe_url(url)}: {type(e).__name__}: {str(e).splitlines()[0]}; pass an "
                             f"Optuna RDB URL such as sqlite:///PATH or {WORKING_URL}") from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _file_lock(path: Path | None):
    """An exclusive lock on `path` (nothing when None), held for the block."""
    if path is None:
        yield
        return
    try:
        f = open(path, "a")  # noqa: SIM115 - held for the block.
    except OSError:  # A read-only or missing folder: let the storage report the real problem.
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def make_sampler(space: SearchSpace, method: str) -> optuna.samplers.BaseSampler:
    if method == "grid":  # Unseeded: processes sharing the study start at different points of the grid.
        return optuna.samplers.GridSampler(space.grid())
    if method == "random":
        return optuna.samplers.RandomSampler(seed=space.seed)
    # Fewer random start-up trials than Optuna's 10: sweeps here are tens of trials, not hundreds.
    return optuna.samplers.TPESampler(seed=space.seed, n_startup_trials=max(3, min(10, space.num_trials // 3)))


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """Pruners compare validation accuracy at the same evaluation number (1, 2, ...) across trials."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(space: SearchSpace, storage: str, study_name: str, method: str, pruner: str) -> optuna.Study:
    """Creates the study, or loads it to continue."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # launch.sweep says what happens
    study = optuna.create_study(storage=make_storage(storage), study_name=study_name, direction="maximize",
                                sampler=make_sampler(space, method), pruner=make_pruner(pruner), load_if_exists=True)
    recorded = study.user_attrs.get("search_space")
    mine = {"method": method, "parameters": space.parameters}
    if recorded is None:
        study.set_user_attr("search_space", mine)
    elif recorded != mine:
        raise SweepError(f"study {study_name!r} in {safe_url(storage)} was run with another search space ({recorded}); "
                         "pass --study=NEW_NAME or use a new --workdir")
    return study


def _retried(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of trials run again under another number: by requeue_interrupted or Optuna's heartbeat retry."""
    return ({t.user_attrs.get("retry_of") for t in trials}
            | {n for t in trials for n in t.system_attrs.get("retry_history", [])}) - {None}


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that use up the budget: started (RUNNING, COMPLETE, PRUNED, FAIL), except those stopped by a
    signal or found surplus, and failed ones run again under another number (their retry counts instead)."""
    retried = _retried(trials)
    return [t for t in trials if t.state != TrialState.WAITING and not t.user_attrs.get(INTERRUPTED)
            and not t.user_attrs.get(SURPLUS) and not (t.state == TrialState.FAIL and t.number in retried)]


def _used(trials: list[FrozenTrial], distinct: bool) -> set[str] | list[FrozenTrial]:
    return {json.dumps(t.params, sort_keys=True) for t in trials} if distinct else trials


def remaining(study: optuna.Study, budget: int, distinct: bool = False) -> int:
    """Trials still to start: the enqueued ones, and more while the budget is not used up. With `distinct` (grids),
    trials of the same parameters count once: two processes that drew the same grid point still cover the grid."""
    trials = study.get_trials(deepcopy=False)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    return waiting + max(budget - len(_used(counted(trials), distinct)) - waiting, 0)


def within_budget(study: optuna.Study, number: int, params: dict, budget: int, distinct: bool = False) -> bool:
    """Whether trial `number`, just started with `params`, may run: fewer than `budget` counted trials have smaller
    numbers (the storage numbers trials in the order they start). Every thread and process sharing the study
    decides each trial the same way, so together they never run more than the budget. With `distinct` (grids), a
    grid point already taken uses no more of it (the trial reuses that point's result)."""
    before = [t for t in counted(study.get_trials(deepcopy=False)) if t.number < number]
    used = _used(before, distinct)
    return len(used) < budget or (distinct and json.dumps(params, sort_keys=True) in used)


class StopAtBudget:
    """An Optuna callback: stops this process's optimize loop once no trial is left to start."""

    def __init__(self, budget: int, distinct: bool, stopping=lambda: False):
        self.budget, self.distinct, self.stopping = budget, distinct, stopping

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.stopping() or remaining(study, self.budget, self.distinct) == 0:
            study.stop()


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Enqueues again the parameters of trials stopped by a signal (once each); returns their numbers."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    requeued = []
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get(INTERRUPTED) and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            requeued.append(t.number)
    return requeued
