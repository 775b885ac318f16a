"""TF_CONFIG from the environment a JobSet pod gets: how fmnist runs under Kubeflow Trainer v2 and plain JobSet.

Kubeflow Trainer v2 runs distributed TensorFlow only through a runtime without a framework plugin, with TF_CONFIG
built in the pod (kubeflow/trainer#2699). fmnist builds it here, from what JobSet and Kubernetes give each pod, when
TF_CONFIG is absent (`export_tf_config`, called by `fmnist.runtime.strategy.create`); a TF_CONFIG that is set always
wins.

What the cluster gives each pod (kubernetes-sigs/jobset v0.12, which Trainer v2.3 installs, and Kubernetes' Indexed
Job, kubernetes.io/docs/tasks/job/indexed-parallel-processing-static):
- JobSet labels and annotates every pod (pkg/controllers/jobset_controller.go, labelAndAnnotateObject; the keys are
  constants in api/jobset/v1alpha2/jobset_types.go) with
  `jobset.sigs.k8s.io/jobset-name`, `jobset.sigs.k8s.io/replicatedjob-name`, `jobset.sigs.k8s.io/job-index` and
  `jobset.sigs.k8s.io/replicatedjob-replicas`. It sets no environment variable itself: the manifests of
  launch.jobset and launch.trainer copy these labels into JOBSET_NAME, REPLICATED_JOB_NAME, JOB_INDEX and
  REPLICATED_JOB_REPLICAS with the downward API (`valueFrom.fieldRef`).
- Kubernetes gives each pod of an Indexed Job (JobSet's default completion mode) its index in the annotation
  `batch.kubernetes.io/job-completion-index` and the variable JOB_COMPLETION_INDEX (0..completions-1).
- No label carries a Job's pod count (`completions`), so the manifests set FMNIST_PODS_PER_JOB to it (under
  Trainer v2, `trainer.numNodes`, which sets `completions`, and this variable go together).
- With `network.enableDNSHostnames` (JobSet's default), pod P of Job J resolves as
  `<jobset>-<replicated job>-<J>-<P>.<subdomain>` (the Network type's documentation in
  api/jobset/v1alpha2/jobset_types.go), through a headless service named after the subdomain, which defaults to the
  JobSet's name (GetSubdomain; the manifests leave `network.subdomain` unset). Under Trainer v2 the JobSet is named
  after the TrainJob.

Worker `JOB_INDEX * FMNIST_PODS_PER_JOB + JOB_COMPLETION_INDEX` of
`REPLICATED_JOB_REPLICAS * FMNIST_PODS_PER_JOB` listens on PORT; worker 0 is the chief.

Test hook: FMNIST_JOBSET_LOOPBACK=`HOST=PORT,HOST=PORT,...` replaces each host name with 127.0.0.1:PORT (one
port per worker: processes on one machine cannot share a port). It must name exactly the host names computed here;
`python -m launch.local --cluster_env=jobset` sets it.
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping

from fmnist.errors import ConfigError

PORT = 2222
JOBSET_VARS = ("JOBSET_NAME", "REPLICATED_JOB_NAME", "JOB_INDEX", "REPLICATED_JOB_REPLICAS", "JOB_COMPLETION_INDEX",
               "FMNIST_PODS_PER_JOB")
LOOPBACK_VAR = "FMNIST_JOBSET_LOOPBACK"
_HINT = "(set by launch.jobset and launch.trainer manifests; see fmnist/runtime/jobset_env.py)"


def host_name(jobset: str, replicated_job: str, job_index: int, pod_index: int) -> str:
    """The DNS name of one JobSet pod, through the headless service of the JobSet's default subdomain (its name)."""
    return f"{jobset}-{replicated_job}-{job_index}-{pod_index}.{jobset}"


def _count(environ: MutableMapping[str, str], name: str, minimum: int) -> int:
    raw = environ.get(name, "")
    if not raw:
        raise ConfigError(f"JOBSET_NAME is set but {name} is not: the JobSet environment is incomplete {_HINT}")
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be an integer >= {minimum} {_HINT}")
    return value


def _loopback(raw: str, hosts: list[str]) -> list[str]:
    """The cluster addresses under the test hook: each host name's 127.0.0.1:PORT."""
    ports: dict[str, str] = {}
    for item in raw.split(","):
        host, _, port = item.partition("=")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{LOOPBACK_VAR}: {item!r} is not HOST=PORT with a port in 1..65535")
        ports[host.strip()] = port
    if sorted(ports) != sorted(hosts):
        raise ConfigError(f"{LOOPBACK_VAR} names {', '.join(sorted(ports))} but this JobSet's workers are "
                          f"{', '.join(hosts)}; give one HOST=PORT for each")
    return [f"127.0.0.1:{ports[h]}" for h in hosts]


def tf_config(environ: MutableMapping[str, str]) -> str | None:
    """The TF_CONFIG JSON for this pod, or None outside a JobSet (no JOBSET_NAME). Inconsistent variables raise a
    one-line ConfigError."""
    jobset = environ.get("JOBSET_NAME", "")
    if not jobset:
        return None
    replicated_job = environ.get("REPLICATED_JOB_NAME", "")
    if not replicated_job:
        raise ConfigError(f"JOBSET_NAME is set but REPLICATED_JOB_NAME is not: the JobSet environment is incomplete "
                          f"{_HINT}")
    replicas = _count(environ, "REPLICATED_JOB_REPLICAS", 1)
    pods = _count(environ, "FMNIST_PODS_PER_JOB", 1)
    job_index = _count(environ, "JOB_INDEX", 0)
    pod_index = _count(environ, "JOB_COMPLETION_INDEX", 0)
    if job_index >= replicas:
        raise ConfigError(f"JOB_INDEX={job_index} must be < REPLICATED_JOB_REPLICAS={replicas} {_HINT}")
    if pod_index >= pods:
        raise ConfigError(f"JOB_COMPLETION_INDEX={pod_index} must be < FMNIST_PODS_PER_JOB={pods}: set "
                          f"FMNIST_PODS_PER_JOB to the Job's completions (Trainer v2: trainer.numNodes) {_HINT}")
    hosts = [host_name(jobset, replicated_job, j, p) for j in range(replicas) for p in range(pods)]
    loopback = environ.get(LOOPBACK_VAR, "")
    workers = _loopback(loopback, hosts) if loopback else [f"{h}:{PORT}" for h in hosts]
    index = job_index * pods + pod_index
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def export_tf_config(environ: MutableMapping[str, str] | None = None) -> bool:
    """Sets TF_CONFIG from the JobSet environment when TF_CONFIG is absent; True if it did."""
    environ = os.environ if environ is None else environ
    if environ.get("TF_CONFIG"):
        return False
    config = tf_config(environ)
    if config is None:
        return False
    environ["TF_CONFIG"] = config
    return True
