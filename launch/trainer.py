"""Writes a Kubeflow Trainer v2 TrainingRuntime and a TrainJob that train fmnist on N workers.

  kubectl apply --server-side -k "https://github.com/kubeflow/trainer.git/manifests/overlays/manager?ref=v2.3.0"
  python -m launch.trainer --registry=REGISTRY --workers=4 --gpus_per_worker=1 --config=configs/gpu.py \\
      --workdir=/mnt/shared/run1 --pvc=fmnist-workdir --output=trainjob.yaml [-- --config.KEY=VALUE ...]
  kubectl apply -f trainjob.yaml

Kubeflow Trainer v2 (trainer.kubeflow.org/v1alpha1, on JobSet) has no TensorFlow runtime: its maintainers
deprecated distributed TensorFlow (kubeflow/trainer#2699) and point to a runtime without a framework plugin, with
TF_CONFIG built in the pod. The file is a v1 List of two objects:
- a TrainingRuntime NAME (namespaced; --cluster_runtime: a ClusterTrainingRuntime, for every namespace) whose
  mlPolicy names no framework (Trainer's PlainML plugin) and whose JobSet template is launch.jobset's: one Job
  `node` labelled as the trainer, container `node`, the JobSet environment by the downward API, the workdir's claim
  or service account, and the failure policy;
- a TrainJob NAME that runs it: trainer.numNodes = N (Trainer sets the Job's parallelism and completions to it),
  FMNIST_PODS_PER_JOB = N in trainer.env, the image, the fmnist command, and GPUs in resourcesPerNode.
Each pod builds its TF_CONFIG (fmnist.runtime.jobset_env): the JobSet is named after the TrainJob, so the workers are
NAME-node-0-I.NAME:2222, worker 0 the chief.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from launch import fmnist_command, jobset, pods, split_passthrough, write_manifest

PROG = "launch.trainer"
USAGE = (f"python -m {PROG} [--registry=REG | --image=IMG] --workers=N --gpus_per_worker=G --config=CONFIG "
         "--workdir=DIR|gs://BUCKET/PATH [--name=NAME] [--runtime=NAME] [--cluster_runtime] [--pvc=CLAIM] "
         "[--service_account=KSA] [--output=FILE] [-- FMNIST_ARGS]")
GROUP = "trainer.kubeflow.org"
API_VERSION = f"{GROUP}/v1alpha1"
INSTALL = ('kubectl apply --server-side -k "https://github.com/kubeflow/trainer.git/manifests/overlays/manager'
           '?ref=v2.3.0"')
ANCESTOR = {f"{GROUP}/trainjob-ancestor-step": "trainer"}  # The Job whose `node` container a TrainJob configures.


def runtime(*, name: str, image: str, workers: int, workdir: pods.Workdir, namespace: str = "default",
            cluster: bool = False, service_account: str = "") -> dict:
    """The (Cluster)TrainingRuntime: no framework plugin, launch.jobset's JobSet template."""
    pods.check_object_name("--runtime", name)
    template = jobset.spec(image=image, workers=workers, gpus_per_worker=0, workdir=workdir,
                           service_account=service_account, job_labels=ANCESTOR)
    metadata = {"name": name} if cluster else {"name": name, "namespace": namespace}
    return {"apiVersion": API_VERSION, "kind": "ClusterTrainingRuntime" if cluster else "TrainingRuntime",
            "metadata": metadata, "spec": {"mlPolicy": {"numNodes": workers}, "template": {"spec": template}}}


def train_job(*, name: str, runtime_name: str, image: str, workers: int, gpus_per_worker: int, command: Sequence[str],
              namespace: str = "default", cluster: bool = False) -> dict:
    """The TrainJob: N nodes of the runtime, the image, the fmnist command and the GPUs per node."""
    trainer: dict = {"image": image, "command": list(command), "numNodes": workers,
                     "env": [{"name": jobset.PODS_PER_JOB, "value": str(workers)}]}
    if gpus_per_worker:
        trainer["resourcesPerNode"] = pods.resources(gpus_per_worker)
    ref = {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime" if cluster else "TrainingRuntime", "name": runtime_name}
    return {"apiVersion": API_VERSION, "kind": "TrainJob", "metadata": {"name": name, "namespace": namespace},
            "spec": {"runtimeRef": ref, "trainer": trainer}}


def manifests(*, name: str, image: str, workers: int, gpus_per_worker: int, config: str, workdir: str,
              pvc: str | None = None, mount_path: str = "", namespace: str = "default", runtime_name: str = "",
              cluster_runtime: bool = False, service_account: str = "", extra_args: Sequence[str] = ()) -> dict:
    """A v1 List of the runtime and the TrainJob; raises ValueError for values that cannot work."""
    pods.check_counts(workers, gpus_per_worker)
    jobset.check_name(name, workers)
    plan = pods.plan_workdir(workdir, workers, pvc, mount_path)
    runtime_name = runtime_name or name
    items = [runtime(name=runtime_name, image=image, workers=workers, workdir=plan, namespace=namespace,
                     cluster=cluster_runtime, service_account=service_account),
             train_job(name=name, runtime_name=runtime_name, image=image, workers=workers,
                       gpus_per_worker=gpus_per_worker, command=fmnist_command(config, plan.path, extra_args),
                       namespace=namespace, cluster=cluster_runtime)]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main(argv: Sequence[str] | None = None) -> int:
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = pods.parser(PROG, USAGE, __doc__, "TrainJob name (its JobSet's pods are NAME-node-0-I)")
    p.add_argument("--runtime", default="", help="runtime name (default: --name)")
    p.add_argument("--cluster_runtime", action="store_true",
                   help="write a ClusterTrainingRuntime (cluster-wide) instead of a namespaced TrainingRuntime")
    a = p.parse_args(own)
    try:
        manifest = manifests(**pods.common(a), runtime_name=a.runtime, cluster_runtime=a.cluster_runtime,
                             extra_args=extra)
    except ValueError as e:
        p.error(str(e))
    write_manifest(manifest, a.output)
    print(f"Needs Kubeflow Trainer v2 (v2.3.0; it installs JobSet): {INSTALL}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
