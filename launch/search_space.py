"""Sweep files: loading, checking, and turning their search space into Optuna suggestions, grids and trial configs.

A sweep file defines `get_sweep()` returning a dict:
  method      "grid" (every combination of the `parameters` lists), "random" or "tpe" (Optuna's samplers).
  num_trials  int: trials for random and tpe (--trials overrides; for grid it keeps at most K of the grid).
  seed        int: the sampler's seed (default 0).
  pruner      "none" (default), "median", "successive_halving" or "hyperband" (--pruner overrides).
  parameters  {config key: values}: a list (a grid axis, or a categorical choice for random and tpe) or, for random
              and tpe, {"log_uniform": [lo, hi]}, {"uniform": [lo, hi]} or {"int_uniform": [lo, hi]} (inclusive).
  fixed       {config key: value}, the same for every trial (e.g. model, num_epochs, validation_size).
Tuples are taken as lists (the study records the space as JSON, and must find it equal when resumed).

Selection is on validation accuracy, so validation_size must be > 0 (in `fixed` or the base config). Every trial
ranks on the same hold-out: `validation_seed` is pinned in `fixed` to the base config's hold-out seed (its
validation_seed, or its seed when that is -1), so a sweep of `seed` varies the training, not the validation set.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "successive_halving", "hyperband")
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform")
TRIAL_OVERRIDES = {"evaluate_test": False}  # Trials never see the test split.


class SweepError(Exception):
    """A bad sweep file or an impossible sweep: reported as one line, exit code 2."""


def format_value(value) -> str:
    """A value as written on the fmnist.main command line."""
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


@dataclass
class SearchSpace:
    """A checked sweep: what varies, what is fixed, how to search."""

    name: str                      # The sweep file's stem: the Optuna study's default name.
    method: str
    parameters: dict
    fixed: dict
    base: dict                     # The base config, resolved.
    num_trials: int = 0
    seed: int = 0
    pruner: str = "none"
    keys: list[str] = field(init=False)

    def __post_init__(self):
        self.keys = list(self.parameters)

    def grid(self) -> dict[str, list]:
        """Optuna GridSampler's search space (every parameter a list)."""
        return {k: list(v) for k, v in self.parameters.items()}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.parameters.values())

    def budget(self, trials: int = 0) -> int:
        """How many trials the study runs: the grid (at most `trials`), or num_trials (`trials` overrides)."""
        if self.method == "grid":
            return min(trials, self.grid_size()) if trials else self.grid_size()
        return trials or self.num_trials

    def suggest(self, trial) -> dict:
        """The parameters of an Optuna trial, drawn from this space."""
        out = {}
        for key, spec in self.parameters.items():
            if isinstance(spec, list):
                out[key] = trial.suggest_categorical(key, spec)
                continue
            (kind, (lo, hi)), = spec.items()
            if kind == "int_uniform":
                out[key] = trial.suggest_int(key, int(lo), int(hi))
            else:
                out[key] = trial.suggest_float(key, float(lo), float(hi), log=kind == "log_uniform")
        return out

    def overrides(self, params: dict) -> dict:
        """Every `--config.KEY=VALUE` a trial with `params` gets, typed as the base config's values."""
        merged = {**self.fixed, **params, **TRIAL_OVERRIDES}
        return {k: float(v) if isinstance(self.base.get(k), float) and isinstance(v, int) else v
                for k, v in merged.items()}

    def config_hash(self, params: dict) -> str:
        """12 hex digits of the SHA-256 of the trial's whole resolved config: the same contents, the same trial."""
        config = {**self.base, **self.overrides(params)}
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _check_spec(key: str, spec, method: str) -> None:
    if isinstance(spec, list):
        if not spec:
            raise SweepError(f"parameters.{key} is an empty list")
        if len({json.dumps(v) for v in spec}) < len(spec):
            raise SweepError(f"parameters.{key}={spec!r} lists a value twice")
        return
    if method == "grid" or not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        kinds = "a list" if method == "grid" else "a list or {KIND: [lo, hi]}, KIND one of " + ", ".join(DISTRIBUTIONS)
        raise SweepError(f"parameters.{key}={spec!r} must be {kinds} for method={method}")
    (kind, bounds), = spec.items()
    if not (isinstance(bounds, list | tuple) and len(bounds) == 2 and bounds[0] < bounds[1]):
        raise SweepError(f"parameters.{key}.{kind} must be [lo, hi] with lo < hi")
    if kind == "log_uniform" and bounds[0] <= 0:
        raise SweepError(f"parameters.{key}.log_uniform needs lo > 0")


def _as_json(name: str, value):
    """`value` as JSON reads it back (tuples become lists); anything else JSON cannot hold is a SweepError."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise SweepError(f"{name}: {e}; use lists, numbers, strings and booleans") from None


def _hold_out_seed(config: dict) -> int:
    """The seed of the validation hold-out (fmnist.training.experiment.hold_out_seed, not imported: it loads
    TensorFlow)."""
    return config["seed"] if config.get("validation_seed", -1) < 0 else config["validation_seed"]


def check(sweep: dict, base: dict, name: str) -> SearchSpace:
    """Validates a sweep file's dict against the base config."""
    method = sweep.get("method", "grid")
    params, fixed = _as_json("parameters", sweep.get("parameters", {})), _as_json("fixed", sweep.get("fixed", {}))
    if method not in METHODS:
        raise SweepError(f"method={method!r} must be one of {', '.join(METHODS)}")
    if sweep.get("pruner", "none") not in PRUNERS:
        raise SweepError(f"pruner={sweep['pruner']!r} must be one of {', '.join(PRUNERS)}")
    if not params:
        raise SweepError("the sweep has no parameters")
    for key in [*params, *fixed]:
        if key not in base:
            raise SweepError(f"unknown config key {key!r} in the sweep; see configs/default.py for the keys")
    if both := set(params) & set(fixed):
        raise SweepError(f"{', '.join(sorted(both))} both swept and fixed")
    if set(TRIAL_OVERRIDES) & (set(params) | set(fixed)):
        raise SweepError("evaluate_test is set by the sweep itself (trials never evaluate the test split)")
    for key, spec in params.items():
        _check_spec(key, spec, method)
    validation = {**base, **fixed}.get("validation_size", 0)
    if params.get("validation_size") is not None or validation <= 0:
        raise SweepError(f"validation_size={validation}: a sweep selects on validation accuracy, so set a fixed "
                         "validation_size > 0 in the sweep's `fixed` or the base config (the test split is never "
                         "used for selection)")
    if "validation_seed" in params:
        raise SweepError("validation_seed cannot be swept: every trial ranks on the same hold-out (fix it in `fixed`)")
    if "validation_seed" in base:  # Pinned, even when seed is swept: one hold-out for the whole study.
        fixed.setdefault("validation_seed", _hold_out_seed({**base, **fixed}))
    space = SearchSpace(name, method, params, fixed, base, int(sweep.get("num_trials", 0)), int(sweep.get("seed", 0)),
                        sweep.get("pruner", "none"))
    return space


def load(sweep_path: str, config_arg: str) -> SearchSpace:
    """The checked search space of a sweep file over a base config file."""
    return check(load_python(sweep_path, "get_sweep"), load_base_config(config_arg), Path(sweep_path).stem)


def grid_points(space: SearchSpace) -> list[dict]:
    """Every combination of a grid sweep, in order."""
    axes = space.parameters.values()
    return [dict(zip(space.parameters, values, strict=True)) for values in itertools.product(*axes)]
