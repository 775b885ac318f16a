"""Writes a ReadWriteMany PersistentVolumeClaim for the workers' shared workdir (launch.trainer, launch.jobset,
launch.kubernetes mount it with --pvc).

  python -m launch.pvc --storage=filestore --output=pvc.yaml && kubectl apply -f pvc.yaml

--storage names the cluster's shared file system and picks its storage class:
- filestore: GKE's built-in `standard-rwx` (Filestore basic HDD, through the Filestore CSI driver, which must be
  enabled on the cluster); the default size, 1Ti, is the basic tier's minimum on older GKE versions.
- efs: `efs-sc`, the name the Amazon EFS CSI driver's examples give the StorageClass you create for your file system
  (provisioner efs.csi.aws.com, parameters provisioningMode: efs-ap and fileSystemId); EFS is elastic, the size is
  only recorded.
- azurefile: AKS's built-in `azurefile-csi` (Azure Files standard, SMB).
--storage_class names another class (an NFS provisioner, a premium tier) instead.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from launch import Parser, pods, write_manifest

PROG = "launch.pvc"
USAGE = f"python -m {PROG} --storage=filestore|efs|azurefile [--storage_class=CLASS] [--size=QTY] [--output=FILE]"
CLASSES = {"filestore": "standard-rwx", "efs": "efs-sc", "azurefile": "azurefile-csi"}
SIZES = {"filestore": "1Ti", "efs": "100Gi", "azurefile": "100Gi"}
_QUANTITY = re.compile(r"[1-9][0-9]*(Mi|Gi|Ti|Pi)")


def claim(*, storage: str, name: str = pods.DEFAULT_CLAIM, namespace: str = "default", size: str = "",
          storage_class: str = "") -> dict:
    """The PersistentVolumeClaim; raises ValueError for values that cannot work."""
    if storage not in CLASSES:
        raise ValueError(f"--storage={storage!r} is not one of {', '.join(CLASSES)} (or give --storage_class)")
    pods.check_object_name("--name", name)
    size = size or SIZES[storage]
    if not _QUANTITY.fullmatch(size):
        raise ValueError(f"--size={size!r} must be a whole number of Mi, Gi, Ti or Pi, e.g. 100Gi")
    storage_class = storage_class or CLASSES[storage]
    pods.check_object_name("--storage_class", storage_class)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": size}}}}


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog=PROG, usage=USAGE, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage", required=True, help=f"the shared file system: {', '.join(CLASSES)}")
    p.add_argument("--storage_class", default="", help="another storage class (default: the file system's)")
    p.add_argument("--size", default="", help="requested capacity (default: 1Ti for filestore, else 100Gi)")
    p.add_argument("--name", default=pods.DEFAULT_CLAIM, help="the claim's name, which --pvc gives the launchers")
    p.add_argument("--namespace", default="default", help="the namespace of the training pods")
    p.add_argument("--output", default="-", help="file to write (JSON, valid YAML); '-' for stdout")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        manifest = claim(storage=a.storage, name=a.name, namespace=a.namespace, size=a.size,
                         storage_class=a.storage_class)
    except ValueError as e:
        p.error(str(e))
    write_manifest(manifest, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
