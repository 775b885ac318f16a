"""What the cluster launchers write: the Vertex AI CustomJob spec and each worker's TF_CONFIG, and the TPU VM
script's commands (--dry-run); the Kubernetes launchers' manifests are in tests/test_launch_kubeflow.py. None of
these clusters is reachable here: this checks them by construction."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import kubernetes_validate
import pytest
from conftest import ROOT, run_module
from google.cloud.aiplatform_v1 import types as vertex_types
from google.protobuf import json_format
from kubeflow_katib_api.models import V1beta1Experiment

from launch import katib, search_space, vertex, vertex_machines


def config_dict() -> dict:
    return search_space.load_base_config(str(ROOT / "configs/cpu.py"))


# Vertex AI: every spec is parsed strictly by google-cloud-aiplatform's own messages (imported once, here).

def _vertex_args(*extra: str) -> list[str]:
    return ["--image=us-docker.pkg.dev/p/r/fmnist:1", "--workers=4", "--machine_type=a2-highgpu-1g",
            "--accelerator_type=NVIDIA_TESLA_A100", "--accelerator_count=1", "--config=configs/gpu.py",
            "--workdir=gs://bucket/run1", *extra]


def _loose(value):
    """Proto JSON writes int64 as a string: compare numbers as strings."""
    if isinstance(value, dict):
        return {k: _loose(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_loose(v) for v in value]
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _vertex_round_trip(job: dict, message: str) -> dict:
    """`job` parsed by the library's message with unknown fields refused, and written back as JSON."""
    cls = getattr(vertex_types, message)
    parsed = cls.from_json(json.dumps(job), ignore_unknown_fields=False)
    return json_format.MessageToDict(cls.pb(parsed))


def test_vertex_round_trip_refuses_unknown_fields_and_sees_lost_ones():
    with pytest.raises(json_format.ParseError, match="machineTyp"):
        _vertex_round_trip({"workerPoolSpecs": [{"machineSpec": {"machineTyp": "n1-standard-8"}}]}, "CustomJobSpec")
    spec = {"workerPoolSpecs": [{"machineSpec": {"machineType": "n1-standard-8", "acceleratorCount": 0}}]}
    assert _loose(_vertex_round_trip(spec, "CustomJobSpec")) != _loose(spec)  # A default value does not survive.


def test_vertex_rules_name_only_accelerators_of_the_enum():
    names = set(vertex_types.AcceleratorType.__members__)
    assert {gpu for gpu, _ in vertex_machines.SERIES.values()} | set(vertex_machines.N1_GPUS) <= names
    assert set(vertex.accelerator_names()) == names - {"ACCELERATOR_TYPE_UNSPECIFIED"}


def test_vertex_spec_has_a_chief_pool_and_a_worker_pool(tmp_path, capsys):
    out = tmp_path / "job.json"
    assert vertex.main(_vertex_args(f"--output={out}", "--region=europe-west4", "--", "--config.num_epochs=3")) == 0
    err = capsys.readouterr().err
    assert f"gcloud ai custom-jobs create --region=europe-west4 --display-name=fmnist --config={out}" in err
    spec = json.loads(out.read_text())
    assert _loose(_vertex_round_trip(spec, "CustomJobSpec")) == _loose(spec)  # Strict parse, no field lost.
    assert set(spec) == {"workerPoolSpecs", "scheduling"}  # A CustomJobSpec, as gcloud's --config expects.
    assert spec["scheduling"] == {"restartJobOnWorkerRestart": True}
    chief, workers = spec["workerPoolSpecs"]
    assert (chief["replicaCount"], workers["replicaCount"]) == (1, 3)
    for pool in (chief, workers):
        assert pool["machineSpec"] == {"machineType": "a2-highgpu-1g", "acceleratorType": "NVIDIA_TESLA_A100",
                                       "acceleratorCount": 1}
        assert pool["containerSpec"] == {
            "imageUri": "us-docker.pkg.dev/p/r/fmnist:1", "command": ["python", "-m", "fmnist.main"],
            "args": ["--config=configs/gpu.py", "--workdir=gs://bucket/run1", "--config.num_epochs=3"]}


def test_vertex_rest_format_wraps_the_spec_in_a_custom_job(tmp_path):
    out = tmp_path / "job.json"
    assert vertex.main(_vertex_args(f"--output={out}", "--format=rest", "--display_name=fm-1")) == 0
    job = json.loads(out.read_text())
    assert _loose(_vertex_round_trip(job, "CustomJob")) == _loose(job)
    assert job["displayName"] == "fm-1"
    assert [p["replicaCount"] for p in job["jobSpec"]["workerPoolSpecs"]] == [1, 3]


@pytest.mark.parametrize("flags, machine", [
    (["--accelerator_count=0"], {"machineType": "n1-standard-8"}),  # Not the GPU default machine type.
    (["--machine_type=g2-standard-24"], {"machineType": "g2-standard-24", "acceleratorType": "NVIDIA_L4",
                                         "acceleratorCount": 2}),  # The machine type's own GPUs.
    (["--machine_type=n1-standard-16", "--accelerator_type=NVIDIA_TESLA_T4", "--accelerator_count=4"],
     {"machineType": "n1-standard-16", "acceleratorType": "NVIDIA_TESLA_T4", "acceleratorCount": 4}),
])
def test_vertex_machine_spec_follows_the_machine_type(tmp_path, flags, machine):
    out = tmp_path / "job.json"
    assert vertex.main(["--registry=us-docker.pkg.dev/p/r", "--workers=2", "--config=configs/cpu.py",
                        "--workdir=/gcs/bucket/run1", f"--output={out}", *flags]) == 0
    spec = json.loads(out.read_text())
    assert _loose(_vertex_round_trip(spec, "CustomJobSpec")) == _loose(spec)
    for pool in spec["workerPoolSpecs"]:
        assert pool["machineSpec"] == machine
        tag = "gpu" if "acceleratorCount" in machine else "cpu"
        assert pool["containerSpec"]["imageUri"] == f"us-docker.pkg.dev/p/r/fmnist:{tag}"


@pytest.mark.parametrize("flags, message", [
    (["--accelerator_type=A100"], "--accelerator_type=A100 is not a Vertex AcceleratorType; GPUs: "),
    (["--accelerator_type=NVIDIA_TESLA_H100"], "NVIDIA_H100_80GB"),
    (["--accelerator_type=TPU_V5_LITEPOD"], "TPU_V5_LITEPOD is a TPU: "),
    (["--machine_type=ct5lp-hightpu-4t", "--accelerator_count=4"], "launch/tpu_vm.sh"),
    (["--machine_type=a3-highgpu-8g", "--accelerator_type=NVIDIA_TESLA_A100"],
     "a3-highgpu-8g carries NVIDIA_H100_80GB, not NVIDIA_TESLA_A100: drop --accelerator_type, or pick a machine type "
     "for NVIDIA_TESLA_A100: a2-highgpu-1g"),
    (["--machine_type=a2-highgpu-1g", "--accelerator_count=0"], "pick a CPU machine type, e.g. n1-standard-8"),
    (["--machine_type=a2-highgpu-1g", "--accelerator_count=2"], "has exactly 1 NVIDIA_TESLA_A100"),
    (["--machine_type=n2-standard-8", "--accelerator_type=NVIDIA_TESLA_T4"], "n2-standard-8 takes no GPUs"),
    (["--machine_type=n1-standard-8", "--accelerator_type=NVIDIA_L4"], "NVIDIA_L4 comes with g2-standard-4"),
    (["--workdir=/tmp/run1"], "--workdir=/tmp/run1 is on each replica's own disk, and 2 replicas must share one"),
])
def test_vertex_refuses_what_vertex_rejects(tmp_path, capsys, flags, message):
    out = tmp_path / "job.json"
    with pytest.raises(SystemExit) as exit_:
        vertex.main(["--registry=us-docker.pkg.dev/p/r", "--workers=2", "--config=configs/gpu.py",
                     "--workdir=gs://bucket/run1", f"--output={out}", *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and not out.exists()
    assert err.count("\n") == 1 and err.startswith("launch.vertex: error: ") and message in err, err


def test_vertex_without_the_launch_extra_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.aiplatform_v1", None)  # As if not installed.
    with pytest.raises(SystemExit) as exit_:
        vertex.main(_vertex_args(f"--output={tmp_path / 'job.json'}"))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "pip install -e '.[launch]'" in err, err


def test_vertex_single_machine_may_keep_its_workdir_on_its_disk():
    spec = vertex.custom_job_spec(image="img", workers=1, machine={"machineType": "n1-standard-8"},
                                  config="configs/cpu.py", workdir="/tmp/run1")
    (pool,) = spec["workerPoolSpecs"]
    assert pool["containerSpec"]["args"][1] == "--workdir=/tmp/run1"


@pytest.mark.parametrize("workdir, message", [("gs://", "needs a bucket"), ("/gcs/", "needs a bucket"),
                                              ("runs/a", "must be gs://")])
def test_vertex_rejects_workdirs_replicas_cannot_share(workdir, message):
    with pytest.raises(ValueError, match=message):
        vertex.custom_job_spec(image="i", workers=2, machine={"machineType": "m"}, config="c", workdir=workdir)


# Cloud TPU VM

def _dry_run(env: dict | None = None, *args: str) -> list[list[str]]:
    """The commands `tpu_vm.sh --dry-run` prints, each parsed back into its words."""
    proc = subprocess.run(["bash", "launch/tpu_vm.sh", "--dry-run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line[2:]) for line in proc.stdout.splitlines() if line.startswith("+ ")]


def _remote(cmd: list[str]) -> str:
    (script,) = [a.removeprefix("--command=") for a in cmd if a.startswith("--command=")]
    return script


def test_tpu_vm_dry_run_creates_copies_installs_and_trains():
    cmds = _dry_run({"TPU_NAME": "tpu-a", "ZONE": "us-west4-a"}, "--", "--config.num_epochs=2")
    create = cmds[0]
    assert create[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "tpu-a"]
    assert {"--zone=us-west4-a", "--accelerator-type=v5litepod-8", "--version=v2-alpha-tpuv5-lite"} <= set(create)
    assert any(c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and "--worker=all" in c for c in cmds)
    ssh = [c for c in cmds if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"]]
    assert ssh and all("tpu-a" in c and "--worker=all" in c and "--zone=us-west4-a" in c for c in ssh)
    scripts = [_remote(c) for c in ssh]
    install = next(s for s in scripts if "pip install" in s)
    assert "tensorflow-tpu==" in install and "pip install -q --no-deps -e fmnist" in install
    train = shlex.split(scripts[-1].split("&&")[-1])
    assert train[:3] == ["python", "-m", "fmnist.main"]
    assert {"--config=configs/tpu.py", "--config.tpu=local", "--config.num_epochs=2"} <= set(train)


# Runtimes: cloud.google.com/tpu/docs/runtimes; zones: cloud.google.com/tpu/docs/regions-zones (read 2026-12-06).
@pytest.mark.parametrize("tpu, runtime, zone", [
    ("v2-8", "tpu-ubuntu2204-base", "us-central1-b"), ("v3-8", "tpu-ubuntu2204-base", "us-central1-a"),
    ("v4-8", "tpu-ubuntu2204-base", "us-central2-b"), ("v5litepod-4", "v2-alpha-tpuv5-lite", "us-central1-a"),
    ("v5p-8", "v2-alpha-tpuv5", "us-central1-a"), ("v6e-8", "v2-alpha-tpuv6e", "us-central1-b"),
])
def test_tpu_vm_picks_the_runtime_and_a_zone_that_serve_the_type(tpu, runtime, zone):
    create = _dry_run({"ACCELERATOR_TYPE": tpu})[0]
    assert {f"--accelerator-type={tpu}", f"--version={runtime}", f"--zone={zone}"} <= set(create)


def test_tpu_vm_examples_in_the_docs_run():
    """Every `VAR=... bash launch/tpu_vm.sh` line of launch/README.md passes the script's checks."""
    lines = re.findall(r"^((?:\w+=\S+ )+)bash launch/tpu_vm\.sh(.*)$", (ROOT / "launch/README.md").read_text(), re.M)
    assert lines
    for assignments, args in lines:
        env = dict(a.split("=", 1) for a in assignments.split())
        assert _dry_run(env, *shlex.split(args.split("#")[0].replace("--dry-run", "")))[0][4] == "create"


def test_tpu_vm_dry_run_clones_copies_results_and_deletes_when_asked():
    cmds = _dry_run({"REPO_URL": "https://git.example/fmnist.git", "RESULTS_URI": "gs://b/run", "DELETE_AFTER": "1",
                     "PROJECT": "proj"})
    scripts = [_remote(c) for c in cmds if "ssh" in c]
    assert any("git clone --depth=1 https://git.example/fmnist.git fmnist" in s for s in scripts)
    assert not any("scp" in c for c in cmds)
    assert "gcloud storage cp --recursive $HOME/fmnist-runs/fmnist-tpu gs://b/run" in scripts[-1]
    assert cmds[-1][:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "fmnist-tpu"]
    assert all("--project=proj" in c for c in cmds if c[0] == "gcloud")


def test_tpu_vm_writes_a_gs_workdir_directly():
    scripts = [_remote(c) for c in _dry_run({"WORKDIR": "gs://b/run"}) if "ssh" in c]
    train = shlex.split(scripts[-1].split("&&")[-1])
    assert "--workdir=gs://b/run" in train and not any("gcloud storage cp" in s for s in scripts)


@pytest.mark.parametrize("env, message", [
    ({"ACCELERATOR_TYPE": "v4-32"}, "multi-host slice; this script runs one host: v2-8, v3-8, v4-8, v5litepod-1"),
    ({"ACCELERATOR_TYPE": "v5e-8"}, "not a single-host TPU type: v2-8, "),
    ({"ACCELERATOR_TYPE": "v5litepod-8", "ZONE": "us-central2-b"},
     "ZONE=us-central2-b does not serve v5litepod-8: use us-central1-a, us-south1-a, us-west1-c, us-west4-a"),
    ({"ACCELERATOR_TYPE": "v6e-4", "RUNTIME_VERSION": "tpu-ubuntu2204-base"}, "whose runtime is v2-alpha-tpuv6e"),
    ({"WORKDIR": "gs://b/run", "RESULTS_URI": "gs://b/copy"}, "drop RESULTS_URI"),
])
def test_tpu_vm_refuses_what_it_cannot_run(env, message):
    proc = subprocess.run(["bash", "launch/tpu_vm.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", **env})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("tpu_vm.sh: error: ") and proc.stderr.count("\n") == 1 and message in proc.stderr


def test_tpu_vm_zone_check_can_be_skipped_for_a_zone_added_since():
    create = _dry_run({"ACCELERATOR_TYPE": "v5p-8", "ZONE": "europe-west4-b", "CHECK_TPU_TABLE": "0"})[0]
    assert {"--zone=europe-west4-b", "--version=v2-alpha-tpuv5"} <= set(create)


# Katib (Kubeflow hyperparameter tuning): each Experiment goes through kubeflow-katib-api's model and its trial Job
# through kubernetes-validate's strict schema.

def _check_katib(exp: dict) -> None:
    """Fails when the Experiment loses a field in a round trip through Katib's model, or its trial Job is not a valid
    batch/v1 Job."""
    assert V1beta1Experiment.from_dict(exp).to_dict() == exp
    kubernetes_validate.validate(exp["spec"]["trialTemplate"]["trialSpec"], kubernetes_validate.utils.latest_version(),
                                 strict=True)


def test_katib_checks_can_fail():
    space = search_space.load(str(ROOT / "configs/sweeps/arch_lr.py"), str(ROOT / "configs/cpu.py"))
    exp = katib.experiment(space, name="arch-lr", image="img", config="configs/cpu.py")
    exp["spec"]["maxTrialsCount"] = 3  # Katib has no such field: the model drops it.
    with pytest.raises(AssertionError):
        _check_katib(exp)
    del exp["spec"]["maxTrialsCount"]
    exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["imag"] = "img"
    with pytest.raises(kubernetes_validate.ValidationError, match="imag"):
        _check_katib(exp)


def test_katib_cli_writes_the_sweep_as_an_experiment(tmp_path):
    out = tmp_path / "experiment.yaml"
    proc = run_module("launch.katib", "--image=registry.example/fmnist:1", "--config=configs/cpu.py",
                      "--sweep=configs/sweeps/arch_lr.py", f"--output={out}", "--", "--config.seed=3")
    assert proc.returncode == 0, proc.stderr
    assert f"kubectl apply -f {out}" in proc.stderr
    exp = json.loads(out.read_text())
    _check_katib(exp)
    assert (exp["apiVersion"], exp["kind"], exp["metadata"]["name"]) == ("kubeflow.org/v1beta1", "Experiment",
                                                                         "arch-lr")
    spec = exp["spec"]
    assert spec["objective"] == {"type": "maximize", "objectiveMetricName": "validation_accuracy"}
    assert spec["algorithm"]["algorithmName"] == "grid" and spec["maxTrialCount"] == 8
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert spec["earlyStopping"]["algorithmName"] == "medianstop"
    assert spec["parameters"] == [
        {"name": "model_width", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32"]}},
        {"name": "model_depth", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "2"]}},
        {"name": "learning_rate", "parameterType": "discrete", "feasibleSpace": {"list": ["0.001", "0.003"]}}]
    template = spec["trialTemplate"]
    names = {p["reference"]: p["name"] for p in template["trialParameters"]}
    assert names == {"model_width": "modelWidth", "model_depth": "modelDepth", "learning_rate": "learningRate"}
    (container,) = template["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert container["name"] == template["primaryContainerName"]
    command = container["command"]
    assert command[:5] == ["python", "-m", "fmnist.main", "--config=configs/cpu.py", "--workdir=/tmp/fmnist-trial"]
    assert {"--config.model=resnet", "--config.num_epochs=2", "--config.validation_size=5000",
            "--config.validation_seed=0", "--config.evaluate_test=false",
            "--config.learning_rate=${trialParameters.learningRate}", "--config.seed=3"} <= set(command)
    # The arguments after `--` come first: the experiment's own, later, win (absl keeps a flag's last value).
    assert command.index("--config.seed=3") < command.index("--config.evaluate_test=false")
    # Every placeholder names a declared trial parameter, and each parameter is used once.
    used = re.findall(r"\$\{trialParameters\.(\w+)\}", " ".join(command))
    assert sorted(used) == sorted(names.values())


@pytest.mark.parametrize("extra, message", [
    ("--config.evaluate_test=true", "--config.evaluate_test=true after `--`: trials never evaluate the test split"),
    ("--config.learning_rate=0.1", "sets config.learning_rate, which the sweep file sweeps"),
])
def test_katib_arguments_after_the_separator_cannot_change_what_the_experiment_sets(tmp_path, extra, message):
    out = tmp_path / "experiment.yaml"
    proc = run_module("launch.katib", "--image=img", "--config=configs/cpu.py", "--sweep=configs/sweeps/arch_lr.py",
                      f"--output={out}", "--", "--config.seed=3", extra)
    assert proc.returncode == 2 and proc.stdout == "" and not out.exists()
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("launch.katib: error: "), proc.stderr
    assert message in proc.stderr


def test_katib_tpe_over_ranges_uses_katib_distributions(tmp_path):
    sweep = {"method": "tpe", "num_trials": 12, "seed": 5, "fixed": {"validation_size": 5000},
             "parameters": {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "model_depth": {"int_uniform": [1, 3]},
                            "optimizer": ["adam", "sgd"]}}
    space = search_space.check(sweep, config_dict(), "lr_tpe")
    exp = katib.experiment(space, name="lr-tpe", image="img", config="configs/cpu.py", parallel=3, gpus_per_trial=1)
    _check_katib(exp)
    spec = exp["spec"]
    assert spec["algorithm"] == {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "5"}]}
    assert (spec["maxTrialCount"], spec["parallelTrialCount"]) == (12, 3)
    params = {p["name"]: p for p in spec["parameters"]}
    assert params["learning_rate"] == {"name": "learning_rate", "parameterType": "double", "feasibleSpace": {
        "min": "0.0001", "max": "0.01", "distribution": "logUniform"}}
    assert params["model_depth"]["parameterType"] == "int"
    assert params["optimizer"] == {"name": "optimizer", "parameterType": "categorical",
                                   "feasibleSpace": {"list": ["adam", "sgd"]}}
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="Arch_LR"), "--name='Arch_LR'"),
    (dict(algorithm="bayes"), "--algorithm='bayes'"),
    (dict(early_stopping="asha"), "--early_stopping='asha'"),
    (dict(parallel=0), "--parallel=0"),
])
def test_katib_rejects_what_cannot_work(kwargs, message):
    space = search_space.load(str(ROOT / "configs/sweeps/arch_lr.py"), str(ROOT / "configs/cpu.py"))
    with pytest.raises(ValueError, match=re.escape(message)):
        katib.experiment(space, **({"name": "arch-lr", "image": "i", "config": "configs/cpu.py"} | kwargs))


def test_katib_cli_bad_sweep_is_one_line(tmp_path):
    proc = run_module("launch.katib", "--image=img", "--config=configs/cpu.py", f"--sweep={tmp_path / 'none.py'}")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("launch.katib: error: "), proc.stderr
