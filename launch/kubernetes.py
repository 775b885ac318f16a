"""Writes a Kubeflow Training Operator TFJob that trains fmnist on N GPU workers (MultiWorkerMirroredStrategy).

  python -m launch.kubernetes --registry=REGISTRY --workers=4 --gpus_per_worker=1 --config=configs/gpu.py \\
      --workdir=/mnt/shared/run1 --pvc=fmnist-workdir --output=tfjob.yaml [-- --config.KEY=VALUE ...]
  kubectl apply -f tfjob.yaml

The manifest is JSON, which is valid YAML. The operator creates a pod and a headless service per worker and sets each
pod's TF_CONFIG (hosts `<name>-worker-<i>.<namespace>.svc:2222`); worker 0 is the chief. The workdir must be on a
volume that every worker mounts (a ReadWriteMany PersistentVolumeClaim): the chief writes checkpoints and results
there, and every worker resumes from the chief's checkpoints after a restart. The image needs fmnist installed with
the repository root as its working directory (so `configs/...` resolves) and prepared data: the image
docker/Dockerfile builds (launch/README.md), REGISTRY/fmnist:gpu or, with --gpus_per_worker=0, REGISTRY/fmnist:cpu,
is the default.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import sys
from collections.abc import Sequence

from launch import REGISTRY_VAR, Parser, default_image, fmnist_command, split_passthrough, write_manifest

PROG = "launch.kubernetes"
USAGE = (f"python -m {PROG} [--registry=REG | --image=IMG] --workers=N --gpus_per_worker=G --config=CONFIG "
         "--workdir=DIR [--name=NAME] [--namespace=NS] [--pvc=CLAIM] [--mount_path=DIR] [--output=FILE] "
         "[-- FMNIST_ARGS]")
CONTAINER_NAME = "tensorflow"  # The operator finds the TensorFlow container (and its port) by this name.
PORT_NAME = "tfjob-port"
DEFAULT_PORT = 2222
BACKOFF_LIMIT = 3              # Pod restarts before the operator marks the whole job failed.
RESTART_POLICIES = ("OnFailure", "ExitCode", "Never", "Always")
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def check_name(name: str, workers: int) -> None:
    """Raises ValueError unless `<name>-worker-<i>` is a valid Kubernetes service name (DNS-1035 label)."""
    longest = f"{name}-worker-{max(workers - 1, 0)}"
    if not _NAME.fullmatch(name) or len(longest) > 63:
        raise ValueError(f"--name={name!r} must be lowercase letters, digits and '-', start with a letter, and "
                         f"keep {longest!r} within 63 characters")


def tfjob(*, name: str, image: str, workers: int, gpus_per_worker: int, config: str, workdir: str,
          pvc: str = "fmnist-workdir", mount_path: str = "", namespace: str = "default",
          restart_policy: str = "OnFailure", extra_args: Sequence[str] = ()) -> dict:
    """The TFJob manifest; raises ValueError for values that cannot work."""
    check_name(name, workers)
    if workers < 1:
        raise ValueError(f"--workers={workers} must be >= 1")
    if gpus_per_worker < 0:
        raise ValueError(f"--gpus_per_worker={gpus_per_worker} must be >= 0")
    if restart_policy not in RESTART_POLICIES:
        raise ValueError(f"--restart_policy={restart_policy!r} is not one of {', '.join(RESTART_POLICIES)}")
    if not posixpath.isabs(workdir):
        raise ValueError(f"--workdir={workdir!r} must be an absolute path inside the pod, on the shared volume")
    workdir = posixpath.normpath(workdir)
    mount_path = posixpath.normpath(mount_path or posixpath.dirname(workdir))
    if posixpath.commonpath([workdir, mount_path]) != mount_path or mount_path == "/":
        raise ValueError(f"--workdir={workdir} must be inside --mount_path={mount_path} (not '/'), where the "
                         f"claim {pvc!r} is mounted")
    container = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": fmnist_command(config, workdir, extra_args),
        "ports": [{"name": PORT_NAME, "containerPort": DEFAULT_PORT}],
        "volumeMounts": [{"name": "workdir", "mountPath": mount_path}],
    }
    if gpus_per_worker:
        container["resources"] = {"limits": {"nvidia.com/gpu": gpus_per_worker}}
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
                    "template": {"spec": {
                        "containers": [container],
                        "volumes": [{"name": "workdir", "persistentVolumeClaim": {"claimName": pvc}}],
                    }},
                },
            },
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = Parser(prog=PROG, usage=USAGE, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", default=None, help=f"where you pushed the images launch/README.md builds (default "
                   f"${REGISTRY_VAR}); the image is REGISTRY/fmnist:gpu, or fmnist:cpu with --gpus_per_worker=0")
    p.add_argument("--image", default="", help="another image (default: the registry's fmnist image)")
    p.add_argument("--workers", type=int, required=True, help="worker pods (worker 0 is the chief)")
    p.add_argument("--gpus_per_worker", type=int, default=1, help="nvidia.com/gpu limit per pod (0: CPU only)")
    p.add_argument("--config", required=True, help="config path inside the image, e.g. configs/gpu.py")
    p.add_argument("--workdir", required=True, help="absolute workdir on the shared volume, e.g. /mnt/shared/run1")
    p.add_argument("--name", default="fmnist", help="TFJob name (pods and services are NAME-worker-I)")
    p.add_argument("--namespace", default="default")
    p.add_argument("--pvc", default="fmnist-workdir", help="ReadWriteMany PersistentVolumeClaim holding the workdir")
    p.add_argument("--mount_path", default="", help="where the claim is mounted (default: the workdir's parent)")
    p.add_argument("--restart_policy", default="OnFailure", choices=RESTART_POLICIES,
                   help="OnFailure restarts failed pods; ExitCode restarts only on codes 128+ (kills), not on "
                        "fmnist's user errors (exit 2)")
    p.add_argument("--output", default="-", help="file to write (JSON, valid YAML); '-' for stdout")
    a = p.parse_args(own)
    try:
        image = a.image or default_image(a.gpus_per_worker, a.registry)
        manifest = tfjob(name=a.name, image=image, workers=a.workers, gpus_per_worker=a.gpus_per_worker,
                         config=a.config, workdir=a.workdir, pvc=a.pvc, mount_path=a.mount_path,
                         namespace=a.namespace, restart_policy=a.restart_policy, extra_args=extra)
    except ValueError as e:
        p.error(str(e))
    write_manifest(manifest, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
