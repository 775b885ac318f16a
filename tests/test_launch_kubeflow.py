"""The Kubernetes launchers' manifests, each checked by its ecosystem's own models: Kubeflow Trainer v2's
(kubeflow-trainer-api: TrainJob, TrainingRuntime, JobSet), the legacy Training Operator's (kubeflow-training: TFJob),
and Kubernetes' OpenAPI schemas (kubernetes-validate, strict: the PVC, the Jobs and the pod templates). A manifest
must come back whole from a round trip through its model; a field the model drops fails. Also: the TF_CONFIG that
fmnist builds from the environment JobSet gives each pod, and the one-line refusals of what cannot work."""

from __future__ import annotations

import functools
import json
from types import SimpleNamespace

import pytest

from fmnist.errors import ConfigError
from fmnist.runtime import jobset_env
from launch import jobset, kubernetes, local, pods, pvc, trainer


@functools.cache
def engines() -> SimpleNamespace:
    """The engines' model packages, imported once, by the first test that needs them (not at collection, which
    every pytest-xdist worker does)."""
    import kubernetes_validate
    from kubeflow.training.api_client import ApiClient
    from kubeflow_trainer_api import models

    return SimpleNamespace(
        validate=kubernetes_validate, k8s=kubernetes_validate.latest_version(), tfjob_client=ApiClient(),
        trainer=models, by_kind={"TrainJob": models.TrainerV1alpha1TrainJob,
                                 "TrainingRuntime": models.TrainerV1alpha1TrainingRuntime,
                                 "ClusterTrainingRuntime": models.TrainerV1alpha1ClusterTrainingRuntime,
                                 "JobSet": models.JobsetV1alpha2JobSet})


class _Response:  # What kubeflow-training's ApiClient.deserialize reads.
    def __init__(self, obj: dict):
        self.data = json.dumps(obj)


def keeps_whole(manifest: dict) -> None:
    """Fails unless the manifest parses in its ecosystem's model and comes back unchanged."""
    if manifest["kind"] == "TFJob":
        client = engines().tfjob_client
        back = client.sanitize_for_serialization(client.deserialize(_Response(manifest), "KubeflowOrgV1TFJob"))
    else:
        back = engines().by_kind[manifest["kind"]].from_dict(manifest).to_dict()
    assert back == manifest, f"{manifest['kind']} changed in a round trip through its model"


def valid_k8s(obj: dict, kind: str = "") -> None:
    """Strict validation against Kubernetes' schemas: a pod template (kind PodTemplate), a Job spec (kind Job), or a
    whole object."""
    if kind == "PodTemplate":
        obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "t"}, "template": obj}
    elif kind == "Job":
        obj = {"apiVersion": "batch/v1", "kind": kind, "metadata": {"name": "t"}, "spec": obj}
    engines().validate.validate(obj, engines().k8s, strict=True)


def run_cli(main, capsys, *args: str) -> tuple[int, str, str]:
    """Runs a launcher's main() in this process, as its command does; (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _job(js_spec: dict) -> dict:
    (rjob,) = js_spec["replicatedJobs"]
    return rjob


# The check itself

def test_a_field_the_model_does_not_know_fails_the_round_trip():
    manifest = jobset.jobset(name="fm", image="img", workers=2, gpus_per_worker=1, config="c.py", workdir="/mnt/s/r")
    keeps_whole(manifest)
    _job(manifest["spec"])["template"]["spec"]["parallelizm"] = 2
    with pytest.raises(AssertionError, match="JobSet changed"):
        keeps_whole(manifest)
    with pytest.raises(engines().validate.ValidationError, match="parallelizm"):
        valid_k8s(_job(manifest["spec"])["template"]["spec"], "Job")


# Kubeflow Trainer v2

@pytest.mark.parametrize("cluster, workdir, extra", [
    (False, "/mnt/shared/run1", ["--pvc=runs-claim"]),
    (True, "gs://fmnist-bucket/run1", ["--service_account=fmnist-ksa"]),
])
def test_trainer_writes_a_runtime_without_framework_plugin_and_a_trainjob(tmp_path, capsys, cluster, workdir, extra):
    out = tmp_path / "trainjob.yaml"
    code, _, err = run_cli(trainer.main, capsys, "--image=registry.example/fmnist:1", "--workers=3",
                           "--gpus_per_worker=2", "--config=configs/gpu.py", f"--workdir={workdir}", "--name=fm",
                           *extra, *(["--cluster_runtime"] if cluster else []), f"--output={out}", "--",
                           "--config.num_epochs=3")
    assert code == 0, err
    assert f"kubectl apply -f {out}" in err and trainer.INSTALL in err
    listed = json.loads(out.read_text())
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    runtime, job = listed["items"]
    for manifest in (runtime, job):
        keeps_whole(manifest)
    assert runtime["kind"] == ("ClusterTrainingRuntime" if cluster else "TrainingRuntime")
    assert ("namespace" in runtime["metadata"]) != cluster
    assert job["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": runtime["kind"],
                                         "name": runtime["metadata"]["name"]}
    # No framework plugin: Trainer's PlainML applies numNodes and the env; TF_CONFIG is built in the pod.
    policy = engines().trainer.TrainerV1alpha1MLPolicy.from_dict(runtime["spec"]["mlPolicy"])
    assert not (policy.torch or policy.mpi or policy.jax or policy.xgboost or policy.flux)
    rjob = _job(runtime["spec"]["template"]["spec"])
    assert rjob["template"]["metadata"]["labels"] == trainer.ANCESTOR
    valid_k8s(rjob["template"]["spec"], "Job")
    pod = rjob["template"]["spec"]["template"]
    valid_k8s(pod, "PodTemplate")
    (node,) = pod["spec"]["containers"]
    assert node["name"] == jobset.CONTAINER
    spec = job["spec"]["trainer"]
    env = {e["name"]: e["value"] for e in spec["env"]}
    assert spec["numNodes"] == int(env[jobset.PODS_PER_JOB]) == rjob["template"]["spec"]["completions"] == 3
    assert spec["command"] == ["python", "-m", "fmnist.main", "--config=configs/gpu.py", f"--workdir={workdir}",
                               "--config.num_epochs=3"]
    assert spec["resourcesPerNode"] == {"limits": {pods.GPU: "2"}}
    if cluster:
        assert "volumes" not in pod["spec"] and pod["spec"]["serviceAccountName"] == "fmnist-ksa"
    else:
        assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "runs-claim"


# JobSet

def test_jobset_is_kept_whole_and_its_pods_build_the_tf_config_of_their_host_names(tmp_path, capsys):
    out = tmp_path / "jobset.yaml"
    code, _, err = run_cli(jobset.main, capsys, "--registry=registry.example", "--workers=4", "--gpus_per_worker=1",
                           "--config=configs/gpu.py", "--workdir=/mnt/shared/run1", "--name=fm", f"--output={out}")
    assert code == 0, err
    assert jobset.INSTALL in err
    manifest = json.loads(out.read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == (jobset.API_VERSION, "JobSet")
    keeps_whole(manifest)
    rjob = _job(manifest["spec"])
    valid_k8s(rjob["template"]["spec"], "Job")
    valid_k8s(rjob["template"]["spec"]["template"], "PodTemplate")
    (node,) = rjob["template"]["spec"]["template"]["spec"]["containers"]
    assert node["image"] == "registry.example/fmnist:gpu"
    # What fmnist reads is what the manifest gives each pod; each pod, as the cluster resolves its environment,
    # gets the TF_CONFIG of the JobSet's host names (JobSet's naming, launch.jobset.pods_host), itself at its index.
    assert {e["name"] for e in node["env"]} == set(jobset_env.JOBSET_VARS)
    port = node["ports"][0]["containerPort"]
    for index, env in enumerate(jobset.pod_environments("fm", 4)):
        cfg = json.loads(jobset_env.tf_config(env))
        assert cfg == {"cluster": {"worker": [f"{jobset.pods_host('fm', i)}:{port}" for i in range(4)]},
                       "task": {"type": "worker", "index": index}}


def test_several_jobs_of_several_pods_number_their_workers_job_by_job():
    env = {"JOBSET_NAME": "fm", "REPLICATED_JOB_NAME": jobset.REPLICATED_JOB, "REPLICATED_JOB_REPLICAS": "2",
           "FMNIST_PODS_PER_JOB": "3", "JOB_INDEX": "1", "JOB_COMPLETION_INDEX": "2"}
    cfg = json.loads(jobset_env.tf_config(env))
    hosts = [f"{jobset.pods_host('fm', p, j)}:{jobset_env.PORT}" for j in range(2) for p in range(3)]
    assert cfg == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": 5}}


def test_tf_config_wins_and_no_jobset_environment_changes_nothing():
    env = {"TF_CONFIG": "{}", **jobset.pod_environments("fm", 2)[1]}
    assert not jobset_env.export_tf_config(env) and env["TF_CONFIG"] == "{}"
    assert not jobset_env.export_tf_config(plain := {"PATH": "/bin"}) and plain == {"PATH": "/bin"}
    env.pop("TF_CONFIG")
    assert jobset_env.export_tf_config(env) and json.loads(env["TF_CONFIG"])["task"]["index"] == 1


def _pod_env(**changes: str | None) -> dict:
    env = jobset.pod_environments("fm", 2)[1]
    for key, value in changes.items():
        env.pop(key) if value is None else env.__setitem__(key, value)
    return env


@pytest.mark.parametrize("changes, message", [
    (dict(REPLICATED_JOB_NAME=None), "JOBSET_NAME is set but REPLICATED_JOB_NAME is not"),
    (dict(FMNIST_PODS_PER_JOB=None), "JOBSET_NAME is set but FMNIST_PODS_PER_JOB is not"),
    (dict(JOB_COMPLETION_INDEX="2"), "JOB_COMPLETION_INDEX=2 must be < FMNIST_PODS_PER_JOB=2"),
    (dict(JOB_INDEX="1"), "JOB_INDEX=1 must be < REPLICATED_JOB_REPLICAS=1"),
    (dict(REPLICATED_JOB_REPLICAS="two"), "REPLICATED_JOB_REPLICAS='two' must be an integer >= 1"),
    (dict(FMNIST_JOBSET_LOOPBACK="fm-node-0-0.fm=15000"), "FMNIST_JOBSET_LOOPBACK names fm-node-0-0.fm but"),
    (dict(FMNIST_JOBSET_LOOPBACK="fm-node-0-0.fm=x,fm-node-0-1.fm=1"), "is not HOST=PORT"),
])
def test_an_inconsistent_jobset_environment_is_one_line(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as e:
        jobset_env.tf_config(_pod_env(**changes))
    assert "\n" not in str(e.value)


def test_local_jobset_workers_get_the_manifest_environment_and_no_tf_config():
    cluster = ["localhost:15001", "localhost:15002"]
    env = local.worker_env(cluster, 1, 0, base={"TF_CONFIG": "stale", "PATH": "/bin"}, cluster_env="jobset")
    assert "TF_CONFIG" not in env and env["PATH"] == "/bin"
    assert {k: env[k] for k in jobset_env.JOBSET_VARS} == jobset.pod_environments(local.JOBSET_NAME, 2)[1]
    assert local.LOOPBACK_VAR == jobset_env.LOOPBACK_VAR
    assert json.loads(jobset_env.tf_config(env)) == {"cluster": {"worker": ["127.0.0.1:15001", "127.0.0.1:15002"]},
                                                     "task": {"type": "worker", "index": 1}}


# The legacy TFJob (Kubeflow Training Operator v1)

@pytest.mark.parametrize("workdir, extra", [("/mnt/shared/run1", ["--pvc=runs-claim"]),
                                            ("gs://fmnist-bucket/run1", ["--service_account=fmnist-ksa"])])
def test_tfjob_is_kept_whole_and_labelled_as_the_legacy_operator_path(tmp_path, capsys, workdir, extra):
    out = tmp_path / "tfjob.yaml"
    code, _, err = run_cli(kubernetes.main, capsys, "--image=registry.example/fmnist:1", "--workers=3",
                           "--gpus_per_worker=2", "--config=configs/gpu.py", f"--workdir={workdir}", "--name=fm",
                           *extra, f"--output={out}", "--", "--config.num_epochs=3")
    assert code == 0, err
    assert "Legacy path" in err and "Training Operator v1" in err and kubernetes.INSTALL in err
    job = json.loads(out.read_text())
    keeps_whole(job)
    assert list(job["spec"]["tfReplicaSpecs"]) == ["Worker"]  # No Chief/PS: worker 0 is MWMS's chief.
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert (worker["replicas"], worker["restartPolicy"]) == (3, "OnFailure")
    valid_k8s(worker["template"], "PodTemplate")
    pod = worker["template"]["spec"]
    (container,) = pod["containers"]
    # The operator finds the TensorFlow container and its port by these names.
    assert (container["name"], container["ports"][0]["name"]) == (kubernetes.CONTAINER_NAME, kubernetes.PORT_NAME)
    assert container["command"] == ["python", "-m", "fmnist.main", "--config=configs/gpu.py", f"--workdir={workdir}",
                                    "--config.num_epochs=3"]
    if workdir.startswith("gs://"):
        assert "volumes" not in pod and "volumeMounts" not in container
        assert pod["serviceAccountName"] == "fmnist-ksa"
    else:
        (mount,), (volume,) = container["volumeMounts"], pod["volumes"]
        assert mount == {"name": volume["name"], "mountPath": "/mnt/shared"}
        assert volume["persistentVolumeClaim"] == {"claimName": "runs-claim"}


def test_tfjob_help_says_it_is_the_legacy_operator_path(capsys):
    code, out, _ = run_cli(kubernetes.main, capsys, "--help")
    assert code == 0 and "Legacy path" in out and "Training Operator v1" in out and kubernetes.INSTALL in out


# ReadWriteMany claims

@pytest.mark.parametrize("storage", sorted(pvc.CLASSES))
def test_pvc_is_a_valid_readwritemany_claim_of_the_file_systems_class(tmp_path, capsys, storage):
    out = tmp_path / "pvc.yaml"
    code, _, err = run_cli(pvc.main, capsys, f"--storage={storage}", f"--output={out}")
    assert code == 0, err
    claim = json.loads(out.read_text())
    valid_k8s(claim)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == pvc.CLASSES[storage]
    assert claim["metadata"]["name"] == pods.DEFAULT_CLAIM  # What the launchers' --pvc defaults to.


# Refusals: one line, exit code 2, nothing written

BASE = ["--image=img", "--workers=2", "--config=c.py"]


@pytest.mark.parametrize("main, args, message", [
    (trainer.main, [*BASE, "--workdir=/data/run", "--pvc="],
     "the replicas cannot share a pod's own disk; give a ReadWriteMany claim"),
    (jobset.main, [*BASE, "--workdir=runs/a"], "must be an absolute path"),
    (jobset.main, [*BASE, "--workdir=gs://b/run"], "needs a bucket"),
    (kubernetes.main, [*BASE, "--workdir=gs://fmnist-bucket/run", "--pvc=c"], "drop --pvc and --mount_path"),
    (kubernetes.main, [*BASE, "--workdir=/mnt/a", "--mount_path=/data"], "must be inside --mount_path"),
    (trainer.main, [*BASE, "--workdir=/mnt/a", "--name=Fmnist_1"], "--name='Fmnist_1'"),
    (trainer.main, [*BASE, "--workdir=/mnt/a", "--runtime=Bad_Name"], "--runtime='Bad_Name'"),
    (jobset.main, [*BASE[:1], "--workers=0", *BASE[2:], "--workdir=/mnt/a"], "--workers=0 must be >= 1"),
    (kubernetes.main, [*BASE, "--workdir=/mnt/a", "--gpus_per_worker=-1"], "--gpus_per_worker=-1 must be >= 0"),
    (pvc.main, ["--storage=nfs"], "--storage='nfs' is not one of filestore, efs, azurefile"),
    (pvc.main, ["--storage=efs", "--size=10GB"], "--size='10GB' must be a whole number of Mi, Gi, Ti or Pi"),
])
def test_what_cannot_work_is_refused_in_one_line(tmp_path, capsys, main, args, message):
    out = tmp_path / "out.yaml"
    code, _, err = run_cli(main, capsys, *args, f"--output={out}")
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1 and ": error: " in err and message in err, err


def test_a_single_worker_may_keep_its_workdir_on_its_own_disk():
    manifest = jobset.jobset(name="fm", image="i", workers=1, gpus_per_worker=0, config="c.py", workdir="/tmp/run",
                             pvc="")
    keeps_whole(manifest)
    pod = _job(manifest["spec"])["template"]["spec"]["template"]
    valid_k8s(pod, "PodTemplate")
    assert "volumes" not in pod["spec"]


def test_trainjob_with_no_gpus_asks_for_none():
    listed = trainer.manifests(name="fm", image="i", workers=2, gpus_per_worker=0, config="c.py",
                               workdir="gs://fmnist-bucket/r")
    runtime, job = listed["items"]
    keeps_whole(job)
    assert "resourcesPerNode" not in job["spec"]["trainer"]
    assert "resources" not in _job(runtime["spec"]["template"]["spec"])["template"]["spec"]["template"]["spec"][
        "containers"][0]

