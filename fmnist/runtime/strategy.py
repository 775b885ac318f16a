"""Chooses and creates the tf.distribute strategy from the config, TF_CONFIG (or a JobSet pod's environment) and the
devices present."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf
from absl import logging

from fmnist.config.choices import STRATEGIES
from fmnist.errors import ConfigError
from fmnist.runtime import jobset_env


@dataclass
class Runtime:
    """The resolved strategy and what it runs on."""

    strategy: tf.distribute.Strategy
    name: str
    device_type: str                 # CPU | GPU | TPU
    devices: list[str]
    num_workers: int = 1
    worker_index: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def num_replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    def describe(self) -> dict:
        return {"strategy": self.name, "device_type": self.device_type, "devices": self.devices,
                "num_replicas": self.num_replicas, "num_workers": self.num_workers,
                "worker_index": self.worker_index}


def tf_config_workers(environ: dict | None = None) -> tuple[int, int]:
    """(number of workers, this task's worker index) from TF_CONFIG; (1, 0) when it is absent."""
    raw = (environ if environ is not None else os.environ).get("TF_CONFIG")
    if not raw:
        return 1, 0
    try:
        cfg = json.loads(raw)
        cluster = cfg.get("cluster", {})
        task = cfg.get("task", {})
        n = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        kind, index = task.get("type", "worker"), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError) as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON of the form {{'cluster': {{'worker': [...]}}, "
                          f"'task': {{'type': 'worker', 'index': 0}}}} ({e})") from None
    # With an explicit chief task, the chief is worker 0 and workers shift by one.
    offset = 1 if cluster.get("chief") and kind == "worker" else 0
    return max(n, 1), index + offset


def split_cpu(num_devices: int) -> None:
    """Splits the physical CPU into `num_devices` logical devices; must run before the runtime starts."""
    if num_devices <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != num_devices:
            raise ConfigError(f"num_cpu_devices={num_devices} must be set before TensorFlow starts; "
                              "it cannot change within one process") from None


def tpu_requested_or_present(tpu: str) -> bool:
    return bool(tpu) or Path("/dev/accel0").exists() or bool(os.environ.get("TPU_NAME"))


def choose(config, environ: dict | None = None) -> str:
    """The strategy name `auto` resolves to (or the forced one)."""
    if config.strategy != "auto":
        return config.strategy
    if tpu_requested_or_present(config.tpu):
        return "tpu"
    if tf_config_workers(environ)[0] > 1:
        return "multi_worker"
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1 or (not gpus and config.num_cpu_devices > 1):
        return "mirrored"
    if len(gpus) == 1:
        return "one_device"
    return "default"


def create(config) -> Runtime:
    """Creates the strategy; impossible requests become one-line ConfigErrors.

    Nothing here may start the TensorFlow runtime before MultiWorkerMirroredStrategy or the logical CPU split,
    which both must come first: only physical devices are listed until then. In a JobSet pod without TF_CONFIG,
    TF_CONFIG is built first from the pod's JobSet environment (fmnist.runtime.jobset_env).
    """
    if jobset_env.export_tf_config():
        logging.info("TF_CONFIG from the JobSet environment: %s", os.environ["TF_CONFIG"])
    name = choose(config)
    device_type = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    if name == "tpu":
        return _tpu(config.tpu or "local")
    split_cpu(config.num_cpu_devices)
    if name == "multi_worker":
        return _multi_worker(device_type)
    local = [d.name for d in tf.config.list_logical_devices(device_type)]
    if name == "default":
        return Runtime(tf.distribute.get_strategy(), name, device_type, local[:1])
    if name == "one_device":
        return Runtime(tf.distribute.OneDeviceStrategy(local[0]), name, device_type, local[:1])
    if name == "mirrored":
        if len(local) < 2:
            raise ConfigError("strategy=mirrored needs several devices but this machine has one; add GPUs or "
                              "split the CPU with --config.num_cpu_devices=2")
        return Runtime(tf.distribute.MirroredStrategy(local), name, device_type, local)
    raise ConfigError(f"strategy={name!r} is unknown; use one of {', '.join(STRATEGIES)}")


def _multi_worker(device_type: str) -> Runtime:
    num_workers, index = tf_config_workers()
    if num_workers < 2:
        raise ConfigError("strategy=multi_worker needs TF_CONFIG naming at least two workers; start the workers "
                          "with `python -m launch.local --workers=2 -- ...` or set TF_CONFIG")
    impl = (tf.distribute.experimental.CommunicationImplementation.NCCL if device_type == "GPU"
            else tf.distribute.experimental.CommunicationImplementation.RING)
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=impl, timeout_seconds=float(os.environ.get("FMNIST_COLLECTIVE_TIMEOUT_S", "300")))
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    devices = list(strategy.extended.worker_devices)
    return Runtime(strategy, "multi_worker", device_type, devices, num_workers, index,
                   {"communication": impl.name})


def tpu_resolver_plan(tpu: str) -> tuple[dict, bool]:
    """(TPUClusterResolver kwargs, whether to connect to the cluster) for config.tpu.

    "local" is a TPU VM, whose chips this host drives: `TPUClusterResolver(tpu="local")`, as TensorFlow's TPU VM
    instructions give it (an empty name would take the Cloud TPU API route, which needs TPU_NAME). Any other value
    names a TPU Node or gRPC address, reached through `experimental_connect_to_cluster`.
    """
    return {"tpu": tpu}, tpu != "local"


def _tpu(tpu: str) -> Runtime:
    kwargs, connect = tpu_resolver_plan(tpu)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(**kwargs)
        if connect:
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise ConfigError(f"strategy=tpu but no TPU {tpu!r} is reachable ({str(e).splitlines()[0][:120]}); run on a "
                          "TPU VM or pick another --config.strategy") from None
    strategy = tf.distribute.TPUStrategy(resolver)
    devices = [d.name for d in tf.config.list_logical_devices("TPU")]
    return Runtime(strategy, "tpu", "TPU", devices)
