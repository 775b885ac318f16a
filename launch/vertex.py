"""Writes a Vertex AI CustomJob spec that trains fmnist on N machines (MultiWorkerMirroredStrategy).

  python -m launch.vertex --registry=us-docker.pkg.dev/PROJECT/REPO --workers=4 --machine_type=a2-highgpu-1g \\
      --accelerator_type=NVIDIA_TESLA_A100 --accelerator_count=1 --config=configs/gpu.py \\
      --workdir=gs://BUCKET/run1 --output=job.json [-- --config.KEY=VALUE ...]
  gcloud ai custom-jobs create --region=us-central1 --display-name=fmnist --config=job.json

Worker pool 0 is the chief (one replica), pool 1 holds the other N-1 workers. Vertex sets TF_CONFIG on every
replica with task type `chief` (pool 0) or `worker` (pool 1); fmnist counts the chief as worker 0 and the pool-1
workers as 1..N-1. With `--config` gcloud reads a CustomJobSpec (workerPoolSpecs, scheduling; the display name is a
flag), which is what this writes by default; `--format=rest` writes the whole CustomJob resource (displayName plus
jobSpec) for the REST API or client libraries instead.

A gs://BUCKET/PATH workdir is passed to the containers as is: fmnist writes it through tf.io.gfile. Vertex's Cloud
Storage FUSE mount, /gcs/BUCKET/PATH, works too (launch/README.md says when it is the better choice). Any other path
is on each replica's own disk, so it is refused for more than one replica.

Only what Vertex accepts is written: accelerator names come from google-cloud-aiplatform's AcceleratorType enum,
machine type and accelerator must fit each other (launch/vertex_machines.py, with its sources), and the finished
spec is parsed strictly by the library's own CustomJobSpec (or CustomJob) message before it is written. So this
needs the `launch` extra (`pip install -e '.[launch]'`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence

from launch import REGISTRY_VAR, Parser, default_image, fmnist_command, split_passthrough, write_json
from launch.vertex_machines import CPU_MACHINE, GPU_MACHINE, machine_spec

PROG = "launch.vertex"
USAGE = (f"python -m {PROG} --registry=REG|--image=IMG --workers=N --machine_type=TYPE --accelerator_type=GPU "
         "--accelerator_count=G --config=CONFIG --workdir=gs://BUCKET/RUN [--output=FILE] [-- FMNIST_ARGS]")
FUSE_ROOT = "/gcs"
LAUNCH_EXTRA = "pip install -e '.[launch]'"


def aiplatform_types():
    """google-cloud-aiplatform's v1 types (a large import, so on first use), or a ValueError naming the extra."""
    try:
        from google.cloud.aiplatform_v1 import types
    except ImportError as e:
        raise ValueError(f"launch.vertex checks jobs with google-cloud-aiplatform's types ({e}): {LAUNCH_EXTRA}") from e
    return types


def accelerator_names() -> list[str]:
    """The names of Vertex's AcceleratorType enum, from the library (ACCELERATOR_TYPE_UNSPECIFIED left out)."""
    return [n for n in aiplatform_types().AcceleratorType.__members__ if n != "ACCELERATOR_TYPE_UNSPECIFIED"]


def container_workdir(workdir: str, workers: int) -> str:
    """The workdir every replica uses: gs://BUCKET/PATH as is (fmnist writes through tf.io.gfile), or Vertex's Cloud
    Storage FUSE mount /gcs/BUCKET/PATH; one replica alone may also use a path on its own disk."""
    for root in ("gs://", f"{FUSE_ROOT}/"):
        if workdir.startswith(root):
            if not workdir[len(root):].strip("/"):
                raise ValueError(f"--workdir={workdir!r} needs a bucket, e.g. {root}BUCKET/run1")
            return workdir.rstrip("/")
    if not workdir.startswith("/"):
        raise ValueError(f"--workdir={workdir!r} must be gs://BUCKET/PATH or {FUSE_ROOT}/BUCKET/PATH")
    if workers > 1:
        raise ValueError(f"--workdir={workdir} is on each replica's own disk, and {workers} replicas must share one: "
                         f"gs://BUCKET/PATH or {FUSE_ROOT}/BUCKET/PATH")
    return workdir


def strict_parse(job: dict, message: str) -> None:
    """Parses `job` with the library's proto message (CustomJobSpec or CustomJob), refusing unknown fields."""
    cls = getattr(aiplatform_types(), message)
    try:
        cls.from_json(json.dumps(job), ignore_unknown_fields=False)
    except Exception as e:  # json_format.ParseError and the enum's ValueError: a bug here, not a user error.
        raise ValueError(f"launch.vertex wrote a {message} that google-cloud-aiplatform refuses ({e}); "
                         "please report it") from e


def custom_job_spec(*, image: str, workers: int, machine: dict, config: str, workdir: str,
                    extra_args: Sequence[str] = ()) -> dict:
    """The CustomJobSpec: pool 0 = the chief, pool 1 = the other workers, each on `machine` (a machineSpec from
    `launch.vertex_machines.machine_spec`); raises ValueError for bad values."""
    if workers < 1:
        raise ValueError(f"--workers={workers} must be >= 1")
    command = fmnist_command(config, container_workdir(workdir, workers), extra_args)
    container = {"imageUri": image, "command": command[:3], "args": command[3:]}
    pools = [{"machineSpec": machine, "replicaCount": count, "containerSpec": container}
             for count in (1, workers - 1) if count > 0]
    # A restarted worker cannot rejoin MultiWorkerMirroredStrategy's collectives: restart them all, and fmnist
    # resumes every worker from the chief's latest checkpoint.
    return {"workerPoolSpecs": pools, "scheduling": {"restartJobOnWorkerRestart": True}}


def custom_job(display_name: str, **spec_args) -> dict:
    """The CustomJob resource (REST API body): displayName and jobSpec."""
    return {"displayName": display_name, "jobSpec": custom_job_spec(**spec_args)}


def gcloud_command(region: str, display_name: str, config_path: str) -> str:
    return shlex.join(["gcloud", "ai", "custom-jobs", "create", f"--region={region}",
                       f"--display-name={display_name}", f"--config={config_path}"])


def main(argv: Sequence[str] | None = None) -> int:
    own, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    p = Parser(prog=PROG, usage=USAGE, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", default=None, help=f"Artifact Registry path where you pushed the images "
                   f"launch/README.md builds, e.g. us-docker.pkg.dev/PROJECT/REPO (default ${REGISTRY_VAR}); the "
                   "image is REGISTRY/fmnist:gpu, or fmnist:cpu with --accelerator_count=0")
    p.add_argument("--image", default="", help="another image URI (default: the registry's fmnist image)")
    p.add_argument("--workers", type=int, required=True, help="replicas in all (1 chief + N-1 workers)")
    p.add_argument("--machine_type", default="", help=f"default {GPU_MACHINE}, or {CPU_MACHINE} with "
                   "--accelerator_count=0")
    p.add_argument("--accelerator_type", default="", help="a GPU of Vertex's AcceleratorType enum (default: the "
                   "machine type's own GPU; required for n1 machine types)")
    p.add_argument("--accelerator_count", type=int, default=None, help="GPUs per replica (default: the machine "
                   "type's; 0: CPU only)")
    p.add_argument("--config", required=True, help="config path inside the image, e.g. configs/gpu.py")
    p.add_argument("--workdir", required=True, help="gs://BUCKET/RUN, or the FUSE path /gcs/BUCKET/RUN (a path on "
                   "the replica's own disk only for --workers=1)")
    p.add_argument("--display_name", default="fmnist")
    p.add_argument("--region", default="us-central1", help="only for the printed gcloud command")
    p.add_argument("--format", default="gcloud", choices=("gcloud", "rest"),
                   help="gcloud: CustomJobSpec for `gcloud ai custom-jobs create --config`; rest: CustomJob")
    p.add_argument("--output", default="-", help="file to write (JSON, valid YAML); '-' for stdout")
    a = p.parse_args(own)
    try:
        machine = machine_spec(a.machine_type or (CPU_MACHINE if a.accelerator_count == 0 else GPU_MACHINE),
                               a.accelerator_type, a.accelerator_count, accelerator_names())
        image = a.image or default_image(machine.get("acceleratorCount", 0), a.registry)
        if "/" not in image:
            raise ValueError(f"Vertex AI pulls images from a registry: pass --registry=us-docker.pkg.dev/PROJECT/REPO "
                             f"(or set ${REGISTRY_VAR}) where you pushed {image}, or --image")
        spec_args = dict(image=image, workers=a.workers, machine=machine, config=a.config, workdir=a.workdir,
                         extra_args=extra)
        job = custom_job(a.display_name, **spec_args) if a.format == "rest" else custom_job_spec(**spec_args)
        strict_parse(job, "CustomJob" if a.format == "rest" else "CustomJobSpec")
    except ValueError as e:
        p.error(str(e))
    write_json(job, a.output)
    if a.output not in ("", "-"):
        how = (gcloud_command(a.region, a.display_name, a.output) if a.format == "gcloud" else
               f"POST it to https://{a.region}-aiplatform.googleapis.com/v1/projects/PROJECT/locations/{a.region}"
               "/customJobs")
        print(f"Wrote {a.output}; submit with: {how}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
