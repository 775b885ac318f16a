"""Writes a JobSet (jobset.x-k8s.io/v1alpha2) that trains fmnist on N workers, for clusters with JobSet and no Kubeflow.

  kubectl apply --server-side -f https://github.com/kubernetes-sigs/jobset/releases/download/v0.12.0/manifests.yaml
  python -m launch.jobset --registry=REGISTRY --workers=4 --gpus_per_worker=1 --config=configs/gpu.py \\
      --workdir=/mnt/shared/run1 --pvc=fmnist-workdir --output=jobset.yaml [-- --config.KEY=VALUE ...]
  kubectl apply -f jobset.yaml

One replicated Job, `node`, of N indexed pods (parallelism = completions = N), as Kubeflow Trainer v2 lays out its
trainer (launch.trainer writes this same template into a TrainingRuntime). Each pod gets JOBSET_NAME,
REPLICATED_JOB_NAME, JOB_INDEX and REPLICATED_JOB_REPLICAS from JobSet's labels by the downward API,
JOB_COMPLETION_INDEX from the Job's annotation, and FMNIST_PODS_PER_JOB=N; fmnist.runtime.jobset_env turns them into
TF_CONFIG (hosts `NAME-node-0-I.NAME:2222`, worker 0 the chief). A pod that fails fails its Job (backoffLimit 0),
and JobSet restarts every pod (failurePolicy.maxRestarts), since a lone restarted worker cannot rejoin the
collectives; all resume from the chief's last checkpoint. fmnist's own verdicts (exit 2 bad input, 3 training
diverged, 4 workdir taken over) fail the JobSet at once instead (podFailurePolicy FailJob, then FailJobSet).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from launch import fmnist_command, pods, split_passthrough, write_manifest

PROG = "launch.jobset"
USAGE = (f"python -m {PROG} [--registry=REG | --image=IMG] --workers=N --gpus_per_worker=G --config=CONFIG "
         "--workdir=DIR|gs://BUCKET/PATH [--name=NAME] [--pvc=CLAIM] [--service_account=KSA] [--output=FILE] "
         "[-- FMNIST_ARGS]")
API_VERSION = "jobset.x-k8s.io/v1alpha2"
INSTALL = "kubectl apply --server-side -f https://github.com/kubernetes-sigs/jobset/releases/download/v0.12.0/manifests.yaml"
REPLICATED_JOB = "node"   # Kubeflow Trainer v2's name for the trainer's Job and container (pkg/constants: Node).
CONTAINER = "node"
PORT = 2222               # fmnist.runtime.jobset_env.PORT (launch imports no fmnist module).
MAX_RESTARTS = 3
FINAL_EXIT_CODES = [2, 3, 4]  # fmnist: bad input, training diverged, workdir taken over: restarting cannot help.
JOBSET_LABEL = "jobset.sigs.k8s.io/"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
# Each variable fmnist.runtime.jobset_env reads, and the pod label or annotation the downward API copies it from.
FIELDS = {
    "JOBSET_NAME": f"metadata.labels['{JOBSET_LABEL}jobset-name']",
    "REPLICATED_JOB_NAME": f"metadata.labels['{JOBSET_LABEL}replicatedjob-name']",
    "JOB_INDEX": f"metadata.labels['{JOBSET_LABEL}job-index']",
    "REPLICATED_JOB_REPLICAS": f"metadata.labels['{JOBSET_LABEL}replicatedjob-replicas']",
    "JOB_COMPLETION_INDEX": f"metadata.annotations['{COMPLETION_INDEX}']",
}
PODS_PER_JOB = "FMNIST_PODS_PER_JOB"


def worker_env(workers: int) -> list[dict]:
    """The container's environment: JobSet's labels by the downward API, and the Job's pod count."""
    return ([{"name": n, "valueFrom": {"fieldRef": {"fieldPath": path}}} for n, path in FIELDS.items()]
            + [{"name": PODS_PER_JOB, "value": str(workers)}])


def spec(*, image: str, workers: int, gpus_per_worker: int, workdir: pods.Workdir, command: Sequence[str] = (),
         service_account: str = "", job_labels: Mapping[str, str] | None = None) -> dict:
    """The JobSet spec: one replicated Job of `workers` indexed pods running the fmnist container."""
    node = pods.container(CONTAINER, image, workdir, command=command, gpus=gpus_per_worker, env=worker_env(workers),
                          port={"name": "tf-worker", "containerPort": PORT, "protocol": "TCP"})
    job: dict = {"replicas": 1, "template": {"spec": {
        "parallelism": workers, "completions": workers, "completionMode": "Indexed", "backoffLimit": 0,
        "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
            "containerName": CONTAINER, "operator": "In", "values": FINAL_EXIT_CODES}}]},
        "template": {"spec": pods.pod_spec([node], workdir, service_account, restart_policy="Never")},
    }}}
    if job_labels:
        job["template"]["metadata"] = {"labels": dict(job_labels)}
    return {
        "failurePolicy": {"maxRestarts": MAX_RESTARTS, "rules": [
            {"name": "fmnistVerdict", "action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy"]}]},
        "network": {"enableDNSHostnames": True},
        "replicatedJobs": [{"name": REPLICATED_JOB, **job}],
    }


def check_name(name: str, workers: int) -> None:
    """Raises ValueError unless NAME makes valid pod host names and a valid headless service name."""
    pods.check_label("--name", name, pods_host(name, workers - 1).split(".")[0])


def jobset(*, name: str, image: str, workers: int, gpus_per_worker: int, config: str, workdir: str,
           pvc: str | None = None, mount_path: str = "", namespace: str = "default", service_account: str = "",
           extra_args: Sequence[str] = ()) -> dict:
    """The JobSet manifest; raises ValueError for values that cannot work."""
    pods.check_counts(workers, gpus_per_worker)
    check_name(name, workers)
    plan = pods.plan_workdir(workdir, workers, pvc, mount_path)
    return {"apiVersion": API_VERSION, "kind": "JobSet", "metadata": {"name": name, "namespace": namespace},
            "spec": spec(image=image, workers=workers, gpus_per_worker=gpus_per_worker, workdir=plan,
                         command=fmnist_command(config, plan.path, extra_args), service_account=service_account)}


# What the JobSet and Job controllers give each pod, for running the workers on this machine (launch.local).

def pods_host(jobset_name: str, pod_index: int, job_index: int = 0) -> str:
    """A pod's DNS name: its host name (JobSet's GenPodName: JOBSET-RJOB-JOBINDEX-PODINDEX) in the subdomain of
    the headless service, which is the JobSet's name by default."""
    return f"{jobset_name}-{REPLICATED_JOB}-{job_index}-{pod_index}.{jobset_name}"


def pod_metadata(jobset_name: str, pod_index: int, job_index: int = 0, replicas: int = 1) -> dict:
    """The labels and annotations the pod's metadata fields resolve to: JobSet's (labelAndAnnotateObject) and the
    Indexed Job's completion index."""
    labels = {f"{JOBSET_LABEL}jobset-name": jobset_name, f"{JOBSET_LABEL}replicatedjob-name": REPLICATED_JOB,
              f"{JOBSET_LABEL}job-index": str(job_index), f"{JOBSET_LABEL}replicatedjob-replicas": str(replicas)}
    return {"labels": labels, "annotations": {**labels, COMPLETION_INDEX: str(pod_index)}}


def resolve_env(env: Sequence[dict], metadata: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """A container's `env` as the kubelet resolves it: `value`, or a `fieldRef` to a label or annotation."""
    out = {}
    for var in env:
        if "value" in var:
            out[var["name"]] = var["value"]
            continue
        kind, _, key = var["valueFrom"]["fieldRef"]["fieldPath"].removeprefix("metadata.").partition("['")
        out[var["name"]] = metadata[kind][key.removesuffix("']")]
    return out


def pod_environments(jobset_name: str, workers: int) -> list[dict[str, str]]:
    """Each worker's environment from this module's manifest, as the cluster would resolve it."""
    env = worker_env(workers)
    return [resolve_env(env, pod_metadata(jobset_name, i)) for i in range(workers)]


def main(argv: Sequence[str] | None = None) -> int:
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = pods.parser(PROG, USAGE, __doc__, "JobSet name (pods are NAME-node-0-I, in the headless service NAME)")
    a = p.parse_args(own)
    try:
        manifest = jobset(**pods.common(a), extra_args=extra)
    except ValueError as e:
        p.error(str(e))
    write_manifest(manifest, a.output)
    print(f"Needs the JobSet controller: {INSTALL}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
