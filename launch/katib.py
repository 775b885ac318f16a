"""Writes a Kubeflow Katib Experiment (kubeflow.org/v1beta1) for a sweep file: the same search space and metric as
`launch.sweep`, each trial a Kubernetes Job running fmnist.

  python -m launch.katib --image=IMG --config=configs/seed_cnn.py --sweep=configs/sweeps/arch_lr.py \\
      [--name=NAME] [--namespace=NS] [--algorithm=grid|random|tpe] [--early_stopping=medianstop|none] \\
      [--max_trials=K] [--parallel=N] [--gpus_per_trial=G] [--output=FILE] [-- FMNIST_ARGS]
  kubectl apply -f experiment.yaml

Objective: maximise `validation_accuracy`. Metrics: Katib's StdOut collector, which parses `NAME=VALUE` from the
trial container's output; fmnist logs `validation_accuracy=0.901234` at every evaluation (fmnist/training/train.py,
record_evaluation), so median stopping sees every evaluation, as launch.sweep's pruner does. Trials run with
`--config.evaluate_test=false` (they never see the test split); re-train or evaluate the winner on the test split
afterwards. FMNIST_ARGS may not set a key the experiment sets (evaluate_test, the swept and fixed keys: change those
in the sweep file), and come before the experiment's own arguments, which therefore win. The manifest is JSON, which
is valid YAML. The namespace needs the label `katib.kubeflow.org/metrics-collector-injection=enabled` for the
collector sidecar.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from launch import Parser, fmnist_command, split_passthrough, write_manifest
from launch.search_space import METHODS, TRIAL_OVERRIDES, SearchSpace, SweepError, format_value, load

PROG = "launch.katib"
USAGE = (f"python -m {PROG} --image=IMG --config=CONFIG --sweep=SWEEP [--name=NAME] [--namespace=NS] "
         "[--algorithm=A] [--early_stopping=E] [--max_trials=K] [--parallel=N] [--output=FILE] [-- FMNIST_ARGS]")
METRIC = "validation_accuracy"
CONTAINER = "training-container"
TRIAL_WORKDIR = "/tmp/fmnist-trial"  # Per pod: a trial's checkpoints die with it; Katib keeps the metrics.
EARLY_STOPPING = ("medianstop", "none")
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_CONFIG_KEY = re.compile(r"--(?:no)?config\.(\w+)")  # absl: --config.KEY=V, --config.KEY V, --[no]config.KEY.


def check_extra_args(space: SearchSpace, extra_args: Sequence[str]) -> None:
    """Refuses arguments after `--` that would set what the experiment sets (a ValueError naming the first)."""
    own = space.overrides({}) | dict.fromkeys(space.keys)
    for arg in extra_args:
        m = _CONFIG_KEY.match(arg)
        key = m.group(1) if m else None
        if key in TRIAL_OVERRIDES:
            raise ValueError(f"{arg} after `--`: trials never evaluate the test split (config.{key} is false in every "
                             "trial); evaluate the winner on it afterwards")
        if key in own:
            raise ValueError(f"{arg} after `--` sets config.{key}, which the sweep file "
                             f"{'sweeps' if key in space.keys else 'fixes'}; change it there")


def trial_parameter_name(key: str) -> str:
    """The config key in camelCase, as Katib's examples name trial parameters (learning_rate -> learningRate)."""
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


def parameter_spec(key: str, spec) -> dict:
    """One Katib parameter: lists become discrete (numbers) or categorical (strings, booleans); ranges double/int."""
    if isinstance(spec, list):
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec)
        return {"name": key, "parameterType": "discrete" if numeric else "categorical",
                "feasibleSpace": {"list": [format_value(v) for v in spec]}}
    (kind, (lo, hi)), = spec.items()
    space = {"min": format_value(lo), "max": format_value(hi)}
    if kind == "log_uniform":
        space["distribution"] = "logUniform"
    return {"name": key, "parameterType": "int" if kind == "int_uniform" else "double", "feasibleSpace": space}


def experiment(space: SearchSpace, *, name: str, image: str, config: str, namespace: str = "default",
               algorithm: str = "", early_stopping: str = "medianstop", max_trials: int = 0, parallel: int = 2,
               gpus_per_trial: int = 0, extra_args: Sequence[str] = ()) -> dict:
    """The Experiment manifest; raises ValueError for values that cannot work."""
    algorithm = algorithm or space.method
    if not _NAME.fullmatch(name) or len(name) > 40:
        raise ValueError(f"--name={name!r} must be lowercase letters, digits and '-', start with a letter, at most "
                         "40 characters (Katib appends a suffix for each trial)")
    if algorithm not in METHODS:
        raise ValueError(f"--algorithm={algorithm!r} is not one of {', '.join(METHODS)}")
    if algorithm == "grid" and space.method != "grid":
        raise ValueError(f"--algorithm=grid needs a sweep of lists only; this sweep has method={space.method}")
    if early_stopping not in EARLY_STOPPING:
        raise ValueError(f"--early_stopping={early_stopping!r} is not one of {', '.join(EARLY_STOPPING)}")
    space.method = algorithm
    trials = space.budget(max_trials)
    if trials < 1:
        raise ValueError(f"algorithm {algorithm} needs num_trials >= 1 in the sweep file (or --max_trials)")
    if parallel < 1 or gpus_per_trial < 0:
        raise ValueError(f"--parallel={parallel} must be >= 1 and --gpus_per_trial={gpus_per_trial} >= 0")
    check_extra_args(space, extra_args)
    swept = [f"--config.{key}=${{trialParameters.{trial_parameter_name(key)}}}" for key in space.keys]
    fixed = [f"--config.{k}={format_value(v)}" for k, v in space.overrides({}).items()]
    container = {"name": CONTAINER, "image": image,  # The experiment's own arguments last: absl's last value wins.
                 "command": fmnist_command(config, TRIAL_WORKDIR, [*extra_args, *fixed, *swept])}
    if gpus_per_trial:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus_per_trial}}
    spec = {
        "objective": {"type": "maximize", "objectiveMetricName": METRIC},
        "algorithm": {"algorithmName": algorithm,
                      "algorithmSettings": [] if algorithm == "grid" else [
                          {"name": "random_state", "value": str(space.seed)}]},
        "parallelTrialCount": min(parallel, trials),
        "maxTrialCount": trials,
        "maxFailedTrialCount": max(1, trials // 4),
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
        "parameters": [parameter_spec(k, s) for k, s in space.parameters.items()],
        "trialTemplate": {
            "primaryContainerName": CONTAINER,
            "trialParameters": [{"name": trial_parameter_name(k), "reference": k, "description": f"config.{k}"}
                                for k in space.keys],
            "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
                "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": {"restartPolicy": "Never", "containers": [container]}}}},
        },
    }
    if early_stopping == "medianstop":
        # Katib's median stop: after min_trials_required trials, stop a trial whose best value so far is below the
        # median of the others' running averages at the same point, from start_step reports on.
        spec["earlyStopping"] = {"algorithmName": "medianstop", "algorithmSettings": [
            {"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "1"}]}
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def main(argv: Sequence[str] | None = None) -> int:
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = Parser(prog=PROG, usage=USAGE, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True, help="container image with fmnist installed and its data prepared")
    p.add_argument("--config", required=True, help="base config path inside the image, e.g. configs/seed_cnn.py")
    p.add_argument("--sweep", required=True, help="sweep file (configs/sweeps/*.py), read here")
    p.add_argument("--name", default="", help="Experiment name (default: the sweep file's name, '_' as '-')")
    p.add_argument("--namespace", default="default")
    p.add_argument("--algorithm", default="", help="grid, random or tpe (default: the sweep file's method)")
    p.add_argument("--early_stopping", default="medianstop", help="medianstop or none")
    p.add_argument("--max_trials", type=int, default=0, help="default: the grid's size or the file's num_trials")
    p.add_argument("--parallel", type=int, default=2, help="trials at once (parallelTrialCount)")
    p.add_argument("--gpus_per_trial", type=int, default=0, help="nvidia.com/gpu limit per trial pod")
    p.add_argument("--output", default="-", help="file to write (JSON, valid YAML); '-' for stdout")
    a = p.parse_args(own)
    try:
        space = load(a.sweep, a.config)
        manifest = experiment(space, name=a.name or space.name.replace("_", "-"), image=a.image, config=a.config,
                              namespace=a.namespace, algorithm=a.algorithm, early_stopping=a.early_stopping,
                              max_trials=a.max_trials, parallel=a.parallel, gpus_per_trial=a.gpus_per_trial,
                              extra_args=extra)
    except (ValueError, SweepError) as e:
        p.error(str(e))
    write_manifest(manifest, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
