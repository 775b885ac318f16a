"""What the Kubernetes launchers (launch.trainer, launch.jobset, launch.kubernetes) share: their flags, name checks,
the workdir's volume (a ReadWriteMany claim or gs://), and the fmnist container's pod template.

Every check raises ValueError with one line naming the flag, what is wrong and the valid choices; the launchers turn
it into `PROG: error: ...`, exit code 2, and write nothing.
"""

from __future__ import annotations

import argparse
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from launch import REGISTRY_VAR, Parser, default_image

DEFAULT_CLAIM = "fmnist-workdir"
VOLUME = "workdir"
GPU = "nvidia.com/gpu"
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")                     # DNS-1035: services, pod host names.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")  # DNS-1123.
_BUCKET = re.compile(r"[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]")


def check_label(flag: str, value: str, longest: str) -> None:
    """Raises ValueError unless `value` can start DNS-1035 labels such as `longest` (at most 63 characters)."""
    if not _DNS_LABEL.fullmatch(value) or len(longest) > 63:
        raise ValueError(f"{flag}={value!r} must be lowercase letters, digits and '-', start with a letter, and keep "
                         f"{longest!r} within 63 characters")


def check_object_name(flag: str, value: str) -> None:
    """Raises ValueError unless `value` is a valid object name (DNS-1123 subdomain: claims, service accounts...)."""
    if not _DNS_SUBDOMAIN.fullmatch(value) or len(value) > 253:
        raise ValueError(f"{flag}={value!r} must be lowercase letters, digits, '-' and '.', starting and ending with "
                         "a letter or digit")


def check_counts(workers: int, gpus_per_worker: int) -> None:
    if workers < 1:
        raise ValueError(f"--workers={workers} must be >= 1")
    if gpus_per_worker < 0:
        raise ValueError(f"--gpus_per_worker={gpus_per_worker} must be >= 0")


@dataclass(frozen=True)
class Workdir:
    """Where the workers' shared workdir lives: `path` in the pod, on `claim` mounted at `mount_path`, or gs://."""

    path: str
    claim: str = ""
    mount_path: str = ""


def plan_workdir(workdir: str, workers: int, pvc: str | None = None, mount_path: str = "") -> Workdir:
    """The workdir every replica shares: gs://BUCKET/PATH (no volume), or an absolute path on the ReadWriteMany claim
    `pvc` (default fmnist-workdir; '' for none, refused for more than one worker: each would write its own disk)."""
    if workdir.startswith("gs://"):
        if not _BUCKET.fullmatch(workdir[len("gs://"):].split("/")[0]):
            raise ValueError(f"--workdir={workdir!r} needs a bucket: gs://BUCKET/PATH, BUCKET 3 to 222 lowercase "
                             "letters, digits, '-', '_' or '.'")
        if pvc or mount_path:
            raise ValueError(f"--workdir={workdir} is on Cloud Storage: drop --pvc and --mount_path, which are for a "
                             "workdir on a claim")
        return Workdir(workdir)
    if "://" in workdir:
        raise ValueError(f"--workdir={workdir!r} must be gs://BUCKET/PATH or an absolute path on the claim")
    if not posixpath.isabs(workdir):
        raise ValueError(f"--workdir={workdir!r} must be an absolute path inside the pod, on the shared volume, or "
                         "gs://BUCKET/PATH")
    workdir = posixpath.normpath(workdir)
    claim = DEFAULT_CLAIM if pvc is None else pvc
    if not claim:
        if workers > 1:
            raise ValueError(f"--workdir={workdir} with --pvc='' and --workers={workers}: the replicas cannot share a "
                             "pod's own disk; give a ReadWriteMany claim (--pvc=CLAIM, python -m launch.pvc) or a "
                             "gs://BUCKET/PATH workdir")
        if mount_path:
            raise ValueError("--mount_path is where --pvc is mounted: give --pvc=CLAIM or drop --mount_path")
        return Workdir(workdir)
    check_object_name("--pvc", claim)
    mount_path = posixpath.normpath(mount_path or posixpath.dirname(workdir))
    if posixpath.commonpath([workdir, mount_path]) != mount_path or mount_path == "/":
        raise ValueError(f"--workdir={workdir} must be inside --mount_path={mount_path} (not '/'), where the "
                         f"claim {claim!r} is mounted")
    return Workdir(workdir, claim, mount_path)


def resources(gpus: int) -> dict:
    """Container resources for `gpus` GPUs (quantities are strings, as Kubernetes writes them); {} for none."""
    return {"limits": {GPU: str(gpus)}} if gpus else {}


def container(name: str, image: str, workdir: Workdir, *, command: Sequence[str] = (), gpus: int = 0,
              env: Sequence[dict] = (), port: dict | None = None) -> dict:
    """The fmnist container: its image, command, GPU limit, environment, port and the workdir's mount."""
    c: dict = {"name": name, "image": image}
    if command:
        c["command"] = list(command)
    if env:
        c["env"] = list(env)
    if port:
        c["ports"] = [port]
    if gpus:
        c["resources"] = resources(gpus)
    if workdir.claim:
        c["volumeMounts"] = [{"name": VOLUME, "mountPath": workdir.mount_path}]
    return c


def pod_spec(containers: Sequence[dict], workdir: Workdir, service_account: str = "",
             restart_policy: str = "") -> dict:
    """A pod spec with the workdir's claim as a volume and, for gs:// through Workload Identity, the service account."""
    spec: dict = {}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    if service_account:
        check_object_name("--service_account", service_account)
        spec["serviceAccountName"] = service_account
    spec["containers"] = list(containers)
    if workdir.claim:
        spec["volumes"] = [{"name": VOLUME, "persistentVolumeClaim": {"claimName": workdir.claim}}]
    return spec


def parser(prog: str, usage: str, description: str, name_help: str) -> Parser:
    """The flags every Kubernetes launcher takes (launch.kubernetes' flags); each launcher adds its own."""
    p = Parser(prog=prog, usage=usage, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", default=None, help=f"where you pushed the images launch/README.md builds (default "
                   f"${REGISTRY_VAR}); the image is REGISTRY/fmnist:gpu, or fmnist:cpu with --gpus_per_worker=0")
    p.add_argument("--image", default="", help="another image (default: the registry's fmnist image)")
    p.add_argument("--workers", type=int, required=True, help="worker pods (worker 0 is the chief)")
    p.add_argument("--gpus_per_worker", type=int, default=1, help="nvidia.com/gpu limit per pod (0: CPU only)")
    p.add_argument("--config", required=True, help="config path inside the image, e.g. configs/gpu.py")
    p.add_argument("--workdir", required=True, help="the workers' shared workdir: an absolute path on the claim, "
                   "e.g. /mnt/shared/run1, or gs://BUCKET/PATH (with --service_account for Workload Identity)")
    p.add_argument("--name", default="fmnist", help=name_help)
    p.add_argument("--namespace", default="default")
    p.add_argument("--pvc", default=None, help=f"ReadWriteMany PersistentVolumeClaim holding a local workdir (default "
                   f"{DEFAULT_CLAIM}; '' for none, one worker only; see python -m launch.pvc)")
    p.add_argument("--mount_path", default="", help="where the claim is mounted (default: the workdir's parent)")
    p.add_argument("--service_account", default="", help="the pods' Kubernetes service account, e.g. one bound to a "
                   "Google service account by Workload Identity for a gs:// workdir")
    p.add_argument("--output", default="-", help="file to write (JSON, valid YAML); '-' for stdout")
    return p


def image(args: argparse.Namespace) -> str:
    return args.image or default_image(args.gpus_per_worker, args.registry)


def common(args: argparse.Namespace) -> dict:
    """The manifest builders' keyword arguments from the flags `parser` defines (the image resolved)."""
    return dict(name=args.name, image=image(args), workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                config=args.config, workdir=args.workdir, pvc=args.pvc, mount_path=args.mount_path,
                namespace=args.namespace, service_account=args.service_account)
