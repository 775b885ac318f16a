"""Writes a TFJob (kubeflow.org/v1) for the legacy Kubeflow Training Operator v1 that trains fmnist on N workers.

Legacy path: the TFJob needs Kubeflow Training Operator v1 (release-1.9 branch, last release v1.9.4), installed with
  kubectl apply --server-side -k "github.com/kubeflow/training-operator.git/manifests/overlays/standalone?ref=v1.9.4"
Kubeflow Trainer v2 replaced that operator and has no TFJob: on a Trainer v2 cluster use python -m launch.trainer, on
a cluster with JobSet alone python -m launch.jobset.

  python -m launch.kubernetes --registry=REGISTRY --workers=4 --gpus_per_worker=1 --config=configs/gpu.py \\
      --workdir=/mnt/shared/run1 --pvc=fmnist-workdir --output=tfjob.yaml [-- --config.KEY=VALUE ...]
  kubectl apply -f tfjob.yaml

The manifest is JSON, which is valid YAML. The operator creates a pod and a headless service per worker and sets each
pod's TF_CONFIG (hosts `<name>-worker-<i>.<namespace>.svc:2222`); worker 0 is the chief. The workdir must be one
every worker shares: a ReadWriteMany PersistentVolumeClaim (python -m launch.pvc writes one), or gs://BUCKET/PATH
with a service account that may write there (--service_account, Workload Identity). The chief writes checkpoints
and results there, and every worker resumes from the chief's checkpoints after a restart. The image needs fmnist
installed with the repository root as its working directory (so `configs/...` resolves) and prepared data: the
image docker/Dockerfile builds (launch/README.md), REGISTRY/fmnist:gpu or, with --gpus_per_worker=0,
REGISTRY/fmnist:cpu, is the default.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from launch import fmnist_command, pods, split_passthrough, write_manifest

PROG = "launch.kubernetes"
USAGE = (f"python -m {PROG} [--registry=REG | --image=IMG] --workers=N --gpus_per_worker=G --config=CONFIG "
         "--workdir=DIR|gs://BUCKET/PATH [--name=NAME] [--namespace=NS] [--pvc=CLAIM] [--mount_path=DIR] "
         "[--service_account=KSA] [--output=FILE] [-- FMNIST_ARGS]")
OPERATOR_VERSION = "v1.9.4"
INSTALL = ('kubectl apply --server-side -k "github.com/kubeflow/training-operator.git/manifests/overlays/standalone'
           f'?ref={OPERATOR_VERSION}"')
CONTAINER_NAME = "tensorflow"  # The operator finds the TensorFlow container (and its port) by this name.
PORT_NAME = "tfjob-port"
DEFAULT_PORT = 2222
BACKOFF_LIMIT = 3              # Pod restarts before the operator marks the whole job failed.
RESTART_POLICIES = ("OnFailure", "ExitCode", "Never", "Always")


def check_name(name: str, workers: int) -> None:
    """Raises ValueError unless `<name>-worker-<i>` is a valid Kubernetes service name (DNS-1035 label)."""
    pods.check_label("--name", name, f"{name}-worker-{max(workers - 1, 0)}")


def tfjob(*, name: str, image: str, workers: int, gpus_per_worker: int, config: str, workdir: str,
          pvc: str | None = None, mount_path: str = "", namespace: str = "default",
          restart_policy: str = "OnFailure", service_account: str = "", extra_args: Sequence[str] = ()) -> dict:
    """The TFJob manifest; raises ValueError for values that cannot work."""
    check_name(name, workers)
    pods.check_counts(workers, gpus_per_worker)
    if restart_policy not in RESTART_POLICIES:
        raise ValueError(f"--restart_policy={restart_policy!r} is not one of {', '.join(RESTART_POLICIES)}")
    plan = pods.plan_workdir(workdir, workers, pvc, mount_path)
    container = pods.container(CONTAINER_NAME, image, plan, command=fmnist_command(config, plan.path, extra_args),
                               gpus=gpus_per_worker,
                               port={"name": PORT_NAME, "containerPort": DEFAULT_PORT, "protocol": "TCP"})
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runPolicy": {"backoffLimit": BACKOFF_LIMIT},
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": workers,
                    "restartPolicy": restart_policy,
                    "template": {"spec": pods.pod_spec([container], plan, service_account)},
                },
            },
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = pods.parser(PROG, USAGE, __doc__, "TFJob name (pods and services are NAME-worker-I)")
    p.add_argument("--restart_policy", default="OnFailure", choices=RESTART_POLICIES,
                   help="OnFailure restarts failed pods; ExitCode restarts only on codes 128+ (kills), not on "
                        "fmnist's user errors (exit 2)")
    a = p.parse_args(own)
    try:
        manifest = tfjob(**pods.common(a), restart_policy=a.restart_policy, extra_args=extra)
    except ValueError as e:
        p.error(str(e))
    write_manifest(manifest, a.output)
    print(f"Legacy path: a TFJob needs Kubeflow Training Operator v1 ({OPERATOR_VERSION}): {INSTALL}; on Kubeflow "
          "Trainer v2 use python -m launch.trainer", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
